"""The dashboard, drill-downs, integrity panel, agent pages, exports, targets and recompute."""

from __future__ import annotations

import csv
import io
import re

import pytest
import time_machine
from django.http import HttpRequest
from django.test import Client

from metrics.models import RecomputeJob, Target
from tests.factories import TEST_PASSWORD
from tests.metrics.desk import NOW

pytestmark = pytest.mark.django_db

WEEK = "period=custom&from=2026-11-02&to=2026-11-09"


def browser(user) -> Client:
    client = Client()
    assert client.login(request=HttpRequest(), email=user.email, password=TEST_PASSWORD)
    return client


def get(user, url):
    with time_machine.travel(NOW, tick=False):
        return browser(user).get(url)


def test_dashboard_shows_the_quadrants_with_n_and_intervals(desk, admin_user):
    response = get(admin_user, f"/dashboard/?{WEEK}")
    assert response.status_code == 200
    html = response.content.decode()
    for title in ("Outcome", "Connection", "Quality", "Speed"):
        assert f">{title} <span" in html
    # Resolution rate 3/5 = 60%, n = 5: greyed (n < 10), with its Wilson interval.
    assert 'class="figure figure-small" data-metric="resolution_rate"' in html
    assert "60%" in html
    assert "95% CI 23 to 88%" in html
    # CSAT stands beside the survey response rate; each speed figure beside its counterweight.
    assert 'aria-label="CSAT beside Survey response rate"' in html
    # Business time first, with the calendar time under it (docs/metrics.md, business time);
    # the promises kept beside both their counterweights.
    assert 'aria-label="First response (business time) beside CSAT"' in html
    assert 'aria-label="Handle time beside Customer FCR"' in html
    assert 'aria-label="Time to resolution (business time) beside Resolution rate"' in html
    assert 'aria-label="Promises kept beside Customer FCR"' in html
    assert "calendar time" in html
    assert 'id="dashboard-data"' in html
    assert "<script>" not in html  # no inline script: the CSP forbids it


def _without_csrf(html: str) -> str:
    html = re.sub(r'name="csrfmiddlewaretoken" value="[^"]*"', "", html)
    return re.sub(r'"X-CSRFToken": "[^"]*"', "", html)


def test_dashboard_reads_only_facts(desk, admin_user, manager_a, django_assert_num_queries):
    from django.core.cache import cache

    client = browser(admin_user)
    with time_machine.travel(NOW, tick=False):
        client.get(f"/dashboard/?{WEEK}")  # warm the session
        cache.clear()
        # Cold: session + user (2); scorecard: facts version, facts, histograms (3); targets (1);
        # trend: facts version, facts, histograms (3); agents' table key: facts version, staff
        # names (2), table: facts version, facts, histograms, agent names (4); pickers: teams,
        # agents (2); notification badge (1); outcomes by topic: facts version, topic facts (2;
        # tag names only when there are topics); coverage by channel: facts version, facts,
        # histograms (3).
        with django_assert_num_queries(23):
            cold = client.get(f"/dashboard/?{WEEK}")
        # Warm: every figure and the agents' table come from the cache, keyed by the facts'
        # version: session + user, 5 versions (the coverage by channel has its own), staff
        # names, targets, pickers, badge.
        with django_assert_num_queries(12):
            warm = client.get(f"/dashboard/?{WEEK}")
    assert cold.status_code == warm.status_code == 200
    assert _without_csrf(warm.content.decode()) == _without_csrf(cold.content.decode())
    assert "Agents</h2>" in warm.content.decode()


def test_scorecard_api_reads_only_facts(desk, admin_user, django_assert_num_queries):
    from tests.conftest import client_for

    client = client_for(admin_user)
    with time_machine.travel(NOW, tick=False), django_assert_num_queries(6):
        # token + user (1); facts, histograms, computed_at (3); agent names (1); ideas captured,
        # read from the quality app's table (1; the pulse is never per agent).
        response = client.get("/api/v1/scorecards/?from=2026-11-02&to=2026-11-09&group_by=agent")
    assert response.status_code == 200
    assert len(response.json()["groups"]) == 2


