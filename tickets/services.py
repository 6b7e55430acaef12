"""Every write of the tickets app: ingestion, replies, status changes, identities and merges.

Rules that hold throughout:

- Each public function is one state change, in one transaction. Side effects (mail, the
  reactions of higher apps) are written to the outbox in that transaction and run after commit.
- Ingestion is idempotent on ``(channel, external_id)`` by a unique constraint, not by
  check-then-insert: a concurrent duplicate rolls its whole transaction back and returns the row
  the winner stored.
- Contacts are counted by METRICS.md "Counting contacts"; ``_contact_reason`` is the only place
  that decides, for ingestion and for recounts alike.
"""

from __future__ import annotations

import dataclasses
import hashlib
import hmac
import json
import logging
import secrets
import urllib.error
import urllib.request
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from django.conf import settings
from django.core.exceptions import ValidationError
from django.core.files.base import ContentFile
from django.core.mail import EmailMultiAlternatives
from django.db import IntegrityError, transaction
from django.db.models import F, Q
from django.utils import timezone

from supportdesk import events as event_bus
from supportdesk.errors import ApplicationError, Conflict, PayloadTooLarge
from supportdesk.models import AuditEntry, SentMail, Team, User
from supportdesk.services import (
    audit_record,
    outbox_enqueue,
    sent_mail_exists,
    sent_mail_record,
    team_get_or_create,
)
from tickets import tokens
from tickets.emails import EmailParseError, ParsedEmail, parse_inbound_message, parse_raw_email
from tickets.identities import (
    normalise_email,
    normalise_identity,
    normalise_phone,
    normalise_social,
)
from tickets.models import (
    Attachment,
    Channel,
    ChannelKind,
    Contact,
    Conversation,
    ConversationViewer,
    Customer,
    CustomerMerge,
    Event,
    Identity,
    Message,
    QuarantinedMessage,
    SavedReply,
    new_channel_secret,
)
from tickets.saved_reply_defaults import DEFAULT_SAVED_REPLIES

logger = logging.getLogger(__name__)

Status = Conversation.Status
Direction = Message.Direction


@dataclass(frozen=True)
class InboundResult:
    customer_id: int
    conversation_id: int
    message_id: int
    new_contact: bool
    created: bool


# --- Channels -------------------------------------------------------------------------------------


@transaction.atomic
def channel_create_or_update(
    *,
    kind: str,
    name: str,
    team_name: str | None = None,
    address: str | None = None,
    actor: User | None = None,
) -> Channel:
    """Create or update an inbound channel by name; its secret is kept across updates."""
    if kind not in ChannelKind.values:
        raise ApplicationError(f"kind must be one of {', '.join(ChannelKind.values)}")
    channel = Channel.objects.select_for_update().filter(name=name).first()
    if channel is None:
        channel = Channel(name=name)
    channel.kind = kind
    if team_name:
        channel.team = team_get_or_create(name=team_name)
    if address is not None:
        channel.address = normalise_email(address) if address else ""
    created = channel.pk is None
    channel.save()
    if created:
        audit_record(
            action=AuditEntry.Action.CHANNEL_SECRET_CREATED,
            target=channel,
            actor=actor,
            team=channel.team,
            summary=f"Channel {channel.name!r} ({channel.kind}) created with a new secret",
        )
    return channel


@transaction.atomic
def channel_rotate_secret(*, channel: Channel, actor: User | None = None) -> Channel:
    """Give the channel a new secret: the old one stops working at once."""
    channel = Channel.objects.select_for_update().get(pk=channel.pk)
    channel.secret = new_channel_secret()
    channel.save(update_fields=["secret_digest", "secret_sealed", "updated_at"])
    audit_record(
        action=AuditEntry.Action.CHANNEL_SECRET_ROTATED,
        target=channel,
        actor=actor,
        team=channel.team,
        summary=f"Secret of channel {channel.name!r} rotated",
    )
    return channel


# --- Events ---------------------------------------------------------------------------------------


def event_record(
    *,
    kind: str,
    conversation: Conversation | None = None,
    customer: Customer | None = None,
    message: Message | None = None,
    actor: User | None = None,
    agent: User | None = None,
    team: Team | None = None,
    channel_kind: str = "",
    data: dict[str, Any] | None = None,
    occurred_at: datetime | None = None,
) -> Event:
    """Append an event and queue the reactions of the apps subscribed to its kind."""
    if customer is None and conversation is not None:
        customer = conversation.customer
    if team is None and conversation is not None:
        team = conversation.team
    event = Event.objects.create(
        kind=kind,
        occurred_at=occurred_at or timezone.now(),
        conversation=conversation,
        customer=customer,
        message=message,
        actor=actor,
        agent=agent,
        team=team,
        channel_kind=channel_kind,
        data=data or {},
    )
    for task_name in event_bus.subscribers_for(kind):
        outbox_enqueue(task_name=task_name, kwargs={"event_id": event.pk})
    return event


def _set_status(
    conversation: Conversation,
    status: str,
    *,
    actor: User | None,
    at: datetime,
    kind: str = Event.Kind.STATUS_CHANGED,
    message: Message | None = None,
    data: dict[str, Any] | None = None,
    agent: User | None = None,
    channel_kind: str = "",
) -> Event:
    previous = conversation.status
    conversation.status = status
    if status == Status.SOLVED:
        conversation.solved_at = at
    if status == Status.CLOSED:
        conversation.closed_at = at
    if status in Conversation.ACTIVE_STATUSES:
        conversation.closed_at = None
    return event_record(
        kind=kind,
        conversation=conversation,
        message=message,
        actor=actor,
        agent=agent,
        channel_kind=channel_kind,
        occurred_at=at,
        data={"status_from": previous, "status_to": status, **(data or {})},
    )


def _save_conversation(conversation: Conversation, *fields: str) -> None:
    conversation.version = F("version") + 1
    conversation.save(update_fields=[*fields, "version", "updated_at"])
    conversation.refresh_from_db(fields=["version"])


# --- Customers and identities -----------------------------------------------------------------


def _identity_get_or_create(
    *, kind: str, value: str, customer: Customer, display: str = "", verified: bool = False
) -> Identity:
    """Attach a handle to ``customer`` unless another customer already holds it (then that one)."""
    identity, _ = Identity.objects.get_or_create(
        kind=kind,
        value=value,
        defaults={"customer": customer, "display_value": display or value, "verified": verified},
    )
    return identity


def _customer_for_handles(
    handles: Sequence[tuple[str, str, str]], *, name: str = ""
) -> tuple[Customer, dict[str, Identity]]:
    """Find the customer by an exact identity match, or create one.

    ``handles`` are ``(kind, normalised value, display)`` in order of strength: the first that
    already exists decides the customer; the others are attached to that customer if nobody
    holds them yet (never taken from another customer: that takes a merge).
    """
    existing = {
        (identity.kind, identity.value): identity
        for identity in Identity.objects.select_related("customer").filter(_handles_q(handles))
    }
    customer: Customer | None = None
    for kind, value, _display in handles:
        identity = existing.get((kind, value))
        if identity is not None:
            customer = _live_customer(identity.customer)
            break
    created = customer is None
    if customer is None:
        customer = Customer.objects.create(name=name[:200])
    elif name and not customer.name:
        customer.name = name[:200]
        customer.save(update_fields=["name", "updated_at"])
    identities: dict[str, Identity] = {}
    for kind, value, display in handles:
        identity = existing.get((kind, value)) or _identity_get_or_create(
            kind=kind, value=value, customer=customer, display=display
        )
        if created and identity.customer_id != customer.pk:
            # A concurrent first message from the same new handle created its customer after
            # our lookup. Keeping ours would split the person in two: roll the whole ingestion
            # back; _ingest retries and then finds the winner's customer.
            raise IntegrityError(f"concurrent first contact from {kind}:{value}")
        identities[kind] = identity
    return customer, identities


def _handles_q(handles: Sequence[tuple[str, str, str]]) -> Q:
    query = Q(pk__in=[])
    for kind, value, _ in handles:
        query |= Q(kind=kind, value=value)
    return query


def _live_customer(customer: Customer) -> Customer:
    """Follow merges: a handle still pointing at a merged-away customer means its target."""
    seen = set()
    while customer.merged_into_id is not None and customer.pk not in seen:
        seen.add(customer.pk)
        customer = Customer.objects.get(pk=customer.merged_into_id)
    return customer


class HandleTaken(Conflict):
    """The handle belongs to another customer. The holder's id stays on the exception for a
    caller that checks the viewer may see that customer; it is never part of the answer."""

    def __init__(self, *, holder_id: int) -> None:
        super().__init__("This handle belongs to another customer; merge the customers instead.")
        self.holder_id = holder_id


