"""Contact counting (docs/metrics.md, "Counting contacts"): the one place that decides."""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any

from django.conf import settings
from django.db import transaction

from tickets.models import ChannelKind, Contact, Conversation, Event, Message
from tickets.services.events import conversation_save

Status = Conversation.Status
Direction = Message.Direction


def contact_reason(
    *,
    kind: str,
    session: str,
    at: datetime,
    previous: Message | None,
    previous_contact: Contact | None,
    answered: bool,
    status: str,
) -> str | None:
    """Does an inbound message open a new contact? Returns the reason, or None to continue.

    docs/metrics.md: first inbound; another channel than the previous inbound; arrived while solved
    or pending (and reopens it); a chaser of an unanswered message older than
    CONTACT_CHASER_HOURS. A phone call is always its own contact; a chat session is one contact.
    """
    if kind == ChannelKind.PHONE:
        return Contact.Reason.CALL
    if previous is None:
        return Contact.Reason.FIRST
    if previous.channel_kind != kind:
        return Contact.Reason.CHANNEL_CHANGE
    if kind == ChannelKind.CHAT:
        same_session = previous_contact is not None and previous_contact.session_id == session
        return None if same_session else Contact.Reason.CHAT_SESSION
    if status in (Status.SOLVED, Status.PENDING, Status.CLOSED):
        return Contact.Reason.REOPEN
    chaser_after = timedelta(hours=settings.CONTACT_CHASER_HOURS)
    if not answered and at - previous.sent_at > chaser_after:
        return Contact.Reason.CHASER
    return None


def conversation_is_answered(
    previous: Message, *, previous_contact: Contact | None, replied: bool
) -> bool:
    """Was an inbound message answered? A call by its talk time; anything else by ``replied``
    (a public agent message sent between it and the next inbound message)."""
    if previous.channel_kind == ChannelKind.PHONE:
        return bool(previous_contact and previous_contact.talk_seconds)
    return replied


def counted_inbound(conversation_id: int) -> Any:
    return Message.objects.filter(
        conversation_id=conversation_id, direction=Direction.INBOUND, automated=""
    )


def contact_open(
    message: Message,
    *,
    reason: str | None,
    previous_contact: Contact | None,
    call: dict[str, Any] | None = None,
) -> Contact | None:
    if reason is None:
        return previous_contact
    assert message.channel is not None
    contact = Contact.objects.create(
        conversation_id=message.conversation_id,
        channel=message.channel,
        channel_kind=message.channel_kind,
        reason=reason,
        started_at=message.sent_at,
        session_id=message.thread_key if message.channel_kind == ChannelKind.CHAT else "",
        **(call or {}),
    )
    return contact


@transaction.atomic
def conversation_recount_contacts(*, conversation: Conversation) -> int:
    """Recount a conversation's contacts from its messages and status history.

    Used after a message moves between conversations. Phone-call contacts keep their row (it
    holds the call details); every other contact is rebuilt. Returns the new count.
    """
    conversation = Conversation.objects.select_for_update().get(pk=conversation.pk)
    inbound = list(counted_inbound(conversation.pk).select_related("contact", "channel"))
    outbound_times = list(
        Message.objects.filter(conversation=conversation, direction=Direction.OUTBOUND)
        .order_by("sent_at")
        .values_list("sent_at", flat=True)
    )
    status_changes = list(
        Event.objects.filter(conversation=conversation, data__has_key="status_to")
        .order_by("occurred_at", "id")
        .values_list("occurred_at", "data")
    )
    keep_calls = {
        m.contact_id for m in inbound if m.channel_kind == ChannelKind.PHONE and m.contact_id
    }
    Message.objects.filter(conversation=conversation).exclude(contact_id__in=keep_calls).update(
        contact=None
    )
    Contact.objects.filter(conversation=conversation).exclude(pk__in=keep_calls).delete()

    previous: Message | None = None
    previous_contact: Contact | None = None
    count = 0
    for message in inbound:
        status = Status.NEW
        for occurred_at, data in status_changes:
            if occurred_at < message.sent_at:
                status = data["status_to"]
        if message.channel_kind == ChannelKind.PHONE and message.contact_id in keep_calls:
            contact = message.contact
            assert contact is not None
            Contact.objects.filter(pk=contact.pk).update(conversation=conversation)
            Message.objects.filter(pk=message.pk).update(contact=contact)
            previous, previous_contact = message, contact
            count += 1
            continue
        answered = previous is not None and conversation_is_answered(
            previous,
            previous_contact=previous_contact,
            replied=any(previous.sent_at <= t <= message.sent_at for t in outbound_times),
        )
        reason = contact_reason(
            kind=message.channel_kind,
            session=message.thread_key,
            at=message.sent_at,
            previous=previous,
            previous_contact=previous_contact,
            answered=answered,
            status=status,
        )
        contact = contact_open(message, reason=reason, previous_contact=previous_contact)
        if reason is not None:
            count += 1
        if contact is not None:
            Message.objects.filter(pk=message.pk).update(contact=contact)
        previous, previous_contact = message, contact
    conversation.contacts_counted = count
    conversation.channels = _channels_of(conversation.pk)
    conversation_save(conversation, "contacts_counted", "channels")
    return count


def _channels_of(conversation_id: int) -> list[str]:
    kinds: list[str] = []
    for kind in (
        Message.objects.filter(conversation_id=conversation_id)
        .exclude(channel_kind="")
        .order_by("sent_at", "id")
        .values_list("channel_kind", flat=True)
    ):
        if kind not in kinds:
            kinds.append(kind)
    return kinds
