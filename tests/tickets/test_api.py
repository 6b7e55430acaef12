"""The tickets API through HTTP: inbound channels, the queue, conversations, customers, merges."""

from __future__ import annotations

from email import message_from_bytes
from email.message import EmailMessage
from typing import Any

import pytest
from django.core import mail
from rest_framework import serializers

from tests.conftest import client_for
from tests.factories import email_bytes, make_staff, send_call, send_chat, send_email
from tests.helpers import post_email
from tickets import tokens
from tickets.models import (
    Attachment,
    Contact,
    Conversation,
    Customer,
    CustomerMerge,
    Event,
    Identity,
    Message,
    QuarantinedMessage,
)
from tickets.services import channel_create_or_update, conversation_reply

pytestmark = pytest.mark.django_db

INBOUND = "/api/v1/inbound/{kind}/"


def iso(value: Any) -> str:
    return serializers.DateTimeField().to_representation(value)


def counts() -> dict[str, int]:
    return {
        "customers": Customer.objects.count(),
        "conversations": Conversation.objects.count(),
        "messages": Message.objects.count(),
        "identities": Identity.objects.count(),
        "contacts": Contact.objects.count(),
        "attachments": Attachment.objects.count(),
        "quarantined": QuarantinedMessage.objects.count(),
        "events": Event.objects.count(),
        "merges": CustomerMerge.objects.count(),
    }


def conversation_state(conversation_id: int) -> dict[str, Any]:
    return Conversation.objects.filter(pk=conversation_id).values().get()


def post_inbound(api, channel, kind: str, payload: dict[str, Any], *, token: str | None = None):
    secret = channel.secret if token is None else token
    return api.post(
        INBOUND.format(kind=kind), payload, format="json", headers={"X-Channel-Token": secret}
    )


def chat_payload(**overrides: Any) -> dict[str, Any]:
    payload = {
        "external_id": "chat-1",
        "session_id": "session-1",
        "visitor_id": "visitor-1",
        "email": "jane@example.com",
        "name": "Jane Doe",
        "body": "Hi, where is my order?",
        "sent_at": "2024-05-01T10:00:00Z",
    }
    return {**payload, **overrides}


def call_payload(**overrides: Any) -> dict[str, Any]:
    payload = {
        "external_id": "call-1",
        "from_number": "(415) 555-0100",
        "started_at": "2024-05-01T10:00:00Z",
        "wait_seconds": 30,
        "talk_seconds": 125,
        "hold_seconds": 0,
        "wrap_seconds": 40,
        "ended_by": "customer",
        "agent_email": "alice@desk.example",
        "notes": "Wants a refund.",
    }
    return {**payload, **overrides}


def email_with_attachment(size: int) -> bytes:
    message = EmailMessage()
    message["From"] = "Jane Doe <jane@example.com>"
    message["To"] = "support@desk.example"
    message["Subject"] = "Photo of the damage"
    message["Message-ID"] = "<photo-1@mail.example.com>"
    message.set_content("See the attached photo.")
    message.add_attachment(b"x" * size, maintype="image", subtype="jpeg", filename="damage.jpg")
    return message.as_bytes()


# --- Inbound: happy paths and idempotency -----------------------------------------------------------


def test_inbound_email_creates_customer_conversation_and_message(api, channels):
    # given a raw email from a new sender
    raw = email_bytes(message_id="<first@mail.example.com>")

    # when the email channel posts it
    response = post_email(channels["email"], raw)

    # then everything is stored once and the ids come back
    assert response.status_code == 201, response.content
    message = Message.objects.get()
    assert response.json() == {
        "customer": Customer.objects.get().pk,
        "conversation": message.conversation_id,
        "message": message.pk,
        "new_contact": True,
    }
    assert message.message_id == "first@mail.example.com"
    assert message.raw == raw
    assert Identity.objects.get().value == "jane@example.com"


def test_inbound_email_posted_twice_returns_200_with_same_ids(api, channels):
    raw = email_bytes(message_id="<dup@mail.example.com>")
    first = post_email(channels["email"], raw)
    before = counts()

    second = post_email(channels["email"], raw)

    assert (first.status_code, second.status_code) == (201, 200)
    assert second.json() == {**first.json(), "new_contact": False}
    assert counts() == before


def test_inbound_email_with_attachment_lists_it_on_the_message(api, channels, api_a):
    response = post_email(channels["email"], email_with_attachment(1000))

    assert response.status_code == 201, response.content
    detail = api_a.get(f"/api/v1/conversations/{response.json()['conversation']}/").json()
    attachment = Attachment.objects.get()
    assert detail["messages"][0]["attachments"] == [
        {"id": attachment.pk, "filename": "damage.jpg", "content_type": "image/jpeg", "size": 1000}
    ]


def test_inbound_email_that_cannot_be_attributed_is_quarantined_with_202(api, channels):
    response = post_email(channels["email"], b"this is not an email at all")

    assert response.status_code == 202
    quarantined = QuarantinedMessage.objects.get()
    assert response.json() == {
        "quarantined": quarantined.pk,
        "detail": f"Kept for review, not stored as a message: {quarantined.error}",
    }
    assert quarantined.raw == b"this is not an email at all"
    assert Message.objects.count() == 0


def test_inbound_email_with_empty_body_is_400(api, channels):
    response = post_email(channels["email"], b"")

    assert response.status_code == 400
    assert "raw RFC 822" in response.json()["detail"]
    assert counts()["messages"] == 0


def test_inbound_email_as_json_is_415(api, channels):
    response = api.post(
        INBOUND.format(kind="email"),
        {"raw": "From: a@b.c"},
        format="json",
        headers={"X-Channel-Token": channels["email"].secret},
    )

    assert response.status_code == 415
    assert counts()["messages"] == 0


def test_inbound_chat_then_duplicate(api, channels):
    first = post_inbound(api, channels["chat"], "chat", chat_payload())
    second = post_inbound(api, channels["chat"], "chat", chat_payload())

    assert first.status_code == 201, first.content
    message = Message.objects.get()
    assert first.json() == {
        "customer": Customer.objects.get().pk,
        "conversation": message.conversation_id,
        "message": message.pk,
        "new_contact": True,
    }
    assert second.status_code == 200
    assert second.json() == {**first.json(), "new_contact": False}
    assert message.thread_key == "session-1"
    assert message.body_text == "Hi, where is my order?"
    assert message.sent_at.isoformat() == "2024-05-01T10:00:00+00:00"
    assert sorted(Identity.objects.values_list("kind", "value")) == [
        ("chat", "visitor-1"),
        ("email", "jane@example.com"),
    ]
    assert Customer.objects.get().name == "Jane Doe"


