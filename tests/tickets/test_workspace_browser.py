"""The workspace in Chromium, used as a new agent would (and the customer's /chat/ page)."""

from __future__ import annotations

from pathlib import Path
from urllib.parse import urlsplit

import pytest
from django.core import mail
from django.core.cache import cache
from playwright.sync_api import expect

from tests.browser import login, screenshot, watch_console
from tests.factories import send_call, send_chat, send_email, send_social
from tickets.models import Conversation, Message
from tickets.services import (
    conversation_reply,
    conversation_solve,
    identity_link,
    inbound_email_raw,
    saved_replies_seed_defaults,
)

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]

HOSTILE = Path(__file__).parent / "emails" / "hostile_html.eml"
LOOPBACK = {"127.0.0.1", "localhost", "::1", "[::1]"}


@pytest.fixture(autouse=True)
def _fresh_rate_limits():
    cache.clear()


def jane_history(channels, agent, manager) -> Conversation:
    """Jane's earlier solved conversation, then today's: email, a chat, a call, a note."""
    old = send_email(
        channels["email"],
        sender="Jane Doe <jane@example.com>",
        subject="Invoice with our VAT number",
        body="Could you re-issue invoice INV-2291 with our VAT number?",
    )
    old_conversation = Conversation.objects.get(pk=old.conversation_id)
    conversation_reply(
        conversation=old_conversation,
        author=agent,
        body="Done: INV-2291 now shows your VAT number.",
        deliver=False,
    )
    conversation_solve(conversation=old_conversation, actor=agent)
    result = send_email(
        channels["email"],
        sender="Jane Doe <jane@example.com>",
        subject="Parcel for order 7812 is late",
        body="Hello,\n\nMy parcel for order 7812 was due on Monday and tracking has not moved.\n\nJane",
        message_id="<parcel-1@mail.example.com>",
    )
    conversation = Conversation.objects.get(pk=result.conversation_id)
    send_chat(
        channels["chat"],
        visitor_id="v-jane",
        email="jane@example.com",
        name="Jane Doe",
        body="Hi, any news about order 7812? I emailed this morning.",
    )
    identity_link(
        customer=conversation.customer, kind="phone", value="+1 415 555 0142", actor=manager
    )
    send_call(
        channels["phone"],
        from_number="+1 415 555 0142",
        talk_seconds=185,
        notes="Customer calling about the late parcel for order 7812.",
    )
    conversation_reply(
        conversation=conversation,
        author=manager,
        body="Carrier confirms the parcel is at the local depot.",
        internal=True,
    )
    return conversation


def test_agent_finds_customer_by_phone_replies_by_email_and_solves(
    page, live_server, agent_a, manager_a, channels
):
    problems = watch_console(page)
    saved_replies_seed_defaults()
    conversation = jane_history(channels, agent_a, manager_a)

    # Log in, find the customer by their phone number typed another way
    login(page, live_server, agent_a)
    page.get_by_label("Search").fill("(415) 555-0142")
    page.get_by_role("button", name="Apply").click()
    page.get_by_role("link", name="Parcel for order 7812 is late").click()

    # One timeline: email, chat and the call, with contact boundaries
    expect(page.get_by_role("heading", name="Parcel for order 7812 is late")).to_be_visible()
    timeline = page.locator(".timeline")
    expect(timeline).to_contain_text("Contact 1 · email")
    expect(timeline).to_contain_text("Contact 2 · chat")
    expect(timeline).to_contain_text("Contact 3 · phone")
    expect(timeline).to_contain_text("Hi, any news about order 7812?")
    expect(timeline.locator(".call-details")).to_contain_text("185 s")
    expect(page.locator(".customer-panel")).to_contain_text("Invoice with our VAT number")
    expect(page.locator(".customer-panel")).to_contain_text("+1 415 555 0142")

    # Reply by email with a saved reply
    page.get_by_label("Reply on").select_option("email")
    page.get_by_label("Insert saved reply").select_option(label="Refund issued")
    body = page.get_by_label("Message")
    assert body.input_value().startswith("Hi Jane,")
    body.fill("Hi Jane,\n\nThe parcel is at your local depot and goes out today.\n\nAlice")
    page.evaluate("window.scrollTo(0, 0)")
    screenshot(page, "conversation")
    page.get_by_role("button", name="Send reply").click()
    expect(page.locator(".messages")).to_contain_text("Reply queued on email")

    assert len(mail.outbox) == 1
    sent = mail.outbox[0]
    assert sent.to == ["jane@example.com"]
    assert sent.extra_headers["In-Reply-To"] == "<parcel-1@mail.example.com>"
    assert "local depot" in sent.body
    reply = Message.objects.get(conversation=conversation, direction="outbound")
    assert reply.delivery_state == "sent"
    expect(page.locator(f"#message-{reply.pk}")).to_contain_text("Sent")

    # Solve
    page.get_by_role("button", name="Solve").click()
    expect(page.locator(".conv-head .status")).to_have_text("Solved")
    conversation.refresh_from_db()
    assert conversation.status == "solved"
    assert problems == []


