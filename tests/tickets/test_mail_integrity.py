"""Mail integrity (docs/security/content-and-mail.md), through the real inbound endpoint and the Django mail stack.

No injection into a conversation by copying its subject or a customer's Message-ID; no spoofed
agent replies; auto-replies never trigger mail and automatic mail is capped per address; bounces
mark an address undeliverable only when they name a message we sent there; outbound headers
cannot be injected; provider webhooks refuse unauthenticated requests and store nothing.
"""

from __future__ import annotations

import base64
import email
import hashlib
import hmac
import json
from datetime import timedelta

import pytest
import time_machine
from django.core import mail
from django.test import Client
from django.utils import timezone
from rest_framework.test import APIClient

from supportdesk.models import SentMail
from supportdesk.services import automatic_mail_claim, notification_create
from surveys.models import Survey
from surveys.services import survey_settings_update, surveys_send_due
from tests.factories import email_bytes, make_staff
from tickets import tokens
from tickets.models import Conversation, Customer, Event, Identity, Message, QuarantinedMessage
from tickets.services import conversation_reply, conversation_solve

# Real commits: replies and surveys leave through the outbox after commit, as in production.
pytestmark = pytest.mark.django_db(transaction=True)

INBOUND = "/api/v1/inbound/email/"


def post(channel, raw: bytes, *, token: str | None = None):
    return APIClient().post(
        INBOUND,
        raw,
        content_type="message/rfc822",
        headers={"X-Channel-Token": channel.secret if token is None else token},
    )


def inbound(channel, **kwargs) -> dict:
    response = post(channel, email_bytes(**kwargs))
    assert response.status_code in (200, 201), response.content
    body = response.json()
    return {f"{key}_id": body[key] for key in ("customer", "conversation", "message")}


def delivered(conversation: Conversation, agent, body: str = "Here you go") -> Message:
    """An agent's email reply, sent through the outbox and the mail backend."""
    reply = conversation_reply(conversation=conversation, author=agent, body=body)
    reply.refresh_from_db()
    assert reply.delivery_state == "sent"
    return reply


# --- Threading: copying a subject or a Message-ID does not inject -------------------------------


def test_a_stranger_copying_the_subject_tag_starts_a_new_conversation(channels, agent_a):
    first = inbound(channels["email"], sender="jane@example.com", subject="Refund")
    tag = tokens.subject_tag(first["conversation_id"])

    eve = inbound(channels["email"], sender="eve@evil.example", subject=f"Re: Refund {tag}")

    assert eve["conversation_id"] != first["conversation_id"]
    assert eve["customer_id"] != first["customer_id"]
    assert Message.objects.filter(conversation_id=first["conversation_id"]).count() == 1


def test_a_customers_message_id_threads_only_their_own_mail(channels):
    first = inbound(
        channels["email"], sender="jane@example.com", message_id="<jane-1@mail.example.com>"
    )

    # Eve was copied on Jane's mail (or guessed the id) and forges In-Reply-To and References.
    eve = inbound(
        channels["email"],
        sender="eve@evil.example",
        in_reply_to="<jane-1@mail.example.com>",
        references="<jane-1@mail.example.com>",
    )
    jane = inbound(
        channels["email"], sender="jane@example.com", in_reply_to="<jane-1@mail.example.com>"
    )

    assert eve["conversation_id"] != first["conversation_id"]
    assert jane["conversation_id"] == first["conversation_id"]
    assert set(
        Message.objects.filter(conversation_id=first["conversation_id"]).values_list(
            "identity__value", flat=True
        )
    ) == {"jane@example.com"}


def test_a_reply_to_a_message_the_desk_sent_threads_whoever_received_it(channels, agent_a):
    # The desk's Message-IDs carry 48 random bits and go only to the conversation's people, so
    # knowing one proves having received our mail (a colleague Jane forwarded it to, say).
    first = inbound(channels["email"], sender="jane@example.com")
    conversation = Conversation.objects.get(pk=first["conversation_id"])
    reply = delivered(conversation, agent_a)

    colleague = inbound(
        channels["email"], sender="sam@example.com", in_reply_to=f"<{reply.message_id}>"
    )
    guessed = inbound(
        channels["email"],
        sender="eve@evil.example",
        in_reply_to=f"<sd.{reply.pk}.000000000000@desk.example>",
    )

    assert colleague["conversation_id"] == conversation.pk
    assert guessed["conversation_id"] != conversation.pk


