"""Erasing a customer of the demo desk leaves no trace and keeps every figure; the export holds
everything; mail from an erased address starts a new customer; only admins may do either."""

from __future__ import annotations

import io
import json
import zipfile
from datetime import timedelta

import phonenumbers
import pytest
from django.conf import settings
from django.core.management import call_command
from django.db.models import Q
from django.test import TestCase
from django.utils import timezone

from metrics.models import DailyFact, DurationBucket, TopicFact
from metrics.services import facts_compute, local_today
from supportdesk.models import AuditEntry, User
from supportdesk.services import notification_create
from surveys.models import SurveyResponse
from tests.conftest import client_for
from tests.factories import send_call, send_email
from tests.helpers import web
from tests.tickets.privacy_data import ATTACHMENT_SECRET, customer_with_everything, email_with_file
from tests.tickets.privacy_search import database_hits, file_hits
from tickets.models import (
    Attachment,
    Channel,
    Conversation,
    Customer,
    Event,
    Identity,
    Message,
)
from tickets.services import (
    InboundResult,
    conversation_reply,
    customer_create,
    customer_merge,
    customer_update,
    inbound_email_raw,
    quarantine_store,
)

pytestmark = pytest.mark.django_db


def _seed_demo() -> None:
    settings.PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]
    call_command(
        "seed_demo",
        *("--customers", "20", "--conversations", "60", "--days", "30", "--seed", "3"),
        stdout=io.StringIO(),
    )


def _rows(rows: object) -> list[tuple[object, ...]]:
    """Rows in a stable order whatever they hold (None beside numbers)."""
    return sorted((tuple(row) for row in rows), key=repr)  # type: ignore[attr-defined]


def _figures() -> dict[str, object]:
    """Every precomputed figure after a full recompute, and the scorecards of every grouping."""
    today = local_today()
    day_from, day_to = today - timedelta(days=40), today + timedelta(days=1)
    facts_compute(day_from=day_from, day_to=day_to)
    admin = User.objects.get(email="admin@demo.example")
    api = client_for(admin)
    scorecards = {}
    for group_by in ("desk", "team", "agent", "channel", "tag"):
        response = api.get(
            "/api/v1/scorecards/",
            {"from": str(day_from), "to": str(day_to), "group_by": group_by},
        )
        assert response.status_code == 200, response.content
        scorecards[group_by] = response.json()["groups"]
    return {
        "scorecards": scorecards,
        "facts": _rows(
            DailyFact.objects.values_list(
                "day", "metric", "team_id", "agent_id", "channel_kind", "numerator", "denominator"
            )
        ),
        "topics": _rows(
            tuple(row.values())
            for row in TopicFact.objects.values().order_by("pk")
            for _ in [row.pop("id")]
        ),
        "durations": _rows(
            tuple(row.values())
            for row in DurationBucket.objects.values().order_by("pk")
            for _ in [row.pop("id")]
        ),
        "conversations": _rows(
            Conversation.objects.values_list(
                "pk",
                "customer_id",
                "status",
                "contacts_counted",
                "team_id",
                "assignee_id",
                "solved_at",
                "closed_at",
            )
        ),
        "answers": _rows(
            SurveyResponse.objects.values_list(
                "survey_id", "resolved", "contacts_declared", "csat", "nps", "shout_out"
            )
        ),
    }


def _their_texts(customer: Customer) -> list[str]:
    """Their subjects, message texts and survey comments that nobody else's conversations hold."""
    ours = Message.objects.filter(conversation__customer=customer)
    others = "\n".join(
        Message.objects.exclude(conversation__customer=customer).values_list("body_text", flat=True)
    )
    texts = [
        body.strip()
        for body in ours.values_list("body_text", flat=True)
        if len(body.strip()) >= 12 and body.strip() not in others
    ]
    other_subjects = set(
        Conversation.objects.exclude(customer=customer).values_list("subject", flat=True)
    )
    texts += [
        s
        for s in Conversation.objects.filter(customer=customer).values_list("subject", flat=True)
        if len(s) >= 12 and s not in other_subjects
    ]
    texts += [
        c
        for c in SurveyResponse.objects.filter(survey__customer=customer).values_list(
            "comment", flat=True
        )
        if c
    ]
    return texts