def test_inbound_chat_without_sent_at_uses_time_of_receipt(api, channels):
    payload = chat_payload()
    del payload["sent_at"]

    response = post_inbound(api, channels["chat"], "chat", payload)

    assert response.status_code == 201
    assert Message.objects.get().sent_at is not None


def test_inbound_social(api, channels):
    payload = {
        "external_id": "tweet-1",
        "network": "x",
        "handle": "@JaneDoe",
        "body": "@acme my parcel is late",
        "sent_at": "2024-05-01T10:00:00Z",
        "thread_id": "thread-9",
    }

    response = post_inbound(api, channels["social"], "social", payload)

    assert response.status_code == 201, response.content
    message = Message.objects.get()
    assert response.json() == {
        "customer": Customer.objects.get().pk,
        "conversation": message.conversation_id,
        "message": message.pk,
        "new_contact": True,
    }
    assert message.thread_key == "thread-9"
    assert Identity.objects.get().value == "x:janedoe"


def test_inbound_phone_stores_one_call_contact(api, channels, agent_a):
    response = post_inbound(api, channels["phone"], "phone", call_payload())

    assert response.status_code == 201, response.content
    message = Message.objects.get()
    contact = Contact.objects.get()
    assert response.json() == {
        "customer": Customer.objects.get().pk,
        "conversation": message.conversation_id,
        "message": message.pk,
        "new_contact": True,
    }
    assert (contact.reason, contact.wait_seconds, contact.talk_seconds, contact.wrap_seconds) == (
        "call",
        30,
        125,
        40,
    )
    assert (contact.ended_by, contact.agent_id) == ("customer", agent_a.pk)
    assert Identity.objects.get().value == "+14155550100"
    assert message.conversation.assignee_id == agent_a.pk


# --- Inbound: validation -------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("kind", "payload", "field"),
    [
        ("chat", chat_payload(body=""), "body"),
        ("chat", {k: v for k, v in chat_payload().items() if k != "body"}, "body"),
        ("chat", chat_payload(body="x" * 100_001), "body"),
        ("chat", chat_payload(external_id="x" * 256), "external_id"),
        ("chat", chat_payload(session_id="x" * 256), "session_id"),
        ("chat", chat_payload(sent_at="yesterday"), "sent_at"),
        ("chat", chat_payload(email="not-an-email"), "email"),
        ("chat", chat_payload(body="nul \x00 byte"), "body"),
        ("phone", call_payload(talk_seconds=-1), "talk_seconds"),
        ("phone", call_payload(wait_seconds=1.5), "wait_seconds"),
        ("phone", call_payload(ended_by="caller"), "ended_by"),
        ("phone", call_payload(started_at="2024-13-45"), "started_at"),
        ("phone", {k: v for k, v in call_payload().items() if k != "from_number"}, "from_number"),
    ],
)
def test_inbound_invalid_body_is_400_and_stores_nothing(api, channels, kind, payload, field):
    before = counts()

    response = post_inbound(api, channels[kind], kind, payload)

    assert response.status_code == 400
    body = response.json()
    assert body["detail"] == "Invalid input."
    assert list(body["errors"]) == [field]
    assert counts() == before


def test_inbound_phone_number_that_is_not_a_number_is_400(api, channels):
    response = post_inbound(api, channels["phone"], "phone", call_payload(from_number="call me"))

    assert response.status_code == 400
    assert "phone number" in response.json()["detail"]
    assert counts()["messages"] == 0


def test_inbound_on_a_channel_of_another_kind_is_400(api, channels):
    before = counts()

    chat_on_email = post_inbound(api, channels["email"], "chat", chat_payload())
    email_on_chat = post_email(channels["chat"], email_bytes())

    assert (chat_on_email.status_code, email_on_chat.status_code) == (400, 400)
    assert chat_on_email.json() == {"detail": "This channel is a email channel, not chat."}
    assert email_on_chat.json() == {"detail": "This channel does not take email."}
    assert counts() == before


# --- Inbound: authentication ----------------------------------------------------------------------


def test_inbound_without_token_is_401_and_stores_nothing(api, channels):
    before = counts()

    email = api.post(INBOUND.format(kind="email"), email_bytes(), content_type="message/rfc822")
    chat = api.post(INBOUND.format(kind="chat"), chat_payload(), format="json")

    assert (email.status_code, chat.status_code) == (401, 401)
    assert email.json() == {"detail": "Authentication credentials were not provided."}
    assert email.headers["WWW-Authenticate"] == "X-Channel-Token"
    assert counts() == before


def test_inbound_with_wrong_token_is_401_and_stores_nothing(api, channels):
    before = counts()

    email = post_email(channels["email"], email_bytes(), token="not-the-secret")
    chat = post_inbound(api, channels["chat"], "chat", chat_payload(), token="not-the-secret")

    assert (email.status_code, chat.status_code) == (401, 401)
    assert email.json() == {"detail": "Invalid or inactive channel token."}
    assert counts() == before


def test_inbound_on_an_inactive_channel_is_401(api, channels):
    channel = channels["email"]
    channel.is_active = False
    channel.save(update_fields=["is_active"])
    before = counts()

    response = post_email(channel, email_bytes())

    assert response.status_code == 401
    assert counts() == before


def test_staff_token_does_not_work_on_inbound(api_a, channels):
    before = counts()

    response = api_a.post(INBOUND.format(kind="chat"), chat_payload(), format="json")

    assert response.status_code == 401
    assert counts() == before


def test_channel_token_does_not_work_on_staff_endpoints(api, channels):
    result = send_email(channels["email"])
    secret = channels["email"].secret

    listing = api.get("/api/v1/conversations/", headers={"X-Channel-Token": secret})
    as_token = api.get("/api/v1/conversations/", headers={"Authorization": f"Token {secret}"})
    solve = api.post(
        f"/api/v1/conversations/{result.conversation_id}/solve/",
        headers={"X-Channel-Token": secret},
    )

    assert (listing.status_code, as_token.status_code, solve.status_code) == (401, 401, 401)
    assert Conversation.objects.get().status == "new"