def test_the_signed_reply_address_threads_and_a_forged_one_does_not(channels):
    first = inbound(channels["email"], sender="jane@example.com")
    good = tokens.reply_address(first["conversation_id"])
    forged = f"support+c{first['conversation_id']}.0123456789abcdef@desk.example"

    signed = inbound(channels["email"], sender="jane@example.com", to=good, subject="Other")
    eve = inbound(channels["email"], sender="eve@evil.example", to=forged, subject="Other")

    assert signed["conversation_id"] == first["conversation_id"]
    assert eve["conversation_id"] != first["conversation_id"]


# --- Spoofed agents -------------------------------------------------------------------------


@pytest.mark.parametrize(
    "headers",
    [
        {"From": "Alice Archer <alice@desk.example>"},
        {"Sender": "alice@desk.example", "X-Original-From": "alice@desk.example"},
        {"Reply-To": "alice@desk.example", "X-Supportdesk-Conversation": "1"},
        {"From": "Alice Archer <alice@desk.example>", "Auto-Submitted": "no"},
    ],
)
def test_mail_from_or_claiming_an_agent_is_a_customer_message_never_a_reply(
    channels, agent_a, headers
):
    first = inbound(channels["email"], sender="jane@example.com", message_id="<j1@mail.example>")
    headers = dict(headers)
    sender = headers.pop("From", "Mallory <mallory@evil.example>")

    forged = inbound(
        channels["email"],
        sender=sender,
        subject="Re: My order",
        body="Refund approved, send your card number.",
        extra_headers=headers,
    )

    message = Message.objects.get(pk=forged["message_id"])
    assert message.direction == "inbound"
    assert message.author_id is None
    assert forged["conversation_id"] != first["conversation_id"]
    assert not Event.objects.filter(kind=Event.Kind.REPLIED).exists()
    assert Message.objects.filter(direction="outbound").count() == 0
    assert mail.outbox == []
    # The sender is a customer like any other; the agent's account gains nothing.
    assert Identity.objects.get(pk=message.identity_id).customer_id == forged["customer_id"]


# --- Mail loops ----------------------------------------------------------------------------

AUTO_HEADERS = [
    {"Auto-Submitted": "auto-replied"},
    {"X-Autoreply": "yes"},
    {"X-Autorespond": "Out of office"},
    {"Precedence": "bulk"},
    {"Precedence": "junk"},
    {"Precedence": "list"},
    {"X-Auto-Response-Suppress": "All"},
    {"Return-Path": "<>"},
]


def test_a_loop_of_100_auto_replies_gets_one_survey_and_nothing_else(channels, agent_a):
    # Given: Jane's conversation, answered and solved (its survey is scheduled)
    first = inbound(channels["email"], sender="jane@example.com")
    conversation = Conversation.objects.get(pk=first["conversation_id"])
    reply = delivered(conversation, agent_a)
    conversation_solve(conversation=conversation, actor=agent_a)
    mail.outbox.clear()

    # When: her auto-responder answers 100 times, every vendor's way, to our reply and then to
    # the survey, while beat keeps sending what is due
    for n in range(100):
        in_reply_to = reply.message_id
        if n >= 50:
            with time_machine.travel(timezone.now() + timedelta(hours=2)):
                surveys_send_due()
            in_reply_to = Survey.objects.get(conversation=conversation).message_id
        inbound(
            channels["email"],
            sender="jane@example.com",
            subject="Automatic reply: Re: My order",
            in_reply_to=f"<{in_reply_to}>",
            to=tokens.reply_address(conversation.pk),
            extra_headers=AUTO_HEADERS[n % len(AUTO_HEADERS)],
        )

    # Then: all stored in her conversation, never reopened, and the one survey was all we sent
    conversation.refresh_from_db()
    assert conversation.status == "solved"
    assert Message.objects.filter(conversation=conversation, direction="inbound").count() == 101
    assert Message.objects.filter(conversation=conversation, automated="").count() == 2
    assert [m.extra_headers.get("X-Supportdesk-Survey") for m in mail.outbox] == [
        str(Survey.objects.get(conversation=conversation).pk)
    ]


