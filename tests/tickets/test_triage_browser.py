"""Triage in Chromium, as a new agent would: tag, bulk-assign, search message text, shortcuts
without a mouse; the queue and the dashboard's topics at 1,280 px (and 1,366 px)."""

from __future__ import annotations

from datetime import timedelta

import pytest
from django.core.cache import cache
from django.utils import timezone
from playwright.sync_api import expect

from metrics.services import facts_compute
from tests.browser import login, screenshot, watch_console
from tests.factories import make_staff, send_chat, send_email
from tests.metrics.desk import record_survey
from tickets.models import Conversation, Message
from tickets.services import (
    conversation_reply,
    conversation_solve,
    conversation_triage,
    tag_create,
)

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]


@pytest.fixture(autouse=True)
def _fresh_cache():
    cache.clear()


QUEUE = [
    (
        "Ada Lovelace <ada@example.com>",
        "Refund for order 4411",
        "My kettle arrived with a cracked lid and I would like a refund, not a replacement.",
    ),
    (
        "Grace Hopper <grace@example.com>",
        "Invoice needs our VAT number",
        "Could you re-issue invoice INV-2291 with our VAT number FR40303265045?",
    ),
    (
        "Alan Turing <alan@example.com>",
        "Parcel stuck in Leeds",
        "Tracking has said 'at depot' for four days now. Is anyone looking into it?",
    ),
    (
        "Katherine Johnson <kj@example.com>",
        "Login code never arrives",
        "I request the code but no SMS comes. I tried twice this morning.",
    ),
    (
        "Edsger Dijkstra <ed@example.com>",
        "Wrong size delivered",
        "I ordered the large pan and got the small one; how do I swap it?",
    ),
    (
        "Barbara Liskov <bl@example.com>",
        "Cancel my subscription",
        "Please cancel at the end of this month and confirm by email.",
    ),
]


def build_queue(channels, manager) -> dict[str, Conversation]:
    tags = {
        n: tag_create(name=n, actor=manager) for n in ("billing", "refund", "delivery", "account")
    }
    found: dict[str, Conversation] = {}
    for minutes, (sender, subject, body) in enumerate(QUEUE):
        result = send_email(channels["email"], sender=sender, subject=subject, body=body)
        conversation = Conversation.objects.get(pk=result.conversation_id)
        stamp = timezone.now() - timedelta(hours=2, minutes=7 * minutes)
        Message.objects.filter(conversation=conversation).update(sent_at=stamp)
        Conversation.objects.filter(pk=conversation.pk).update(last_activity_at=stamp)
        found[subject] = conversation
    conversation_triage(
        conversation=found["Invoice needs our VAT number"],
        actor=manager,
        tags=[tags["billing"]],
        priority="high",
    )
    conversation_triage(
        conversation=found["Parcel stuck in Leeds"], actor=manager, tags=[tags["delivery"]]
    )
    send_chat(
        channels["chat"],
        visitor_id="v-sam",
        email="sam@example.com",
        name="Sam Chen",
        body="Hi! Is the blue teapot back in stock?",
    )
    return found


def no_sideways_scroll(page) -> bool:
    return page.evaluate(
        "() => document.documentElement.scrollWidth <= window.innerWidth"
        " && [...document.querySelectorAll('.table-wrap')].every(w => w.scrollWidth <= w.clientWidth + 1)"
    )


