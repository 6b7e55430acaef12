"""Mailboxes against a real Dovecot: exactly-once import, UIDVALIDITY, quarantine, health, OAuth2.

No mock of IMAP or SMTP: Dovecot (tests/dovecot.py) and the SMTP sink (tests/services.py) are real
servers on loopback ports; only the OAuth2 provider (the outside world) is a local HTTP server.
"""

from __future__ import annotations

import base64
import json
import os
import signal
import subprocess
import sys
import threading
from collections.abc import Iterator
from datetime import timedelta
from io import StringIO
from typing import Any

import pytest
import time_machine
from django.conf import settings
from django.core import mail
from django.core.management import call_command
from django.utils import timezone

from supportdesk.models import AuditEntry, Notification
from supportdesk.sealing import seal, unseal
from tests.dovecot import PASSWORD, USER, Dovecot, dovecot_server
from tests.oauth_provider import OAuthProvider
from tests.services import BASE_DIR, require_postgres, smtp_sink, wait_for, worker_database_url
from tickets.mailbox_transport import xoauth2_string
from tickets.models import Event, Mailbox, MailboxImport, Message, QuarantinedMessage
from tickets.services import (
    conversation_reply,
    mailbox_poll,
    mailbox_save,
    mailbox_test_connection,
)
from tickets.tasks import mailboxes_poll_task


def email_bytes(i: int, *, sender: str | None = None) -> bytes:
    sender = sender or f"customer{i}@example.test"
    return (
        f"From: Customer {i} <{sender}>\r\n"
        f"To: {USER}\r\n"
        f"Subject: Question number {i}\r\n"
        f"Message-ID: <m{i}@example.test>\r\n"
        "Date: Fri, 04 Dec 2026 09:00:00 +0000\r\n"
        "MIME-Version: 1.0\r\n"
        "Content-Type: text/plain; charset=utf-8\r\n"
        "\r\n"
        f"Hello, this is message {i}.\r\n"
    ).encode()


@pytest.fixture
def dovecot() -> Iterator[Dovecot]:
    with dovecot_server() as server:
        yield server


def connect(dovecot: Dovecot, channel: Any, **values: Any) -> Mailbox:
    return mailbox_save(
        channel=channel,
        values={
            "imap_host": "127.0.0.1",
            "imap_port": dovecot.port,
            "imap_security": "none",
            "username": USER,
            **values,
        },
        credentials={"password": PASSWORD},
    )


def inbound_count(channel: Any) -> int:
    return Message.objects.filter(channel=channel, direction=Message.Direction.INBOUND).count()


# --- Import ---------------------------------------------------------------------------------------


def test_poll_imports_new_mail_once_and_marks_it_seen(dovecot, channels):
    # Given three messages in the box and a mailbox that marks what it imports seen
    dovecot.append(*(email_bytes(i) for i in range(3)))
    mailbox = connect(dovecot, channels["email"], after_import="seen")

    # When it is polled twice
    first = mailbox_poll(mailbox_id=mailbox.pk)
    second = mailbox_poll(mailbox_id=mailbox.pk)

    # Then the three are stored once, each a conversation of the channel's team, seen on the server
    assert (first.imported, first.skipped, first.quarantined, first.error) == (3, 0, 0, "")
    assert (second.imported, second.skipped, second.quarantined) == (0, 0, 0)
    messages = Message.objects.filter(channel=channels["email"]).order_by("external_id")
    assert [m.external_id for m in messages] == [f"m{i}@example.test" for i in range(3)]
    assert {m.conversation.team.name for m in messages} == {"Team A"}
    assert dovecot.flags() == {1: "\\Seen", 2: "\\Seen", 3: "\\Seen"}
    mailbox.refresh_from_db()
    assert (mailbox.last_uid, mailbox.progress_done, mailbox.progress_total) == (3, 0, 0)
    assert mailbox.uidvalidity == dovecot.uidvalidity()
    assert mailbox.last_success_at is not None
    assert (mailbox.consecutive_failures, mailbox.last_error, mailbox.healthy) == (0, "", True)