def test_automatic_mail_to_one_address_stops_at_the_cap(settings):
    settings.AUTO_MAIL_MAX_PER_HOUR = 3
    settings.AUTO_MAIL_MAX_PER_DAY = 5
    start = timezone.now()

    def claims(count: int) -> int:
        return sum(
            automatic_mail_claim(address="Jane@Example.com", message_id=f"m{n}", kind="survey")
            is not None
            for n in range(count)
        )

    assert claims(100) == 3
    assert automatic_mail_claim(address="other@example.com", message_id="x", kind="survey")
    with time_machine.travel(start + timedelta(hours=1, minutes=1)):
        assert claims(100) == 2  # the day's cap of 5
    with time_machine.travel(start + timedelta(days=1, minutes=2)):
        assert claims(100) == 3
    assert SentMail.objects.filter(address="jane@example.com").count() == 8


def test_surveys_beyond_the_cap_are_skipped_with_the_reason(channels, agent_a, settings):
    # Given: no survey throttle (an admin's choice) and one customer with 6 solves in an hour
    settings.AUTO_MAIL_MAX_PER_HOUR = 3
    survey_settings_update(min_days_between=0, delay_minutes=0)
    for n in range(6):
        result = inbound(channels["email"], sender="jane@example.com", subject=f"Issue {n}")
        conversation_solve(
            conversation=Conversation.objects.get(pk=result["conversation_id"]), actor=agent_a
        )
    mail.outbox.clear()

    surveys_send_due()

    statuses = sorted(Survey.objects.values_list("status", "skip_reason"))
    assert statuses == [("sent", "")] * 3 + [("skipped", "mail_cap")] * 3
    assert [m.to for m in mail.outbox] == [["jane@example.com"]] * 3


# --- Bounces -------------------------------------------------------------------------------


def dsn(*, recipient: str, original_id: str) -> bytes:
    return (
        "From: Mail Delivery System <MAILER-DAEMON@mx.example.com>\r\n"
        "To: support@desk.example\r\n"
        "Subject: Undelivered Mail Returned to Sender\r\n"
        f"Message-ID: <bounce-{hashlib.md5(original_id.encode()).hexdigest()}@mx.example.com>\r\n"
        "MIME-Version: 1.0\r\n"
        'Content-Type: multipart/report; report-type=delivery-status; boundary="BB"\r\n\r\n'
        "--BB\r\nContent-Type: text/plain\r\n\r\nYour message could not be delivered.\r\n"
        "--BB\r\nContent-Type: message/delivery-status\r\n\r\n"
        "Reporting-MTA: dns; mx.example.com\r\n\r\n"
        f"Final-Recipient: rfc822; {recipient}\r\nAction: failed\r\nStatus: 5.1.1\r\n\r\n"
        "--BB\r\nContent-Type: text/rfc822-headers\r\n\r\n"
        f"Message-ID: <{original_id}>\r\nTo: {recipient}\r\nSubject: Re: x\r\n\r\n"
        "--BB--\r\n"
    ).encode()


def test_a_forged_dsn_marks_nothing(channels, agent_a):
    # Given: Jane wrote and was answered
    first = inbound(channels["email"], sender="jane@example.com")
    conversation = Conversation.objects.get(pk=first["conversation_id"])
    delivered(conversation, agent_a)
    messages_before = conversation.messages.count()

    # When: someone mails DSNs naming her address, with a made-up or a customer's Message-ID
    made_up = post(
        channels["email"], dsn(recipient="jane@example.com", original_id="x1@desk.example")
    )
    other = post(
        channels["email"],
        dsn(recipient="jane@example.com", original_id=Message.objects.first().message_id),
    )

    # Then: she is still deliverable and nothing was sent or reopened
    # Both are quarantined for an admin: a bounce threads only by an id the desk sent.
    assert made_up.status_code == 202
    assert other.status_code == 202
    assert Identity.objects.get(value="jane@example.com").undeliverable_at is None
    assert not Event.objects.filter(kind=Event.Kind.IDENTITY_UNDELIVERABLE).exists()
    assert QuarantinedMessage.objects.count() == 2
    assert conversation.messages.count() == messages_before