@transaction.atomic
def identity_link(*, customer: Customer, kind: str, value: str, actor: User | None) -> Identity:
    """Link a handle to ``customer`` (unverified). Raises HandleTaken when another customer
    holds it, with the same answer whether or not the actor may see that customer."""
    try:
        normalised = normalise_identity(kind, value)
    except ValidationError as exc:
        raise ApplicationError(exc.messages[0]) from exc
    existing = (
        Identity.objects.select_related("customer").filter(kind=kind, value=normalised).first()
    )
    if existing is not None:
        if existing.customer_id == customer.pk:
            return existing
        raise HandleTaken(holder_id=existing.customer_id)
    try:
        with transaction.atomic():
            identity = Identity.objects.create(
                customer=customer,
                kind=kind,
                value=normalised,
                display_value=value.strip(),
                # An agent typing a handle proves nothing: it is verified when the customer
                # writes from it.
                verified=False,
            )
    except IntegrityError as exc:
        # Linked by someone else between our check and the insert (the unique constraint).
        raise Conflict("This handle was just linked to a customer; reload and try again.") from exc
    event_record(
        kind=Event.Kind.IDENTITY_LINKED,
        customer=customer,
        actor=actor,
        data={"identity": identity.pk, "kind": kind, "value": normalised},
    )
    return identity


@transaction.atomic
def customer_merge(*, target: Customer, other: Customer, actor: User | None) -> CustomerMerge:
    """Merge ``other`` into ``target``: identities and conversations move to ``target``.

    ``other`` is kept, marked ``merged_into``, so that ``customer_merge_undo`` can move back
    exactly what moved (recorded in the CustomerMerge row). Survey history moves by the surveys
    app's reaction to the ``customer.merged`` event. The event carries the local dates of the
    affected solves so the metrics app can recompute those periods.
    """
    if target.pk == other.pk:
        raise ApplicationError("A customer cannot be merged into itself.")
    locked = {
        c.pk: c for c in Customer.objects.select_for_update().filter(pk__in=[target.pk, other.pk])
    }
    target, other = locked[target.pk], locked[other.pk]
    if other.merged_into_id is not None:
        raise Conflict("That customer was already merged into another one.")
    if target.merged_into_id is not None:
        raise Conflict("The target customer was itself merged; merge into its successor instead.")
    identity_ids = list(other.identities.values_list("pk", flat=True))
    conversation_ids = list(other.conversations.values_list("pk", flat=True))
    affected_dates = _solve_dates(conversation_ids)
    other.identities.update(customer=target)
    other.conversations.update(customer=target)
    other.merged_into = target
    other.save(update_fields=["merged_into", "updated_at"])
    if not target.name and other.name:
        target.name = other.name
        target.save(update_fields=["name", "updated_at"])
    merge = CustomerMerge.objects.create(
        target=target,
        merged=other,
        actor=actor,
        identity_ids=identity_ids,
        conversation_ids=conversation_ids,
        merged_name=other.name,
    )
    event_record(
        kind=Event.Kind.CUSTOMER_MERGED,
        customer=target,
        actor=actor,
        data={
            "merge": merge.pk,
            "target": target.pk,
            "merged": other.pk,
            "identity_ids": identity_ids,
            "conversation_ids": conversation_ids,
            "affected_dates": affected_dates,
        },
    )
    audit_record(
        action=AuditEntry.Action.CUSTOMER_MERGED,
        target=target,
        actor=actor,
        summary=f"Customer #{other.pk} merged into #{target.pk}",
        details={
            "merge": merge.pk,
            "merged": other.pk,
            "identity_ids": identity_ids,
            "conversation_ids": conversation_ids,
        },
    )
    return merge


@transaction.atomic
def customer_merge_undo(*, merge: CustomerMerge, actor: User | None) -> CustomerMerge:
    """Move back what a merge moved. Identities linked or conversations opened since stay."""
    merge = CustomerMerge.objects.select_for_update().get(pk=merge.pk)
    if merge.undone_at is not None:
        raise Conflict("This merge was already undone.")
    other = Customer.objects.select_for_update().get(pk=merge.merged_id)
    Identity.objects.filter(pk__in=merge.identity_ids, customer_id=merge.target_id).update(
        customer=other
    )
    Conversation.objects.filter(pk__in=merge.conversation_ids, customer_id=merge.target_id).update(
        customer=other
    )
    other.merged_into = None
    other.save(update_fields=["merged_into", "updated_at"])
    merge.undone_at = timezone.now()
    merge.undone_by = actor
    merge.save(update_fields=["undone_at", "undone_by"])
    event_record(
        kind=Event.Kind.CUSTOMER_MERGE_UNDONE,
        customer=merge.target,
        actor=actor,
        data={
            "merge": merge.pk,
            "target": merge.target_id,
            "merged": merge.merged_id,
            "identity_ids": merge.identity_ids,
            "conversation_ids": merge.conversation_ids,
            "affected_dates": _solve_dates(merge.conversation_ids),
        },
    )
    audit_record(
        action=AuditEntry.Action.CUSTOMER_MERGE_UNDONE,
        target=("tickets.customer", merge.target_id),
        actor=actor,
        summary=f"Merge of customer #{merge.merged_id} into #{merge.target_id} undone",
        details={
            "merge": merge.pk,
            "merged": merge.merged_id,
            "identity_ids": merge.identity_ids,
            "conversation_ids": merge.conversation_ids,
        },
    )
    return merge


def _solve_dates(conversation_ids: Iterable[int]) -> list[str]:
    tz = timezone.get_current_timezone()
    stamps = Event.objects.filter(
        conversation_id__in=list(conversation_ids), kind=Event.Kind.SOLVED
    ).values_list("occurred_at", flat=True)
    return sorted({stamp.astimezone(tz).date().isoformat() for stamp in stamps})


# --- Contact counting -----------------------------------------------------------------------------


