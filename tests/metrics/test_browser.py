"""The dashboard in a browser: a manager sees the dashboard drawn, drills down; an agent gets a 404."""

from __future__ import annotations

from datetime import date

import pytest

from metrics.services import facts_compute
from tests.browser import login, screenshot, watch_console
from tests.metrics.desk import answer_surveys, build_desk

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]

WEEK = "period=custom&from=2026-11-02&to=2026-11-09"


@pytest.fixture
def live_desk(agent_a, agent_b, channels, channels_b):
    built = build_desk(channels=channels, channels_b=channels_b)
    answer_surveys(built)
    facts_compute(day_from=date(2026, 11, 2), day_to=date(2026, 11, 9))
    return built


def test_manager_sees_quadrants_and_charts_and_drills_down(
    page, live_server, live_desk, admin_user
):
    problems = watch_console(page)
    login(page, live_server, admin_user)

    page.goto(f"{live_server.url}/dashboard/?{WEEK}")

    for quadrant in ("Outcome", "Connection", "Quality", "Speed"):
        assert page.locator(f"#q-{quadrant.lower()}").is_visible()
    # Chart.js drew all four charts from the data island.
    page.wait_for_function("() => window.Chart && Chart.getChart('chart-coverage') !== undefined")
    drawn = page.evaluate(
        "['chart-trend', 'chart-gap', 'chart-interactions', 'chart-coverage']"
        ".map(id => Chart.getChart(id) !== undefined)"
    )
    assert drawn == [True, True, True, True]
    # Small samples are greyed.
    assert "figure-small" in page.locator('[data-metric="reopen_rate"]').first.get_attribute(
        "class"
    )
    screenshot(page, "dashboard-small-desk")

    # Drill down from the reopen rate to the conversation behind it.
    page.locator('.quadrant-outcome [data-metric="reopen_rate"] .figure-value a').click()
    page.wait_for_url("**/dashboard/drill/**")
    assert page.get_by_role("heading", name="Reopen rate").is_visible()
    rows = page.locator("table.drill-table tbody tr")
    assert rows.count() == 1
    assert "Refund" in rows.first.inner_text()

    # The trend picker redraws the trend chart without errors.
    page.goto(f"{live_server.url}/dashboard/?{WEEK}")
    page.wait_for_function("() => window.Chart && Chart.getChart('chart-trend') !== undefined")
    page.select_option("#trend-metric", "csat")
    assert page.evaluate("Chart.getChart('chart-trend').data.datasets[0].label") == "CSAT"

    # Recompute the period from the page: htmx posts, then follows the job's progress.
    page.get_by_role("button", name="Recompute").click()
    page.locator("#recompute-status").get_by_text("done, 7 of 7 days").wait_for()
    assert problems == []


def test_agent_gets_404_for_another_teams_dashboard(page, live_server, live_desk, agent_a, team_b):
    login(page, live_server, agent_a)
    response = page.goto(f"{live_server.url}/dashboard/?scope=team:{team_b.pk}")
    assert response.status == 404
    response = page.goto(f"{live_server.url}/scorecard/?{WEEK}")
    assert response.status == 200
    assert page.get_by_role("heading", name="My scorecard").is_visible()
