"""Notifications in Chromium, as a new agent meets them: the bell, desktop, a mention."""

from __future__ import annotations

import re

import pytest
from django.core.cache import cache
from playwright.sync_api import expect

from tests.browser import login, screenshot, watch_console
from tests.factories import email_bytes, make_staff, send_email
from tests.helpers import post_email
from tickets.models import Conversation
from tickets.services import conversation_assign

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]

# Every `new Notification(...)` the page makes is recorded (the real one still needs the
# permission, which the test grants to the browser context).
CAPTURE_NOTIFICATIONS = """
(() => {
  const Real = window.Notification;
  window.__notifications = [];
  class Recorded {
    constructor(title, options) {
      window.__notifications.push({ title: title, body: (options || {}).body, tag: (options || {}).tag });
      this.onclick = null;
    }
    close() {}
    static get permission() { return Real.permission; }
    static requestPermission(callback) { return Real.requestPermission(callback); }
  }
  window.Notification = Recorded;
})();
"""


@pytest.fixture(autouse=True)
def _fast_poll(settings):
    cache.clear()
    settings.NOTIFICATION_POLL_SECONDS = 1


def test_a_customer_writes_and_the_agent_gets_a_desktop_notification_without_reload(
    page, live_server, channels, agent_a, manager_a
):
    problems = watch_console(page)
    page.context.grant_permissions(["notifications"], origin=live_server.url)
    page.context.add_init_script(CAPTURE_NOTIFICATIONS)
    first = send_email(
        channels["email"],
        sender="Jane Doe <jane@example.com>",
        subject="Parcel for order 7812 is late",
        body="Where is my parcel?",
        message_id="<parcel-1@mail.example.com>",
    )
    conversation = Conversation.objects.get(pk=first.conversation_id)
    conversation_assign(conversation=conversation, actor=manager_a, agent=agent_a)

    # Alice, new here, logs in: the bell says one unread (the assignment), and she switches
    # desktop notifications on from the notifications page.
    login(page, live_server, agent_a)
    bell = page.locator("#notification-bell")
    expect(bell.locator(".bell-count")).to_have_text("1")
    bell.get_by_role("link").click()
    expect(page.get_by_role("heading", name="Notifications")).to_be_visible()
    expect(page.locator(".notification").first).to_contain_text(
        f"Mia Manager assigned #{conversation.pk} to you: Parcel for order 7812 is late"
    )
    page.get_by_role("button", name="Turn on desktop notifications").click()
    expect(page.get_by_text("Desktop notifications are on in this browser.")).to_be_visible()
    page.get_by_role("link", name="Queue").click()
    page.evaluate("window.__stillHere = true")

    # Jane writes again; nobody reloads the page.
    response = post_email(
        channels["email"],
        email_bytes(
            sender="Jane Doe <jane@example.com>",
            subject="Re: Parcel for order 7812 is late",
            body="Tracking still shows nothing. Can you check with the carrier?",
            in_reply_to="<parcel-1@mail.example.com>",
        ),
    )
    assert response.status_code == 201
    assert response.json()["conversation"] == conversation.pk

    expect(bell.locator(".bell-count")).to_have_text("2", timeout=10_000)
    expect(page).to_have_title("(2) Queue · Supportdesk")
    for _ in range(100):  # wait_for_function evaluates strings, which the CSP forbids
        if page.evaluate("window.__notifications.length"):
            break
        page.wait_for_timeout(100)
    assert page.evaluate("window.__stillHere") is True
    assert page.evaluate("window.__notifications") == [
        {
            "title": f"Jane Doe wrote on #{conversation.pk}: Parcel for order 7812 is late",
            "body": "Tracking still shows nothing. Can you check with the carrier?",
            "tag": page.evaluate(
                "'supportdesk-' + document.querySelector('#notification-bell .bell-item').dataset.id"
            ),
        }
    ]
    # Later polls do not show it again.
    page.wait_for_timeout(2_500)
    assert len(page.evaluate("window.__notifications")) == 1
    screenshot(page, "notifications-bell")

    # The list links each to its conversation; opening one marks it read.
    bell.get_by_role("link").click()
    expect(page.get_by_text("Desktop notifications are on in this browser.")).to_be_visible()
    expect(page.locator(".notification").first).to_contain_text("just now")
    screenshot(page, "notifications-list")
    page.get_by_role("link", name=re.compile("Jane Doe wrote on")).click()
    expect(page).to_have_url(re.compile(rf"/conversations/{conversation.pk}/#message-\d+$"))
    expect(page.locator("#notification-bell .bell-count")).to_have_text("1")
    assert problems == []