@pytest.mark.parametrize(
    ("method", "path"),
    [
        ("get", "/api/v1/conversations/"),
        ("get", "/api/v1/conversations/{conversation}/"),
        ("post", "/api/v1/conversations/{conversation}/replies/"),
        ("post", "/api/v1/conversations/{conversation}/solve/"),
        ("post", "/api/v1/conversations/{conversation}/reopen/"),
        ("post", "/api/v1/conversations/{conversation}/pending/"),
        ("post", "/api/v1/conversations/{conversation}/assign/"),
        ("post", "/api/v1/messages/{message}/move/"),
        ("get", "/api/v1/customers/{customer}/"),
        ("post", "/api/v1/customers/{customer}/merge/"),
        ("post", "/api/v1/customers/{customer}/identities/"),
        ("post", "/api/v1/merges/1/undo/"),
    ],
)
def test_staff_endpoints_without_token_are_401(api, channels, method, path):
    result = send_email(channels["email"])
    url = path.format(
        conversation=result.conversation_id, message=result.message_id, customer=result.customer_id
    )
    before = counts()

    response = getattr(api, method)(url, {"body": "hello", "agent": "x", "other": 1}, format="json")

    assert response.status_code == 401
    assert response.json() == {"detail": "Authentication credentials were not provided."}
    assert counts() == before


# --- Size limits ------------------------------------------------------------------------------------


def test_inbound_email_with_too_big_attachment_is_413_and_stores_nothing(api, channels, settings):
    settings.ATTACHMENT_MAX_BYTES = 500
    before = counts()

    response = post_email(channels["email"], email_with_attachment(2000))

    assert response.status_code == 413
    assert response.json() == {
        "detail": "Attachment 'damage.jpg' has 2000 bytes; the limit is 500 bytes. Nothing was stored."
    }
    assert counts() == before


def test_inbound_body_over_upload_limit_is_413_and_stores_nothing(api, channels, settings):
    settings.DATA_UPLOAD_MAX_MEMORY_SIZE = 2048
    before = counts()

    email = post_email(channels["email"], email_bytes(body="x" * 5000))
    chat = post_inbound(api, channels["chat"], "chat", chat_payload(body="x" * 5000))

    assert (email.status_code, chat.status_code) == (413, 413)
    assert email.json()["detail"].endswith("the limit is 2048 bytes. Nothing was stored.")
    assert counts() == before


def test_staff_body_over_upload_limit_is_413(api_a, channels, settings):
    result = send_email(channels["email"])
    settings.DATA_UPLOAD_MAX_MEMORY_SIZE = 2048
    before = counts()

    response = api_a.post(
        f"/api/v1/conversations/{result.conversation_id}/replies/",
        {"body": "x" * 5000},
        format="json",
    )

    assert response.status_code == 413
    assert counts() == before


# --- Conversations: list ------------------------------------------------------------------------------


def _conversation_item(conversation: Conversation) -> dict[str, Any]:
    conversation.refresh_from_db()
    assignee = conversation.assignee
    team = conversation.team
    return {
        "id": conversation.pk,
        "status": conversation.status,
        "subject": conversation.subject,
        "customer": {"id": conversation.customer_id, "name": conversation.customer.name},
        "assignee": (
            {"id": assignee.pk, "email": assignee.email, "full_name": assignee.full_name}
            if assignee
            else None
        ),
        "team": {"id": team.pk, "name": team.name} if team else None,
        "channels": conversation.channels,
        "contacts_counted": conversation.contacts_counted,
        "created_at": iso(conversation.created_at),
        "last_activity_at": iso(conversation.last_activity_at),
        "solved_at": iso(conversation.solved_at) if conversation.solved_at else None,
        "follow_up_of": conversation.follow_up_of_id,
        "version": conversation.version,
        "priority": conversation.priority,
        "tags": [tag.name for tag in conversation.tags.order_by("name")],
        "spam_at": iso(conversation.spam_at) if conversation.spam_at else None,
    }


def test_conversation_list_newest_activity_first(api_a, channels):
    older = send_chat(channels["chat"], visitor_id="v-old", session_id="s-old")
    newer = send_email(channels["email"], sender="John <john@example.com>")

    response = api_a.get("/api/v1/conversations/")

    assert response.status_code == 200
    assert response.json() == {
        "next": None,
        "previous": None,
        "results": [
            _conversation_item(Conversation.objects.get(pk=newer.conversation_id)),
            _conversation_item(Conversation.objects.get(pk=older.conversation_id)),
        ],
    }


def test_conversation_list_filters(api_a, agent_a, channels):
    # given conversations that differ in status, assignee, channel and customer
    email = send_email(channels["email"])
    chat = send_chat(channels["chat"], visitor_id="v-2", session_id="s-2")
    call = send_call(channels["phone"], from_number="+1 212 555 0199")
    conversation_reply(
        conversation=Conversation.objects.get(pk=chat.conversation_id), author=agent_a, body="Hello"
    )

    def ids(query: str) -> list[int]:
        response = api_a.get(f"/api/v1/conversations/?{query}")
        assert response.status_code == 200, response.content
        return [item["id"] for item in response.json()["results"]]

    assert ids("status=open") == [chat.conversation_id]
    assert ids("status=new") == [call.conversation_id, email.conversation_id]
    assert ids("status=new,open") == [
        chat.conversation_id,
        call.conversation_id,
        email.conversation_id,
    ]
    assert ids("assignee=me") == [chat.conversation_id]
    assert ids(f"assignee={agent_a.pk}") == [chat.conversation_id]
    assert ids("assignee=ALICE@desk.example") == [chat.conversation_id]
    assert ids("assignee=none") == [call.conversation_id, email.conversation_id]
    assert ids(f"customer={email.customer_id}") == [email.conversation_id]
    assert ids("channel=phone") == [call.conversation_id]
    assert ids(f"team={channels['email'].team_id}") == [
        chat.conversation_id,
        call.conversation_id,
        email.conversation_id,
    ]
    assert ids("team=999999") == []