def test_collision_shows_the_other_agent_and_holds_a_reply(
    page, live_server, agent_a, manager_a, channels
):
    problems = watch_console(page)
    result = send_email(
        channels["email"],
        sender="Jane Doe <jane@example.com>",
        subject="Cannot log in",
        message_id="<login-1@mail.example.com>",
    )
    url = f"{live_server.url}/conversations/{result.conversation_id}/"

    # Mia opens the conversation in her own browser
    other = page.context.browser.new_context(viewport={"width": 1280, "height": 900})
    mia = other.new_page()
    login(mia, live_server, manager_a)
    mia.goto(url)

    # Alice opens it too and sees Mia there
    login(page, live_server, agent_a)
    page.goto(url)
    expect(page.locator("#presence")).to_contain_text("Mia Manager is also viewing")

    # The customer writes again while Alice is typing
    page.get_by_label("Message").fill("Please reset your password from the login page.")
    send_email(
        channels["email"],
        sender="Jane Doe <jane@example.com>",
        subject="Re: Cannot log in",
        in_reply_to="<login-1@mail.example.com>",
        body="Never mind, a colleague reset it for me.",
    )
    page.get_by_role("button", name="Send reply").click()

    # Held: nothing sent, the warning, the new message and the draft on screen
    expect(page.get_by_role("alert")).to_contain_text("The customer wrote 1 new message")
    expect(page.locator(".timeline")).to_contain_text("Never mind, a colleague reset it for me.")
    expect(page.get_by_label("Message")).to_have_value(
        "Please reset your password from the login page."
    )
    assert not Message.objects.filter(direction="outbound").exists()
    assert mail.outbox == []
    other.close()
    # The held reply answers 409 on purpose (Chromium logs that status); nothing else went wrong
    assert [p for p in problems if "status of 409" not in p] == []


def test_hostile_html_email_renders_inert(page, live_server, agent_a, channels):
    problems = watch_console(page)
    result = inbound_email_raw(channel=channels["email"], raw=HOSTILE.read_bytes())
    outside: list[str] = []
    dialogs: list[str] = []
    page.on(
        "request",
        lambda request: (
            outside.append(request.url)
            if urlsplit(request.url).hostname not in LOOPBACK
            and not request.url.startswith("data:")
            else None
        ),
    )
    page.on("dialog", lambda dialog: dialogs.append(dialog.message) or dialog.dismiss())

    login(page, live_server, agent_a)
    page.goto(f"{live_server.url}/conversations/{result.conversation_id}/")
    frame_element = page.locator("iframe.email-frame")
    expect(frame_element).to_have_attribute("sandbox", "")
    frame = frame_element.element_handle().content_frame()
    frame.wait_for_load_state()

    # The text is readable; nothing active survived; nothing ran; nothing left the machine
    assert "verify" in frame.content()
    assert frame.locator("script, img, iframe, form, svg, object, embed").count() == 0
    assert frame.locator("[onclick], [onerror], [onload], [style]").count() == 0
    assert frame.locator("a[href^='javascript:'], a[href^='data:']").count() == 0
    page.wait_for_load_state("networkidle")
    assert dialogs == []
    assert outside == []
    assert problems == []


def test_chat_page_visitor_writes_and_sees_the_agent_reply(page, live_server, agent_a, channels):
    problems = watch_console(page)
    page.set_viewport_size({"width": 390, "height": 760})

    page.goto(f"{live_server.url}/chat/")
    page.get_by_label("Your email (optional, for replies by email)").fill("sam@example.com")
    page.get_by_role("button", name="Start chatting").click()
    page.get_by_label("Your message").fill("Hello, is my order 5521 shipped?")
    page.get_by_role("button", name="Send").click()
    expect(page.locator("#transcript")).to_contain_text("Hello, is my order 5521 shipped?")

    inbound = Message.objects.get(channel_kind="chat")
    # A typed email is an unverified hint: kept on the message, never an identity of the customer
    assert inbound.claimed_email == "sam@example.com"
    assert not inbound.conversation.customer.identities.filter(value="sam@example.com").exists()
    conversation_reply(
        conversation=inbound.conversation,
        author=agent_a,
        body="Yes, it left our warehouse this morning.",
        channel_kind="chat",
    )
    # The transcript polls: the reply appears without a reload
    expect(page.locator("#transcript")).to_contain_text(
        "Yes, it left our warehouse this morning.", timeout=15_000
    )
    expect(page.locator("#transcript")).to_contain_text("Alice")
    screenshot(page, "chat")
    reply = Message.objects.get(direction="outbound")
    assert reply.delivery_state == "sent"
    assert problems == []


def test_queue_shows_a_new_conversation_without_a_reload(
    page, live_server, agent_a, manager_a, channels
):
    problems = watch_console(page)
    jane_history(channels, agent_a, manager_a)
    send_social(channels["social"], handle="@marco_r", body="@acme my discount code fails")
    send_call(channels["phone"], from_number="+1 212 555 0187", notes="Wants to change plan")
    waiting = send_email(
        channels["email"], sender="Priya Nair <priya@example.org>", subject="Export to CSV"
    )
    conversation_reply(
        conversation=Conversation.objects.get(pk=waiting.conversation_id),
        author=agent_a,
        body="Which report do you need?",
    )
    login(page, live_server, agent_a)
    open_tab = page.get_by_role("link", name="All open")
    expect(open_tab).to_contain_text("4")

    # A customer writes while the agent looks at the queue
    send_chat(
        channels["chat"],
        visitor_id="v-lee",
        session_id="s-lee",
        name="Lee Wong",
        body="My invoice is wrong",
    )

    expect(page.locator("#queue")).to_contain_text("Lee Wong", timeout=25_000)
    expect(open_tab).to_contain_text("5")
    expect(page.get_by_role("link", name="Unassigned")).to_contain_text("4")
    screenshot(page, "queue")
    assert problems == []