def _phone_forms(e164: str) -> list[str]:
    number = phonenumbers.parse(e164)
    return [
        e164,
        phonenumbers.format_number(number, phonenumbers.PhoneNumberFormat.INTERNATIONAL),
        phonenumbers.format_number(number, phonenumbers.PhoneNumberFormat.NATIONAL),
        e164.lstrip("+"),
    ]


def test_erasing_a_demo_customer_leaves_no_trace_and_keeps_every_figure():
    _seed_demo()
    admin = User.objects.get(email="admin@demo.example")
    agent = User.objects.get(email="sam@demo.example")
    # The demo customer with an email, a phone and a chat handle and a survey comment.
    customer = (
        Customer.objects.filter(identities__kind="phone", surveys__responses__comment__gt="")
        .filter(identities__kind="email")
        .order_by("pk")
        .first()
    )
    assert customer is not None
    email = customer.identities.get(kind="email").value
    phone = customer.identities.get(kind="phone").value
    email_channel = Channel.objects.filter(kind="email").first()
    assert email_channel is not None
    # More of them than the demo has: a file, notes about them, a former name, a merged customer.
    result = inbound_email_raw(
        channel=email_channel,
        raw=email_with_file(
            f"{customer.name} <{email}>",
            "Proof of identity for my refund claim",
            "Here is my passport scan as you asked, for the refund of order 77123.",
            "passport-of-the-customer.pdf",
        ),
    )
    assert isinstance(result, InboundResult)
    conversation = Conversation.objects.get(pk=result.conversation_id)
    conversation_reply(
        conversation=conversation,
        author=agent,
        body=f"Checked the passport of {customer.name}; refund approved for order 77123.",
        internal=True,
    )
    former_name = customer.name
    customer_update(
        customer=customer,
        actor=agent,
        name=f"{former_name} Jr",
        notes="Prefers calls after 6pm; their dog Biscuit barks on calls.",
    )
    other = customer_create(
        actor=agent,
        name="Ptolemy Dimitrakopoulos-Work",
        handles=[("email", "ptolemy.work@corp-of-customer.example")],
    )
    customer_merge(target=customer, other=other, actor=agent)
    customer.refresh_from_db()
    # Mail from them the parser refused, kept for an admin; and a notification quoting them.
    quarantine_store(
        channel=email_channel,
        source="email",
        raw=f"From: {email}\r\nSubject: broken\r\n\r\nunparseable".encode(),
        error="no body",
    )
    notification_create(
        recipient=agent,
        kind="test.mention",
        title=f"Call {former_name} back",
        body="They said: Here is my passport scan as you asked, for the refund of order 77123.",
    )

    needles = [
        former_name,
        customer.name,
        former_name.split()[-1],
        "Ptolemy Dimitrakopoulos-Work",
        "ptolemy.work@corp-of-customer.example",
        "Biscuit barks",
        "passport-of-the-customer",
        ATTACHMENT_SECRET.decode(),
        *(i.value for i in Identity.objects.filter(customer=customer)),
        *(i.display_value for i in Identity.objects.filter(customer=customer)),
        *_phone_forms(phone),
        *_their_texts(customer),
    ]
    assert len(needles) > 25
    # The search finds them before: it would find a leftover.
    before_hits = database_hits(needles)
    assert {"tickets_identity.value", "tickets_message.body_text", "tickets_customer.name"} <= set(
        before_hits
    )
    assert file_hits(settings.MEDIA_ROOT, needles)
    conversation_ids = set(customer.conversations.values_list("pk", flat=True))
    message_count = Message.objects.filter(conversation_id__in=conversation_ids).count()
    figures_before = _figures()

    # Files go once the erasure commits (as in production, where the request's transaction ends).
    with TestCase.captureOnCommitCallbacks(execute=True):
        response = client_for(admin).post(f"/api/v1/customers/{customer.pk}/erase/")

    assert response.status_code == 200, response.content
    body = response.json()
    assert body["customer"] == customer.pk
    assert body["conversations"] == len(conversation_ids)
    assert body["messages"] == message_count
    assert body["attachments"] == 1
    assert body["identities"] == 4
    assert database_hits(needles) == {}
    assert file_hits(settings.MEDIA_ROOT, needles) == {}
    assert not Attachment.objects.filter(message__conversation_id__in=conversation_ids).exists()
    # Every figure is the same, and the conversations are still there as anonymous shells.
    figures_after = _figures()
    for key, before in figures_before.items():
        if key != "scorecards":
            gone = sorted(set(before) - set(figures_after[key]), key=repr)  # type: ignore[call-overload]
            new = sorted(set(figures_after[key]) - set(before), key=repr)  # type: ignore[call-overload]
            assert (key, gone, new) == (key, [], [])
    assert figures_after == figures_before
    assert set(customer.conversations.values_list("pk", flat=True)) == conversation_ids
    assert Message.objects.filter(conversation_id__in=conversation_ids).count() == message_count
    customer.refresh_from_db()
    assert customer.erased_at is not None
    assert str(customer) == f"Erased customer #{customer.pk}"
    # The audit entry records the erasure, not what was erased.
    entry = AuditEntry.objects.get(action="customer.erased")
    assert entry.actor == admin
    assert entry.target_id == str(customer.pk)
    assert entry.summary == (
        f"Customer #{customer.pk} erased ({len(conversation_ids)} conversations kept as "
        "anonymous shells)"
    )
    assert Event.objects.filter(kind="customer.erased", customer=customer).count() == 1
    # Erasing twice is refused.
    again = client_for(admin).post(f"/api/v1/customers/{customer.pk}/erase/")
    assert again.status_code == 409