@pytest.mark.parametrize(
    "query", ["status=bogus", "assignee=somebody", "team=abc", "customer=-1", "channel=fax"]
)
def test_conversation_list_invalid_filter_is_400(api_a, query):
    response = api_a.get(f"/api/v1/conversations/?{query}")

    assert response.status_code == 400
    assert response.json()["detail"] == "Invalid input."


def test_conversation_list_cursor_pagination(api_a, channels):
    created = [
        send_chat(channels["chat"], visitor_id=f"v-{i}", session_id=f"s-{i}").conversation_id
        for i in range(5)
    ]
    newest_first = list(reversed(created))

    first = api_a.get("/api/v1/conversations/?page_size=2").json()
    second = api_a.get(first["next"]).json()
    third = api_a.get(second["next"]).json()

    assert [item["id"] for item in first["results"]] == newest_first[:2]
    assert [item["id"] for item in second["results"]] == newest_first[2:4]
    assert [item["id"] for item in third["results"]] == newest_first[4:]
    assert first["previous"] is None
    assert third["next"] is None
    assert "cursor=" in first["next"]


def test_conversation_list_page_size_is_capped_at_200(api_a, channels):
    send_email(channels["email"])

    response = api_a.get("/api/v1/conversations/?page_size=100000")

    assert response.status_code == 200
    assert len(response.json()["results"]) == 1


def test_conversation_list_hides_other_teams(api_b, channels):
    send_email(channels["email"])

    response = api_b.get("/api/v1/conversations/")

    assert response.json()["results"] == []


def _make_conversations(channels, agent, n: int) -> None:
    for i in range(n):
        result = send_chat(
            channels["chat"], visitor_id=f"visitor-{i}", session_id=f"session-{i}", name=f"C{i}"
        )
        if i % 2:
            conversation_reply(
                conversation=Conversation.objects.get(pk=result.conversation_id),
                author=agent,
                body="On it",
            )


@pytest.mark.parametrize("n", [3, 6])
def test_conversation_list_query_count_does_not_grow(
    api_a, agent_a, channels, django_assert_num_queries, n
):
    _make_conversations(channels, agent_a, n)

    # 1. the token with its user, 2. one page of conversations joined with customer, team and
    # assignee (no COUNT: cursor; the user's teams are a subquery of it), 3. the page's tags.
    with django_assert_num_queries(3):
        response = api_a.get("/api/v1/conversations/")

    assert len(response.json()["results"]) == n


# --- Conversations: detail ----------------------------------------------------------------------------


def test_conversation_detail_has_the_timeline_of_all_channels(api_a, agent_a, channels):
    # given an email, a phone call and a note on one conversation
    email = send_email(channels["email"], message_id="<d1@mail.example.com>")
    call = send_call(
        channels["phone"],
        from_number="+1 415 555 0100",
        talk_seconds=61,
        agent_email="alice@desk.example",
    )
    conversation = Conversation.objects.get(pk=email.conversation_id)
    note = conversation_reply(
        conversation=conversation, author=agent_a, body="Internal only", internal=True
    )

    response = api_a.get(f"/api/v1/conversations/{email.conversation_id}/")

    assert response.status_code == 200
    data = response.json()
    inbound = Message.objects.get(pk=email.message_id)
    assert {k: v for k, v in data.items() if k != "messages"} == _conversation_item(conversation)
    assert data["messages"] == [
        {
            "id": inbound.pk,
            "conversation": conversation.pk,
            "direction": "inbound",
            "channel": "email",
            "author": None,
            "subject": "My order has not arrived",
            "body_text": inbound.body_text,
            "body_html": "",
            "sent_at": iso(inbound.sent_at),
            "automated": "",
            "delivery_state": "",
            "delivery_error": "",
            "delivery_attempts": 0,
            "contact": {"id": inbound.contact_id, "reason": "first", "channel": "email"},
            "call": None,
            "attachments": [],
            "cc": [],
            "bcc": [],
        },
        {
            "id": note.pk,
            "conversation": conversation.pk,
            "direction": "note",
            "channel": None,
            "author": {
                "id": agent_a.pk,
                "email": "alice@desk.example",
                "full_name": "Alice Archer",
            },
            "subject": "",
            "body_text": "Internal only",
            "body_html": "",
            "sent_at": iso(note.sent_at),
            "automated": "",
            "delivery_state": "",
            "delivery_error": "",
            "delivery_attempts": 0,
            "contact": None,
            "call": None,
            "attachments": [],
            "cc": [],
            "bcc": [],
        },
    ]
    # the call went to its own conversation (a different customer then); its detail has call data
    call_data = api_a.get(f"/api/v1/conversations/{call.conversation_id}/").json()["messages"][0]
    assert call_data["call"] == {
        "wait_seconds": 30,
        "talk_seconds": 61,
        "hold_seconds": 10,
        "wrap_seconds": 45,
        "ended_by": "customer",
        "agent": agent_a.pk,
        "direction": "inbound",
    }
    assert call_data["contact"]["reason"] == "call"


def _conversation_with_messages(channels, agent, n: int) -> int:
    first = send_chat(channels["chat"], session_id="s-detail", body="message 0")
    conversation = Conversation.objects.get(pk=first.conversation_id)
    conversation_reply(conversation=conversation, author=agent, body="a note", internal=True)
    for i in range(n - 2):
        send_chat(channels["chat"], session_id="s-detail", body=f"message {i + 1}")
    return conversation.pk


@pytest.mark.parametrize("n", [2, 6])
def test_conversation_detail_query_count_does_not_grow(
    api_a, agent_a, channels, django_assert_num_queries, n
):
    conversation_id = _conversation_with_messages(channels, agent_a, n)

    # 1. token + user, 2. the conversation with customer, team, assignee (the user's teams a
    # subquery), 3. its tags, 4. its messages with author, identity and contact, 5. their
    # attachments.
    with django_assert_num_queries(5):
        response = api_a.get(f"/api/v1/conversations/{conversation_id}/")

    assert len(response.json()["messages"]) == n


# --- Conversations: actions ---------------------------------------------------------------------------


