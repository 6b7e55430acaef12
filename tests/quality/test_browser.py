"""Done when: a manager reviews a sampled conversation; the agent sees and disputes it; an agent
logs an idea from a message and attaches a second customer's message to it."""

from datetime import UTC, datetime

import pytest
import time_machine
from playwright.sync_api import expect

from quality.models import Idea, QAReview
from quality.services import qa_sample_draw
from tests.browser import login, screenshot, watch_console
from tests.factories import make_staff, send_email
from tests.quality.conftest import WEEK
from tickets.models import Conversation, Message
from tickets.services import conversation_reply, conversation_solve

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]


def test_review_dispute_and_ideas(page, live_server, channels, agent_a, manager_a, settings):
    settings.QA_PEER_REVIEW = False
    # Given a conversation Alice answered and solved last week, drawn in the weekly sample
    with time_machine.travel(datetime(2026, 11, 3, 9, 12, tzinfo=UTC), tick=False):
        conversation = Conversation.objects.get(
            pk=send_email(
                channels["email"],
                sender="Jane Doe <jane@example.com>",
                subject="Parcel stuck in customs",
                body="My parcel has been stuck in customs for a week. Can you help?",
            ).conversation_id
        )
    conversation_reply(
        conversation=conversation,
        author=agent_a,
        body="Sorry about that, Jane. I have paid the customs fee; the parcel is on its way.",
        at=datetime(2026, 11, 3, 9, 40, tzinfo=UTC),
        deliver=False,
    )
    conversation_solve(
        conversation=conversation, actor=agent_a, at=datetime(2026, 11, 3, 9, 41, tzinfo=UTC)
    )
    sample = qa_sample_draw(week_start=WEEK, size_per_agent=1, seed="demo")
    review = sample.reviews.get()
    assert review.reviewer == manager_a
    # a second manager joins, who will give the second opinion
    make_staff("bo@desk.example", role="manager", teams=["Team A"], full_name="Bo Second")
    problems = watch_console(page)

    # The manager opens the review from the QA page and scores it next to the timeline
    login(page, live_server, manager_a)
    page.get_by_role("link", name="QA", exact=True).click()
    page.get_by_role("link", name=f"#{conversation.pk}").first.click()
    expect(page.get_by_role("heading", name="Timeline")).to_be_visible()
    expect(page.get_by_text("I have paid the customs fee")).to_be_visible()
    criteria = review.rubric.criteria.all()
    for criterion in criteria:
        group = page.get_by_role("group", name=criterion.name)
        answer = {"Conversational tone": "3", "Created connection": "N/A"}.get(criterion.name)
        if answer is None:
            answer = "Yes" if criterion.scale == "yes_no" else str(criterion.bounds[1])
        group.get_by_label(answer, exact=True).check()
    page.get_by_label("Comment for the agent").fill("Kind and quick; say what happens next.")
    page.evaluate("window.scrollTo(0, 0)")
    screenshot(page, "qa_review")
    page.get_by_role("button", name="Submit review").click()
    # accurate 3 + tone .5 + understood 2 + door 1 over 7 (connection N/A) = 92.86
    expect(page.get_by_role("heading", name="Score: 93/100")).to_be_visible()

    # The agent sees it on the QA page and disputes it
    page.context.clear_cookies()
    login(page, live_server, agent_a)
    page.get_by_role("link", name="QA", exact=True).click()
    page.get_by_role("region", name="Reviews of your conversations").get_by_role(
        "link", name=f"#{conversation.pk}"
    ).click()
    expect(page.get_by_text("Kind and quick; say what happens next.")).to_be_visible()
    page.get_by_label("Your comment (required to dispute)").fill(
        "The customer asked me not to call; tone was what she wanted."
    )
    page.get_by_role("button", name="Dispute").click()
    expect(page.get_by_text("Dispute sent")).to_be_visible()
    expect(page.get_by_text("Disputed", exact=True)).to_be_visible()
    screenshot(page, "qa_dispute")
    review.refresh_from_db()
    assert review.state == "disputed"
    assert QAReview.objects.get(second_of=review).state == "pending"

    # From the customer's message, the agent logs an idea
    page.get_by_role("link", name="Log idea").first.click()
    page.get_by_label("Short title").fill("Export invoices as CSV")
    page.get_by_label("The customer's words").fill("Could I get my invoices as a spreadsheet?")
    page.get_by_role("button", name="Log new idea").click()
    expect(page.get_by_role("heading", name="Export invoices as CSV")).to_be_visible()

    # A second customer asks for the same: the agent finds the idea and attaches the message
    other = send_email(
        channels["email"],
        sender="Omar Haddad <omar@example.net>",
        subject="Spreadsheet export?",
        body="Is there a way to export invoices to Excel or CSV?",
    )
    message = Message.objects.get(pk=other.message_id)
    page.goto(f"{live_server.url}/ideas/log/{message.pk}/")
    page.get_by_label("Search ideas").fill("invoices")
    results = page.locator("#idea-matches")
    expect(results.get_by_text("Export invoices as CSV")).to_be_visible()
    results.get_by_role("button", name="Add this customer to Export invoices as CSV").click()
    expect(page.get_by_test_id("customer-count")).to_have_text("2")
    expect(page.get_by_text("Is there a way to export invoices to Excel or CSV?")).to_be_visible()
    screenshot(page, "idea_detail")

    page.get_by_role("link", name="Ideas", exact=True).click()
    expect(page.get_by_text("Found by Alice Archer")).to_be_visible()
    screenshot(page, "ideas_board")
    assert Idea.objects.get().mentions.count() == 2
    assert problems == []
