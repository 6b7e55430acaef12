"""Provider webhooks at /anymail/<provider>/inbound/ go through the same ingestion path."""

from __future__ import annotations

import json

import pytest

from tests.factories import email_bytes
from tickets.models import Conversation, Customer, Message, QuarantinedMessage

pytestmark = pytest.mark.django_db

URL = "/anymail/postmark/inbound/"


def postmark_payload(**overrides) -> dict:
    payload = {
        "FromFull": {"Email": "jane@example.com", "Name": "Jane Doe"},
        "ToFull": [{"Email": "help@desk.example", "Name": ""}],
        "CcFull": [],
        "Subject": "Cannot log in",
        "MessageID": "pm-1",
        "Date": "Sun, 22 Nov 2026 10:00:00 +0000",
        "TextBody": "I cannot log in since yesterday.",
        "HtmlBody": "<p>I cannot log in <script>alert(1)</script>since yesterday.</p>",
        "Headers": [{"Name": "Message-ID", "Value": "<login-1@mail.example.com>"}],
        "Attachments": [],
    }
    payload.update(overrides)
    return payload


def test_provider_webhook_creates_a_conversation(client, webhook_auth, channels):
    from tickets.services import channel_create_or_update

    channel_create_or_update(kind="email", name="email A", address="help@desk.example")

    response = client.post(
        URL, data=json.dumps(postmark_payload()), content_type="application/json", **webhook_auth
    )

    assert response.status_code == 200
    message = Message.objects.get()
    assert message.channel == channels["email"]
    assert message.external_id == "login-1@mail.example.com"
    assert message.body_text == "I cannot log in since yesterday."
    assert "<script" not in message.body_html
    assert message.conversation.subject == "Cannot log in"
    assert Customer.objects.get().identities.get().value == "jane@example.com"


def test_provider_webhook_with_raw_email_threads_like_the_api(client, webhook_auth, channels):
    raw = email_bytes(message_id="<raw-1@mail.example.com>", subject="Refund please")
    payload = postmark_payload(RawEmail=raw.decode())

    first = client.post(
        URL, data=json.dumps(payload), content_type="application/json", **webhook_auth
    )
    again = client.post(
        URL, data=json.dumps(payload), content_type="application/json", **webhook_auth
    )

    assert (first.status_code, again.status_code) == (200, 200)
    message = Message.objects.get()
    assert message.external_id == "raw-1@mail.example.com"
    assert Conversation.objects.get().subject == "Refund please"


def test_provider_webhook_without_credentials_stores_nothing(client, webhook_auth, channels):
    response = client.post(
        URL, data=json.dumps(postmark_payload()), content_type="application/json"
    )

    assert response.status_code in (400, 401, 403)
    assert Message.objects.count() == 0
    assert Customer.objects.count() == 0


def test_provider_webhook_with_no_email_channel_is_quarantined(client, webhook_auth):
    response = client.post(
        URL, data=json.dumps(postmark_payload()), content_type="application/json", **webhook_auth
    )

    assert response.status_code == 200
    assert Message.objects.count() == 0
    assert (
        QuarantinedMessage.objects.get().error == "no active email channel to receive this message"
    )


def test_provider_webhook_for_an_async_channel_is_accepted_then_stored_by_the_worker(
    client, webhook_auth, channels
):
    from tickets.models import InboundQueueItem
    from tickets.services import channel_create_or_update
    from tickets.services.inbound_queue import inbound_queue_process

    channel = channel_create_or_update(
        kind="email", name="email A", address="help@desk.example", ingest_mode="async"
    )

    response = client.post(
        URL, data=json.dumps(postmark_payload()), content_type="application/json", **webhook_auth
    )

    assert response.status_code == 200
    item = InboundQueueItem.objects.get()
    assert (item.kind, item.source, item.status) == ("anymail", "anymail:Postmark", "pending")
    assert item.order_key == "email:jane@example.com"
    assert Message.objects.count() == 0

    assert inbound_queue_process() == 1

    item.refresh_from_db()
    message = Message.objects.get()
    assert (item.status, item.message_id_result) == ("done", message.pk)
    assert message.channel == channel
    assert message.external_id == "login-1@mail.example.com"
    assert message.body_text == "I cannot log in since yesterday."
    assert "<script" not in message.body_html
    assert message.conversation.subject == "Cannot log in"