def test_internal_note_is_stored_and_sends_nothing(
    api_a, agent_a, channels, django_capture_on_commit_callbacks
):
    result = send_email(channels["email"])

    with django_capture_on_commit_callbacks(execute=True):
        response = api_a.post(
            f"/api/v1/conversations/{result.conversation_id}/replies/",
            {"body": "Check the warehouse", "internal": True},
            format="json",
        )

    assert response.status_code == 201
    note = Message.objects.get(direction="note")
    assert response.json()["id"] == note.pk
    assert (response.json()["direction"], response.json()["channel"]) == ("note", None)
    assert (note.body_text, note.author_id) == ("Check the warehouse", agent_a.pk)
    assert mail.outbox == []


def test_public_email_reply_sends_one_threaded_email(
    api_a, agent_a, channels, django_capture_on_commit_callbacks
):
    # given a customer email with its own Message-ID
    result = send_email(channels["email"], message_id="<customer-1@mail.example.com>")

    # when the agent replies publicly
    with django_capture_on_commit_callbacks(execute=True):
        response = api_a.post(
            f"/api/v1/conversations/{result.conversation_id}/replies/",
            {"body": "Your parcel left today."},
            format="json",
        )

    # then exactly one threaded email goes out
    assert response.status_code == 201, response.content
    reply = Message.objects.get(direction="outbound")
    assert response.json()["id"] == reply.pk
    assert (response.json()["channel"], response.json()["direction"]) == ("email", "outbound")
    assert len(mail.outbox) == 1
    sent = message_from_bytes(mail.outbox[0].message().as_bytes())
    assert sent["Message-ID"] == f"<{reply.message_id}>"
    assert sent["In-Reply-To"] == "<customer-1@mail.example.com>"
    assert sent["References"] == "<customer-1@mail.example.com>"
    assert f"+c{result.conversation_id}." in sent["Reply-To"]
    assert sent["Reply-To"] == tokens.reply_address(result.conversation_id)
    assert mail.outbox[0].to == ["jane@example.com"]
    reply.refresh_from_db()
    assert reply.delivery_state == "sent"
    conversation = Conversation.objects.get()
    assert (conversation.status, conversation.assignee_id) == ("open", agent_a.pk)


def test_reply_without_body_is_400(api_a, channels):
    result = send_email(channels["email"])
    before = counts()

    response = api_a.post(
        f"/api/v1/conversations/{result.conversation_id}/replies/", {"body": ""}, format="json"
    )

    assert response.status_code == 400
    assert list(response.json()["errors"]) == ["body"]
    assert counts() == before


def test_solve_then_solve_again_is_409(api_a, agent_a, channels):
    result = send_email(channels["email"])

    solved = api_a.post(f"/api/v1/conversations/{result.conversation_id}/solve/")
    state = conversation_state(result.conversation_id)
    again = api_a.post(f"/api/v1/conversations/{result.conversation_id}/solve/")

    assert solved.status_code == 200
    conversation = Conversation.objects.get()
    assert solved.json() == _conversation_item(conversation)
    assert (conversation.status, conversation.assignee_id) == ("solved", agent_a.pk)
    assert Event.objects.filter(kind="conversation.solved").count() == 1
    assert again.status_code == 409
    assert again.json() == {"detail": "The conversation is already solved."}
    assert conversation_state(result.conversation_id) == state


def test_reopen(api_a, channels):
    result = send_email(channels["email"])
    api_a.post(f"/api/v1/conversations/{result.conversation_id}/solve/")

    reopened = api_a.post(f"/api/v1/conversations/{result.conversation_id}/reopen/")
    again = api_a.post(f"/api/v1/conversations/{result.conversation_id}/reopen/")

    assert reopened.status_code == 200
    assert reopened.json()["status"] == "open"
    assert again.status_code == 409


def test_pending(api_a, channels):
    result = send_email(channels["email"])

    response = api_a.post(f"/api/v1/conversations/{result.conversation_id}/pending/")

    assert response.status_code == 200
    assert response.json()["status"] == "pending"
    assert Conversation.objects.get().status == "pending"


def test_assign_by_email_by_id_and_unassign(api_a, agent_a, manager_a, channels):
    result = send_email(channels["email"])
    url = f"/api/v1/conversations/{result.conversation_id}/assign/"

    by_email = api_a.post(url, {"agent": "MIA@desk.example"}, format="json")
    by_id = api_a.post(url, {"agent": agent_a.pk}, format="json")
    unassigned = api_a.post(url, {"agent": None}, format="json")

    assert by_email.status_code == 200
    assert by_email.json()["assignee"] == {
        "id": manager_a.pk,
        "email": "mia@desk.example",
        "full_name": "Mia Manager",
    }
    assert by_id.json()["assignee"]["id"] == agent_a.pk
    assert unassigned.json()["assignee"] is None
    assert Conversation.objects.get().assignee_id is None
    assert Event.objects.filter(kind="conversation.assigned").count() == 3


def test_assign_into_a_team_that_is_not_yours_is_the_same_400_as_an_unknown_team(
    api_a, channels, team_b
):
    result = send_email(channels["email"])
    state = conversation_state(result.conversation_id)
    events = Event.objects.count()
    url = f"/api/v1/conversations/{result.conversation_id}/assign/"

    # when: Alice (Team A) moves her conversation into Team B, and into a team that isn't there
    forbidden = api_a.post(url, {"team": "Team B"}, format="json")
    by_id = api_a.post(url, {"team": str(team_b.pk)}, format="json")
    unknown = api_a.post(url, {"team": "No Such Team"}, format="json")

    # then: one answer for all three, and nothing moved
    answer = {"detail": "You can only move conversations to your own teams."}
    assert [r.status_code for r in (forbidden, by_id, unknown)] == [400, 400, 400]
    assert [r.json() for r in (forbidden, by_id, unknown)] == [answer] * 3
    assert conversation_state(result.conversation_id) == state
    assert Event.objects.count() == events


def test_assign_to_another_of_your_teams_by_name(channels, team_b):
    from tests.factories import make_staff

    pat = make_staff("pat@desk.example", role="agent", teams=["Team A", "Team B"])
    result = send_email(channels["email"])

    response = client_for(pat).post(
        f"/api/v1/conversations/{result.conversation_id}/assign/", {"team": "Team B"}, format="json"
    )

    assert response.status_code == 200
    assert response.json()["team"] == {"id": team_b.pk, "name": "Team B"}
    assert Conversation.objects.get().team_id == team_b.pk