def test_agent_gets_404_for_dashboards(desk, agent_a, team_b):
    assert get(agent_a, f"/dashboard/?scope=team:{team_b.pk}").status_code == 404
    assert get(agent_a, "/dashboard/").status_code == 404
    assert get(agent_a, f"/dashboard/integrity/?{WEEK}").status_code == 404


def test_manager_gets_404_for_another_teams_dashboard(desk, manager_a, team_b, agent_b):
    assert get(manager_a, f"/dashboard/?scope=team:{team_b.pk}").status_code == 404
    assert get(manager_a, f"/dashboard/agents/{agent_b.pk}/").status_code == 404
    assert get(manager_a, f"/dashboard/?scope=team:{manager_a.teams.get().pk}").status_code == 200


def test_comparison_cannot_be_sorted_by_speed(desk, admin_user):
    response = get(admin_user, f"/dashboard/?{WEEK}&sort=first_response_time")
    assert response.status_code == 400
    assert b"speed is never a ranking on its own" in response.content
    html = get(admin_user, f"/dashboard/?{WEEK}&sort=csat").content.decode()
    assert "sort=first_response_time" not in html
    assert "sort=csat" in html


def test_bad_period_is_a_400(desk, admin_user):
    assert (
        get(admin_user, "/dashboard/?period=custom&from=2026-11-09&to=2026-11-02").status_code
        == 400
    )
    assert get(admin_user, "/dashboard/?period=custom&from=nope&to=2026-11-02").status_code == 400
    assert get(admin_user, "/dashboard/?period=decade").status_code == 400


def test_drill_down_lists_the_conversations_behind_a_figure(desk, admin_user):
    response = get(admin_user, f"/dashboard/drill/?{WEEK}&metric=dropped_rate")
    assert response.status_code == 200
    assert [c.conversation_id for c in response.context["rows"]] == [desk.conversations["c4"].pk]
    response = get(admin_user, f"/dashboard/drill/?{WEEK}&metric=reopen_rate")
    assert [r.conversation_id for r in response.context["rows"]] == [desk.conversations["c3"].pk]
    # A rate where higher is better shows its whole base, numerator marked.
    response = get(admin_user, f"/dashboard/drill/?{WEEK}&metric=resolution_rate")
    rows = response.context["rows"]
    assert len(rows) == 5
    assert sum(r.flagged for r in rows) == 3
    response = get(admin_user, f"/dashboard/drill/?{WEEK}&metric=resolution_gap")
    # One contact by our count, not first-contact in the customer's words: S2 and S5.
    assert sorted(r.conversation_id for r in response.context["rows"]) == sorted(
        [desk.conversations["c2"].pk, desk.conversations["c5"].pk]
    )
    response = get(
        admin_user, f"/dashboard/drill/?{WEEK}&metric=interactions_per_conversation&bucket=1"
    )
    assert [r.conversation_id for r in response.context["rows"]] == [desk.conversations["c4"].pk]


def test_drill_down_query_count_does_not_grow(desk, admin_user, django_assert_num_queries):
    client = browser(admin_user)
    with time_machine.travel(NOW, tick=False):
        client.get(f"/dashboard/drill/?{WEEK}&metric=internal_fcr")
        # session, user, the annotated solves with their joins, notification badge.
        with django_assert_num_queries(4):
            response = client.get(f"/dashboard/drill/?{WEEK}&metric=internal_fcr&all=1")
    assert len(response.context["rows"]) == 7


def test_integrity_panel_lists_the_trap_signals(desk, admin_user):
    response = get(admin_user, f"/dashboard/integrity/?{WEEK}")
    assert response.status_code == 200
    context = response.context
    assert [r.conversation_id for r in context["dropped"]] == [desk.conversations["c4"].pk]
    assert [r.conversation_id for r in context["solicitations"]] == [desk.conversations["c1"].pk]
    assert "rate us 10" in context["solicitations"][0].detail
    assert [s.conversation_id for s in context["not_sent"]["surveys"]] == [
        desk.conversations["c3"].pk
    ]
    assert context["not_sent"]["reasons"] == [("Surveyed recently", 1)]
    gaps = {g["label"]: g["gap"]["display"] for g in context["gaps"]}
    assert gaps == {"Alice Archer": "+50 pts", "Bob Baker": "+0 pts"}


