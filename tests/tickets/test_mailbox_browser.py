"""A new admin connects a real Dovecot mailbox on the admin page and sees its mail in the queue."""

from __future__ import annotations

import pytest
from playwright.sync_api import expect

from tests.browser import login, screenshot, watch_console
from tests.dovecot import PASSWORD, USER, dovecot_server
from tickets.models import Mailbox, Message

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]


def test_admin_connects_a_mailbox_and_its_mail_reaches_the_queue(
    page, live_server, admin_user, team_a
):
    problems = watch_console(page)
    page.set_viewport_size({"width": 1280, "height": 900})
    with dovecot_server() as dovecot:
        login(page, live_server, admin_user)

        # The admin finds Mailboxes and connects one
        page.goto(f"{live_server.url}/mailboxes/")
        expect(page.get_by_text("No mailbox is connected yet")).to_be_visible()
        page.get_by_role("link", name="Connect a mailbox").first.click()
        page.get_by_label("Channel name").fill("Support")
        page.get_by_label("Team", exact=True).select_option(label="Team A")
        page.get_by_label("Support address").fill(USER)
        page.get_by_label("IMAP server").fill("127.0.0.1")
        page.get_by_label("Port", exact=True).fill(str(dovecot.port))
        page.get_by_label("Encryption", exact=True).select_option("none")
        page.get_by_label("User name", exact=True).fill(USER)
        page.get_by_label("Password or app password").fill(PASSWORD)
        page.get_by_label("After import").select_option("seen")
        screenshot(page, "mailbox-connect")
        page.get_by_role("button", name="Connect").click()
        expect(page.get_by_text("Saved. Test the connection")).to_be_visible()
        expect(page.get_by_text("stored ✓").first).to_be_visible()

        # A customer writes (delivered to the mailbox), the admin tests the connection
        dovecot.append(
            b"From: Jane Doe <jane@example.com>\r\n"
            b"To: support@desk.test\r\n"
            b"Subject: My parcel for order 7812 is late\r\n"
            b"Message-ID: <parcel-7812@example.com>\r\n"
            b"\r\n"
            b"Hello, tracking has not moved since Monday.\r\n"
        )
        page.get_by_role("button", name="Test connection").click()
        expect(page.get_by_role("status").filter(has_text="Connected to 'INBOX'")).to_have_text(
            "✓ Connected to 'INBOX': 1 message(s) to import."
        )

        # The poll (beat's, or "Poll now") brings it into the queue
        screenshot(page, "mailbox-edit")
        page.get_by_role("link", name="← Mailboxes").click()
        page.get_by_role("button", name="Poll now").click()
        expect(page.get_by_text("A poll of 'Support' is queued.")).to_be_visible()
        expect(page.locator("tr[id^=mailbox-]").first.get_by_text("OK", exact=True)).to_be_visible()
        screenshot(page, "mailboxes")
        page.goto(f"{live_server.url}/")
        expect(page.get_by_role("link", name="My parcel for order 7812 is late")).to_be_visible()
        assert dovecot.flags() == {1: "\\Seen"}

        # When the server goes down, the health page says so after the next poll
        dovecot.stop()
        page.goto(f"{live_server.url}/mailboxes/")
        page.get_by_role("button", name="Poll now").click()
        row = page.locator("tr[id^=mailbox-]").first
        expect(row.get_by_text("Failing", exact=True)).to_be_visible()
        expect(row.get_by_text("1 failed poll since")).to_be_visible()
        expect(row).to_contain_text("ConnectionRefusedError")
        screenshot(page, "mailboxes-failing")
        dovecot.start()

    message = Message.objects.get()
    assert (message.external_id, message.channel.name, message.conversation.team) == (
        "parcel-7812@example.com",
        "Support",
        team_a,
    )
    assert Mailbox.objects.get().consecutive_failures == 1
    assert problems == []