@pytest.mark.parametrize(
    ("payload", "field"),
    [
        ({"agent": "nobody@desk.example"}, "agent"),
        ({"agent": 999999}, "agent"),
    ],
)
def test_assign_unknown_agent_is_400(api_a, channels, payload, field):
    result = send_email(channels["email"])
    state = conversation_state(result.conversation_id)

    response = api_a.post(
        f"/api/v1/conversations/{result.conversation_id}/assign/", payload, format="json"
    )

    assert response.status_code == 400
    assert list(response.json()["errors"]) == [field]
    assert conversation_state(result.conversation_id) == state


def test_assign_with_empty_body_is_400(api_a, channels):
    result = send_email(channels["email"])

    response = api_a.post(
        f"/api/v1/conversations/{result.conversation_id}/assign/", {}, format="json"
    )

    assert response.status_code == 400


def test_assign_agent_outside_the_team_is_400(api_a, agent_b, channels):
    result = send_email(channels["email"])
    state = conversation_state(result.conversation_id)

    response = api_a.post(
        f"/api/v1/conversations/{result.conversation_id}/assign/",
        {"agent": "bob@desk.example"},
        format="json",
    )

    assert response.status_code == 400
    assert response.json() == {"detail": "bob@desk.example is not a member of team Team A."}
    assert conversation_state(result.conversation_id) == state


def test_move_message_between_conversations_of_one_customer(api_a, channels):
    first = send_email(channels["email"], subject="First")
    second = send_email(channels["email"], subject="Second")
    assert first.conversation_id != second.conversation_id

    response = api_a.post(
        f"/api/v1/messages/{second.message_id}/move/",
        {"conversation": first.conversation_id},
        format="json",
    )

    assert response.status_code == 200, response.content
    assert (response.json()["id"], response.json()["conversation"]) == (
        second.message_id,
        first.conversation_id,
    )
    assert Message.objects.get(pk=second.message_id).conversation_id == first.conversation_id


def test_move_message_to_another_customers_conversation_is_400(api_a, channels):
    first = send_email(channels["email"])
    other = send_email(channels["email"], sender="John <john@example.com>")

    response = api_a.post(
        f"/api/v1/messages/{other.message_id}/move/",
        {"conversation": first.conversation_id},
        format="json",
    )

    assert response.status_code == 400
    assert Message.objects.get(pk=other.message_id).conversation_id == other.conversation_id


# --- Customers, identities and merges ---------------------------------------------------------------


def test_customer_detail(api_a, channels):
    email = send_email(channels["email"])
    chat = send_chat(
        channels["chat"], email="jane@example.com", visitor_id="v-jane", session_id="s-jane"
    )
    customer = Customer.objects.get()

    response = api_a.get(f"/api/v1/customers/{customer.pk}/")

    assert response.status_code == 200
    data = response.json()
    conversation = Conversation.objects.get()
    assert email.conversation_id == chat.conversation_id == conversation.pk
    expected_conversation = {
        k: v
        for k, v in _conversation_item(conversation).items()
        if k not in ("customer", "priority", "tags", "spam_at")
    }
    assert data == {
        "id": customer.pk,
        "name": "Jane Doe",
        "notes": "",
        "language": "",
        "organisation": None,
        "merged_into": None,
        "created_at": iso(customer.created_at),
        "conversations_elsewhere": [],
        "identities": [
            {
                "id": identity.pk,
                "kind": identity.kind,
                "value": identity.value,
                "display_value": identity.display_value,
                "verified": identity.verified,
                "undeliverable_at": None,
            }
            for identity in Identity.objects.order_by("kind", "value")
        ],
        "conversations": [expected_conversation],
        "merges": [],
    }
    assert [i["value"] for i in data["identities"]] == ["v-jane", "jane@example.com"]


@pytest.mark.parametrize("n", [1, 4])
def test_customer_detail_query_count_does_not_grow(api_a, channels, django_assert_num_queries, n):
    for i in range(n):
        send_email(channels["email"], subject=f"Problem {i}")
    customer = Customer.objects.get()

    # 1. token + user, 2. the customer (with its organisation), 3. EXISTS a visible
    # conversation of it, 4. its identities, 5. its visible conversations with team and
    # assignee, 6. merges into it, 7. its conversations in other teams (none here: no verdicts
    # to read). The user's teams are a subquery of 3, 5 and 7, not queries of their own.
    with django_assert_num_queries(7):
        response = api_a.get(f"/api/v1/customers/{customer.pk}/")

    assert len(response.json()["conversations"]) == n


def test_link_identity_201_then_200_then_409_for_another_customer(api_a, channels):
    jane = send_email(channels["email"])
    send_email(channels["email"], sender="John <john@example.com>")
    url = f"/api/v1/customers/{jane.customer_id}/identities/"

    linked = api_a.post(url, {"kind": "phone", "value": "+1 415 555 0100"}, format="json")
    again = api_a.post(url, {"kind": "phone", "value": "(415) 555-0100"}, format="json")
    before = counts()
    theirs = api_a.post(url, {"kind": "email", "value": "JOHN@example.com"}, format="json")

    identity = Identity.objects.get(kind="phone")
    assert linked.status_code == 201
    assert linked.json() == {
        "id": identity.pk,
        "kind": "phone",
        "value": "+14155550100",
        "display_value": "+1 415 555 0100",
        "verified": False,  # an agent typed it; the customer has not written from it yet
        "undeliverable_at": None,
    }
    assert again.status_code == 200
    assert again.json()["id"] == identity.pk
    assert theirs.status_code == 409
    assert theirs.json() == {
        "detail": "This handle belongs to another customer; merge the customers instead."
    }
    assert counts() == before


def test_link_identity_held_by_another_teams_customer_is_the_same_409_without_its_id(
    api_a, channels, channels_b
):
    # given: Jane (team A) and a team B customer who holds john@example.com
    jane = send_email(channels["email"])
    send_email(channels_b["email"], sender="John <john@example.com>")
    before = counts()

    # when: team A tries to link John's address to Jane
    response = api_a.post(
        f"/api/v1/customers/{jane.customer_id}/identities/",
        {"kind": "email", "value": "john@example.com"},
        format="json",
    )

    # then: a 409 that names nobody, and nothing changed
    assert response.status_code == 409
    assert response.json() == {
        "detail": "This handle belongs to another customer; merge the customers instead."
    }
    assert counts() == before