def test_an_async_mailbox_accepts_each_uid_once_and_the_worker_stores_it(dovecot, channels):
    from tickets.models import InboundQueueItem
    from tickets.services import channel_create_or_update
    from tickets.services.inbound_queue import inbound_queue_process

    # Given a mailbox whose channel is in the asynchronous ingestion mode
    channel_create_or_update(kind="email", name=channels["email"].name, ingest_mode="async")
    dovecot.append(*(email_bytes(i) for i in range(3)))
    mailbox = connect(dovecot, channels["email"], after_import="seen")

    # When it is polled twice: each UID is accepted once, nothing is stored as a message yet
    first = mailbox_poll(mailbox_id=mailbox.pk)
    second = mailbox_poll(mailbox_id=mailbox.pk)
    assert (first.imported, first.skipped, first.quarantined, first.error) == (3, 0, 0, "")
    assert (second.imported, second.skipped, second.quarantined) == (0, 0, 0)
    rows = InboundQueueItem.objects.order_by("pk")
    assert [(r.kind, r.source, r.external_id) for r in rows] == [
        ("imap", "imap", f"<m{i}@example.test>") for i in range(3)
    ]
    assert Message.objects.count() == 0
    assert dovecot.flags() == {1: "\\Seen", 2: "\\Seen", 3: "\\Seen"}

    # Then the ingest worker stores the three, once
    assert inbound_queue_process() == 3
    messages = Message.objects.filter(channel=channels["email"]).order_by("external_id")
    assert [m.external_id for m in messages] == [f"m{i}@example.test" for i in range(3)]
    assert set(rows.values_list("status", flat=True)) == {"done"}


def test_leave_keeps_messages_unseen_and_move_moves_them(dovecot, channels):
    dovecot.append(email_bytes(1))
    mailbox = connect(dovecot, channels["email"])  # leave (the default)
    assert mailbox_poll(mailbox_id=mailbox.pk).imported == 1
    assert dovecot.flags() == {1: ""}

    # When the admin switches to "move to Imported" and more mail arrives
    mailbox = mailbox_save(
        channel=channels["email"],
        values={"after_import": "move", "move_to_folder": "Imported"},
    )
    dovecot.append(email_bytes(2))
    result = mailbox_poll(mailbox_id=mailbox.pk)

    # Then only the new message is imported, and it (only it) is moved; nothing is deleted
    assert (result.imported, result.skipped) == (1, 0)
    assert dovecot.uids() == [1]
    assert dovecot.uids("Imported") == [1]
    assert inbound_count(channels["email"]) == 2


def test_first_import_reaches_back_mailbox_import_days(dovecot, channels, settings):
    settings.MAILBOX_IMPORT_DAYS = 30
    old, recent = email_bytes(1), email_bytes(2)
    with dovecot.imap() as client:
        client.append("INBOX", "", '"01-Jan-2026 10:00:00 +0000"', old)
        client.append("INBOX", "", None, recent)
    mailbox = connect(dovecot, channels["email"])

    result = mailbox_poll(mailbox_id=mailbox.pk)

    assert (result.imported, result.skipped) == (1, 0)
    assert list(
        Message.objects.filter(channel=channels["email"]).values_list("external_id", flat=True)
    ) == ["m2@example.test"]


