"""The composer as an agent uses it: reply-all, a Cc typed in, a file, through a real SMTP server."""

from __future__ import annotations

import pytest
from playwright.sync_api import expect

from tests.browser import login, screenshot, watch_console
from tests.factories import email_bytes
from tests.helpers import post_email
from tickets.models import Attachment, Message
from tickets.services import channel_create_or_update

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]

SCREENSHOT_PNG = b"\x89PNG\r\n\x1a\n" + bytes(range(256)) * 8


def test_agent_replies_with_a_file_and_copies_from_the_conversation_page(
    page, live_server, agent_a, smtp_server, tmp_path
):
    problems = watch_console(page)
    mailbox = channel_create_or_update(
        kind="email", name="Help inbox", team_name="Team A", address="help@desk.example"
    )
    response = post_email(
        mailbox,
        email_bytes(
            sender="Jane Doe <jane@example.com>",
            to="help@desk.example",
            subject="Screen stays black",
            message_id="<black-1@mail.example.com>",
            extra_headers={"Cc": "Sam Smith <sam@example.com>"},
        ),
    )
    conversation_id = response.json()["conversation"]
    screenshot_file = tmp_path / "where-to-click.png"
    screenshot_file.write_bytes(SCREENSHOT_PNG)

    login(page, live_server, agent_a)
    page.goto(f"{live_server.url}/conversations/{conversation_id}/")
    # Reply all: Sam, whom Jane copied, is offered; Alice adds Lee and attaches a screenshot
    page.get_by_label("Sam Smith <sam@example.com>").check()
    page.get_by_label("Cc", exact=True).fill("lee@example.com")
    page.get_by_label("Attach files").set_input_files(str(screenshot_file))
    page.get_by_label("Message").fill(
        "Hi Jane,\n\nHold the **power button** for 10 seconds, as in the screenshot.\n\nAlice"
    )
    page.locator("#composer").scroll_into_view_if_needed()
    screenshot(page, "composer-copies-and-files")
    page.get_by_role("button", name="Send reply").click()
    expect(page.locator(".messages")).to_contain_text("Reply queued on email")

    # The customer and both copies got one multipart message with the file, threaded
    (sent,) = smtp_server.received
    assert sorted(sent.rcpt_tos) == ["jane@example.com", "lee@example.com", "sam@example.com"]
    message = sent.message
    assert message["To"] == "jane@example.com"
    assert message["Cc"] == "sam@example.com, lee@example.com"
    assert message["In-Reply-To"] == "<black-1@mail.example.com>"
    assert "<strong>power button</strong>" in message.get_body(("html",)).get_content()
    (attachment,) = list(message.iter_attachments())
    assert attachment.get_filename() == "where-to-click.png"
    assert attachment.get_content() == SCREENSHOT_PNG
    # And the timeline shows the reply with its copies and file
    reply = Message.objects.get(conversation_id=conversation_id, direction="outbound")
    assert reply.delivery_state == "sent"
    entry = page.locator(f"#message-{reply.pk}")
    expect(entry).to_contain_text("Cc: sam@example.com, lee@example.com")
    expect(entry.get_by_role("link", name="where-to-click.png")).to_be_visible()
    assert Attachment.objects.get(message=reply).size == len(SCREENSHOT_PNG)
    entry.scroll_into_view_if_needed()
    screenshot(page, "reply-with-copies-and-file")
    assert problems == []


def test_admin_edits_the_acknowledgement_with_a_live_preview(page, live_server, admin_user):
    from supportdesk.models import MailTemplate

    problems = watch_console(page)
    mailbox = channel_create_or_update(
        kind="email", name="Help inbox", team_name="Team A", address="help@desk.example"
    )
    login(page, live_server, admin_user)

    # The mailbox's sending settings: turn the acknowledgement on
    page.goto(f"{live_server.url}/settings/sending/")
    page.get_by_role("link", name="Edit").click()
    page.get_by_label("Sender name").fill("Example Help")
    page.get_by_label("Acknowledge new conversations").check()
    screenshot(page, "sending-settings")
    page.get_by_role("button", name="Save").click()
    expect(page.locator(".messages")).to_contain_text("Sending settings of Help inbox saved")
    mailbox.refresh_from_db()
    assert (mailbox.from_name, mailbox.acknowledge) == ("Example Help", True)

    # Its wording, in Spanish, previewed as typed
    page.goto(f"{live_server.url}/settings/email-templates/")
    page.get_by_role("row", name="Acknowledgement").get_by_role("link", name="Edit").click()
    page.get_by_label("Language").fill("es")
    page.get_by_label("Subject").fill("Recibido: {conversation.subject}")
    page.get_by_label("Text").fill("Hola **{customer.first_name}**, {{ nada }}")
    preview = page.locator("#mail-preview")
    expect(preview).to_contain_text("Recibido: My order has not arrived")
    expect(preview.locator(".mail-preview-html strong")).to_have_text("Jane")
    expect(preview).to_contain_text("{{ nada }}")
    screenshot(page, "email-template-editor")
    page.get_by_role("button", name="Save").click()
    expect(page.locator(".messages")).to_contain_text("Saved (es)")
    assert list(MailTemplate.objects.values_list("language", "subject", "body")) == [
        ("es", "Recibido: {conversation.subject}", "Hola **{customer.first_name}**, {{ nada }}")
    ]
    assert problems == []