def test_a_new_agent_tags_bulk_assigns_and_searches_message_text(
    page, live_server, channels, manager_a
):
    found = build_queue(channels, manager_a)
    nina = make_staff("nina@desk.example", role="agent", teams=["Team A"], full_name="Nina New")
    problems = watch_console(page)
    login(page, live_server, nina)
    page.goto(f"{live_server.url}/")

    # The queue reads at a glance: waiting time, a preview, priority and tags, no sideways scroll.
    row = page.locator("tr", has_text="Invoice needs our VAT number")
    expect(row.locator(".waiting")).to_have_text("2 h 7 min")
    expect(row.locator(".preview")).to_contain_text("Could you re-issue invoice INV-2291")
    expect(row.locator(".priority")).to_have_text("High")
    expect(row.locator(".tag")).to_have_text("billing")
    assert no_sideways_scroll(page)
    screenshot(page, "queue-triage")
    page.set_viewport_size({"width": 1366, "height": 900})
    assert no_sideways_scroll(page)
    page.set_viewport_size({"width": 1280, "height": 900})

    # Tag a conversation and raise its priority from its page.
    page.get_by_role("link", name="Refund for order 4411").click()
    page.get_by_label("refund", exact=True).check()
    page.get_by_label("Priority").select_option("urgent")
    page.get_by_role("button", name="Save tags and priority").click()
    expect(page.get_by_text("Tags and priority saved.")).to_be_visible()
    expect(page.locator(".conv-head .tag")).to_have_text("refund")
    expect(page.locator(".conv-head .priority")).to_have_text("Urgent")
    refund = found["Refund for order 4411"]
    assert list(refund.tags.values_list("name", flat=True)) == ["refund"]

    # Bulk-assign two rows to herself.
    page.get_by_role("link", name="Queue").first.click()
    page.get_by_label(f"Select #{found['Parcel stuck in Leeds'].pk}").check()
    page.get_by_label(f"Select #{found['Wrong size delivered'].pk}").check()
    expect(page.locator("#bulk-count")).to_have_text("2 selected")
    page.get_by_label("Action", exact=True).select_option("assign_me")
    page.get_by_role("button", name="Update selected").click()
    expect(page.get_by_text("2 conversations assigned to you.")).to_be_visible()
    assigned = Conversation.objects.filter(assignee=nina).values_list("subject", flat=True)
    assert sorted(assigned) == ["Parcel stuck in Leeds", "Wrong size delivered"]

    # Search the message text: "kettle" is only in Ada's message, and it is highlighted.
    page.get_by_label("Search").fill("kettle")
    page.get_by_role("button", name="Apply", exact=True).click()
    expect(page.locator("table.queue tbody tr")).to_have_count(1)
    expect(page.locator("table.queue mark")).to_have_text("kettle")
    expect(page.locator("table.queue mark")).to_be_visible()
    screenshot(page, "queue-search")
    assert problems == []


def test_shortcuts_without_a_mouse(page, live_server, channels, manager_a):
    found = build_queue(channels, manager_a)
    nina = make_staff("nina@desk.example", role="agent", teams=["Team A"], full_name="Nina New")
    problems = watch_console(page)
    login(page, live_server, nina)
    page.goto(f"{live_server.url}/")

    page.keyboard.press("?")
    overlay = page.get_by_role("dialog", name="Keyboard shortcuts")
    expect(overlay).to_be_visible()
    expect(overlay).to_contain_text("Next / previous conversation")
    screenshot(page, "shortcuts")
    page.keyboard.press("Escape")
    expect(overlay).to_be_hidden()

    rows = page.locator("table.queue tbody tr")
    page.keyboard.press("j")
    expect(rows.nth(0)).to_have_class("queue-row priority-row-normal is-cursor")
    page.keyboard.press("j")
    page.keyboard.press("j")
    page.keyboard.press("k")
    expect(rows.nth(1)).to_have_class("queue-row priority-row-normal is-cursor")
    second_subject = rows.nth(1).locator(".subject a").inner_text()

    # "a": assign the highlighted conversation to me.
    page.keyboard.press("a")
    expect(page.get_by_text("1 conversation assigned to you.")).to_be_visible()
    assert Conversation.objects.get(subject=second_subject).assignee == nina

    # "/": search; Enter runs it; Escape leaves the field; "j" then "o" opens the result.
    page.keyboard.press("/")
    page.keyboard.type("VAT")
    page.keyboard.press("Enter")
    expect(rows).to_have_count(1)
    page.keyboard.press("Escape")
    page.keyboard.press("j")
    page.keyboard.press("o")
    invoice = found["Invoice needs our VAT number"]
    page.wait_for_url(f"**/conversations/{invoice.pk}/")

    # "r": write a reply, Ctrl+Enter sends it; "e" solves.
    page.keyboard.press("r")
    expect(page.locator("#reply-body")).to_be_focused()
    page.keyboard.type("Done: the new invoice is attached.")
    page.keyboard.press("Control+Enter")
    expect(page.get_by_text("Reply queued on email.")).to_be_visible()
    page.keyboard.press("e")
    expect(page.get_by_text("Solved. The customer will be asked whether it is.")).to_be_visible()
    invoice.refresh_from_db()
    assert invoice.status == "solved"
    assert Message.objects.get(conversation=invoice, direction="outbound").body_text == (
        "Done: the new invoice is attached."
    )
    page.keyboard.press("?")
    expect(page.get_by_role("dialog", name="Keyboard shortcuts")).to_contain_text("Write a reply")
    assert problems == []


