"""Managers' views in a browser: calibration spread, the pulse (5 answers or nothing), cancellations."""

from datetime import UTC, datetime

import pytest
from playwright.sync_api import expect

from quality.models import CancellationReason, QAReview
from quality.services import (
    cancellation_reasons_ensure_default,
    cancellation_record,
    pulse_answer,
    pulse_week_open,
    qa_review_submit,
)
from tests.browser import login, screenshot, watch_console
from tests.factories import make_staff, send_chat, send_email
from tests.quality.conftest import marks, solve_one
from tickets.models import Conversation

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]


def test_calibration_pulse_and_cancellations(page, live_server, channels, agent_a, manager_a):
    problems = watch_console(page)
    peer = make_staff("pia@desk.example", role="agent", teams=["Team A"], full_name="Pia Peer")
    conversation = solve_one(channels, agent_a, at=datetime(2026, 11, 3, 10, tzinfo=UTC))

    # The manager starts a calibration with a peer on a solved conversation
    login(page, live_server, manager_a)
    page.goto(f"{live_server.url}/qa/calibrations/")
    page.get_by_label("Solved conversation number").fill(str(conversation.pk))
    page.get_by_label("Mia Manager").check()
    page.get_by_label("Pia Peer").check()
    page.get_by_role("button", name="Start calibration").click()
    expect(
        page.get_by_role("heading", name=f"Calibration on conversation #{conversation.pk}")
    ).to_be_visible()
    for review in QAReview.objects.filter(kind="calibration"):
        values = marks(review, c1=5) if review.reviewer == manager_a else marks(review, c1=2, c3=1)
        qa_review_submit(review=review, reviewer=review.reviewer, values=values)
    page.reload()
    tone = page.get_by_role("row", name="Conversational tone")
    expect(tone.get_by_role("cell").nth(3)).to_have_text("75")
    screenshot(page, "qa_calibration")

    # Five agents answered the pulse: the team's result shows
    week, _ = pulse_week_open(week_start=datetime(2026, 11, 2).date())
    for i, rating in enumerate((4, 5, 3, 4, 2)):
        agent = make_staff(f"p{i}@desk.example", role="agent", teams=["Team A"])
        pulse_answer(
            user=agent,
            week=week,
            week_rating=rating,
            has_what_needed="partly" if i else "no",
            comment="More training on refunds" if i == 2 else "",
        )
    # results show once the week has closed: the next week's pulse opens
    pulse_week_open(week_start=datetime(2026, 11, 9).date())
    page.get_by_text("More", exact=True).click()  # the top bar's menu of weekly pages
    page.get_by_role("link", name="Pulse", exact=True).click()
    team_row = page.get_by_role("row", name="Team A")
    expect(team_row).to_contain_text("3.6")
    expect(page.get_by_text("More training on refunds").first).to_be_visible()
    screenshot(page, "pulse")

    # Cancellation requests by reason and channel
    cancellation_reasons_ensure_default()
    reasons = list(CancellationReason.objects.order_by("position"))
    for i in range(4):
        result = send_email(channels["email"], sender=f"c{i}@example.com", subject="Cancel my plan")
        cancellation_record(
            conversation=Conversation.objects.get(pk=result.conversation_id),
            actor=agent_a,
            reason=reasons[i % 2],
            outcome=("saved", "cancelled", "pending", "saved")[i],
        )
    chat = send_chat(channels["chat"], visitor_id="v-x", session_id="s-x", body="cancel please")
    cancellation_record(
        conversation=Conversation.objects.get(pk=chat.conversation_id),
        actor=peer,
        reason=reasons[0],
        outcome="cancelled",
    )
    page.get_by_text("More", exact=True).click()  # the top bar's menu of weekly pages
    page.get_by_role("link", name="Cancellations", exact=True).click()
    row = page.locator("#by-reason").get_by_role("row", name="Too expensive")
    expect(row).to_contain_text("3")
    screenshot(page, "cancellations")
    assert problems == []
