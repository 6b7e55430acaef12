"""The desk reaching out: starting a conversation and logging calls (services and API)."""

from __future__ import annotations

import json
from datetime import timedelta
from unittest import mock

import pytest
from django.core import mail
from django.utils import timezone

from supportdesk.errors import ApplicationError, Conflict
from tests.conftest import client_for
from tests.factories import send_call, send_email
from tests.helpers import web
from tickets.models import Call, Contact, Conversation, Customer, Event, Identity, Message
from tickets.services import (
    Handle,
    HandleTaken,
    call_log,
    channel_set_webhook,
    conversation_solve,
    conversation_start,
    customer_create,
)

pytestmark = pytest.mark.django_db


def _counts() -> tuple[int, int, int, int]:
    return (
        Conversation.objects.count(),
        Message.objects.count(),
        Customer.objects.count(),
        Identity.objects.count(),
    )


# --- Starting a conversation --------------------------------------------------------------------


def test_starting_an_email_conversation_with_a_new_address_sends_one_mail_and_counts_no_contact(
    channels, agent_a, django_capture_on_commit_callbacks
):
    # when: Alice writes first to an address nobody has
    with django_capture_on_commit_callbacks(execute=True):
        conversation = conversation_start(
            actor=agent_a,
            channel=channels["email"],
            to=Handle(kind="email", value="New.Person@Example.com"),
            subject="Your renewal",
            body="Hello, your plan renews next week.",
        )

    # then: a new customer with the (unverified) address, a pending conversation of Alice's
    conversation.refresh_from_db()
    customer = conversation.customer
    assert [(i.kind, i.value, i.verified) for i in customer.identities.all()] == [
        ("email", "new.person@example.com", False)
    ]
    assert (conversation.status, conversation.assignee, conversation.team.name) == (
        "pending",
        agent_a,
        "Team A",
    )
    assert (conversation.contacts_counted, conversation.first_inbound_at) == (0, None)
    assert conversation.channels == ["email"]
    message = conversation.messages.get()
    assert (message.direction, message.delivery_state) == ("outbound", "sent")
    # and exactly one mail, not a "Re:", with the conversation's reply address
    assert len(mail.outbox) == 1
    sent = mail.outbox[0]
    assert sent.to == ["new.person@example.com"]
    assert sent.subject == f"Your renewal [#{conversation.pk}]"
    assert sent.body == "Hello, your plan renews next week."
    assert sent.extra_headers["Message-ID"] == f"<{message.message_id}>"
    assert "In-Reply-To" not in sent.extra_headers
    kinds = list(Event.objects.filter(conversation=conversation).values_list("kind", "data__by"))
    assert kinds[0] == ("conversation.created", "agent")
    assert ("message.replied", None) in kinds


def test_the_customers_answer_threads_and_is_contact_one(
    channels, agent_a, django_capture_on_commit_callbacks
):
    # given: a conversation the desk started
    with django_capture_on_commit_callbacks(execute=True):
        conversation = conversation_start(
            actor=agent_a,
            channel=channels["email"],
            to=Handle(kind="email", value="ann@example.com"),
            subject="Checking in",
            body="How is the new router?",
        )
    ours = conversation.messages.get().message_id

    # when: the customer answers it
    answer = send_email(
        channels["email"],
        sender="Ann <ann@example.com>",
        subject=f"Re: Checking in [#{conversation.pk}]",
        in_reply_to=f"<{ours}>",
        references=f"<{ours}>",
        body="It drops every evening.",
    )

    # then: it is the same conversation, the customer's first contact, and open again
    assert answer.conversation_id == conversation.pk
    assert answer.new_contact is True
    conversation.refresh_from_db()
    assert (conversation.status, conversation.contacts_counted) == ("open", 1)
    contact = Contact.objects.get(conversation=conversation)
    assert (contact.reason, contact.channel_kind) == ("first", "email")
    assert conversation.first_inbound_at is not None
    # and the address is now verified (she wrote from it)
    assert Identity.objects.get(value="ann@example.com").verified is True