def test_the_dashboard_shows_outcomes_by_topic(page, live_server, channels, manager_a, agent_a):
    tags = {n: tag_create(name=n, actor=manager_a) for n in ("billing", "delivery", "refund")}
    answers = [
        ("billing", "yes", 1),
        ("billing", "yes", 2),
        ("billing", "no", 3),
        ("delivery", "yes", 1),
        ("delivery", "partly", 2),
        ("refund", "yes", 1),
        ("refund", "yes", 1),
    ]
    for index, (tag, resolved, declared) in enumerate(answers):
        result = send_email(
            channels["email"], sender=f"c{index}@example.com", subject=f"{tag} #{index}"
        )
        conversation = Conversation.objects.get(pk=result.conversation_id)
        conversation_reply(conversation=conversation, author=agent_a, body="Sorted.", deliver=False)
        conversation_triage(conversation=conversation, actor=agent_a, tags=[tags[tag]])
        solve = conversation_solve(conversation=conversation, actor=agent_a)
        record_survey(solve, resolved=resolved, contacts_declared=declared, csat=4)
    today = timezone.localdate()
    facts_compute(day_from=today - timedelta(days=1), day_to=today + timedelta(days=1))
    problems = watch_console(page)
    login(page, live_server, manager_a)
    page.goto(f"{live_server.url}/dashboard/")
    table = page.locator("table.topic-table")
    expect(table).to_be_visible()
    expect(table.locator("tbody tr").first).to_contain_text("billing")
    table.scroll_into_view_if_needed()
    assert page.evaluate(
        "() => { const w = document.querySelector('.topics .table-wrap');"
        " return w.scrollWidth <= w.clientWidth + 1"
        " && document.documentElement.scrollWidth <= window.innerWidth; }"
    )
    screenshot(page, "dashboard-topics")
    assert problems == []


def test_a_manager_keeps_the_tags(page, live_server, channels, manager_a):
    tag_create(name="billing", actor=manager_a)
    problems = watch_console(page)
    login(page, live_server, manager_a)
    page.goto(f"{live_server.url}/")
    page.get_by_text("More").click()
    page.get_by_role("link", name="Tags").click()
    page.get_by_label("New tag").fill("Returns")
    page.get_by_role("button", name="Create tag").click()
    expect(page.get_by_text("Tag “Returns” created.")).to_be_visible()
    page.get_by_label("New name for Returns").fill("Returns and exchanges")
    page.get_by_role("row", name="Returns").get_by_role("button", name="Rename").click()
    expect(page.get_by_text("Tag renamed to “Returns and exchanges”.")).to_be_visible()
    page.get_by_role("row", name="billing").get_by_role("button", name="Archive").click()
    expect(page.get_by_role("row", name="billing")).to_contain_text("Archived")
    screenshot(page, "tags")
    from tickets.models import Tag

    assert sorted((t.name, t.archived_at is None) for t in Tag.objects.all()) == [
        ("Returns and exchanges", True),
        ("billing", False),
    ]
    assert problems == []