def test_link_invalid_identity_is_400(api_a, channels):
    jane = send_email(channels["email"])
    before = counts()

    bad_kind = api_a.post(
        f"/api/v1/customers/{jane.customer_id}/identities/",
        {"kind": "fax", "value": "1"},
        format="json",
    )
    bad_value = api_a.post(
        f"/api/v1/customers/{jane.customer_id}/identities/",
        {"kind": "email", "value": "nope"},
        format="json",
    )

    assert (bad_kind.status_code, bad_value.status_code) == (400, 400)
    assert counts() == before


def test_merge_and_undo(api_a, agent_a, channels):
    jane = send_email(channels["email"])
    john = send_email(channels["email"], sender="John <john@example.com>")

    merged = api_a.post(
        f"/api/v1/customers/{jane.customer_id}/merge/", {"other": john.customer_id}, format="json"
    )

    assert merged.status_code == 201, merged.content
    merge = CustomerMerge.objects.get()
    assert merged.json() == {
        "id": merge.pk,
        "target": jane.customer_id,
        "merged": john.customer_id,
        "identity_ids": [Identity.objects.get(value="john@example.com").pk],
        "conversation_ids": [john.conversation_id],
        "created_at": iso(merge.created_at),
        "undone_at": None,
    }
    assert Conversation.objects.get(pk=john.conversation_id).customer_id == jane.customer_id
    assert Customer.objects.get(pk=john.customer_id).merged_into_id == jane.customer_id
    detail = api_a.get(f"/api/v1/customers/{jane.customer_id}/").json()
    assert [m["id"] for m in detail["merges"]] == [merge.pk]
    assert len(detail["conversations"]) == 2

    undone = api_a.post(f"/api/v1/merges/{merge.pk}/undo/")
    again = api_a.post(f"/api/v1/merges/{merge.pk}/undo/")

    assert undone.status_code == 200
    merge.refresh_from_db()
    assert undone.json()["undone_at"] == iso(merge.undone_at)
    assert merge.undone_by_id == agent_a.pk
    assert Conversation.objects.get(pk=john.conversation_id).customer_id == john.customer_id
    assert Customer.objects.get(pk=john.customer_id).merged_into_id is None
    assert again.status_code == 409


def test_merge_into_itself_is_400(api_a, channels):
    jane = send_email(channels["email"])

    response = api_a.post(
        f"/api/v1/customers/{jane.customer_id}/merge/", {"other": jane.customer_id}, format="json"
    )

    assert response.status_code == 400
    assert CustomerMerge.objects.count() == 0


def test_unknown_objects_are_404(api_a, channels):
    huge = 10**30
    assert api_a.get(f"/api/v1/conversations/{huge}/").status_code == 404
    assert api_a.get(f"/api/v1/customers/{huge}/").status_code == 404
    assert api_a.get(f"/api/v1/conversations/?customer={huge}").status_code == 400
    assert (
        api_a.post(f"/api/v1/messages/{huge}/move/", {"conversation": 1}, format="json").status_code
        == 404
    )
    assert api_a.get("/api/v1/conversations/999999/").status_code == 404
    assert api_a.get("/api/v1/customers/999999/").status_code == 404
    assert api_a.post("/api/v1/merges/999999/undo/").status_code == 404
    assert (
        api_a.post("/api/v1/messages/999999/move/", {"conversation": 1}, format="json").status_code
        == 404
    )


# --- Another team's objects are 404 and stay unchanged ---------------------------------------------


def test_agent_of_another_team_gets_404_and_changes_nothing(
    api_b, agent_b, channels, channels_b, team_b
):
    # given a conversation of Team A and a customer of Team B
    a = send_email(channels["email"])
    b = send_email(channels_b["email"], sender="John <john@example.com>")
    conversation_url = f"/api/v1/conversations/{a.conversation_id}"
    state = conversation_state(a.conversation_id)
    before = counts()

    # when Bob (Team B) tries to read or act on Team A's objects
    responses = [
        api_b.get(f"{conversation_url}/"),
        api_b.post(f"{conversation_url}/replies/", {"body": "Hi"}, format="json"),
        api_b.post(f"{conversation_url}/solve/"),
        api_b.post(f"{conversation_url}/reopen/"),
        api_b.post(f"{conversation_url}/pending/"),
        api_b.post(
            f"{conversation_url}/assign/",
            {"agent": "bob@desk.example", "team": "Team B"},
            format="json",
        ),
        api_b.post(
            f"/api/v1/messages/{a.message_id}/move/",
            {"conversation": b.conversation_id},
            format="json",
        ),
        api_b.get(f"/api/v1/customers/{a.customer_id}/"),
        api_b.post(
            f"/api/v1/customers/{a.customer_id}/merge/", {"other": b.customer_id}, format="json"
        ),
        api_b.post(
            f"/api/v1/customers/{b.customer_id}/merge/", {"other": a.customer_id}, format="json"
        ),
        api_b.post(
            f"/api/v1/customers/{a.customer_id}/identities/",
            {"kind": "email", "value": "x@example.com"},
            format="json",
        ),
    ]

    # then every answer is 404, the same as for an object that does not exist
    assert [r.status_code for r in responses] == [404] * len(responses)
    assert {r.json()["detail"] for r in responses} <= {
        "No such conversation.",
        "No such customer.",
        "No such message.",
    }
    assert conversation_state(a.conversation_id) == state
    assert counts() == before
    assert mail.outbox == []


def test_merge_undo_of_another_teams_merge_is_404(api_a, api_b, channels):
    jane = send_email(channels["email"])
    john = send_email(channels["email"], sender="John <john@example.com>")
    merge_id = api_a.post(
        f"/api/v1/customers/{jane.customer_id}/merge/", {"other": john.customer_id}, format="json"
    ).json()["id"]

    response = api_b.post(f"/api/v1/merges/{merge_id}/undo/")

    assert response.status_code == 404
    assert CustomerMerge.objects.get().undone_at is None


def test_admin_sees_every_team(channels_b, admin_user):
    b = send_email(channels_b["email"])

    response = client_for(admin_user).get(f"/api/v1/conversations/{b.conversation_id}/")

    assert response.status_code == 200


# --- The Done-when scenario ------------------------------------------------------------------------