def test_starting_with_an_existing_customer_uses_their_address(
    channels, agent_a, django_capture_on_commit_callbacks
):
    first = send_email(channels["email"], sender="Jane <jane@example.com>")
    customer = Customer.objects.get(pk=first.customer_id)

    with django_capture_on_commit_callbacks(execute=True):
        conversation = conversation_start(
            actor=agent_a, channel=channels["email"], customer=customer, body="One more thing"
        )

    assert conversation.customer_id == customer.pk
    assert conversation.subject == "One more thing"
    assert mail.outbox[-1].to == ["jane@example.com"]
    assert Customer.objects.count() == 1


def test_a_handle_of_another_customer_is_refused_and_nothing_is_stored(channels, agent_a):
    jane = Customer.objects.get(
        pk=send_email(channels["email"], sender="jane@example.com").customer_id
    )
    ann = Customer.objects.get(
        pk=send_email(channels["email"], sender="ann@example.com").customer_id
    )
    before = _counts()

    with pytest.raises(HandleTaken):
        conversation_start(
            actor=agent_a,
            channel=channels["email"],
            customer=jane,
            to=Handle(kind="email", value="ann@example.com"),
            body="Hi",
        )

    assert _counts() == before
    assert ann.identities.count() == 1


@pytest.mark.parametrize(
    ("kind", "to", "body", "message"),
    [
        ("email", Handle(kind="email", value="not an address"), "Hi", "not a valid email"),
        ("email", Handle(kind="phone", value="+14155550100"), "Hi", "email handle"),
        ("email", Handle(kind="email", value="x@example.com"), "   ", "Write the message"),
        ("phone", Handle(kind="email", value="x@example.com"), "Hi", "log the call"),
        ("chat", Handle(kind="chat", value="v-1"), "Hi", "no webhook URL"),
    ],
)
def test_bad_starts_are_refused_with_a_reason_and_store_nothing(
    channels, agent_a, kind, to, body, message
):
    before = _counts()

    with pytest.raises(ApplicationError, match=message):
        conversation_start(actor=agent_a, channel=channels[kind], to=to, body=body)

    assert _counts() == before


def test_starting_on_social_posts_to_the_channels_webhook(
    channels, agent_a, django_capture_on_commit_callbacks
):
    channel_set_webhook(channel=channels["social"], webhook_url="https://hooks.example.com/social")
    channels["social"].refresh_from_db()
    requests: list = []

    class FakeResponse:
        def __enter__(self):
            return self

        def __exit__(self, *exc):
            return False

    # The outside world: the social network's webhook receiver.
    with (
        mock.patch(
            "tickets.services.delivery._webhook_urlopen",
            side_effect=lambda r, timeout: requests.append(r) or FakeResponse(),
        ),
        django_capture_on_commit_callbacks(execute=True),
    ):
        conversation = conversation_start(
            actor=agent_a,
            channel=channels["social"],
            to=Handle(kind="social", value="x:@jane_d"),
            body="We saw your post: can we help?",
        )

    message = conversation.messages.get()
    message.refresh_from_db()
    assert (message.channel_kind, message.delivery_state) == ("social", "sent")
    (request,) = requests
    assert request.full_url == "https://hooks.example.com/social"
    payload = json.loads(request.data)
    assert payload["to"] == {"kind": "social", "value": "x:jane_d"}
    assert payload["body"] == "We saw your post: can we help?"
    conversation.refresh_from_db()
    assert (conversation.contacts_counted, conversation.status) == (0, "pending")


# --- Logging calls ----------------------------------------------------------------------------------