def test_a_real_bounce_stops_surveys_shows_in_the_workspace_and_a_new_mail_clears_it(
    channels, agent_a
):
    # Given: Jane was answered and the conversation solved; then our reply bounced
    first = inbound(channels["email"], sender="jane@example.com")
    conversation = Conversation.objects.get(pk=first["conversation_id"])
    reply = delivered(conversation, agent_a)
    conversation_solve(conversation=conversation, actor=agent_a)
    response = post(
        channels["email"], dsn(recipient="jane@example.com", original_id=reply.message_id)
    )
    assert response.status_code in (200, 201)
    assert Identity.objects.get(value="jane@example.com").undeliverable_at is not None

    # When: the survey comes due
    mail.outbox.clear()
    with time_machine.travel(timezone.now() + timedelta(hours=2)):
        surveys_send_due()

    # Then: no survey, and the agent sees the address flagged
    survey = Survey.objects.get(conversation=conversation)
    assert (survey.status, survey.skip_reason) == ("skipped", "bounced")
    assert mail.outbox == []
    client = Client()
    client.force_login(agent_a)
    page = client.get(f"/conversations/{conversation.pk}/").content.decode()
    assert 'jane@example.com <span class="status status-closed">bounced</span>' in page

    # When: an auto-reply arrives from her address, and then she writes herself
    inbound(channels["email"], sender="jane@example.com", extra_headers={"X-Autoreply": "yes"})
    assert Identity.objects.get(value="jane@example.com").undeliverable_at is not None
    inbound(channels["email"], sender="jane@example.com", subject="I have a new mailbox")

    # Then: her mailbox works again
    assert Identity.objects.get(value="jane@example.com").undeliverable_at is None


def postmark_bounce(email_address: str) -> str:
    return json.dumps(
        {
            "RecordType": "Bounce",
            "Type": "HardBounce",
            "TypeCode": 1,
            "ID": 42,
            "MessageID": "883953f4-6105-42a2-a16a-77a8eac79483",
            "Email": email_address,
            "BouncedAt": "2026-11-30T10:00:00Z",
            "Description": "The server was unable to deliver your message",
        }
    )


def test_a_provider_bounce_event_marks_the_address_undeliverable(client, webhook_auth, channels):
    auth = webhook_auth
    inbound(channels["email"], sender="jane@example.com")

    response = client.post(
        "/anymail/postmark/tracking/",
        data=postmark_bounce("Jane@Example.com"),
        content_type="application/json",
        **auth,
    )

    assert response.status_code == 200
    assert Identity.objects.get(value="jane@example.com").undeliverable_at is not None
    event = Event.objects.get(kind=Event.Kind.IDENTITY_UNDELIVERABLE)
    assert event.data["source"] == "provider:postmark"


# --- Provider webhooks refuse unauthenticated requests and store nothing -----------------------


def _stored() -> tuple[int, ...]:
    return (
        Message.objects.count(),
        Customer.objects.count(),
        QuarantinedMessage.objects.count(),
        Identity.objects.filter(undeliverable_at__isnull=False).count(),
    )


POSTMARK_INBOUND = json.dumps(
    {
        "FromFull": {"Email": "eve@evil.example", "Name": "Eve"},
        "ToFull": [{"Email": "support@desk.example", "Name": ""}],
        "Subject": "Injected",
        "TextBody": "Injected",
        "Headers": [{"Name": "Message-ID", "Value": "<inj-1@evil.example>"}],
    }
)


@pytest.mark.parametrize(
    ("secret", "credentials", "status"),
    [
        (None, None, 403),  # no secret configured: the webhooks are off
        (None, b"provider:s3cret", 403),
        ("provider:s3cret", None, 400),
        ("provider:s3cret", b"provider:wrong", 400),
    ],
)
@pytest.mark.parametrize("url", ["/anymail/postmark/inbound/", "/anymail/postmark/tracking/"])
def test_provider_webhooks_without_valid_credentials_store_nothing(
    client, settings, channels, secret, credentials, status, url
):
    settings.ANYMAIL = {"WEBHOOK_SECRET": secret} if secret else {}
    inbound(channels["email"], sender="jane@example.com")
    before = _stored()
    headers = {}
    if credentials:
        headers["HTTP_AUTHORIZATION"] = "Basic " + base64.b64encode(credentials).decode()
    body = POSTMARK_INBOUND if "inbound" in url else postmark_bounce("jane@example.com")

    response = client.post(url, data=body, content_type="application/json", **headers)

    assert response.status_code == status
    assert _stored() == before