def test_export_holds_every_message_identity_answer_and_file(channels, agent_a, admin_user):
    customer = customer_with_everything(channels, agent_a)
    api = client_for(admin_user)

    response = api.get(f"/api/v1/customers/{customer.pk}/export/")

    assert response.status_code == 200
    assert response["Content-Type"] == "application/json"
    data = json.loads(response.content)
    assert data["customer"]["name"] == "Jane Roe"
    assert sorted((i["kind"], i["value"]) for i in data["identities"]) == [
        ("email", "jane.roe@example.org"),
        ("phone", "+14155550199"),
    ]
    exported = {m["id"]: m for c in data["conversations"] for m in c["messages"]}
    assert set(exported) == set(
        Message.objects.filter(conversation__customer=customer).values_list("pk", flat=True)
    )
    assert {m["body_text"] for m in exported.values()} == set(
        Message.objects.filter(conversation__customer=customer).values_list("body_text", flat=True)
    )
    answers = [a for s in data["surveys"]["surveys"] for a in s["answers"]]
    assert [(a["resolved"], a["contacts"], a["csat"], a["nps"], a["comment"]) for a in answers] == [
        ("yes", 1, 5, 9, "Quick, thanks")
    ]
    files = [a for m in exported.values() for a in m["attachments"]]
    attachment = Attachment.objects.get(message__conversation__customer=customer)
    assert files == [
        {
            "id": attachment.pk,
            "filename": "invoice 4411.pdf",
            "content_type": "application/octet-stream",
            "size": len(ATTACHMENT_SECRET),
            "path": f"attachments/{attachment.message_id}-{attachment.pk}-invoice_4411.pdf",
        }
    ]

    zipped = api.get(f"/api/v1/customers/{customer.pk}/export/", {"zip": "true"})

    assert zipped.status_code == 200
    assert zipped["Content-Type"] == "application/zip"
    archive = zipfile.ZipFile(io.BytesIO(zipped.content))
    assert sorted(archive.namelist()) == sorted(["customer.json", files[0]["path"]])
    assert archive.read(files[0]["path"]) == ATTACHMENT_SECRET
    assert json.loads(archive.read("customer.json"))["identities"] == data["identities"]
    assert list(
        AuditEntry.objects.filter(action="customer.exported").values_list("summary", flat=True)
    ) == [
        f"Data of customer #{customer.pk} exported with files",
        f"Data of customer #{customer.pk} exported",
    ]