def test_an_inbound_logged_call_is_one_contact_like_a_phone_systems_call(channels, agent_a):
    # given: Jane emailed (contact 1) and her number is known
    first = send_email(channels["email"], sender="jane@example.com")
    conversation = Conversation.objects.get(pk=first.conversation_id)
    Identity.objects.create(customer=conversation.customer, kind="phone", value="+14155550100")
    started = timezone.now() - timedelta(minutes=10)

    # when: Alice logs the call she just took
    call = call_log(
        conversation=conversation,
        actor=agent_a,
        direction="inbound",
        started_at=started,
        wait_seconds=40,
        talk_seconds=300,
        hold_seconds=20,
        ended_by="customer",
        notes="Router replaced.",
    )

    # then: contact 2, a phone call handled by Alice, with the times
    conversation.refresh_from_db()
    assert conversation.contacts_counted == 2
    assert conversation.channels == ["email", "phone"]
    assert conversation.assignee == agent_a
    contact = call.message.contact
    assert (contact.reason, contact.channel_kind, contact.agent) == ("call", "phone", agent_a)
    assert (contact.wait_seconds, contact.talk_seconds, contact.hold_seconds) == (40, 300, 20)
    assert (contact.ended_by, contact.started_at) == ("customer", started)
    assert call.message.direction == "inbound"
    assert call.message.body_text == (
        "Phone call from +14155550100: waited 40s, talked 5m 0s, on hold 20s, ended by customer."
        "\n\nRouter replaced."
    )
    assert (call.direction, call.logged_by) == ("inbound", agent_a)
    assert Event.objects.filter(kind="call.logged", conversation=conversation).count() == 1


def test_an_inbound_call_logged_on_a_solved_conversation_reopens_it(channels, agent_a):
    first = send_email(channels["email"], sender="jane@example.com")
    conversation = Conversation.objects.get(pk=first.conversation_id)
    conversation_solve(conversation=conversation, actor=agent_a)

    call_log(
        conversation=conversation,
        actor=agent_a,
        direction="inbound",
        started_at=None,
        wait_seconds=0,
        talk_seconds=60,
        hold_seconds=0,
        ended_by="agent",
    )

    conversation.refresh_from_db()
    assert (conversation.status, conversation.contacts_counted) == ("open", 2)
    assert (
        Event.objects.filter(conversation=conversation, kind="conversation.reopened").count() == 1
    )


def test_an_outbound_call_is_never_a_contact_and_answers_the_customer(channels, agent_a):
    first = send_email(channels["email"], sender="jane@example.com")
    conversation = Conversation.objects.get(pk=first.conversation_id)

    call = call_log(
        conversation=conversation,
        actor=agent_a,
        direction="outbound",
        started_at=timezone.now(),
        wait_seconds=5,
        talk_seconds=125,
        hold_seconds=0,
        ended_by="agent",
    )

    conversation.refresh_from_db()
    assert conversation.contacts_counted == 1
    assert Contact.objects.filter(conversation=conversation).count() == 1
    assert (call.message.direction, call.message.author, call.message.contact_id) == (
        "outbound",
        agent_a,
        None,
    )
    assert call.message.body_text == (
        "Called the customer: waited 5s, talked 2m 5s, on hold 0s, ended by agent."
    )
    assert (conversation.status, conversation.assignee) == ("open", agent_a)
    assert Event.objects.filter(conversation=conversation, kind="message.replied").count() == 1


def test_an_unanswered_outbound_call_is_an_internal_note(channels, agent_a):
    first = send_email(channels["email"], sender="jane@example.com")
    conversation = Conversation.objects.get(pk=first.conversation_id)

    call = call_log(
        conversation=conversation,
        actor=agent_a,
        direction="outbound",
        started_at=timezone.now(),
        wait_seconds=30,
        talk_seconds=0,
        hold_seconds=0,
        ended_by="system",
    )

    assert call.message.direction == "note"
    conversation.refresh_from_db()
    assert (conversation.status, conversation.contacts_counted) == ("new", 1)
    assert not Event.objects.filter(conversation=conversation, kind="message.replied").exists()


def test_a_call_on_a_desk_without_a_phone_line_is_refused(channels, agent_a):
    first = send_email(channels["email"], sender="jane@example.com")
    conversation = Conversation.objects.get(pk=first.conversation_id)
    channels["phone"].is_active = False
    channels["phone"].save(update_fields=["is_active"])
    before = _counts()

    with pytest.raises(ApplicationError, match="no phone channel"):
        call_log(
            conversation=conversation,
            actor=agent_a,
            direction="inbound",
            started_at=None,
            wait_seconds=0,
            talk_seconds=10,
            hold_seconds=0,
            ended_by="agent",
        )

    assert _counts() == before
    assert Call.objects.count() == 0


