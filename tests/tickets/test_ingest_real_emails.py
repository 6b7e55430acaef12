"""Real-world email shapes through the whole ingestion path (parser + threading + storage)."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.factories import send_email
from tickets.models import Attachment, Conversation, Customer, Message, QuarantinedMessage
from tickets.services import InboundResult, conversation_solve, inbound_email_raw

pytestmark = pytest.mark.django_db

FIXTURES = Path(__file__).parent / "emails"


def ingest(channel, name: str) -> InboundResult | QuarantinedMessage:
    return inbound_email_raw(channel=channel, raw=(FIXTURES / name).read_bytes())


@pytest.mark.parametrize("name", sorted(p.name for p in FIXTURES.glob("*.eml")))
def test_every_fixture_is_stored_or_quarantined_never_lost(channels, name):
    result = ingest(channels["email"], name)

    if isinstance(result, QuarantinedMessage):
        # Only our own mail and bounces that match nothing are set aside.
        assert result.raw == (FIXTURES / name).read_bytes()
        assert name in {"own_address.eml", "dsn_bounce_postfix.eml", "dsn_bounce_exchange.eml"}
    else:
        message = Message.objects.get(pk=result.message_id)
        assert bytes(message.raw) == (FIXTURES / name).read_bytes()
        assert message.body_text.strip()
        assert "\x00" not in message.body_text


@pytest.mark.parametrize(
    ("name", "subject", "customer"),
    [
        (
            "subject_utf8_base64.eml",
            "Problème avec ma commande n° 4471 – colis endommagé 📦",
            "Zoé Lefèvre",
        ),
        (
            "subject_latin1_qp.eml",
            "Rückfrage zu Ihrer Bestellung (Lieferadresse ändern)",
            "Jürgen Müller",
        ),
        ("koi8r.eml", "Не приходит код подтверждения", "Ольга Смирнова"),
        ("iso2022jp.eml", "請求書の再発行について", "山田 太郎"),
    ],
)
def test_encoded_subjects_and_names_are_decoded(channels, name, subject, customer):
    result = ingest(channels["email"], name)

    assert Conversation.objects.get(pk=result.conversation_id).subject == subject
    assert Customer.objects.get(pk=result.customer_id).name == customer


def test_non_utf8_bodies_are_decoded(channels):
    koi8 = ingest(channels["email"], "koi8r.eml")
    cp1252 = ingest(channels["email"], "outlook_windows1252.eml")
    unknown = ingest(channels["email"], "unknown_charset.eml")

    assert Message.objects.get(pk=koi8.message_id).body_text.startswith("Здравствуйте!")
    assert Message.objects.get(pk=cp1252.message_id).body_text.startswith("Hello,")
    assert Message.objects.get(pk=unknown.message_id).body_text.startswith(
        'Export of "Caf\ufffd cr\ufffdme"'
    )


def test_missing_message_id_is_still_idempotent(channels):
    first = ingest(channels["email"], "missing_message_id.eml")
    second = ingest(channels["email"], "missing_message_id.eml")

    assert (first.created, second.created) == (True, False)
    assert first.message_id == second.message_id
    assert Message.objects.get().external_id.startswith("sha256-")


def test_folded_references_with_garbage_still_thread(channels):
    first = send_email(
        channels["email"], sender="a.novak@firma.example.cz", message_id="<ticket-977@desk.example>"
    )

    reply = ingest(channels["email"], "reply_references.eml")

    assert reply.conversation_id == first.conversation_id
    assert Conversation.objects.get(pk=first.conversation_id).contacts_counted == 1


def test_attachments_are_stored_with_safe_names(channels):
    result = ingest(channels["email"], "attachments.eml")

    attachments = list(Attachment.objects.filter(message_id=result.message_id).order_by("id"))
    assert len(attachments) == 5
    for attachment in attachments:
        assert "/" not in attachment.filename
        assert ".." not in attachment.filename
        assert attachment.file.size == attachment.size
        assert attachment.file.name.startswith("attachments/")


def test_vacation_reply_on_a_solved_conversation_changes_nothing(channels, agent_a):
    # Given a solved conversation whose agent reply the vacation responder answers
    first = send_email(
        channels["email"],
        sender="priya.raman@gmail.com",
        subject="Refund",
        message_id="<ticket-1301.reply-1@desk.example>",
    )
    conversation = Conversation.objects.get(pk=first.conversation_id)
    conversation_solve(conversation=conversation, actor=agent_a)

    # When the vacation reply arrives
    vacation = ingest(channels["email"], "gmail_vacation.eml")

    # Then it is stored in the conversation, flagged, and changes nothing else
    conversation.refresh_from_db()
    assert vacation.conversation_id == conversation.pk
    assert Message.objects.get(pk=vacation.message_id).automated == "auto_reply"
    assert vacation.new_contact is False
    assert (conversation.status, conversation.contacts_counted) == ("solved", 1)