def _contact_reason(
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

    METRICS.md: first inbound; another channel than the previous inbound; arrived while solved
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


def _is_answered(previous: Message, *, previous_contact: Contact | None, replied: bool) -> bool:
    """Was an inbound message answered? A call by its talk time; anything else by ``replied``
    (a public agent message sent between it and the next inbound message)."""
    if previous.channel_kind == ChannelKind.PHONE:
        return bool(previous_contact and previous_contact.talk_seconds)
    return replied


def _counted_inbound(conversation_id: int) -> Any:
    return Message.objects.filter(
        conversation_id=conversation_id, direction=Direction.INBOUND, automated=""
    )


def _open_contact(
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
    inbound = list(_counted_inbound(conversation.pk).select_related("contact", "channel"))
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
        answered = previous is not None and _is_answered(
            previous,
            previous_contact=previous_contact,
            replied=any(previous.sent_at <= t <= message.sent_at for t in outbound_times),
        )
        reason = _contact_reason(
            kind=message.channel_kind,
            session=message.thread_key,
            at=message.sent_at,
            previous=previous,
            previous_contact=previous_contact,
            answered=answered,
            status=status,
        )
        contact = _open_contact(message, reason=reason, previous_contact=previous_contact)
        if reason is not None:
            count += 1
        if contact is not None:
            Message.objects.filter(pk=message.pk).update(contact=contact)
        previous, previous_contact = message, contact
    conversation.contacts_counted = count
    conversation.channels = _channels_of(conversation.pk)
    _save_conversation(conversation, "contacts_counted", "channels")
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


# --- Ingestion ------------------------------------------------------------------------------------


@dataclass
class _Inbound:
    """What every channel hands to the one ingestion path."""

    channel: Channel
    external_id: str
    handles: list[tuple[str, str, str]]  # (kind, normalised value, display), strongest first
    name: str
    body_text: str
    sent_at: datetime
    raw: bytes
    subject: str = ""
    body_html: str = ""
    thread_key: str = ""
    message_id: str = ""
    in_reply_to: tuple[str, ...] = ()
    references: tuple[str, ...] = ()
    recipients: tuple[str, ...] = ()
    automated: str = ""
    attachments: tuple[Any, ...] = ()
    call: dict[str, Any] | None = None
    call_agent_email: str = ""
    bounce_recipients: tuple[str, ...] = ()
    bounce_original_ids: tuple[str, ...] = ()
    claimed_email: str = ""


# Customer-side times before this are a broken clock or a bad integration, not history.
EARLIEST_MESSAGE_TIME = datetime(2000, 1, 1, tzinfo=UTC)


def _clamp(at: datetime | None) -> datetime:
    """A message time: now if missing, never in the future, and refused if absurdly old."""
    now = timezone.now()
    if at is None:
        return now
    try:
        if timezone.is_naive(at):
            at = timezone.make_aware(at, timezone.get_current_timezone())
        at = at.astimezone(UTC)
    except (OverflowError, ValueError) as exc:
        raise ApplicationError(f"The time {at.isoformat()} is out of range.") from exc
    if at < EARLIEST_MESSAGE_TIME:
        raise ApplicationError(
            f"The time {at.isoformat()} is before {EARLIEST_MESSAGE_TIME.date()}; check the clock."
        )
    return min(at, now)


def _existing_result(channel: Channel, external_id: str) -> InboundResult | None:
    message = (
        Message.objects.filter(channel=channel, external_id=external_id)
        .select_related("conversation")
        .first()
    )
    if message is None:
        return None
    return InboundResult(
        customer_id=message.conversation.customer_id,
        conversation_id=message.conversation_id,
        message_id=message.pk,
        new_contact=False,
        created=False,
    )


def _ingest(data: _Inbound) -> InboundResult:
    """Store one inbound message exactly once; see the module docstring."""
    for _attempt in range(3):
        existing = _existing_result(data.channel, data.external_id)
        if existing is not None:
            return existing
        try:
            with transaction.atomic():
                return _ingest_once(data)
        except _Quarantine:
            if data.automated == "bounce":
                # The bounce itself is quarantined, but the address stays marked undeliverable.
                with transaction.atomic():
                    _mark_bounced(data)
            raise
        except IntegrityError:
            # A concurrent delivery of the same message (or of the same new handle) won the
            # race; our transaction rolled back whole. Look again: usually it is now stored.
            logger.info("inbound race on %s/%s, retrying", data.channel.pk, data.external_id)
    existing = _existing_result(data.channel, data.external_id)
    if existing is not None:
        return existing
    raise Conflict("The message could not be stored because of concurrent changes; retry.")


def _ingest_once(data: _Inbound) -> InboundResult:
    automated = data.automated
    conversation = _thread_conversation(data) if data.channel.kind == ChannelKind.EMAIL else None

    if automated and conversation is None and automated in {"bounce", "own_address"}:
        raise _Quarantine(f"{automated} mail that matches no conversation")

    identities: dict[str, Identity]
    if automated and conversation is not None:
        customer, identities = conversation.customer, {}
    elif automated and not data.handles:
        customer, identities = Customer.objects.create(name=data.name[:200]), {}
    else:
        customer, identities = _customer_for_handles(data.handles, name=data.name)

    if conversation is None and data.channel.kind != ChannelKind.EMAIL:
        conversation = _attach_conversation(customer, data)
    if conversation is not None:
        conversation = Conversation.objects.select_for_update().get(pk=conversation.pk)
        if conversation.status == Status.CLOSED and not automated:
            conversation = _conversation_create(customer, data, follow_up_of=conversation)
    else:
        conversation = _conversation_create(customer, data)

    identity = identities.get(data.handles[0][0]) if data.handles and identities else None
    if identity is not None and not identity.verified and data.channel.kind != ChannelKind.CHAT:
        # Writing from an address or number is proof enough that it is theirs.
        Identity.objects.filter(pk=identity.pk).update(verified=True)
    if (
        identity is not None
        and identity.undeliverable_at is not None
        and data.channel.kind == ChannelKind.EMAIL
        and not automated
    ):
        # A person wrote from a bounced address (auto-replies never get here): the mailbox works
        # again, so surveys and replies may go to it.
        Identity.objects.filter(pk=identity.pk).update(undeliverable_at=None)

    message = Message.objects.create(
        conversation=conversation,
        channel=data.channel,
        channel_kind=data.channel.kind,
        direction=Direction.INBOUND,
        identity=identity,
        external_id=data.external_id,
        message_id=data.message_id,
        in_reply_to=" ".join(data.in_reply_to),
        references=" ".join(data.references),
        thread_key=data.thread_key,
        subject=data.subject[:998],
        body_text=data.body_text,
        body_html=data.body_html,
        raw=data.raw,
        automated=automated,
        sent_at=data.sent_at,
        claimed_email=data.claimed_email,
    )
    _store_attachments(message, data.attachments)

    new_contact = False
    status_before = conversation.status
    if not automated:
        previous = (
            _counted_inbound(conversation.pk)
            .exclude(pk=message.pk)
            .filter(Q(sent_at__lt=message.sent_at) | Q(sent_at=message.sent_at, pk__lt=message.pk))
            .select_related("contact")
            .order_by("-sent_at", "-id")
            .first()
        )
        previous_contact = previous.contact if previous is not None else None
        answered = previous is not None and _is_answered(
            previous,
            previous_contact=previous_contact,
            replied=Message.objects.filter(
                conversation_id=conversation.pk,
                direction=Direction.OUTBOUND,
                sent_at__gte=previous.sent_at,
                sent_at__lte=message.sent_at,
            ).exists(),
        )
        reason = _contact_reason(
            kind=message.channel_kind,
            session=message.thread_key,
            at=message.sent_at,
            previous=previous,
            previous_contact=previous_contact,
            answered=answered,
            status=status_before,
        )
        call = dict(data.call or {})
        if call and data.call_agent_email:
            call["agent"] = User.objects.filter(email=data.call_agent_email.lower()).first()
        contact = _open_contact(
            message, reason=reason, previous_contact=previous_contact, call=call or None
        )
        if contact is not None:
            Message.objects.filter(pk=message.pk).update(contact=contact)
            message.contact = contact
        new_contact = reason is not None
        if new_contact:
            conversation.contacts_counted += 1
        if conversation.first_inbound_at is None:
            conversation.first_inbound_at = message.sent_at
        conversation.last_inbound_at = max(
            conversation.last_inbound_at or message.sent_at, message.sent_at
        )
        if status_before == Status.SOLVED:
            _set_status(
                conversation,
                Status.OPEN,
                actor=None,
                at=message.sent_at,
                kind=Event.Kind.REOPENED,
                message=message,
                data={"by": "customer"},
                agent=conversation.assignee,
            )
        elif status_before == Status.PENDING:
            _set_status(conversation, Status.OPEN, actor=None, at=message.sent_at, message=message)
        if call and call.get("agent") is not None and conversation.assignee_id is None:
            agent = call["agent"]
            if conversation.team_id is None or agent.teams.filter(pk=conversation.team_id).exists():
                conversation.assignee = agent
    elif automated == "bounce":
        _mark_bounced(data)

    if message.channel_kind not in conversation.channels:
        conversation.channels = [*conversation.channels, message.channel_kind]
    conversation.last_activity_at = max(conversation.last_activity_at, message.sent_at)
    _save_conversation(
        conversation,
        "contacts_counted",
        "first_inbound_at",
        "last_inbound_at",
        "status",
        "solved_at",
        "closed_at",
        "channels",
        "last_activity_at",
        "assignee",
    )
    event_record(
        kind=Event.Kind.INBOUND,
        conversation=conversation,
        message=message,
        channel_kind=message.channel_kind,
        occurred_at=message.sent_at,
        data={"new_contact": new_contact, "automated": automated},
    )
    return InboundResult(
        customer_id=conversation.customer_id,
        conversation_id=conversation.pk,
        message_id=message.pk,
        new_contact=new_contact,
        created=True,
    )


class _Quarantine(Exception):
    pass


def _mark_bounced(data: _Inbound) -> None:
    """A DSN marks a failed recipient undeliverable only when it names a message the desk sent
    to that very address: anyone can mail us a forged DSN, and a forged one must not stop a
    customer's surveys."""
    for address in data.bounce_recipients:
        try:
            value = normalise_email(address)
        except ValidationError:
            continue
        original_ids = list(data.bounce_original_ids)
        if sent_mail_exists(address=value, message_ids=original_ids) or (
            original_ids
            and Message.objects.filter(
                direction=Direction.OUTBOUND,
                message_id__in=original_ids,
                identity__kind=Identity.Kind.EMAIL,
                identity__value=value,
            ).exists()
        ):
            identity_mark_undeliverable(address=value, source="dsn")
        else:
            logger.info("bounce for %s names no message we sent there; address kept", value)


def identity_mark_undeliverable(*, address: str, source: str) -> int:
    """Marks every email identity with ``address`` undeliverable (no more surveys or automatic
    mail; the customer panel shows "bounced"). ``source`` is "dsn" or "provider:<esp>".
    Returns how many identities changed. A later mail the customer writes from it clears it."""
    try:
        value = normalise_email(address)
    except ValidationError:
        return 0
    now = timezone.now()
    changed = 0
    for identity in Identity.objects.filter(
        kind=Identity.Kind.EMAIL, value=value, undeliverable_at__isnull=True
    ).select_related("customer"):
        changed += Identity.objects.filter(pk=identity.pk, undeliverable_at__isnull=True).update(
            undeliverable_at=now
        )
        event_record(
            kind=Event.Kind.IDENTITY_UNDELIVERABLE,
            customer=identity.customer,
            data={"identity": identity.pk, "value": value, "source": source},
        )
    return changed


def _conversation_create(
    customer: Customer, data: _Inbound, *, follow_up_of: Conversation | None = None
) -> Conversation:
    subject = (
        data.subject
        or _subject_from_body(data.body_text)
        or f"{data.channel.get_kind_display()} contact"
    )
    conversation = Conversation.objects.create(
        customer=customer,
        team=data.channel.team
        if follow_up_of is None
        else (follow_up_of.team or data.channel.team),
        subject=subject[:998],
        status=Status.NEW,
        channels=[],
        last_activity_at=data.sent_at,
        follow_up_of=follow_up_of,
    )
    event_record(
        kind=Event.Kind.CONVERSATION_CREATED,
        conversation=conversation,
        channel_kind=data.channel.kind,
        occurred_at=data.sent_at,
        data={"status_to": Status.NEW, "follow_up_of": follow_up_of.pk if follow_up_of else None},
    )
    return conversation


def _subject_from_body(body: str) -> str:
    first_line = next((line.strip() for line in body.splitlines() if line.strip()), "")
    return first_line[:80] + ("…" if len(first_line) > 80 else "")


def _attach_conversation(customer: Customer, data: _Inbound) -> Conversation | None:
    """Chat, social and phone: continue a session/thread, else the one active conversation."""
    if data.thread_key:
        threaded = (
            Message.objects.filter(channel=data.channel, thread_key=data.thread_key)
            .select_related("conversation")
            .order_by("-sent_at")
            .first()
        )
        if threaded is not None:
            return threaded.conversation
    since = data.sent_at - timedelta(days=settings.ATTACH_WINDOW_DAYS)
    active = list(
        Conversation.objects.filter(
            customer=customer,
            status__in=Conversation.ACTIVE_STATUSES,
            last_activity_at__gte=since,
        ).order_by("-last_activity_at")[:2]
    )
    return active[0] if len(active) == 1 else None


def _thread_conversation(data: _Inbound) -> Conversation | None:
    """Email threading, strongest evidence first (osTicket's order; see FEATURES.md 2.1)."""
    ids = [*data.in_reply_to, *reversed(data.references)]
    if ids:
        by_id = {
            m.message_id: m
            for m in Message.objects.filter(message_id__in=ids).select_related("conversation")
        }
        for message_id in ids:
            found_message = by_id.get(message_id)
            if found_message is None:
                continue
            # A Message-ID the desk issued (random, sent only to the conversation's people) is
            # proof of having received our mail. A customer's own Message-ID is not a secret
            # (it went to whoever they copied), so it threads only their own follow-ups.
            if found_message.direction == Direction.OUTBOUND or _takes_part(
                data, found_message.conversation
            ):
                return found_message.conversation
    if data.bounce_original_ids:
        # A bounce threads only by an id the desk sent: a customer's own Message-ID is not a
        # secret, and a forged DSN quoting it must not put text into their conversation.
        original = (
            Message.objects.filter(
                message_id__in=list(data.bounce_original_ids), direction=Direction.OUTBOUND
            )
            .select_related("conversation")
            .first()
        )
        if original is not None:
            return original.conversation
    conversation_id = tokens.conversation_id_from_addresses(data.recipients)
    if conversation_id is not None:
        found = Conversation.objects.filter(pk=conversation_id).first()
        if found is not None:
            return found
    # Last resort: a subject tag, and only when the sender already takes part, so that nobody
    # can inject a message into someone else's conversation by copying its subject.
    conversation_id = tokens.conversation_id_from_subject(data.subject)
    if conversation_id is not None and data.handles:
        found = Conversation.objects.filter(pk=conversation_id).first()
        if found is not None and _takes_part(data, found):
            return found
    return None


def _takes_part(data: _Inbound, conversation: Conversation) -> bool:
    """The sender is one of the conversation customer's handles, or already wrote in it."""
    if not data.handles:
        return False
    kind, value, _ = data.handles[0]
    return (
        Identity.objects.filter(
            kind=kind, value=value, customer_id=conversation.customer_id
        ).exists()
        or Message.objects.filter(
            conversation=conversation, identity__kind=kind, identity__value=value
        ).exists()
    )


def _store_attachments(message: Message, attachments: Iterable[Any]) -> None:
    for attachment in attachments:
        record = Attachment(
            message=message,
            filename=attachment.filename[:255],
            content_type=attachment.content_type[:255],
            size=len(attachment.content),
            content_id=getattr(attachment, "content_id", "")[:255],
            inline=getattr(attachment, "inline", False),
        )
        record.file.save(
            attachment.filename or "attachment", ContentFile(attachment.content), save=False
        )
        record.save()


def _check_attachment_sizes(attachments: Iterable[Any]) -> None:
    limit = settings.ATTACHMENT_MAX_BYTES
    for attachment in attachments:
        if len(attachment.content) > limit:
            raise PayloadTooLarge(
                f"Attachment {attachment.filename!r} has {len(attachment.content)} bytes; "
                f"the limit is {limit} bytes. Nothing was stored.",
            )


def quarantine_store(
    *, channel: Channel | None, source: str, raw: bytes, error: str
) -> QuarantinedMessage:
    """Keep input we could not process, with the reason, for an admin to look at."""
    return QuarantinedMessage.objects.create(
        channel=channel, source=source, raw=raw, error=error[:5000]
    )


def _email_inbound(
    parsed: ParsedEmail, *, channel: Channel, raw: bytes, received_at: datetime | None = None
) -> InboundResult:
    _check_attachment_sizes(parsed.attachments)
    handles: list[tuple[str, str, str]] = []
    if parsed.from_email and parsed.automated not in {"bounce", "own_address"}:
        try:
            handles.append(("email", normalise_email(parsed.from_email), parsed.from_email))
        except ValidationError:
            handles = []
    if not handles and not parsed.automated:
        raise _Quarantine(f"no usable sender address: {parsed.from_email!r}")
    return _ingest(
        _Inbound(
            channel=channel,
            external_id=parsed.message_id[:998],
            handles=handles,
            name=parsed.from_name,
            subject=parsed.subject,
            body_text=parsed.text,
            body_html=parsed.html,
            # The receipt time orders the timeline: senders' Date headers are often wrong.
            sent_at=_clamp(received_at),
            raw=raw,
            message_id=parsed.message_id[:998],
            in_reply_to=parsed.in_reply_to,
            references=parsed.references,
            recipients=parsed.recipients,
            automated=parsed.automated,
            attachments=parsed.attachments,
            bounce_recipients=parsed.bounce_recipients,
            bounce_original_ids=parsed.bounce_original_message_ids,
        )
    )


def _own_addresses() -> list[str]:
    addresses = [settings.SUPPORT_EMAIL]
    addresses += list(
        Channel.objects.filter(kind=ChannelKind.EMAIL)
        .exclude(address="")
        .values_list("address", flat=True)
    )
    return addresses


def inbound_email_raw(
    *, channel: Channel, raw: bytes, source: str = "api", received_at: datetime | None = None
) -> InboundResult | QuarantinedMessage:
    """Ingest a raw RFC 822 message. Unparseable input is quarantined, never dropped.

    ``received_at`` (default now) is for importers and the demo seed, which replay history.
    """
    if channel.kind != ChannelKind.EMAIL:
        raise ApplicationError("This channel does not take email.")
    try:
        parsed = parse_raw_email(raw, own_addresses=_own_addresses())
    except EmailParseError as exc:
        return quarantine_store(channel=channel, source=source, raw=raw, error=str(exc))
    try:
        return _email_inbound(parsed, channel=channel, raw=raw, received_at=received_at)
    except _Quarantine as exc:
        return quarantine_store(channel=channel, source=source, raw=raw, error=str(exc))


def inbound_email_from_anymail(
    *, message: Any, esp_name: str
) -> InboundResult | QuarantinedMessage:
    """Ingest a provider webhook's message (anymail's normalised AnymailInboundMessage)."""
    raw = message.as_bytes()
    parsed: ParsedEmail | None = None
    error = ""
    try:
        parsed = parse_inbound_message(message, raw=raw, own_addresses=_own_addresses())
    except EmailParseError as exc:
        error = str(exc)
    channel = _channel_for_recipients(parsed.recipients if parsed else ())
    if parsed is None or channel is None:
        return quarantine_store(
            channel=channel,
            source=f"anymail:{esp_name}",
            raw=raw,
            error=error or "no active email channel to receive this message",
        )
    try:
        return _email_inbound(_without_oversized_attachments(parsed), channel=channel, raw=raw)
    except _Quarantine as exc:
        return quarantine_store(
            channel=channel, source=f"anymail:{esp_name}", raw=raw, error=str(exc)
        )


def _without_oversized_attachments(parsed: ParsedEmail) -> ParsedEmail:
    """Provider webhooks: keep the message, drop attachments over ATTACHMENT_MAX_BYTES with a note.

    A provider cannot act on a 413 (it retries, then drops the mail), so the customer's words are
    kept and the agent sees which file did not come through. The raw API answers 413 instead: the
    sender's own MTA can bounce the message to the customer.
    """
    limit = settings.ATTACHMENT_MAX_BYTES
    kept = tuple(a for a in parsed.attachments if len(a.content) <= limit)
    if len(kept) == len(parsed.attachments):
        return parsed
    notes = [
        f"[Attachment {a.filename!r} ({len(a.content)} bytes) was not kept: "
        f"the limit is {limit} bytes.]"
        for a in parsed.attachments
        if len(a.content) > limit
    ]
    text = "\n\n".join([parsed.text.rstrip(), *notes]) if parsed.text.strip() else "\n".join(notes)
    return dataclasses.replace(parsed, attachments=kept, text=text)


def _channel_for_recipients(recipients: Iterable[str]) -> Channel | None:
    channels = list(Channel.objects.filter(kind=ChannelKind.EMAIL, is_active=True).order_by("pk"))
    recipients = {r.lower() for r in recipients}
    for channel in channels:
        if channel.address and channel.address.lower() in recipients:
            return channel
    return channels[0] if channels else None


def inbound_chat(
    *,
    channel: Channel,
    external_id: str,
    session_id: str,
    visitor_id: str,
    body: str,
    sent_at: datetime | None = None,
    email: str = "",
    email_verified: bool = True,
    name: str = "",
    raw: bytes = b"",
) -> InboundResult:
    """A chat message.

    An email a chat provider vouches for (``email_verified``: its visitor signed in) finds the
    customer first. An email the visitor merely typed (the built-in /chat/ page) is a hint: it is
    stored on the message for the agent to check, and never finds a customer or joins an
    existing conversation, so nobody reads or writes another person's chat by typing their
    address.
    """
    _require_kind(channel, ChannelKind.CHAT)
    handles: list[tuple[str, str, str]] = []
    claimed_email = ""
    if email and email_verified:
        handles.append(("email", _valid(normalise_email, email), email))
    elif email:
        claimed_email = _valid(normalise_email, email)
    handles.append(("chat", _valid(normalise_identity, "chat", visitor_id), visitor_id))
    return _ingest(
        _Inbound(
            channel=channel,
            external_id=external_id,
            handles=handles,
            name=name,
            body_text=body,
            sent_at=_clamp(sent_at),
            raw=raw,
            thread_key=session_id[:255],
            claimed_email=claimed_email,
        )
    )


def inbound_social(
    *,
    channel: Channel,
    external_id: str,
    network: str,
    handle: str,
    body: str,
    sent_at: datetime | None = None,
    thread_id: str = "",
    raw: bytes = b"",
) -> InboundResult:
    _require_kind(channel, ChannelKind.SOCIAL)
    value = _valid(normalise_social, network, handle)
    return _ingest(
        _Inbound(
            channel=channel,
            external_id=external_id,
            handles=[("social", value, f"{network}:{handle}")],
            name=handle.lstrip("@"),
            body_text=body,
            sent_at=_clamp(sent_at),
            raw=raw,
            thread_key=thread_id[:255],
        )
    )


def inbound_phone(
    *,
    channel: Channel,
    external_id: str,
    from_number: str,
    started_at: datetime | None,
    wait_seconds: int,
    talk_seconds: int,
    hold_seconds: int,
    wrap_seconds: int,
    ended_by: str,
    agent_email: str = "",
    notes: str = "",
    raw: bytes = b"",
) -> InboundResult:
    """A call log: one call is exactly one contact, dropped calls included."""
    _require_kind(channel, ChannelKind.PHONE)
    number = _valid(normalise_phone, from_number)
    if ended_by not in Contact.EndedBy.values:
        raise ApplicationError("ended_by must be customer, agent or system.")
    minutes, seconds = divmod(talk_seconds, 60)
    summary = f"Phone call from {number}: waited {wait_seconds}s, talked {minutes}m {seconds}s, ended by {ended_by}."
    return _ingest(
        _Inbound(
            channel=channel,
            external_id=external_id,
            handles=[("phone", number, from_number)],
            name="",
            subject=_subject_from_body(notes) or f"Phone call from {number}",
            body_text=f"{summary}\n\n{notes}".strip(),
            sent_at=_clamp(started_at),
            raw=raw,
            call={
                "wait_seconds": wait_seconds,
                "talk_seconds": talk_seconds,
                "hold_seconds": hold_seconds,
                "wrap_seconds": wrap_seconds,
                "ended_by": ended_by,
            },
            call_agent_email=agent_email,
        )
    )


def _require_kind(channel: Channel, kind: str) -> None:
    if channel.kind != kind:
        raise ApplicationError(f"This channel is a {channel.kind} channel, not {kind}.")


def _valid(fn: Any, *args: Any) -> str:
    try:
        return fn(*args)
    except ValidationError as exc:
        raise ApplicationError(exc.messages[0]) from exc


# --- Agent actions ----------------------------------------------------------------------------------


class StaleVersion(Conflict):
    """The conversation changed since the caller read it (optimistic concurrency)."""


def _locked(conversation: Conversation, *, expected_version: int | None = None) -> Conversation:
    """The conversation, row-locked for this transaction.

    ``expected_version``: the ``version`` the caller read (the workspace's hidden field, the
    API's ``If-Match``). If someone changed the conversation since, nothing is applied and
    ``StaleVersion`` (409) says who and what it is now.
    """
    locked = (
        Conversation.objects.select_for_update(of=("self",))
        .select_related("customer", "team", "assignee")
        .get(pk=conversation.pk)
    )
    if expected_version is not None and locked.version != expected_version:
        last = Event.objects.filter(conversation=locked).select_related("actor").order_by("-id")
        event = last.first()
        if event is not None and event.actor is not None:
            who = event.actor.full_name or event.actor.email
        elif event is not None and event.kind == Event.Kind.INBOUND:
            who = "The customer"
        else:
            who = "Someone"
        assignee = (
            (locked.assignee.full_name or locked.assignee.email) if locked.assignee else "nobody"
        )
        raise StaleVersion(
            f"{who} changed this conversation meanwhile: it is now {locked.status}, assigned to "
            f"{assignee}. Nothing was changed; reload it and try again.",
            extra={"version": locked.version, "status": locked.status},
        )
    return locked


@transaction.atomic
def conversation_reply(
    *,
    conversation: Conversation,
    author: User,
    body: str,
    channel_kind: str | None = None,
    internal: bool = False,
    at: datetime | None = None,
    deliver: bool = True,
    seen_up_to: int | None = None,
) -> Message:
    """A public reply (on the customer's last channel unless told otherwise) or internal note.

    A public reply on email queues a threaded email through the outbox; it is stored at once
    and goes out when the worker runs, even if the broker was down at the time. A reply on chat
    or social is queued as a signed webhook to the channel's ``webhook_url``; a chat channel
    without one serves the reply to its ``/chat/`` page instead.
    ``deliver=False`` records history that was delivered elsewhere (imports, the demo seed):
    the message is stored as sent at ``at`` and nothing goes out.
    ``seen_up_to``: the newest message id the agent had on screen. If the customer wrote after
    it, nothing is stored and ``ReplyHeld`` is raised so that the agent reads it first (public
    replies only: an internal note never reaches the customer).
    """
    body = (body or "").strip()
    if not body:
        raise ApplicationError("A reply needs a body.")
    conversation = _locked(conversation)
    if seen_up_to is not None and not internal:
        newer = Message.objects.filter(
            conversation=conversation, direction=Direction.INBOUND, pk__gt=seen_up_to
        ).count()
        if newer:
            raise ReplyHeld(
                f"The customer wrote {newer} new message{'s' if newer > 1 else ''} since you "
                "opened this conversation. Read it, then send again.",
                extra={"new_messages": newer},
            )
    at = at or timezone.now()
    if internal:
        message = Message.objects.create(
            conversation=conversation,
            direction=Direction.NOTE,
            author=author,
            body_text=body,
            sent_at=at,
        )
        conversation.last_activity_at = max(conversation.last_activity_at, at)
        _save_conversation(conversation, "last_activity_at")
        return message

    kind = channel_kind or _last_inbound_kind(conversation)
    if kind == ChannelKind.PHONE:
        if channel_kind:
            raise ApplicationError(
                "A phone conversation is answered by calling; log the call, or reply on email, chat or social."
            )
        kind = ChannelKind.EMAIL
    if kind not in ChannelKind.values:
        raise ApplicationError(f"channel must be one of email, chat, social (not {kind!r}).")
    channel, identity = _reply_route(conversation, kind)
    message = Message.objects.create(
        conversation=conversation,
        channel=channel,
        channel_kind=kind,
        direction=Direction.OUTBOUND,
        author=author,
        identity=identity,
        # A chat reply belongs to the session it answers: only that session's transcript shows it.
        thread_key=_latest_session(conversation, channel) if kind == ChannelKind.CHAT else "",
        body_text=body,
        sent_at=at,
        delivery_state=_initial_delivery_state(channel, kind, deliver=deliver),
        delivered_at=None if deliver else at,
    )
    if kind == ChannelKind.EMAIL:
        domain = settings.SUPPORT_EMAIL.partition("@")[2] or "supportdesk.localhost"
        message.message_id = f"sd.{message.pk}.{secrets.token_hex(6)}@{domain}"
        message.subject = _reply_subject(conversation)
        if deliver:
            message.save(update_fields=["message_id", "subject"])
            outbox_enqueue(
                task_name="tickets.tasks.message_email_send_task",
                kwargs={"message_id": message.pk},
            )
        else:
            message.delivery_state = Message.Delivery.SENT
            message.delivered_at = at
            message.save(update_fields=["message_id", "subject", "delivery_state", "delivered_at"])
    elif deliver and channel.webhook_url:
        outbox_enqueue(
            task_name="tickets.tasks.message_webhook_send_task", kwargs={"message_id": message.pk}
        )
    elif message.delivery_state == Message.Delivery.NOT_SENT:
        Message.objects.filter(pk=message.pk).update(
            delivery_error=f"The {kind} channel {channel.name} has no webhook URL to deliver to."
        )
    if kind not in conversation.channels:
        conversation.channels = [*conversation.channels, kind]
    if conversation.status == Status.NEW:
        _set_status(conversation, Status.OPEN, actor=author, at=at, message=message)
    if conversation.assignee_id is None:
        conversation.assignee = author
    conversation.last_activity_at = max(conversation.last_activity_at, at)
    _save_conversation(conversation, "channels", "status", "assignee", "last_activity_at")
    event_record(
        kind=Event.Kind.REPLIED,
        conversation=conversation,
        message=message,
        actor=author,
        agent=author,
        channel_kind=kind,
        occurred_at=at,
    )
    return message


class ReplyHeld(Conflict):
    """A reply not sent because the customer wrote after the agent opened the conversation."""


def _initial_delivery_state(channel: Channel, kind: str, *, deliver: bool) -> str:
    if not deliver:
        return Message.Delivery.SENT
    if kind == ChannelKind.EMAIL or channel.webhook_url:
        return Message.Delivery.QUEUED
    if kind == ChannelKind.CHAT:
        return Message.Delivery.QUEUED  # the visitor's /chat/ page picks it up
    return Message.Delivery.NOT_SENT


def _last_inbound_kind(conversation: Conversation) -> str:
    kind = (
        Message.objects.filter(conversation=conversation, direction=Direction.INBOUND, automated="")
        .order_by("-sent_at", "-id")
        .values_list("channel_kind", flat=True)
        .first()
    )
    return kind or ChannelKind.EMAIL


def _reply_route(conversation: Conversation, kind: str) -> tuple[Channel, Identity | None]:
    """The channel to answer on and the customer's handle there."""
    last = (
        Message.objects.filter(conversation=conversation, channel_kind=kind, channel__isnull=False)
        .select_related("channel", "identity")
        .order_by("-sent_at", "-id")
        .first()
    )
    channel = last.channel if last is not None else None
    if channel is None:
        channel = (
            Channel.objects.filter(kind=kind, is_active=True, team=conversation.team).first()
            or Channel.objects.filter(kind=kind, is_active=True).order_by("pk").first()
        )
    if channel is None:
        raise ApplicationError(f"There is no {kind} channel to reply on.")
    identity_kind = {"email": "email", "chat": "chat", "social": "social"}[kind]
    identity = (
        last.identity
        if last is not None and last.identity and last.identity.kind == identity_kind
        else None
    )
    if identity is None:
        identity = (
            Identity.objects.filter(customer=conversation.customer, kind=identity_kind)
            .order_by("undeliverable_at", "-verified", "pk")
            .first()
        )
    if identity is None:
        raise ApplicationError(f"This customer has no {kind} handle to reply to; link one first.")
    if kind == ChannelKind.EMAIL and identity.undeliverable_at is not None:
        raise ApplicationError(
            f"{identity.value} bounced; the customer has no deliverable email address."
        )
    return channel, identity


def _reply_subject(conversation: Conversation) -> str:
    subject = conversation.subject or "Your request"
    if not subject.lower().startswith("re:"):
        subject = f"Re: {subject}"
    tag = tokens.subject_tag(conversation.pk)
    return subject if tag in subject else f"{subject} {tag}"


# A claimed send that has not finished after this long is taken to be abandoned (worker died).
SEND_LEASE = timedelta(minutes=15)


def _message_claim_for_sending(*, message_id: int, kinds: Sequence[str] | None) -> bool:
    """Claim an outbound message for one sender (queued -> sending, or a stale sending lease).

    A conditional UPDATE, so two workers never both send; the lease counts from the claim
    (``claimed_at``), never from when the message was written.
    """
    now = timezone.now()
    claimable = Message.objects.filter(
        Q(delivery_state=Message.Delivery.QUEUED)
        | Q(
            delivery_state=Message.Delivery.SENDING,
            delivered_at__isnull=True,
            claimed_at__lt=now - SEND_LEASE,
        )
        | Q(
            delivery_state=Message.Delivery.SENDING,
            delivered_at__isnull=True,
            claimed_at__isnull=True,
            created_at__lt=now - SEND_LEASE,
        ),
        pk=message_id,
        direction=Direction.OUTBOUND,
    )
    if kinds is not None:
        claimable = claimable.filter(channel_kind__in=list(kinds))
    return bool(
        claimable.update(
            delivery_state=Message.Delivery.SENDING,
            delivery_attempts=F("delivery_attempts") + 1,
            claimed_at=now,
        )
    )


def message_email_send(*, message_id: int) -> bool:
    """Send an outbound email message exactly once; returns True if this call sent it.

    The message is claimed with a conditional UPDATE (queued -> sending), so a task delivered
    twice sends once. A send that fails puts it back to queued (the task retries); the caller
    marks it failed when retries run out.
    """
    if not _message_claim_for_sending(message_id=message_id, kinds=None):
        return False
    message = Message.objects.select_related("conversation", "identity", "author").get(
        pk=message_id
    )
    try:
        email = _build_email(message)
        email.send(fail_silently=False)
    except Exception as exc:
        Message.objects.filter(pk=message_id).update(
            delivery_state=Message.Delivery.QUEUED, delivery_error=str(exc)[:2000]
        )
        raise
    # What a later bounce must name before it marks this address undeliverable.
    sent_mail_record(
        address=email.to[0],
        message_id=message.message_id,
        kind=SentMail.Kind.REPLY,
        automatic=False,
    )
    Message.objects.filter(pk=message_id).update(
        delivery_state=Message.Delivery.SENT, delivered_at=timezone.now(), delivery_error=""
    )
    return True


def message_delivery_failed(*, message_id: int, error: str, from_state: str = "queued") -> None:
    """Give up on delivering a message (retries ran out, or the receiver refused it)."""
    Message.objects.filter(pk=message_id, delivery_state=from_state).update(
        delivery_state=Message.Delivery.FAILED, delivery_error=error[:2000]
    )


def _build_email(message: Message) -> EmailMultiAlternatives:
    conversation = message.conversation
    assert message.identity is not None
    thread = list(
        Message.objects.filter(conversation=conversation, channel_kind=ChannelKind.EMAIL)
        .exclude(message_id="")
        .exclude(pk=message.pk)
        .filter(Q(sent_at__lt=message.sent_at) | Q(sent_at=message.sent_at, pk__lt=message.pk))
        .order_by("sent_at", "id")
        .values_list("message_id", "direction")
    )
    last_inbound = next((mid for mid, d in reversed(thread) if d == Direction.INBOUND), None)
    in_reply_to = last_inbound or (thread[-1][0] if thread else None)
    references = [mid for mid, _ in thread][-20:]
    author_name = (message.author.full_name if message.author else "") or "Support"
    from_name = _header_safe(f"{author_name} via Support")
    headers = {
        "Message-ID": f"<{message.message_id}>",
        "Reply-To": tokens.reply_address(conversation.pk),
        "Auto-Submitted": "no",
        "X-Supportdesk-Conversation": str(conversation.pk),
    }
    if in_reply_to:
        headers["In-Reply-To"] = f"<{in_reply_to}>"
        headers["References"] = " ".join(f"<{mid}>" for mid in references)
    return EmailMultiAlternatives(
        subject=_header_safe(message.subject),
        body=message.body_text,
        from_email=f'"{from_name}" <{settings.SUPPORT_EMAIL}>',
        to=[message.identity.value],
        headers=headers,
    )


def _header_safe(value: str) -> str:
    return " ".join(value.replace('"', "'").split())[:200]


@transaction.atomic
def conversation_solve(
    *,
    conversation: Conversation,
    actor: User,
    at: datetime | None = None,
    expected_version: int | None = None,
) -> Event:
    """Record a solve event; the surveys app reacts to it by scheduling the survey."""
    conversation = _locked(conversation, expected_version=expected_version)
    if conversation.status in (Status.SOLVED, Status.CLOSED):
        raise Conflict(f"The conversation is already {conversation.status}.")
    at = at or timezone.now()
    last_contact = conversation.contacts.order_by("-started_at", "-id").first()
    # Attribution (METRICS.md): the channel of the last contact before the solve.
    channel_kind = last_contact.channel_kind if last_contact else ""
    if conversation.assignee_id is None:
        conversation.assignee = actor
    event = _set_status(
        conversation,
        Status.SOLVED,
        actor=actor,
        at=at,
        kind=Event.Kind.SOLVED,
        agent=actor,
        channel_kind=channel_kind,
        data={"contacts_counted": conversation.contacts_counted, "channel": channel_kind},
    )
    conversation.last_activity_at = max(conversation.last_activity_at, at)
    _save_conversation(
        conversation, "status", "solved_at", "closed_at", "assignee", "last_activity_at"
    )
    return event


@transaction.atomic
def conversation_reopen(
    *,
    conversation: Conversation,
    actor: User | None,
    reason: str = "",
    at: datetime | None = None,
    expected_version: int | None = None,
) -> Event:
    conversation = _locked(conversation, expected_version=expected_version)
    if conversation.status not in (Status.SOLVED, Status.CLOSED):
        raise Conflict(
            f"Only solved or closed conversations can be reopened; this one is {conversation.status}."
        )
    at = at or timezone.now()
    event = _set_status(
        conversation,
        Status.OPEN,
        actor=actor,
        at=at,
        kind=Event.Kind.REOPENED,
        agent=conversation.assignee,
        data={"by": "agent" if actor else "system", "reason": reason[:500]},
    )
    conversation.last_activity_at = max(conversation.last_activity_at, at)
    _save_conversation(conversation, "status", "closed_at", "last_activity_at")
    return event


@transaction.atomic
def conversation_set_pending(
    *, conversation: Conversation, actor: User, expected_version: int | None = None
) -> Event:
    conversation = _locked(conversation, expected_version=expected_version)
    if conversation.status not in (Status.NEW, Status.OPEN):
        raise Conflict(
            f"Only new or open conversations can wait on the customer; this one is {conversation.status}."
        )
    event = _set_status(conversation, Status.PENDING, actor=actor, at=timezone.now())
    _save_conversation(conversation, "status")
    return event


# The one answer to a move into a team that is not the actor's, and to a team that does not
# exist: the two cannot be told apart, so team names cannot be probed.
TEAM_NOT_YOURS = "You can only move conversations to your own teams."


@transaction.atomic
def conversation_assign(
    *,
    conversation: Conversation,
    actor: User,
    agent: User | None = None,
    team: Team | None = None,
    unassign: bool = False,
    expected_version: int | None = None,
) -> Conversation:
    """Move to a team and/or an agent. The agent must be a member of the resulting team, and
    a conversation moves only into one of the actor's own teams (admins: any), whether the move
    comes from the page, the API or anywhere else."""
    conversation = _locked(conversation, expected_version=expected_version)
    if (
        team is not None
        and team.pk != conversation.team_id
        and not actor.is_admin
        and not actor.teams.filter(pk=team.pk).exists()
    ):
        raise ApplicationError(TEAM_NOT_YOURS)
    new_team = team if team is not None else conversation.team
    new_agent = None if unassign else (agent if agent is not None else conversation.assignee)
    if (
        team is not None
        and team != conversation.team
        and agent is None
        and new_agent is not None
        and not new_agent.teams.filter(pk=team.pk).exists()
    ):
        new_agent = None  # moving to another team drops an assignee who is not in it
    if new_agent is not None:
        if not new_agent.is_active:
            raise ApplicationError("That agent's account is deactivated.")
        if new_team is not None and not new_agent.teams.filter(pk=new_team.pk).exists():
            raise ApplicationError(f"{new_agent.email} is not a member of team {new_team.name}.")
    if new_team == conversation.team and new_agent == conversation.assignee:
        return conversation
    previous = {"team": conversation.team_id, "agent": conversation.assignee_id}
    conversation.team = new_team
    conversation.assignee = new_agent
    _save_conversation(conversation, "team", "assignee")
    event_record(
        kind=Event.Kind.ASSIGNED,
        conversation=conversation,
        actor=actor,
        agent=new_agent,
        data={
            "from": previous,
            "to": {
                "team": new_team.pk if new_team else None,
                "agent": new_agent.pk if new_agent else None,
            },
        },
    )
    return conversation


@transaction.atomic
def conversation_take_next(*, agent: User) -> Conversation | None:
    """Assign the caller the oldest unassigned new/open conversation of their teams.

    ``SELECT ... FOR UPDATE SKIP LOCKED``: concurrent takers each lock a different row, so one
    conversation is never handed to two agents. None when there is nothing to take.
    """
    # Only the caller's own teams, admins included: an assignee must be a member of the team.
    teams = agent.teams.all()
    candidate = (
        Conversation.objects.select_for_update(skip_locked=True, of=("self",))
        .filter(
            assignee__isnull=True,
            status__in=[Status.NEW, Status.OPEN],
            team__in=teams,
        )
        .order_by("created_at", "id")
        .first()
    )
    if candidate is None:
        return None
    return conversation_assign(conversation=candidate, actor=agent, agent=agent)


@transaction.atomic
def message_move(*, message: Message, to_conversation: Conversation, actor: User) -> Message:
    """Move a message to another conversation of the same customer; both are recounted."""
    message = (
        Message.objects.select_for_update(of=("self",))
        .select_related("conversation")
        .get(pk=message.pk)
    )
    source = message.conversation
    if source.pk == to_conversation.pk:
        raise ApplicationError("The message is already in that conversation.")
    if source.customer_id != to_conversation.customer_id:
        raise ApplicationError(
            "Messages move only between conversations of the same customer; merge first."
        )
    Message.objects.filter(pk=message.pk).update(conversation=to_conversation)
    if message.contact_id and message.channel_kind == ChannelKind.PHONE:
        Contact.objects.filter(pk=message.contact_id).update(conversation=to_conversation)
    conversation_recount_contacts(conversation=source)
    conversation_recount_contacts(conversation=to_conversation)
    for conv in (source, to_conversation):
        stamps = (
            Message.objects.filter(conversation=conv)
            .order_by("-sent_at")
            .values_list("sent_at", flat=True)
        )
        latest = stamps.first()
        if latest is not None:
            Conversation.objects.filter(pk=conv.pk).update(last_activity_at=latest)
    event_record(
        kind=Event.Kind.MESSAGE_MOVED,
        conversation=to_conversation,
        message=message,
        actor=actor,
        data={
            "from": source.pk,
            "to": to_conversation.pk,
            "affected_dates": _solve_dates([source.pk, to_conversation.pk]),
        },
    )
    message.refresh_from_db()
    return message


@transaction.atomic
def conversation_close(
    *, conversation: Conversation, actor: User | None, reason: str = "", at: datetime | None = None
) -> Event:
    """Close a solved conversation before the survey window ends (the customer confirmed it)."""
    conversation = _locked(conversation)
    if conversation.status != Status.SOLVED:
        raise Conflict(
            f"Only solved conversations can be closed; this one is {conversation.status}."
        )
    at = at or timezone.now()
    event = _set_status(
        conversation,
        Status.CLOSED,
        actor=actor,
        at=at,
        kind=Event.Kind.CLOSED,
        data={"by": "agent" if actor else "system", "reason": reason[:500]},
    )
    _save_conversation(conversation, "status", "closed_at")
    return event


def conversations_close_solved(*, now: datetime | None = None) -> int:
    """Close conversations solved longer than the survey window ago (no reopen since)."""
    now = now or timezone.now()
    cutoff = now - timedelta(days=settings.CLOSE_SOLVED_AFTER_DAYS)
    closed = 0
    for pk in Conversation.objects.filter(status=Status.SOLVED, solved_at__lt=cutoff).values_list(
        "pk", flat=True
    )[:1000]:
        with transaction.atomic():
            conversation = Conversation.objects.select_for_update().get(pk=pk)
            if conversation.status != Status.SOLVED:
                continue
            _set_status(conversation, Status.CLOSED, actor=None, at=now, kind=Event.Kind.CLOSED)
            _save_conversation(conversation, "status", "closed_at")
            closed += 1
    return closed


# --- Outbound webhooks for chat and social -----------------------------------------------------

WEBHOOK_SIGNATURE_HEADER = "X-Supportdesk-Signature"
WEBHOOK_TIMESTAMP_HEADER = "X-Supportdesk-Timestamp"
WEBHOOK_TIMEOUT_SECONDS = 10


class WebhookRejected(Exception):
    """The receiver answered with a 4xx that retrying will not change."""


def webhook_signature(*, secret: str, timestamp: str, body: bytes) -> str:
    """``sha256=<hex>`` of HMAC-SHA256(secret, "<timestamp>." + body): what receivers verify."""
    digest = hmac.new(secret.encode(), timestamp.encode() + b"." + body, hashlib.sha256)
    return f"sha256={digest.hexdigest()}"


def _webhook_payload(message: Message) -> bytes:
    identity = message.identity
    author = message.author
    return json.dumps(
        {
            "type": "message.outbound",
            "message_id": message.pk,
            "conversation_id": message.conversation_id,
            "channel": message.channel_kind,
            "thread_key": message.thread_key or _thread_key_for_reply(message),
            "to": {"kind": identity.kind, "value": identity.value} if identity else None,
            "author": {"name": author.full_name or author.first_name} if author else None,
            "body": message.body_text,
            "sent_at": message.sent_at.isoformat(),
        },
        sort_keys=True,
    ).encode()


def _latest_session(conversation: Conversation, channel: Channel | None) -> str:
    """The thread key (chat session) of the customer's latest message on ``channel``."""
    if channel is None:
        return ""
    return (
        Message.objects.filter(
            conversation_id=conversation.pk, channel_id=channel.pk, direction=Direction.INBOUND
        )
        .exclude(thread_key="")
        .order_by("-sent_at", "-id")
        .values_list("thread_key", flat=True)
        .first()
        or ""
    )


def _thread_key_for_reply(message: Message) -> str:
    return (
        Message.objects.filter(
            conversation_id=message.conversation_id,
            channel_id=message.channel_id,
            direction=Direction.INBOUND,
        )
        .exclude(thread_key="")
        .order_by("-sent_at", "-id")
        .values_list("thread_key", flat=True)
        .first()
        or ""
    )


class _RefuseRedirects(urllib.request.HTTPRedirectHandler):
    """A 3xx ends the delivery: following it would let a receiver (or whoever answers at its
    address) point the desk's signed POST at loopback, private or cloud-metadata addresses."""

    def redirect_request(self, *args: Any, **kwargs: Any) -> None:
        return None


_WEBHOOK_OPENER = urllib.request.build_opener(_RefuseRedirects)


def _webhook_urlopen(request: urllib.request.Request, *, timeout: float) -> Any:
    return _WEBHOOK_OPENER.open(request, timeout=timeout)


def message_webhook_send(*, message_id: int) -> bool:
    """POST a chat/social reply to its channel's webhook URL exactly once; True if this call did.

    Claimed like ``message_email_send`` (queued -> sending). Signed with the channel's secret:
    ``X-Supportdesk-Timestamp`` and ``X-Supportdesk-Signature: sha256=HMAC(secret, ts + "." +
    body)``. A 3xx (redirects are not followed) or a 4xx other than 408/429 fails the message at
    once (``WebhookRejected``); network errors and 5xx put it back to queued and re-raise so the
    task retries with backoff. ``delivery_error`` never names the URL.
    """
    now = timezone.now()
    if not _message_claim_for_sending(
        message_id=message_id, kinds=[ChannelKind.CHAT, ChannelKind.SOCIAL]
    ):
        return False
    message = Message.objects.select_related("channel", "identity", "author").get(pk=message_id)
    channel = message.channel
    if channel is None or not channel.webhook_url:
        Message.objects.filter(pk=message_id).update(
            delivery_state=Message.Delivery.NOT_SENT,
            delivery_error="The channel has no webhook URL any more.",
        )
        return False
    body = _webhook_payload(message)
    timestamp = str(int(now.timestamp()))
    request = urllib.request.Request(
        channel.webhook_url,
        data=body,
        method="POST",
        headers={
            "Content-Type": "application/json",
            "User-Agent": "Supportdesk-Webhook/1",
            WEBHOOK_TIMESTAMP_HEADER: timestamp,
            WEBHOOK_SIGNATURE_HEADER: webhook_signature(
                secret=channel.secret, timestamp=timestamp, body=body
            ),
        },
    )
    # delivery_error is shown to every agent of the conversation: it never carries the URL,
    # which often holds the receiver's credentials.
    try:
        with _webhook_urlopen(request, timeout=WEBHOOK_TIMEOUT_SECONDS):
            pass
    except urllib.error.HTTPError as exc:
        if 300 <= exc.code < 400:
            error = f"HTTP {exc.code} (a redirect) from the webhook URL; redirects are not followed."
        else:
            error = f"HTTP {exc.code} from the webhook URL."
        if 300 <= exc.code < 500 and exc.code not in (408, 429):
            message_delivery_failed(message_id=message_id, error=error, from_state="sending")
            raise WebhookRejected(error) from exc
        _delivery_requeue(message_id, error)
        raise
    except urllib.error.URLError as exc:
        reason = str(exc.reason).replace(channel.webhook_url, "the webhook URL")
        _delivery_requeue(message_id, f"Network error: {reason}")
        raise
    except (OSError, ValueError) as exc:
        reason = (str(exc) or exc.__class__.__name__).replace(channel.webhook_url, "the webhook URL")
        _delivery_requeue(message_id, reason)
        raise
    Message.objects.filter(pk=message_id).update(
        delivery_state=Message.Delivery.SENT, delivered_at=timezone.now(), delivery_error=""
    )
    return True


def _delivery_requeue(message_id: int, error: str) -> None:
    Message.objects.filter(pk=message_id, delivery_state=Message.Delivery.SENDING).update(
        delivery_state=Message.Delivery.QUEUED, delivery_error=error[:2000]
    )


def chat_replies_mark_delivered(*, message_ids: Sequence[int]) -> int:
    """The visitor's /chat/ page showed these queued replies: they are delivered (a read-receipt)."""
    if not message_ids:
        return 0
    return Message.objects.filter(
        pk__in=list(message_ids),
        direction=Direction.OUTBOUND,
        channel_kind=ChannelKind.CHAT,
        delivery_state=Message.Delivery.QUEUED,
        channel__webhook_url="",
    ).update(delivery_state=Message.Delivery.SENT, delivered_at=timezone.now())


@transaction.atomic
def channel_set_webhook(*, channel: Channel, webhook_url: str) -> Channel:
    """Set (or clear with "") where replies on a chat or social channel are delivered."""
    if webhook_url and channel.kind not in (ChannelKind.CHAT, ChannelKind.SOCIAL):
        raise ApplicationError("Only chat and social channels deliver by webhook.")
    if webhook_url and not webhook_url.startswith(("https://", "http://")):
        raise ApplicationError("The webhook URL must start with https:// or http://.")
    channel.webhook_url = webhook_url
    channel.save(update_fields=["webhook_url", "updated_at"])
    return channel


# --- Saved replies (macros) -----------------------------------------------------------------------

SAVED_REPLY_VARIABLES = ("{customer_first_name}", "{agent_first_name}")


def saved_reply_create_or_update(*, title: str, body: str, is_active: bool = True) -> SavedReply:
    """Create or update a saved reply by title."""
    title, body = title.strip()[:100], body.strip()
    if not title or not body:
        raise ApplicationError("A saved reply needs a title and a body.")
    reply, _ = SavedReply.objects.update_or_create(
        title=title, defaults={"body": body, "is_active": is_active}
    )
    return reply


def saved_replies_seed_defaults() -> int:
    """Create the default saved replies that are missing (by title); returns how many."""
    created = 0
    for title, body in DEFAULT_SAVED_REPLIES:
        _, was_created = SavedReply.objects.get_or_create(title=title, defaults={"body": body})
        created += was_created
    return created


def saved_reply_render(*, saved_reply: SavedReply, customer: Customer, agent: User) -> str:
    """The body with its variables filled in (pure: no query, nothing stored)."""
    customer_first = (customer.name or "").split()[0] if (customer.name or "").split() else "there"
    return saved_reply.body.replace("{customer_first_name}", customer_first).replace(
        "{agent_first_name}", agent.first_name or "the support team"
    )


# --- Presence (collision) -------------------------------------------------------------------------

PRESENCE_TTL_SECONDS = 40


def conversation_presence_touch(
    *, conversation: Conversation, user: User, replying: bool = False
) -> ConversationViewer:
    """Record that ``user`` has the conversation open (and is writing a reply, if ``replying``).

    One INSERT ... ON CONFLICT DO UPDATE on (conversation, user): a heartbeat is one query.
    """
    now = timezone.now()
    viewer = ConversationViewer(
        conversation=conversation,
        user=user,
        last_seen_at=now,
        replying_at=now if replying else None,
    )
    ConversationViewer.objects.bulk_create(
        [viewer],
        update_conflicts=True,
        unique_fields=["conversation", "user"],
        update_fields=["last_seen_at", "replying_at"] if replying else ["last_seen_at"],
    )
    return viewer


def conversation_presence_leave(*, conversation: Conversation, user: User) -> None:
    """The agent closed the page: drop their presence at once."""
    ConversationViewer.objects.filter(conversation=conversation, user=user).delete()