def test_a_logged_call_and_a_phone_systems_call_count_the_same(channels, agent_a):
    # given: two conversations, one with a call from the phone system and one logged by hand
    a = Conversation.objects.get(
        pk=send_email(channels["email"], sender="a@example.com").conversation_id
    )
    b = Conversation.objects.get(
        pk=send_email(channels["email"], sender="b@example.com").conversation_id
    )
    Identity.objects.create(customer=a.customer, kind="phone", value="+14155550101")
    send_call(channels["phone"], from_number="+14155550101", talk_seconds=60)
    call_log(
        conversation=b,
        actor=agent_a,
        direction="inbound",
        started_at=None,
        wait_seconds=30,
        talk_seconds=60,
        hold_seconds=10,
        ended_by="customer",
    )

    a.refresh_from_db()
    b.refresh_from_db()
    assert a.contacts_counted == b.contacts_counted == 2
    assert [c.reason for c in a.contacts.all()] == [c.reason for c in b.contacts.all()]


def test_customer_create_refuses_a_taken_handle(channels, agent_a):
    send_email(channels["email"], sender="jane@example.com")
    before = _counts()

    with pytest.raises(HandleTaken):
        customer_create(actor=agent_a, name="Jane again", handles=[("email", "JANE@example.com")])

    assert _counts() == before


def test_outbound_call_on_a_closed_conversation_is_refused(channels, agent_a):
    first = send_email(channels["email"], sender="jane@example.com")
    conversation = Conversation.objects.get(pk=first.conversation_id)
    conversation_solve(conversation=conversation, actor=agent_a)
    Conversation.objects.filter(pk=conversation.pk).update(status="closed")

    with pytest.raises(Conflict):
        call_log(
            conversation=conversation,
            actor=agent_a,
            direction="outbound",
            started_at=None,
            wait_seconds=0,
            talk_seconds=10,
            hold_seconds=0,
            ended_by="agent",
        )
    assert Call.objects.count() == 0


# --- API ----------------------------------------------------------------------------------------------


def test_api_starts_an_email_conversation(channels, agent_a, django_capture_on_commit_callbacks):
    api = client_for(agent_a)

    with django_capture_on_commit_callbacks(execute=True):
        response = api.post(
            "/api/v1/conversations/",
            {
                "channel": channels["email"].pk,
                "to": {"kind": "email", "value": "kim@example.com"},
                "subject": "Your order",
                "body": "It ships tomorrow.",
            },
            format="json",
        )

    assert response.status_code == 201
    body = response.json()
    conversation = Conversation.objects.get(pk=body["id"])
    assert (body["status"], body["contacts_counted"], body["subject"]) == (
        "pending",
        0,
        "Your order",
    )
    assert body["customer"] == {"id": conversation.customer_id, "name": ""}
    assert body["team"]["name"] == "Team A"
    assert body["assignee"]["email"] == "alice@desk.example"
    assert [(m["direction"], m["channel"], m["body_text"]) for m in body["messages"]] == [
        ("outbound", "email", "It ships tomorrow.")
    ]
    assert response["ETag"] == f'"{conversation.version}"'
    assert [m.to for m in mail.outbox] == [["kim@example.com"]]


@pytest.mark.parametrize(
    "payload",
    [
        {},
        {"channel": 1, "body": "Hi"},  # nobody to write to
        {"channel": 999999, "to": {"kind": "email", "value": "a@example.com"}, "body": "Hi"},
        {"channel": "x", "to": {"kind": "email", "value": "a@example.com"}, "body": "Hi"},
        {"channel": 1, "to": {"kind": "phone", "value": "+14155550100"}, "body": "Hi"},
        {"channel": 1, "to": {"kind": "email", "value": "nope"}, "body": "Hi"},
        {"channel": 1, "to": {"kind": "email", "value": "a@example.com"}, "body": ""},
        {
            "channel": 1,
            "to": {"kind": "email", "value": "a@example.com"},
            "body": "Hi",
            "team": "Team B",
        },
    ],
)
def test_api_start_refuses_bad_input_with_400_and_stores_nothing(
    channels, team_b, agent_a, payload
):
    payload = {**payload}
    if payload.get("channel") == 1:
        payload["channel"] = channels["email"].pk
    before = _counts()

    response = client_for(agent_a).post("/api/v1/conversations/", payload, format="json")

    assert response.status_code == 400, response.content
    assert "detail" in response.json()
    assert _counts() == before
    assert mail.outbox == []