@pytest.mark.django_db(transaction=True)
def test_500_messages_import_exactly_once_across_a_sigkill_and_a_restart(dovecot, team_a):
    # Given 500 messages and a mailbox whose poller is SIGKILLed in the middle of a batch
    require_postgres()
    from tickets.services import channel_create_or_update

    channel = channel_create_or_update(kind="email", name="Support", team_name="Team A")
    mailbox = connect(dovecot, channel)
    dovecot.append(*(email_bytes(i) for i in range(500)))
    env = {
        **os.environ,
        "DATABASE_URL": worker_database_url(),
        "SECRET_KEY": settings.SECRET_KEY,
        "MAILBOX_BATCH_SIZE": "40",
        "DATA_DIR": str(BASE_DIR / "var" / "test-mailbox-poll"),
    }
    poller = subprocess.Popen(
        [sys.executable, "manage.py", "mailbox_poll", "Support"],
        cwd=BASE_DIR,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
    )
    try:
        wait_for(
            lambda: (
                MailboxImport.objects.filter(mailbox=mailbox).count() >= 130
                or poller.poll() is not None
            ),
            timeout=120,
            interval=0.01,
            what="the poller to import a few batches",
        )
        assert poller.poll() is None, poller.stdout.read() if poller.stdout else ""
        poller.send_signal(signal.SIGKILL)
        poller.wait(timeout=10)
    finally:
        if poller.poll() is None:
            poller.kill()
    done_before = MailboxImport.objects.filter(mailbox=mailbox).count()
    assert 130 <= done_before < 500
    assert inbound_count(channel) == done_before  # each import committed with its message
    mailbox.refresh_from_db()
    assert mailbox.poll_lease_until is not None  # the dead poller still holds its lease

    # When a new poll runs before the lease ran out, it leaves the mailbox alone
    busy = mailbox_poll(mailbox_id=mailbox.pk)
    assert busy.busy
    assert (busy.imported, busy.skipped) == (0, 0)

    # And once it ran out (the worker restarted later), the next poll finishes the job
    later = timezone.now() + timedelta(seconds=settings.MAILBOX_POLL_LEASE_SECONDS + 1)
    with time_machine.travel(later, tick=True):
        result = mailbox_poll(mailbox_id=mailbox.pk)
        again = mailbox_poll(mailbox_id=mailbox.pk)

    # Then all 500 are stored exactly once, none lost
    assert result.error == ""
    assert result.imported == 500 - done_before
    assert result.skipped <= 40  # only the UIDs of the killed batch that had committed
    assert (again.imported, again.skipped, again.quarantined) == (0, 0, 0)
    external_ids = list(
        Message.objects.filter(channel=channel).values_list("external_id", flat=True)
    )
    assert len(external_ids) == 500
    assert set(external_ids) == {f"m{i}@example.test" for i in range(500)}
    assert MailboxImport.objects.filter(mailbox=mailbox).count() == 500
    assert set(MailboxImport.objects.values_list("outcome", flat=True)) == {"imported"}
    mailbox.refresh_from_db()
    assert (mailbox.last_uid, mailbox.poll_lease_until) == (500, None)


def test_uidvalidity_reset_imports_nothing_twice(dovecot, channels):
    dovecot.append(*(email_bytes(i) for i in range(5)))
    mailbox = connect(dovecot, channels["email"])
    assert mailbox_poll(mailbox_id=mailbox.pk).imported == 5
    old_validity = Mailbox.objects.get(pk=mailbox.pk).uidvalidity

    # When the server renumbers the folder, and one new message arrives
    new_validity = dovecot.reset_uidvalidity()
    dovecot.append(email_bytes(5))
    result = mailbox_poll(mailbox_id=mailbox.pk)

    # Then only the new message is stored; the five are recognised by their Message-ID
    assert (result.imported, result.skipped, result.quarantined) == (1, 5, 0)
    assert inbound_count(channels["email"]) == 6
    mailbox.refresh_from_db()
    assert (mailbox.uidvalidity, mailbox.last_uid) == (new_validity, 6)
    assert MailboxImport.objects.filter(mailbox=mailbox, uidvalidity=old_validity).count() == 5
    assert list(
        MailboxImport.objects.filter(mailbox=mailbox, uidvalidity=new_validity)
        .order_by("uid")
        .values_list("uid", "outcome")
    ) == [
        (1, "skipped"),
        (2, "skipped"),
        (3, "skipped"),
        (4, "skipped"),
        (5, "skipped"),
        (6, "imported"),
    ]