def test_mention_a_colleague_with_autocomplete_and_the_colleague_sees_it(
    page, live_server, channels, agent_a, agent_b
):
    problems = watch_console(page)
    carl = make_staff("carl@desk.example", teams=["Team A"], full_name="Carl Cooper")
    make_staff("cath@desk.example", teams=["Team A"], full_name="Cathy Chen")
    result = send_email(channels["email"], sender="Jane Doe <jane@example.com>", subject="Refund")

    login(page, live_server, agent_a)
    page.goto(f"{live_server.url}/conversations/{result.conversation_id}/")
    body = page.get_by_label("Message")
    body.click()
    body.press_sequentially("Could you call the carrier, @ca")
    options = page.get_by_role("listbox", name="Teammates to mention").get_by_role("option")
    expect(options).to_have_count(2)
    expect(options.nth(0)).to_contain_text("Carl Cooper")
    expect(options.nth(1)).to_contain_text("Cathy Chen")
    screenshot(page, "notifications-mention-autocomplete")
    body.press("Enter")  # the first: Carl
    expect(page.get_by_role("listbox", name="Teammates to mention")).to_be_hidden()
    body.press_sequentially("? Thanks")
    expect(body).to_have_value("Could you call the carrier, @Carl Cooper ? Thanks")
    # Bob is in another team: the autocomplete never offers him.
    body.press_sequentially(" @bo")
    page.wait_for_timeout(500)
    expect(page.get_by_role("listbox", name="Teammates to mention")).to_be_hidden()
    page.get_by_role("button", name="Add internal note").click()
    expect(page.locator(".messages")).to_contain_text("Internal note added")
    screenshot(page, "notifications-mention")

    # Carl logs in elsewhere: his bell shows the mention, the list names Alice and the note.
    other = page.context.browser.new_context(viewport={"width": 1280, "height": 900})
    carl_page = other.new_page()
    carl_problems = watch_console(carl_page)
    login(carl_page, live_server, carl)
    expect(carl_page.locator("#notification-bell .bell-count")).to_have_text("1")
    carl_page.locator("#notification-bell").get_by_role("link").click()
    item = carl_page.locator(".notification").first
    expect(item).to_contain_text(f"Alice Archer mentioned you on #{result.conversation_id}: Refund")
    expect(item).to_contain_text("Could you call the carrier, @Carl Cooper ? Thanks @bo")
    screenshot(carl_page, "notifications-mentioned")
    carl_page.get_by_role("link", name="Settings").click()
    expect(carl_page.get_by_role("heading", name="Notification settings")).to_be_visible()
    carl_page.get_by_label("An hourly digest").check()
    carl_page.get_by_role("button", name="Save").click()
    expect(carl_page.locator(".messages")).to_contain_text("Notification settings saved.")
    expect(carl_page.get_by_label("An hourly digest")).to_be_checked()
    screenshot(carl_page, "notifications-settings")
    carl_page.go_back()
    carl_page.go_back()
    carl_page.locator(".notification").first.get_by_role("link").click()
    expect(carl_page.get_by_role("heading", name="Refund")).to_be_visible()
    expect(carl_page.locator("#notification-bell .bell-count")).to_have_count(0)
    other.close()
    # Bob, named nowhere he can see, has nothing.
    assert agent_b.notifications.count() == 0
    assert problems == []
    assert carl_problems == []