def test_api_start_with_another_teams_customer_is_404(channels, channels_b, agent_a):
    theirs = send_email(channels_b["email"], sender="bo@example.com")
    before = _counts()

    response = client_for(agent_a).post(
        "/api/v1/conversations/",
        {"channel": channels["email"].pk, "customer": theirs.customer_id, "body": "Hi"},
        format="json",
    )

    assert response.status_code == 404
    assert _counts() == before


def test_api_start_to_a_handle_of_another_customer_is_409(channels, agent_a):
    jane = send_email(channels["email"], sender="jane@example.com")
    send_email(channels["email"], sender="ann@example.com")
    before = _counts()

    response = client_for(agent_a).post(
        "/api/v1/conversations/",
        {
            "channel": channels["email"].pk,
            "customer": jane.customer_id,
            "to": {"kind": "email", "value": "ann@example.com"},
            "body": "Hi",
        },
        format="json",
    )

    assert response.status_code == 409
    assert _counts() == before


def test_api_logs_an_inbound_call_as_a_contact(channels, agent_a):
    first = send_email(channels["email"], sender="jane@example.com")

    response = client_for(agent_a).post(
        f"/api/v1/conversations/{first.conversation_id}/calls/",
        {
            "direction": "inbound",
            "started_at": "2026-01-05T10:00:00+00:00",
            "wait_seconds": 12,
            "talk_seconds": 95,
            "hold_seconds": 0,
            "ended_by": "customer",
            "notes": "Asked about the invoice.",
        },
        format="json",
    )

    assert response.status_code == 201
    body = response.json()
    call = Call.objects.get()
    assert body == {
        "id": call.pk,
        "direction": "inbound",
        "started_at": "2026-01-05T10:00:00Z",
        "wait_seconds": 12,
        "talk_seconds": 95,
        "hold_seconds": 0,
        "ended_by": "customer",
        "logged_by": agent_a.pk,
        "message": call.message_id,
        "conversation": first.conversation_id,
        "contact": call.message.contact_id,
        "contacts_counted": 2,
    }
    detail = client_for(agent_a).get(f"/api/v1/conversations/{first.conversation_id}/").json()
    (logged,) = [m for m in detail["messages"] if m["id"] == call.message_id]
    assert logged["call"] == {
        "wait_seconds": 12,
        "talk_seconds": 95,
        "hold_seconds": 0,
        "wrap_seconds": None,
        "ended_by": "customer",
        "agent": agent_a.pk,
        "direction": "inbound",
    }


def test_api_logs_an_outbound_call_without_a_contact(channels, agent_a):
    first = send_email(channels["email"], sender="jane@example.com")

    response = client_for(agent_a).post(
        f"/api/v1/conversations/{first.conversation_id}/calls/",
        {
            "direction": "outbound",
            "started_at": timezone.now().isoformat(),
            "wait_seconds": 3,
            "talk_seconds": 60,
            "hold_seconds": 5,
            "ended_by": "agent",
        },
        format="json",
    )

    assert response.status_code == 201
    assert (response.json()["contact"], response.json()["contacts_counted"]) == (None, 1)
    detail = client_for(agent_a).get(f"/api/v1/conversations/{first.conversation_id}/").json()
    assert detail["messages"][-1]["call"]["direction"] == "outbound"
    assert detail["messages"][-1]["direction"] == "outbound"


@pytest.mark.parametrize(
    "change",
    [
        {"direction": "sideways"},
        {"wait_seconds": -1},
        {"talk_seconds": 10**9},
        {"ended_by": "cat"},
        {"started_at": "yesterday"},
        {"started_at": "1990-01-01T00:00:00Z"},
    ],
)
def test_api_call_refuses_bad_input_and_stores_nothing(channels, agent_a, change):
    first = send_email(channels["email"], sender="jane@example.com")
    payload = {
        "direction": "inbound",
        "started_at": timezone.now().isoformat(),
        "wait_seconds": 0,
        "talk_seconds": 10,
        "hold_seconds": 0,
        "ended_by": "customer",
        **change,
    }
    before = _counts()

    response = client_for(agent_a).post(
        f"/api/v1/conversations/{first.conversation_id}/calls/", payload, format="json"
    )

    assert response.status_code == 400
    assert _counts() == before
    assert Conversation.objects.get(pk=first.conversation_id).contacts_counted == 1