def test_reassigned_after_bad_rating_and_opened_unanswered(desk, admin_user, manager_a):
    from datetime import timedelta

    from surveys.models import Survey
    from surveys.services import survey_mark_opened
    from tests.factories import make_staff as staff
    from tickets.services import conversation_assign

    carol = staff("carol@desk.example", role="agent", teams=["Team A"], full_name="Carol Cole")
    c3 = desk.conversations["c3"]
    # S3a was rated CSAT 2 / not resolved at Tue 18:00; the conversation moves to Carol at 19:00.
    with time_machine.travel(
        Survey.objects.get(event=desk.solves["s3a"]).responses.get().answered_at
        + timedelta(hours=1),
        tick=False,
    ):
        conversation_assign(conversation=c3, actor=manager_a, agent=carol)
    # Pat opened the survey page (its script says so) and never answered.
    survey_mark_opened(
        survey=Survey.objects.get(event=desk.solves["s4"]), now=NOW - timedelta(days=15)
    )
    context = get(admin_user, f"/dashboard/integrity/?{WEEK}").context
    assert [r["survey__conversation_id"] for r in context["reassigned"]] == [c3.pk]
    assert [s.conversation_id for s in context["opened"]] == [desk.conversations["c4"].pk]


def test_agent_sees_own_page_beside_team_total_not_colleagues(desk, agent_a, agent_b):
    response = get(agent_a, f"/scorecard/?{WEEK}")
    assert response.status_code == 302
    response = get(agent_a, f"/dashboard/agents/{agent_a.pk}/?{WEEK}")
    assert response.status_code == 200
    rows = {row["mine"]["key"]: row for row in response.context["rows"]}
    assert rows["resolution_rate"]["mine"]["display"] == "50%"
    assert rows["resolution_rate"]["team"]["display"] == "50%"  # Alice is all of Team A
    assert [v.comment for v in response.context["shout_outs"]] == [
        "Quick and kind, thank you Alice"
    ]
    assert "Bob" not in response.content.decode()
    assert get(agent_a, f"/dashboard/agents/{agent_b.pk}/").status_code == 404
    # Her own drill-down works; anybody else's is a 404.
    assert (
        get(
            agent_a, f"/dashboard/drill/?{WEEK}&scope=agent:{agent_a.pk}&metric=reopen_rate"
        ).status_code
        == 200
    )
    assert (
        get(
            agent_a, f"/dashboard/drill/?{WEEK}&scope=agent:{agent_b.pk}&metric=reopen_rate"
        ).status_code
        == 404
    )


def test_scorecard_csv_is_streamed_by_agent(desk, admin_user):
    response = get(admin_user, f"/dashboard/export.csv?{WEEK}&group_by=agent")
    assert response.status_code == 200
    assert response.streaming
    rows = list(csv.DictReader(io.StringIO(b"".join(response.streaming_content).decode())))
    assert [r["group"] for r in rows] == ["Alice Archer", "Bob Baker"]
    assert rows[0]["resolution_rate"] == "0.5"
    assert rows[0]["resolution_rate_n"] == "4"
    assert rows[1]["system_disconnect_rate"] == "0.5"
    # Numbers stay numbers: a negative interval bound is not mistaken for a formula.
    assert rows[1]["resolution_gap_ci_low"].startswith("-0.")


def test_drill_csv_neutralises_formulas(desk, admin_user, channels):
    from tickets.models import Conversation

    Conversation.objects.filter(pk=desk.conversations["c4"].pk).update(
        subject='=HYPERLINK("http://x")'
    )
    response = get(admin_user, f"/dashboard/drill.csv?{WEEK}&metric=dropped_rate")
    rows = list(csv.reader(io.StringIO(b"".join(response.streaming_content).decode())))
    assert rows[1][1] == '\'=HYPERLINK("http://x")'