def test_mailgun_inbound_needs_its_signature_too(client, settings, channels):
    settings.ANYMAIL = {"WEBHOOK_SECRET": "provider:s3cret", "MAILGUN_WEBHOOK_SIGNING_KEY": "key-1"}
    auth = {"HTTP_AUTHORIZATION": "Basic " + base64.b64encode(b"provider:s3cret").decode()}
    timestamp, token = "1764583200", "a" * 50
    good = hmac.new(b"key-1", f"{timestamp}{token}".encode(), hashlib.sha256).hexdigest()
    form = {
        "sender": "eve@evil.example",
        "recipient": "support@desk.example",
        "subject": "Signed?",
        "body-plain": "hello",
        "message-headers": json.dumps([["From", "eve@evil.example"], ["Subject", "Signed?"]]),
        "timestamp": timestamp,
        "token": token,
    }

    forged = client.post("/anymail/mailgun/inbound/", {**form, "signature": "0" * 64}, **auth)
    assert forged.status_code == 400
    assert Message.objects.count() == 0

    signed = client.post("/anymail/mailgun/inbound/", {**form, "signature": good}, **auth)
    assert signed.status_code == 200
    assert Message.objects.get().subject == "Signed?"


@pytest.mark.parametrize("token", ["", "wrong", "x" * 200])
def test_inbound_api_with_a_bad_channel_token_stores_nothing(channels, token):
    response = post(channels["email"], email_bytes(), token=token)

    assert response.status_code in (401, 403)
    assert (Message.objects.count(), Customer.objects.count()) == (0, 0)


# --- Header injection in outbound mail -------------------------------------------------------

HOSTILE_HEADER_VALUES = [
    "Eve\r\nBcc: victim@example.com",
    "Eve\nBcc: victim@example.com\nX-Injected: 1",
    'Eve" <eve@evil.example>, "x',
    "=?utf-8?q?Eve=0D=0ABcc:_victim@example.com?=",
    "Eve\r\n\r\n<html>body injection",
]


def _headers(raw: bytes) -> list[tuple[str, str]]:
    parsed = email.message_from_bytes(raw)
    return [(name.lower(), value) for name, value in parsed.items()]


@pytest.mark.parametrize("hostile", HOSTILE_HEADER_VALUES)
def test_an_agent_name_or_subject_cannot_add_headers_to_a_reply(channels, hostile):
    agent = make_staff("eve@desk.example", teams=["Team A"], full_name=hostile)
    raw_subject = hostile.replace("\r", "").replace("\n", " ")
    first = inbound(channels["email"], sender="jane@example.com", subject=raw_subject)
    conversation = Conversation.objects.get(pk=first["conversation_id"])
    Conversation.objects.filter(pk=conversation.pk).update(subject=hostile)
    conversation.refresh_from_db()
    mail.outbox.clear()

    delivered(conversation, agent)

    raw = mail.outbox[0].message().as_bytes()
    headers = _headers(raw)
    names = [name for name, _ in headers]
    assert names.count("from") == 1
    assert names.count("to") == 1
    assert names.count("subject") == 1
    assert "bcc" not in names
    assert "x-injected" not in names
    assert "cc" not in names
    assert dict(headers)["to"] == "jane@example.com"
    assert dict(headers)["from"].endswith("<support@desk.example>")
    assert mail.outbox[0].recipients() == ["jane@example.com"]
    head = raw.split(b"\n\n", 1)[0]
    assert b"\nbcc:" not in head.lower()
    assert b"\nx-injected:" not in head.lower()
    assert b"body injection" not in raw.split(b"\n\n", 1)[1]  # nothing reached the body


@pytest.mark.parametrize("hostile", HOSTILE_HEADER_VALUES)
def test_a_notification_title_cannot_add_headers(
    agent_a, hostile, django_capture_on_commit_callbacks
):
    with django_capture_on_commit_callbacks(execute=True):
        notification_create(recipient=agent_a, kind="test", title=hostile, email=True)

    headers = _headers(mail.outbox[0].message().as_bytes())
    names = [name for name, _ in headers]
    assert (names.count("subject"), names.count("to")) == (1, 1)
    assert "bcc" not in names
    assert "x-injected" not in names
    assert mail.outbox[0].recipients() == [agent_a.email]


# --- People copied on a conversation: recognised, never a new customer, never a way in ----------