def test_api_call_on_another_teams_conversation_is_404(channels_b, agent_a):
    theirs = send_email(channels_b["email"], sender="bo@example.com")
    before = _counts()

    response = client_for(agent_a).post(
        f"/api/v1/conversations/{theirs.conversation_id}/calls/",
        {
            "direction": "inbound",
            "started_at": timezone.now().isoformat(),
            "wait_seconds": 0,
            "talk_seconds": 10,
            "hold_seconds": 0,
            "ended_by": "customer",
        },
        format="json",
    )

    assert response.status_code == 404
    assert _counts() == before


def test_log_a_call_from_the_conversation_page(channels, agent_a):
    first = send_email(channels["email"], sender="jane@example.com")
    client = web(agent_a)

    response = client.post(
        f"/conversations/{first.conversation_id}/calls/",
        {
            "direction": "inbound",
            "started_at": "",
            "wait_seconds": "5",
            "talk_seconds": "61",
            "hold_seconds": "0",
            "ended_by": "customer",
            "notes": "Called about delivery",
        },
    )

    assert response.status_code == 302
    page = client.get(response["Location"]).content.decode()
    assert "talked 1m 1s" in page
    assert "Logged by" in page
    assert Conversation.objects.get(pk=first.conversation_id).contacts_counted == 2
    refused = client.post(
        f"/conversations/{first.conversation_id}/calls/", {"direction": "inbound"}
    )
    assert refused.status_code == 400
    assert Call.objects.count() == 1


def test_start_a_conversation_from_the_page(channels, agent_a, django_capture_on_commit_callbacks):
    client = web(agent_a)
    assert client.get("/conversations/new/").status_code == 200

    with django_capture_on_commit_callbacks(execute=True):
        response = client.post(
            "/conversations/new/",
            {
                "channel": channels["email"].pk,
                "to": "lee@example.com",
                "subject": "Hello",
                "body": "Checking in.",
            },
        )

    conversation = Conversation.objects.get()
    assert response["Location"] == f"/conversations/{conversation.pk}/"
    assert [m.to for m in mail.outbox] == [["lee@example.com"]]
    refused = client.post("/conversations/new/", {"channel": channels["email"].pk, "body": ""})
    assert refused.status_code == 400
    assert Conversation.objects.count() == 1


def test_the_phone_figures_count_logged_inbound_calls_and_not_outbound_ones(
    channels, agent_a, manager_a
):
    from metrics.services import facts_compute

    # given: one conversation, an inbound call dropped by the system and an outbound call, both
    # logged by hand today
    first = send_email(channels["email"], sender="jane@example.com")
    conversation = Conversation.objects.get(pk=first.conversation_id)
    for direction, ended_by in (("inbound", "system"), ("outbound", "agent")):
        call_log(
            conversation=conversation,
            actor=agent_a,
            direction=direction,
            started_at=timezone.now() - timedelta(minutes=5),
            wait_seconds=10,
            talk_seconds=120,
            hold_seconds=30,
            ended_by=ended_by,
        )
    today = timezone.localdate()
    facts_compute(day_from=today - timedelta(days=1), day_to=today + timedelta(days=1))

    # when
    response = client_for(manager_a).get(
        "/api/v1/scorecards/",
        {
            "from": today.isoformat(),
            "to": (today + timedelta(days=1)).isoformat(),
            "group_by": "channel",
        },
    )

    # then: the phone group has exactly the inbound call: handled 150 s, dropped by the system
    assert response.status_code == 200
    (phone,) = [g for g in response.json()["groups"] if g["key"] == "phone"]
    assert phone["metrics"]["handle_time"]["n"] == 1
    assert phone["metrics"]["system_disconnect_rate"]["n"] == 1
    assert phone["metrics"]["system_disconnect_rate"]["value"] == 1.0