def test_drill_csv_reads_its_rows_while_streaming_in_chunks(desk, admin_user, monkeypatch):
    from django.db import connection
    from django.test.utils import CaptureQueriesContext

    url = f"/dashboard/drill.csv?{WEEK}&metric=resolution_rate&all=1"
    whole = b"".join(get(admin_user, url).streaming_content).decode()
    monkeypatch.setattr("metrics.drill.DRILL_CHUNK", 1)

    with CaptureQueriesContext(connection) as queries:
        response = get(admin_user, url)
        before_streaming = len(queries)
        body = b"".join(response.streaming_content).decode()

    # the rows are read from the database only as the response streams, a chunk at a time
    assert response.streaming
    assert len(queries) > before_streaming
    assert not any("tickets_event" in q["sql"] for q in queries.captured_queries[:before_streaming])
    # and the file is the same whatever the chunk size
    assert body == whole
    assert len(list(csv.reader(io.StringIO(body)))) > 2


def test_targets_only_on_outcome_and_connection(desk, manager_a):
    team = manager_a.teams.get()
    client = browser(manager_a)
    with time_machine.travel(NOW, tick=False):
        response = client.post(
            "/dashboard/targets/",
            {"scope": f"team:{team.pk}", "metric": "first_response_time", "value": "60"},
        )
        assert response.status_code == 400
        assert not Target.objects.exists()
        response = client.post(
            "/dashboard/targets/",
            {"scope": f"team:{team.pk}", "metric": "resolution_rate", "value": "40"},
        )
        assert response.status_code == 302
    target = Target.objects.get()
    assert (target.metric, target.team_id, target.value) == ("resolution_rate", team.pk, 0.4)
    # The target shows on the tile (Alice's team: 2/4 = 50%, n < 10 so not coloured).
    html = get(manager_a, f"/dashboard/?scope=team:{team.pk}&{WEEK}").content.decode()
    assert "Target 40%" in html
    assert "figure-good" not in html


def test_recompute_from_the_page_shows_progress(
    desk, manager_a, django_capture_on_commit_callbacks
):
    client = browser(manager_a)
    with time_machine.travel(NOW, tick=False):
        with django_capture_on_commit_callbacks(execute=True):
            response = client.post(
                "/dashboard/recompute/", {"from": "2026-11-02", "to": "2026-11-09"}
            )
        assert response.status_code == 200
        # The fragment polls while queued; the worker (eager here) ran after commit.
        assert b'hx-trigger="every 1s"' in response.content
        job = RecomputeJob.objects.get()
        assert (job.state, job.days_done, job.progress) == ("done", 7, 1.0)
        progress = client.get(f"/dashboard/recompute/{job.pk}/")
    assert b"done, 7 of 7 days" in progress.content
    assert b"every 1s" not in progress.content
    with time_machine.travel(NOW, tick=False):
        bad = client.post("/dashboard/recompute/", {"from": "2026-11-09", "to": "2026-11-02"})
    assert bad.status_code == 400
    assert RecomputeJob.objects.count() == 1


def test_agents_cannot_recompute(desk, agent_a):
    client = browser(agent_a)
    response = client.post("/dashboard/recompute/", {"from": "2026-11-02", "to": "2026-11-09"})
    assert response.status_code == 404
    assert not RecomputeJob.objects.exists()


def test_nav_links_by_role(desk, manager_a, agent_a):
    assert b'href="/dashboard/"' in get(manager_a, "/").content
    home = get(agent_a, "/").content
    assert b'href="/scorecard/"' in home
    assert b'href="/dashboard/"' not in home


def test_agent_page_and_integrity_query_counts_do_not_grow(
    desk, admin_user, agent_a, django_assert_max_num_queries
):
    """Constant queries whatever the number of rows (the desk has several of each)."""
    client = browser(agent_a)
    with time_machine.travel(NOW, tick=False):
        client.get(f"/dashboard/agents/{agent_a.pk}/?{WEEK}")
        # session, user, teams; my card (3); team card (3); targets; voices; QA reviews; badge.
        with django_assert_max_num_queries(14):
            assert client.get(f"/dashboard/agents/{agent_a.pk}/?{WEEK}").status_code == 200
    client = browser(admin_user)
    with time_machine.travel(NOW, tick=False):
        client.get(f"/dashboard/integrity/?{WEEK}")
        # session, user; gaps (4); dropped; solicitations; not sent; reassigned; opened;
        # pickers (2); badge.
        with django_assert_max_num_queries(14):
            assert client.get(f"/dashboard/integrity/?{WEEK}").status_code == 200