def test_a_colleague_the_customer_copied_threads_as_a_participant_not_a_new_customer(channels):
    first = inbound(
        channels["email"],
        sender="jane@example.com",
        message_id="<jane-cc-1@mail.example.com>",
        extra_headers={"Cc": "Sam <sam@example.com>"},
    )
    customers = Customer.objects.count()

    sam = inbound(
        channels["email"],
        sender="sam@example.com",
        in_reply_to="<jane-cc-1@mail.example.com>",
        subject=f"Re: My order has not arrived [#{first['conversation_id']}]",
    )

    assert sam == {**first, "message_id": sam["message_id"]}
    assert Customer.objects.count() == customers
    assert not Identity.objects.filter(value="sam@example.com").exists()
    stored = Message.objects.get(pk=sam["message_id"])
    assert (stored.participant.email, stored.identity) == ("sam@example.com", None)


def test_a_participant_of_one_conversation_cannot_write_into_another(channels):
    # Given: Sam is copied on Jane's conversation; Kim has her own
    inbound(channels["email"], sender="jane@example.com", extra_headers={"Cc": "sam@example.com"})
    kim = inbound(
        channels["email"], sender="kim@example.com", message_id="<kim-1@mail.example.com>"
    )

    # When: Sam copies Kim's subject tag and quotes her Message-ID
    sam = inbound(
        channels["email"],
        sender="sam@example.com",
        in_reply_to="<kim-1@mail.example.com>",
        subject=f"Re: My order has not arrived [#{kim['conversation_id']}]",
    )

    # Then: a new conversation of his own; Kim's is untouched
    assert sam["conversation_id"] != kim["conversation_id"]
    assert Message.objects.filter(conversation_id=kim["conversation_id"]).count() == 1
    assert not Conversation.objects.get(pk=kim["conversation_id"]).participants.exists()


def test_a_new_mail_from_a_participant_is_their_own_conversation(channels):
    jane = inbound(
        channels["email"], sender="jane@example.com", extra_headers={"Cc": "sam@example.com"}
    )

    sam = inbound(channels["email"], sender="sam@example.com", subject="Another matter")

    assert sam["conversation_id"] != jane["conversation_id"]
    assert sam["customer_id"] != jane["customer_id"]
    assert Identity.objects.get(value="sam@example.com").customer_id == sam["customer_id"]


@pytest.mark.parametrize(
    "hostile_cc",
    [
        "sam@example.com\r\nBcc: eve@evil.example",
        "sam@example.com, eve@evil.example",
        "Sam <sam@example.com>",
        "sam@example.com\nX-Injected: yes",
    ],
)
def test_a_cc_cannot_add_headers_or_recipients(channels, agent_a, hostile_cc):
    first = inbound(channels["email"], sender="jane@example.com")
    conversation = Conversation.objects.get(pk=first["conversation_id"])
    mail.outbox.clear()
    client = APIClient()
    client.force_authenticate(agent_a)

    response = client.post(
        f"/api/v1/conversations/{conversation.pk}/replies/",
        {"body": "Hello", "cc": [hostile_cc]},
        format="json",
    )

    assert response.status_code == 400
    assert "cc" in response.json()["detail"]
    assert mail.outbox == []
    assert not Message.objects.filter(conversation=conversation, direction="outbound").exists()


def test_the_cc_of_a_reply_is_the_one_given_and_bounces_from_it_are_recognised(channels, agent_a):
    first = inbound(channels["email"], sender="jane@example.com")
    conversation = Conversation.objects.get(pk=first["conversation_id"])
    mail.outbox.clear()

    reply = conversation_reply(
        conversation=conversation, author=agent_a, body="Hi", cc=["sam@example.com"]
    )

    headers = _headers(mail.outbox[0].message().as_bytes())
    names = [name for name, _ in headers]
    assert (names.count("to"), names.count("cc"), names.count("bcc")) == (1, 1, 0)
    assert dict(headers)["cc"] == "sam@example.com"
    assert mail.outbox[0].recipients() == ["jane@example.com", "sam@example.com"]
    # Sam's mailbox bounces: the DSN names a message we sent him, so it is recognised (it
    # threads; Sam has no identity to mark, Jane stays deliverable)
    response = post(
        channels["email"], dsn(recipient="sam@example.com", original_id=reply.message_id)
    )
    assert response.status_code == 201
    assert Identity.objects.get(value="jane@example.com").undeliverable_at is None
    assert SentMail.objects.filter(address="sam@example.com", message_id=reply.message_id).exists()