def test_one_customer_one_conversation_across_email_chat_and_phone(api, api_a, channels):
    # given an email from Jane
    email = post_email(channels["email"], email_bytes(sender="Jane Doe <jane@example.com>"))
    # and a chat in which the visitor gives the same email
    chat = post_inbound(
        api, channels["chat"], "chat", chat_payload(email="jane@example.com", sent_at=None)
    )
    customer_id = email.json()["customer"]
    # and the agent links her phone number
    linked = api_a.post(
        f"/api/v1/customers/{customer_id}/identities/",
        {"kind": "phone", "value": "+1 415 555 0100"},
        format="json",
    )

    # when she calls from the same number, written differently
    call = post_inbound(
        api, channels["phone"], "phone", call_payload(from_number="(415) 555-0100", started_at=None)
    )

    # then it is one customer and one conversation with three contacts on three channels
    assert [r.status_code for r in (email, chat, linked, call)] == [201, 201, 201, 201]
    assert Customer.objects.count() == 1
    assert Conversation.objects.count() == 1
    assert {chat.json()["customer"], call.json()["customer"]} == {customer_id}
    assert {chat.json()["conversation"], call.json()["conversation"]} == {
        email.json()["conversation"]
    }
    detail = api_a.get(f"/api/v1/conversations/{email.json()['conversation']}/").json()
    assert detail["contacts_counted"] == 3
    assert detail["channels"] == ["email", "chat", "phone"]
    assert [m["contact"]["reason"] for m in detail["messages"]] == [
        "first",
        "channel_change",
        "call",
    ]


def test_chat_payload_with_null_sent_at_is_accepted(api, channels):
    response = post_inbound(api, channels["chat"], "chat", chat_payload(sent_at=None))

    assert response.status_code == 201, response.content


# --- Schema and docs ---------------------------------------------------------------------------------


def test_openapi_schema_documents_every_operation(api):
    response = api.get("/api/schema/", HTTP_ACCEPT="application/vnd.oai.openapi+json")

    assert response.status_code == 200
    schema = response.json()
    operations = {(path, method) for path, item in schema["paths"].items() for method in item}
    assert {
        ("/api/v1/inbound/email/", "post"),
        ("/api/v1/inbound/chat/", "post"),
        ("/api/v1/inbound/social/", "post"),
        ("/api/v1/inbound/phone/", "post"),
        ("/api/v1/conversations/", "get"),
        ("/api/v1/conversations/{id}/", "get"),
        ("/api/v1/conversations/{id}/replies/", "post"),
        ("/api/v1/conversations/{id}/solve/", "post"),
        ("/api/v1/conversations/{id}/reopen/", "post"),
        ("/api/v1/conversations/{id}/pending/", "post"),
        ("/api/v1/conversations/{id}/assign/", "post"),
        ("/api/v1/messages/{id}/move/", "post"),
        ("/api/v1/customers/{id}/", "get"),
        ("/api/v1/customers/{id}/merge/", "post"),
        ("/api/v1/customers/{id}/identities/", "post"),
        ("/api/v1/merges/{id}/undo/", "post"),
    } <= operations
    email = schema["paths"]["/api/v1/inbound/email/"]["post"]
    assert list(email["requestBody"]["content"]) == ["message/rfc822"]
    assert email["security"] == [{"channelToken": []}]
    assert sorted(email["responses"]) == ["200", "201", "202", "400", "401", "413", "415", "429"]
    chat_input = schema["components"]["schemas"]["InboundChatInputRequest"]
    assert set(chat_input["required"]) == {"external_id", "session_id", "visitor_id", "body"}


def test_api_docs_are_served_without_external_urls(api):
    response = api.get("/api/docs/")

    assert response.status_code == 200
    html = response.content.decode().lower()
    for marker in ("cdn", "unpkg", "jsdelivr"):
        assert marker not in html


def test_other_staff_roles_use_the_same_endpoints(channels):
    manager = make_staff("max@desk.example", role="manager", teams=["Team A"])
    result = send_email(channels["email"])

    response = client_for(manager).post(f"/api/v1/conversations/{result.conversation_id}/solve/")

    assert response.status_code == 200


def test_channel_created_later_gets_its_own_secret(api):
    channel = channel_create_or_update(kind="chat", name="Widget", team_name="Team A")

    response = post_inbound(api, channel, "chat", chat_payload())

    assert response.status_code == 201


def test_inbound_is_throttled_per_channel(api, channels, monkeypatch):
    from django.core.cache import cache

    from tickets.authentication import InboundThrottle

    # given a rate of two calls a minute (the cache holds the throttle history: start clean)
    monkeypatch.setattr(InboundThrottle, "THROTTLE_RATES", {"inbound": "2/min"})
    # A clock 30 s into a minute: the calls cannot straddle two of the throttle's windows.
    monkeypatch.setattr(InboundThrottle, "timer", lambda self: 1_000_050.0)
    cache.clear()
    try:
        # when a channel posts three times
        statuses = [
            post_inbound(
                api, channels["chat"], "chat", chat_payload(external_id=f"t-{i}")
            ).status_code
            for i in range(3)
        ]
        # and another channel posts once
        other = post_inbound(
            api,
            channels["social"],
            "social",
            {"external_id": "s-1", "network": "x", "handle": "jane", "body": "hi"},
        )
    finally:
        cache.clear()

    # then the third call of the first channel is refused; the other channel has its own budget
    assert statuses == [201, 201, 429]
    assert other.status_code == 201
    assert Message.objects.count() == 3


@pytest.mark.parametrize("sent_at", ["0001-01-01T00:00:00-01:00", "1999-12-31T23:59:59Z"])
def test_inbound_time_out_of_range_is_400_and_stores_nothing(api, channels, sent_at):
    # Found by schemathesis: year 1 minus the attach window overflowed (a 500).
    payload = {
        "external_id": "c-old",
        "session_id": "s",
        "visitor_id": "v",
        "body": "hi",
        "sent_at": sent_at,
    }

    response = api.post(
        "/api/v1/inbound/chat/",
        payload,
        format="json",
        HTTP_X_CHANNEL_TOKEN=channels["chat"].secret,
    )

    assert response.status_code == 400
    assert response.json()["detail"].endswith("is before 2000-01-01; check the clock.")
    assert Message.objects.count() == 0
    assert Customer.objects.count() == 0