def test_malformed_message_is_quarantined_and_the_next_nine_are_imported(dovecot, channels):
    broken = b"this is not an email, just a line of text\r\n"
    dovecot.append(broken, *(email_bytes(i) for i in range(9)))
    mailbox = connect(dovecot, channels["email"])

    result = mailbox_poll(mailbox_id=mailbox.pk)

    assert (result.imported, result.skipped, result.quarantined, result.error) == (9, 0, 1, "")
    quarantined = QuarantinedMessage.objects.get()
    assert (quarantined.channel, quarantined.source, bytes(quarantined.raw)) == (
        channels["email"],
        "imap",
        broken,
    )
    assert quarantined.error == "not an email: no header fields found"
    assert inbound_count(channels["email"]) == 9
    assert list(MailboxImport.objects.order_by("uid").values_list("uid", "outcome")) == [
        (1, "quarantined")
    ] + [(uid, "imported") for uid in range(2, 11)]
    # Quarantined once: another poll does not quarantine it again
    assert mailbox_poll(mailbox_id=mailbox.pk).quarantined == 0
    assert QuarantinedMessage.objects.count() == 1


@pytest.mark.django_db(transaction=True)
def test_two_polls_at_once_never_poll_one_mailbox_twice(dovecot, channels):
    dovecot.append(*(email_bytes(i) for i in range(60)))
    mailbox = connect(dovecot, channels["email"])
    results = []
    barrier = threading.Barrier(2)

    def poll() -> None:
        from django.db import connection

        barrier.wait()
        try:
            results.append(mailbox_poll(mailbox_id=mailbox.pk))
        finally:
            connection.close()

    # Two threads (two database connections) start together: one holds the lease, the other
    # finds it held (busy) or the work done.
    threads = [threading.Thread(target=poll) for _ in range(2)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert sum(r.imported for r in results) == 60
    assert inbound_count(channels["email"]) == 60


# --- Health ----------------------------------------------------------------------------------------


def test_server_down_shows_alerts_once_and_importing_resumes_by_itself(
    dovecot, channels, admin_user, client, settings, django_capture_on_commit_callbacks
):
    settings.MAILBOX_ALERT_MINUTES = 5
    mailbox = connect(dovecot, channels["email"])
    start = timezone.now()
    with time_machine.travel(start, tick=False):
        assert mailbox_poll(mailbox_id=mailbox.pk).error == ""

    # Given the server stops and mail keeps arriving for it
    dovecot.stop()
    with (
        time_machine.travel(start + timedelta(minutes=1), tick=False),
        django_capture_on_commit_callbacks(execute=True),
    ):
        first = mailbox_poll(mailbox_id=mailbox.pk)
    mailbox.refresh_from_db()
    assert first.error.startswith(
        f"Cannot connect to 127.0.0.1:{dovecot.port}: ConnectionRefusedError"
    )
    assert (mailbox.consecutive_failures, mailbox.healthy, mailbox.alerted) == (1, False, False)
    assert Notification.objects.count() == 0

    # Then the health page and the API show it
    client.force_login(admin_user)
    page = client.get("/mailboxes/").content.decode()
    assert "ConnectionRefusedError" in page
    assert "1 failed poll" in page

    # When it has failed for five minutes (beat polls every minute), the admins get one email
    for minute in range(2, 9):
        with (
            time_machine.travel(start + timedelta(minutes=minute), tick=False),
            django_capture_on_commit_callbacks(execute=True),
        ):
            mailboxes_poll_task()
    mailbox.refresh_from_db()
    assert (mailbox.consecutive_failures, mailbox.alerted) == (8, True)
    failing = Notification.objects.get(kind="mailbox.failing")
    assert failing.recipient == admin_user
    assert failing.title == "Mailbox 'email A' has failed for 5 minutes"
    assert [m.subject for m in mail.outbox] == ["Mailbox 'email A' has failed for 5 minutes"]
    assert Event.objects.filter(kind="mailbox.failing").count() == 1

    # When the server is back, the next beat tick imports what arrived and says so, once
    dovecot.start()
    dovecot.append(email_bytes(1), email_bytes(2))
    with (
        time_machine.travel(start + timedelta(minutes=9), tick=False),
        django_capture_on_commit_callbacks(execute=True),
    ):
        mailboxes_poll_task()
        mailboxes_poll_task()
    mailbox.refresh_from_db()
    assert (mailbox.consecutive_failures, mailbox.last_error, mailbox.alerted) == (0, "", False)
    assert mailbox.failing_since is None
    assert inbound_count(channels["email"]) == 2
    assert [n.kind for n in Notification.objects.order_by("pk")] == [
        "mailbox.failing",
        "mailbox.recovered",
    ]
    assert mail.outbox[1].subject == "Mailbox 'email A' is fetching mail again"
    assert Event.objects.filter(kind="mailbox.recovered").count() == 1


def test_wrong_password_is_a_clear_error_and_never_shows_the_password(dovecot, channels):
    mailbox = mailbox_save(
        channel=channels["email"],
        values={
            "imap_host": "127.0.0.1",
            "imap_port": dovecot.port,
            "imap_security": "none",
            "username": USER,
        },
        credentials={"password": "wrong-password-123"},
    )
    ok, text = mailbox_test_connection(mailbox=mailbox)
    result = mailbox_poll(mailbox_id=mailbox.pk)

    assert not ok
    assert text.startswith(f"The server refused the login for '{USER}'")
    assert result.error == text
    assert "wrong-password-123" not in text
    mailbox.refresh_from_db()
    assert mailbox.consecutive_failures == 1
    assert "wrong-password-123" not in mailbox.password_sealed


def test_test_connection_counts_what_would_be_imported(dovecot, channels):
    dovecot.append(email_bytes(1), email_bytes(2))
    mailbox = connect(dovecot, channels["email"], after_import="move", move_to_folder="Done")

    ok, text = mailbox_test_connection(mailbox=mailbox)

    assert ok
    assert text == (
        "Connected to 'INBOX': 2 message(s) to import. "
        "The folder 'Done' will be created on the first import."
    )
    assert inbound_count(channels["email"]) == 0  # a test imports nothing


# --- Credentials ------------------------------------------------------------------------------------


def test_credentials_are_sealed_and_the_audit_log_names_no_value(channels):
    mailbox = mailbox_save(
        channel=channels["email"],
        values={"imap_host": "imap.example.test", "username": "desk@example.test"},
        credentials={"password": "pw-one-111", "smtp_password": "pw-two-222"},
    )
    assert unseal(mailbox.password_sealed) == "pw-one-111"
    assert unseal(mailbox.smtp_password_sealed) == "pw-two-222"
    # A blank credential keeps the stored one
    mailbox_save(
        channel=channels["email"], values={"folder": "Support"}, credentials={"password": ""}
    )
    mailbox.refresh_from_db()
    assert (mailbox.folder, unseal(mailbox.password_sealed)) == ("Support", "pw-one-111")
    entries = list(AuditEntry.objects.order_by("pk").values_list("action", "summary"))
    assert entries[-3:] == [
        ("mailbox.connected", "Mailbox desk@example.test@imap.example.test connected to 'email A'"),
        ("mailbox.credentials_set", "Mailbox of 'email A': password, smtp_password set"),
        ("mailbox.changed", "Mailbox of 'email A' changed: folder"),
    ]
    dumped = json.dumps(list(AuditEntry.objects.values("summary", "details")))
    assert "pw-one-111" not in dumped
    assert "pw-two-222" not in dumped


def test_a_mailbox_needs_a_password_and_an_email_channel(channels):
    from supportdesk.errors import ApplicationError

    with pytest.raises(ApplicationError, match="Enter the mailbox password"):
        mailbox_save(
            channel=channels["email"],
            values={"imap_host": "imap.example.test", "username": "desk@example.test"},
        )
    with pytest.raises(ApplicationError, match="Only email channels have a mailbox"):
        mailbox_save(
            channel=channels["chat"],
            values={"imap_host": "imap.example.test", "username": "x"},
            credentials={"password": "p"},
        )
    assert Mailbox.objects.count() == 0
    assert not AuditEntry.objects.filter(action__startswith="mailbox.").exists()


# --- OAuth2 -------------------------------------------------------------------------------------------


def oauth_mailbox(channel: Any, port: int, provider: OAuthProvider) -> Mailbox:
    mailbox = mailbox_save(
        channel=channel,
        values={
            "imap_host": "127.0.0.1",
            "imap_port": port,
            "imap_security": "none",
            "username": USER,
            "auth": "oauth2",
            "oauth_provider": "custom",
            "oauth_client_id": "desk-client",
            "oauth_authorize_url": f"{provider.url}/authorize",
            "oauth_token_url": f"{provider.url}/token",
            "oauth_scope": "mail",
        },
        credentials={"oauth_client_secret": "client-secret-xyz"},
    )
    # Connected earlier: a refresh token, and an access token that has expired since.
    mailbox.oauth_refresh_token_sealed = seal("refresh-token-abc")
    mailbox.oauth_access_token_sealed = seal("access-expired")
    mailbox.oauth_access_token_expires_at = timezone.now() - timedelta(minutes=5)
    mailbox.save()
    return mailbox


def test_expired_oauth_access_token_is_refreshed_and_dovecot_accepts_xoauth2(
    channels, oauth_provider
):
    with dovecot_server(oauth_introspection_url=f"{oauth_provider.url}/introspect") as dovecot:
        dovecot.append(email_bytes(1))
        mailbox = oauth_mailbox(channels["email"], dovecot.port, oauth_provider)

        result = mailbox_poll(mailbox_id=mailbox.pk)
        again = mailbox_poll(mailbox_id=mailbox.pk)

    # Then the token endpoint was asked once, with the stored refresh token and the client
    assert (result.imported, result.error) == (1, "")
    assert again.error == ""
    token_requests = [form for path, form in oauth_provider.requests if path == "/token"]
    assert token_requests == [
        {
            "grant_type": "refresh_token",
            "refresh_token": "refresh-token-abc",
            "client_id": "desk-client",
            "client_secret": "client-secret-xyz",
        }
    ]
    # And Dovecot checked the new token (XOAUTH2) at the introspection endpoint
    introspected = [
        form["token"] for path, form in oauth_provider.requests if path == "/introspect"
    ]
    assert introspected
    assert set(introspected) == {"access-1"}
    mailbox.refresh_from_db()
    assert unseal(mailbox.oauth_access_token_sealed) == "access-1"
    assert unseal(mailbox.oauth_refresh_token_sealed) == "refresh-token-abc"
    assert mailbox.oauth_access_token_expires_at > timezone.now() + timedelta(minutes=59)


def test_refused_refresh_token_is_a_health_failure(dovecot, channels, oauth_provider):
    mailbox = oauth_mailbox(channels["email"], dovecot.port, oauth_provider)
    mailbox.oauth_token_url = f"{oauth_provider.url}/nowhere"
    mailbox.save()

    result = mailbox_poll(mailbox_id=mailbox.pk)

    assert result.error == "The token endpoint refused the request (404): not_found"
    mailbox.refresh_from_db()
    assert (mailbox.consecutive_failures, mailbox.last_error) == (1, result.error)


def test_xoauth2_string_is_the_sasl_initial_response():
    assert xoauth2_string("a@b.test", "tok") == "user=a@b.test\x01auth=Bearer tok\x01\x01"


# --- Sending through the mailbox's SMTP account ----------------------------------------------------


def test_reply_goes_out_through_the_mailbox_smtp_account(
    dovecot, channels, agent_a, settings, django_capture_on_commit_callbacks
):
    settings.EMAIL_BACKEND = "django.core.mail.backends.locmem.EmailBackend"
    dovecot.append(email_bytes(1))
    with smtp_sink() as sink:
        mailbox = connect(
            dovecot,
            channels["email"],
            smtp_host="127.0.0.1",
            smtp_port=sink.server_address[1],
            smtp_security="none",
            smtp_username="smtp-user@desk.test",
        )
        mailbox_save(
            channel=channels["email"], values={}, credentials={"smtp_password": "smtp-pw-9"}
        )
        mailbox_poll(mailbox_id=mailbox.pk)
        conversation = Message.objects.get(channel=channels["email"]).conversation
        with django_capture_on_commit_callbacks(execute=True):
            conversation_reply(
                conversation=conversation, author=agent_a, body="Here is the answer."
            )
        wait_for(lambda: sink.delivered, timeout=10, what="the reply at the SMTP sink")

    assert mail.outbox == []  # not through the default EMAIL_URL connection
    assert len(sink.delivered) == 1
    assert "To: customer1@example.test" in sink.delivered[0]
    assert "Here is the answer." in sink.delivered[0]
    plain = base64.b64encode(b"\x00smtp-user@desk.test\x00smtp-pw-9").decode()
    assert sink.auth == [f"AUTH PLAIN {plain}"]


def test_oauth_mailbox_sends_with_xoauth2(channels, oauth_provider):
    from tickets.services import mailbox_smtp_connection

    with smtp_sink() as sink:
        mailbox = oauth_mailbox(channels["email"], 1, oauth_provider)
        mailbox_save(
            channel=channels["email"],
            values={
                "smtp_host": "127.0.0.1",
                "smtp_port": sink.server_address[1],
                "smtp_security": "none",
            },
        )
        connection = mailbox_smtp_connection(channel_id=channels["email"].pk)
        sent = mail.EmailMessage(
            "Hi", "Body", "support@desk.test", ["c@example.test"], connection=connection
        ).send()

    assert sent == 1
    expected = base64.b64encode(xoauth2_string(USER, "access-1").encode()).decode()
    assert sink.auth == [f"AUTH XOAUTH2 {expected}"]
    assert mailbox.pk


# --- Command ---------------------------------------------------------------------------------------


def test_create_channel_with_imap_and_mailbox_poll_command(dovecot, team_a):
    out = StringIO()
    call_command(
        "create_channel",
        "email",
        "Billing",
        "--team",
        "Team A",
        "--address",
        USER,
        "--imap",
        f"imap://support%40desk.test:{PASSWORD}@127.0.0.1:{dovecot.port}/INBOX?security=none",
        "--imap-after",
        "move:Archive",
        "--smtp",
        "smtp://sender:smtp-secret@127.0.0.1:2525",
        stdout=out,
    )
    lines = out.getvalue().splitlines()
    mailbox = Mailbox.objects.select_related("channel").get()
    assert lines[0] == (
        f"Created email channel 'Billing' at {USER}, fetching {USER}@127.0.0.1/INBOX (team: Team A). "
        "Secret (send it as X-Channel-Token):"
    )
    assert lines[-1] == mailbox.channel.secret
    assert PASSWORD not in out.getvalue()
    assert "smtp-secret" not in out.getvalue()
    assert (
        mailbox.imap_port,
        mailbox.imap_security,
        mailbox.after_import,
        mailbox.move_to_folder,
    ) == (
        dovecot.port,
        "none",
        "move",
        "Archive",
    )
    assert (mailbox.smtp_host, mailbox.smtp_port, mailbox.smtp_security, mailbox.smtp_username) == (
        "127.0.0.1",
        2525,
        "starttls",
        "sender",
    )
    assert unseal(mailbox.smtp_password_sealed) == "smtp-secret"

    dovecot.append(email_bytes(1), b"garbage\r\n", email_bytes(2))
    out = StringIO()
    call_command("mailbox_poll", "Billing", stdout=out)
    assert out.getvalue().splitlines()[-1] == "imported 2, skipped 0, quarantined 1"
    out = StringIO()
    call_command("mailbox_poll", stdout=out)
    assert out.getvalue().splitlines() == [
        "Billing: imported 0, skipped 0, quarantined 0",
        "imported 0, skipped 0, quarantined 0",
    ]
    assert dovecot.uids("Archive") == [1, 2, 3]


def test_mailbox_poll_command_refuses_an_unknown_name(db):
    from django.core.management.base import CommandError

    with pytest.raises(CommandError, match="No mailbox is connected to a channel named 'Nope'"):
        call_command("mailbox_poll", "Nope", stdout=StringIO())


def test_create_channel_refuses_a_bad_imap_url(team_a):
    from django.core.management.base import CommandError

    with pytest.raises(CommandError, match="The URL must start with imap:// or imaps://"):
        call_command(
            "create_channel", "email", "X", "--imap", "http://u:p@h/INBOX", stdout=StringIO()
        )
    with pytest.raises(CommandError, match="--imap, --imap-after and --smtp are only for email"):
        call_command(
            "create_channel", "chat", "Y", "--imap", "imaps://u:p@h/INBOX", stdout=StringIO()
        )
    from tickets.models import Channel

    assert Channel.objects.count() == 0


def test_a_long_first_import_stops_at_max_seconds_and_the_next_poll_goes_on(
    dovecot, channels, settings
):
    # Given five batches' worth of mail and a poll allowed (almost) no time
    settings.MAILBOX_BATCH_SIZE = 4
    dovecot.append(*(email_bytes(i) for i in range(20)))
    mailbox = connect(dovecot, channels["email"])

    first = mailbox_poll(mailbox_id=mailbox.pk, max_seconds=0.000001)

    # Then the poll stops after its first batch, with the progress recorded, and healthy
    assert (first.imported, first.more, first.error) == (4, True, "")
    mailbox.refresh_from_db()
    assert (mailbox.last_uid, mailbox.progress_done, mailbox.progress_total) == (4, 4, 20)
    assert mailbox.healthy
    # And the next (unbounded) poll imports the rest
    rest = mailbox_poll(mailbox_id=mailbox.pk)
    assert (rest.imported, rest.skipped, rest.more) == (16, 0, False)
    assert inbound_count(channels["email"]) == 20


@pytest.mark.parametrize("security", ["tls", "starttls"])
def test_tls_and_starttls_with_a_trusted_certificate(channels, monkeypatch, security):
    with dovecot_server(tls=True) as dovecot:
        # The desk verifies the certificate against the system's trust store: trust the test one.
        monkeypatch.setenv("SSL_CERT_FILE", str(dovecot.cert))
        dovecot.append(email_bytes(1))
        port = dovecot.tls_port if security == "tls" else dovecot.port
        mailbox = connect(dovecot, channels["email"], imap_security=security, imap_port=port)

        result = mailbox_poll(mailbox_id=mailbox.pk)

    assert (result.imported, result.error) == (1, "")


def test_an_untrusted_certificate_is_refused(channels):
    with dovecot_server(tls=True) as dovecot:
        mailbox = connect(
            dovecot, channels["email"], imap_security="tls", imap_port=dovecot.tls_port
        )
        result = mailbox_poll(mailbox_id=mailbox.pk)

    assert result.error.startswith(
        f"Cannot connect to 127.0.0.1:{dovecot.tls_port}: SSLCertVerificationError"
    )
    assert inbound_count(channels["email"]) == 0


def test_credentials_survive_a_secret_key_rotation_and_a_lost_key_is_a_clear_error(
    dovecot, channels, settings
):
    mailbox = connect(dovecot, channels["email"])  # sealed under the current key
    old_key = settings.SECRET_KEY

    # Rotated, with the old key kept in SECRET_KEY_FALLBACKS: still opens
    settings.SECRET_KEY = "rotated-" + "k" * 60
    settings.SECRET_KEY_FALLBACKS = [old_key]
    assert mailbox_poll(mailbox_id=mailbox.pk).error == ""

    # The old key dropped: the poll fails with a message an admin can act on
    settings.SECRET_KEY_FALLBACKS = []
    result = mailbox_poll(mailbox_id=mailbox.pk)
    assert result.error == (
        "The stored credentials cannot be opened with SECRET_KEY (or SECRET_KEY_FALLBACKS): "
        "enter them again on the mailbox page."
    )
    mailbox.refresh_from_db()
    assert mailbox.consecutive_failures == 1


def test_a_mailbox_without_smtp_sends_through_email_url(
    channels, agent_a, django_capture_on_commit_callbacks
):
    from tests.factories import send_email
    from tickets.services import mailbox_smtp_connection

    mailbox_save(
        channel=channels["email"],
        values={"imap_host": "imap.example.test", "username": "desk@example.test"},
        credentials={"password": "pw"},
    )
    assert mailbox_smtp_connection(channel_id=channels["email"].pk) is None
    conversation = Message.objects.get(pk=send_email(channels["email"]).message_id).conversation
    with django_capture_on_commit_callbacks(execute=True):
        conversation_reply(conversation=conversation, author=agent_a, body="Through EMAIL_URL.")

    assert [m.body for m in mail.outbox] == ["Through EMAIL_URL."]