def test_mail_from_an_erased_address_starts_a_new_customer(channels, agent_a, admin_user):
    customer = customer_with_everything(channels, agent_a)
    old_message_id = (
        Message.objects.filter(conversation__customer=customer, direction="outbound")
        .exclude(message_id="")
        .values_list("message_id", flat=True)
        .first()
    )
    assert old_message_id
    old_conversations = set(customer.conversations.values_list("pk", flat=True))

    response = client_for(admin_user).post(f"/api/v1/customers/{customer.pk}/erase/")
    assert response.status_code == 200

    # A reply quoting our old reply's Message-ID, from the same address.
    again = send_email(
        channels["email"],
        sender="Jane Roe <jane.roe@example.org>",
        subject="Re: Invoice is wrong",
        body="One more question about invoice 4411.",
        in_reply_to=f"<{old_message_id}>",
    )
    assert again.customer_id != customer.pk
    assert again.conversation_id not in old_conversations
    new_customer = Customer.objects.get(pk=again.customer_id)
    assert new_customer.erased_at is None
    assert new_customer.name == "Jane Roe"
    assert list(new_customer.identities.values_list("kind", "value")) == [
        ("email", "jane.roe@example.org")
    ]
    # The phone number too.
    call = send_call(channels["phone"], from_number="+1 415 555 0199")
    assert call.customer_id == new_customer.pk or call.customer_id not in {customer.pk}
    # Searching finds only the new customer.
    found = client_for(admin_user).get("/api/v1/customers/", {"q": "jane.roe@example.org"})
    assert [c["id"] for c in found.json()["results"]] == [new_customer.pk]


def _snapshot(customer: Customer) -> tuple[object, ...]:
    return (
        Customer.objects.filter(pk=customer.pk).values_list("name", "notes", "erased_at").get(),
        sorted(Identity.objects.filter(customer=customer).values_list("kind", "value")),
        sorted(
            Message.objects.filter(conversation__customer=customer).values_list(
                "pk", "body_text", "subject"
            )
        ),
        Attachment.objects.filter(message__conversation__customer=customer).count(),
        sorted(
            SurveyResponse.objects.filter(survey__customer=customer).values_list("comment", "csat")
        ),
        AuditEntry.objects.filter(
            Q(action="customer.erased") | Q(action="customer.exported")
        ).count(),
    )


@pytest.mark.parametrize("role", ["agent", "manager"])
def test_only_admins_may_erase_or_export(channels, agent_a, manager_a, role):
    customer = customer_with_everything(channels, agent_a)
    user = agent_a if role == "agent" else manager_a
    before = _snapshot(customer)
    api = client_for(user)

    assert api.post(f"/api/v1/customers/{customer.pk}/erase/").status_code == 403
    assert api.get(f"/api/v1/customers/{customer.pk}/export/").status_code == 403
    page = web(user)
    erase = page.post(f"/customers/{customer.pk}/erase/", {"confirm": f"ERASE {customer.pk}"})
    assert erase.status_code == 403
    assert page.get(f"/customers/{customer.pk}/export/").status_code == 403
    detail = page.get(f"/customers/{customer.pk}/")
    assert detail.status_code == 200
    assert b"Erase this customer" not in detail.content
    assert b"Export data" not in detail.content

    assert _snapshot(customer) == before


def test_the_customer_page_erases_only_after_the_typed_confirmation(
    channels, agent_a, admin_user, django_assert_max_num_queries
):
    customer = customer_with_everything(channels, agent_a)
    page = web(admin_user)
    with django_assert_max_num_queries(40):
        detail = page.get(f"/customers/{customer.pk}/")
    assert detail.status_code == 200
    assert f"Type <strong>ERASE {customer.pk}</strong> to confirm".encode() in detail.content
    before = _snapshot(customer)

    wrong = page.post(f"/customers/{customer.pk}/erase/", {"confirm": "erase"})

    assert wrong.status_code == 400
    assert f"Type ERASE {customer.pk} to confirm the erasure.".encode() in wrong.content
    assert _snapshot(customer) == before

    done = page.post(f"/customers/{customer.pk}/erase/", {"confirm": f"ERASE {customer.pk}"})

    assert done.status_code == 302
    customer.refresh_from_db()
    assert customer.erased_at is not None
    assert customer.name == ""
    assert not customer.identities.exists()
    after = page.get(f"/customers/{customer.pk}/")
    assert after.status_code == 200
    assert b"Erased customer #" in after.content
    assert b"Jane Roe" not in after.content
    export = page.get(f"/customers/{customer.pk}/export/")
    assert export.status_code == 200
    data = json.loads(export.content)
    assert data["customer"]["name"] == ""
    assert data["identities"] == []
    assert {m["body_text"] for c in data["conversations"] for m in c["messages"]} == {""}
    assert data["surveys"]["surveys"][0]["answers"][0]["comment"] == "[erased]"
    assert data["surveys"]["surveys"][0]["answers"][0]["csat"] == 5
    assert timezone.now() - customer.erased_at < timedelta(minutes=1)
