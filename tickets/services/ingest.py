"""Ingestion: inbound messages of every channel become customers, conversations and contacts.

Email enters through ``inbound_email``; chat, social and phone through the functions at the end."""

from __future__ import annotations

import logging
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from django.conf import settings
from django.core.exceptions import ValidationError
from django.core.files.base import ContentFile
from django.db import IntegrityError, transaction
from django.db.models import Exists, OuterRef, Subquery
from django.utils import timezone

from supportdesk import extensions
from supportdesk.errors import ApplicationError, Conflict, PayloadTooLarge
from supportdesk.models import User
from supportdesk.services import sent_mail_exists
from tickets import tokens
from tickets.identities import (
    normalise_email,
)
from tickets.models import (
    Attachment,
    Channel,
    ChannelKind,
    Conversation,
    ConversationParticipant,
    Customer,
    Event,
    Identity,
    Message,
    QuarantinedMessage,
)
from tickets.services.acknowledgement import acknowledgement_enqueue
from tickets.services.contacts import (
    contact_open,
    contact_reason,
    conversation_is_answered,
    counted_inbound,
)
from tickets.services.customers import (
    customer_for_handles,
    customer_language_detected,
    live_customer,
)
from tickets.services.events import conversation_save, conversation_set_status, event_record
from tickets.services.outbound_mail import participants_add

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


@dataclass
class Inbound:
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
    # Email: (name, normalised address) of the other people in To and Cc (not us, not the sender).
    copied: tuple[tuple[str, str], ...] = ()
    # A call an agent logs on a conversation they have open (``call_log``): it joins that
    # conversation instead of being threaded or attached by the rules below.
    conversation_id: int | None = None
    # The customer's language as the message states it (an email's Content-Language, the chat
    # page's browser): stored on the customer when none is known (docs/api.md "Languages").
    language: str = ""


# Customer-side times before this are a broken clock or a bad integration, not history.
EARLIEST_MESSAGE_TIME = datetime(2000, 1, 1, tzinfo=UTC)


def clamp_sent_at(at: datetime | None) -> datetime:
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
    found = (
        Message.objects.filter(channel=channel, external_id=external_id)
        .values_list("pk", "conversation_id", "conversation__customer_id")
        .first()
    )
    if found is None:
        return None
    message_id, conversation_id, customer_id = found
    return InboundResult(
        customer_id=customer_id,
        conversation_id=conversation_id,
        message_id=message_id,
        new_contact=False,
        created=False,
    )


# A message's texts: large, and never read to count a contact or to find a conversation.
_TEXT_FIELDS = ("raw", "body_text", "body_html")


def ingest(data: Inbound) -> InboundResult:
    """Store one inbound message exactly once; see the module docstring."""
    for _attempt in range(3):
        existing = _existing_result(data.channel, data.external_id)
        if existing is not None:
            return existing
        try:
            with transaction.atomic():
                return _ingest_once(data)
        except QuarantineInput:
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


def _ingest_once(data: Inbound) -> InboundResult:
    """One inbound message, in the caller's transaction: the steps below, in this order."""
    conversation, identities, by_participant, created = _find_customer_and_conversation(data)
    identity = _note_proof_of_identity(data, identities)
    participant = _participant_for_sender(data, conversation) if by_participant else None
    # Built first and inserted once its contact is known (one INSERT, no UPDATE after it).
    message = _new_message(data, conversation, identity, participant=participant)
    if data.copied and not data.automated:
        _keep_copied_people(data, conversation)
    new_contact = False
    status_before = conversation.status
    if not data.automated:
        new_contact = _count_contact_and_reopen(data, conversation, message, created=created)
    else:
        _store_message(message, data)
        if data.automated == "bounce":
            _mark_bounced(data)
    _record_activity(conversation, message, new_contact=new_contact, automated=data.automated)
    if data.language and not data.automated and not by_participant:
        customer_language_detected(customer_id=conversation.customer_id, language=data.language)
    # A new conversation: its first message is this one.
    first_message = created
    if (
        data.channel.acknowledge
        and not data.automated
        and identity is not None
        and not by_participant
        and first_message
    ):
        acknowledgement_enqueue(message=message)
    if identity is not None and identity.blocked_at is not None and conversation.spam_at is None:
        # A blocked sender: stored (nothing is lost) but as spam, so never in the queue, a
        # survey or a metric.
        # Imported here: triage builds on the agent actions, whose sending path (delivery ->
        # mailboxes) imports this module.
        from tickets.services.triage import conversation_mark_spam

        conversation_mark_spam(conversation=conversation, actor=None, reason="blocked_sender")
    elif not data.automated and not by_participant and conversation.spam_at is None:
        # Routing (rules, assignment, the promised due time) decides in this transaction, so
        # the conversation is never seen unrouted; its hooks never make ingestion fail.
        extensions.run_hooks(
            "conversation.inbound",
            conversation_id=conversation.pk,
            message_id=message.pk,
            created=first_message,
            reopened=status_before in (Status.SOLVED, Status.CLOSED),
            channel_kind=message.channel_kind,
            sent_at=message.sent_at,
            conversation=conversation,
        )
    return InboundResult(
        customer_id=conversation.customer_id,
        conversation_id=conversation.pk,
        message_id=message.pk,
        new_contact=new_contact,
        created=True,
    )


def _find_customer_and_conversation(
    data: Inbound,
) -> tuple[Conversation, dict[str, Identity], bool, bool]:
    """Thread (email) or attach (other channels) to a conversation, or open one; locks it. The
    fourth value: the conversation was opened for this message.

    Automated mail (bounces, our own address) that threads nowhere is quarantined; automated mail
    joins its conversation's customer and never creates identities. A message to a closed
    conversation opens a follow-up. Mail that threads into a conversation from someone who is
    not its customer (a colleague they copied, or someone our reply went to) is that
    conversation's, from a participant: it creates no customer (the third value is True).
    """
    automated = data.automated
    if data.conversation_id is not None:
        logged_on, found, created = _logged_on_conversation(data)
        return logged_on, found, False, created
    conversation = _thread_conversation(data) if data.channel.kind == ChannelKind.EMAIL else None

    if automated and conversation is None and automated in {"bounce", "own_address"}:
        raise QuarantineInput(f"{automated} mail that matches no conversation")

    identities: dict[str, Identity]
    by_participant = False
    if automated and conversation is not None:
        customer, identities = conversation.customer, {}
    elif automated and not data.handles:
        customer, identities = Customer.objects.create(name=data.name[:200]), {}
    elif conversation is not None and (held := _sender_not_the_customer(data, conversation)):
        customer, identities, by_participant = conversation.customer, held[1], True
    else:
        customer, identities = customer_for_handles(
            data.handles,
            name=data.name,
            # Writing from a handle verifies it (``_note_proof_of_identity``): a new one is
            # created verified rather than updated a moment later.
            verified_kind=data.handles[0][0]
            if data.handles and data.channel.kind != ChannelKind.CHAT
            else "",
        )

    locked = False
    if conversation is None and data.channel.kind != ChannelKind.EMAIL:
        conversation, locked = _attach_conversation(customer, data)
    created = False
    if conversation is not None:
        if not locked:
            conversation = Conversation.objects.select_for_update().get(pk=conversation.pk)
        if conversation.status == Status.CLOSED and not automated:
            conversation = _conversation_create(customer, data, follow_up_of=conversation)
            created = True
    else:
        conversation = _conversation_create(customer, data)
        created = True
    return conversation, identities, by_participant, created


def _sender_not_the_customer(
    data: Inbound, conversation: Conversation
) -> tuple[bool, dict[str, Identity]] | None:
    """None when the email's sender is the conversation's customer (or unknown to threading);
    else (True, the sender's own identity if they already have one elsewhere). Never creates."""
    if not data.handles or data.handles[0][0] != Identity.Kind.EMAIL:
        return None
    kind, value, _ = data.handles[0]
    existing = Identity.objects.filter(kind=kind, value=value).select_related("customer").first()
    if existing is not None and live_customer(existing.customer).pk == conversation.customer_id:
        return None
    return True, ({kind: existing} if existing is not None else {})


def _participant_for_sender(
    data: Inbound, conversation: Conversation
) -> ConversationParticipant | None:
    value = data.handles[0][1]
    participants_add(
        conversation=conversation,
        people=[(value, data.name)],
        source=ConversationParticipant.Source.WROTE,
    )
    return ConversationParticipant.objects.filter(conversation=conversation, email=value).first()


def _keep_copied_people(data: Inbound, conversation: Conversation) -> None:
    """The people the sender copied become participants (offered for reply-all); the
    conversation's customer is never their own participant."""
    customer_addresses = set(
        Identity.objects.filter(
            customer_id=conversation.customer_id, kind=Identity.Kind.EMAIL
        ).values_list("value", flat=True)
    )
    people = [(value, name) for name, value in data.copied if value not in customer_addresses]
    if people:
        participants_add(
            conversation=conversation, people=people, source=ConversationParticipant.Source.COPIED
        )


def _logged_on_conversation(data: Inbound) -> tuple[Conversation, dict[str, Identity], bool]:
    """A call an agent logged on a conversation: that conversation (a follow-up if it is closed,
    like any customer message), and the customer's handle it came from when they have one."""
    assert data.conversation_id is not None
    conversation = (
        Conversation.objects.select_for_update(of=("self",))
        .select_related("customer")
        .get(pk=data.conversation_id)
    )
    identities: dict[str, Identity] = {}
    if data.handles:
        kind, value, _ = data.handles[0]
        found = Identity.objects.filter(
            kind=kind, value=value, customer_id=conversation.customer_id
        ).first()
        if found is not None:
            identities[kind] = found
    if conversation.status == Status.CLOSED:
        follow_up = _conversation_create(conversation.customer, data, follow_up_of=conversation)
        return follow_up, identities, True
    return conversation, identities, False


def _note_proof_of_identity(data: Inbound, identities: dict[str, Identity]) -> Identity | None:
    """The identity the message came from; writing from it verifies it and clears a bounce."""
    automated = data.automated
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
    return identity


def _new_message(
    data: Inbound,
    conversation: Conversation,
    identity: Identity | None,
    *,
    participant: ConversationParticipant | None = None,
) -> Message:
    """The inbound message row, not inserted yet (``_store_message`` inserts it)."""
    return Message(
        participant=participant,
        cc=[value for _, value in data.copied],
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
        automated=data.automated,
        sent_at=data.sent_at,
        claimed_email=data.claimed_email,
    )


def _store_message(message: Message, data: Inbound) -> None:
    """Insert the inbound message row and its attachments."""
    message.save(force_insert=True)
    _store_attachments(message, data.attachments)


def _count_contact_and_reopen(
    data: Inbound, conversation: Conversation, message: Message, *, created: bool
) -> bool:
    """A customer's message: open a contact if the rules say so, reopen a solved or pending
    conversation, and give a call's agent an unassigned conversation. True for a new contact.
    ``created``: the conversation was opened for this message (nothing came before it).
    ``message`` is not inserted yet: it is, here, with its contact."""
    status_before = conversation.status
    previous = (
        None
        if created
        # Every stored message is older, or as old with a smaller id than this one will get.
        # Read with whether an agent replied after it (one query); its texts are not needed.
        else counted_inbound(conversation.pk)
        .filter(sent_at__lte=message.sent_at)
        .select_related("contact")
        .defer(*_TEXT_FIELDS)
        .annotate(
            replied_after=Exists(
                Message.objects.filter(
                    conversation_id=conversation.pk,
                    direction=Direction.OUTBOUND,
                    sent_at__gte=OuterRef("sent_at"),
                    sent_at__lte=message.sent_at,
                )
            )
        )
        .order_by("-sent_at", "-id")
        .first()
    )
    previous_contact = previous.contact if previous is not None else None
    answered = previous is not None and conversation_is_answered(
        previous,
        previous_contact=previous_contact,
        replied=previous.replied_after,
    )
    reason = contact_reason(
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
    contact = contact_open(
        message, reason=reason, previous_contact=previous_contact, call=call or None
    )
    message.contact = contact
    _store_message(message, data)
    new_contact = reason is not None
    if new_contact:
        conversation.contacts_counted += 1
    if conversation.first_inbound_at is None:
        conversation.first_inbound_at = message.sent_at
    conversation.last_inbound_at = max(
        conversation.last_inbound_at or message.sent_at, message.sent_at
    )
    if status_before == Status.SOLVED:
        conversation_set_status(
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
        conversation_set_status(
            conversation, Status.OPEN, actor=None, at=message.sent_at, message=message
        )
    if call and call.get("agent") is not None and conversation.assignee_id is None:
        agent = call["agent"]
        if conversation.team_id is None or agent.teams.filter(pk=conversation.team_id).exists():
            conversation.assignee = agent
    return new_contact


def _record_activity(
    conversation: Conversation, message: Message, *, new_contact: bool, automated: str
) -> None:
    """Save the conversation (channels, activity, counts, status) and record the inbound event."""
    if message.channel_kind not in conversation.channels:
        conversation.channels = [*conversation.channels, message.channel_kind]
    conversation.last_activity_at = max(conversation.last_activity_at, message.sent_at)
    conversation_save(
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
        locked=True,  # created or locked by _find_customer_and_conversation
    )
    event_record(
        kind=Event.Kind.INBOUND,
        conversation=conversation,
        message=message,
        channel_kind=message.channel_kind,
        occurred_at=message.sent_at,
        data={"new_contact": new_contact, "automated": automated},
    )


class QuarantineInput(Exception):
    """Input the desk keeps for an admin instead of storing it (see ``quarantine_store``)."""


def _mark_bounced(data: Inbound) -> None:
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
    customer: Customer, data: Inbound, *, follow_up_of: Conversation | None = None
) -> Conversation:
    subject = (
        data.subject
        or subject_from_body(data.body_text)
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


def subject_from_body(body: str) -> str:
    first_line = next((line.strip() for line in body.splitlines() if line.strip()), "")
    return first_line[:80] + ("…" if len(first_line) > 80 else "")


def _attach_conversation(customer: Customer, data: Inbound) -> tuple[Conversation | None, bool]:
    """Chat, social and phone: continue a session/thread, else the one active conversation.
    The second value: the conversation is already locked (a session's, found and locked in
    one query)."""
    if data.thread_key:
        threaded = (
            Conversation.objects.select_for_update()
            .filter(
                pk=Subquery(
                    Message.objects.filter(channel=data.channel, thread_key=data.thread_key)
                    .order_by("-sent_at")
                    .values("conversation_id")[:1]
                )
            )
            .first()
        )
        if threaded is not None and threaded.anonymised_at is None:
            return threaded, True
    since = data.sent_at - timedelta(days=settings.ATTACH_WINDOW_DAYS)
    active = list(
        Conversation.objects.filter(
            customer=customer,
            status__in=Conversation.ACTIVE_STATUSES,
            last_activity_at__gte=since,
        ).order_by("-last_activity_at")[:2]
    )
    return (active[0] if len(active) == 1 else None), False


def _thread_conversation(data: Inbound) -> Conversation | None:
    """Email threading; never into the shell of an erased customer (mail from a former address
    or quoting an old reply starts afresh, with a new customer)."""
    found = _thread_conversation_any(data)
    if (
        found is not None
        and Customer.objects.filter(pk=found.customer_id, erased_at__isnull=False).exists()
    ):
        return None
    return found


def _thread_conversation_any(data: Inbound) -> Conversation | None:
    """Email threading, strongest evidence first: References and In-Reply-To, then the token."""
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


def _takes_part(data: Inbound, conversation: Conversation) -> bool:
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
        # Someone copied on the conversation (by the customer or an agent) received its mail.
        or (
            kind == Identity.Kind.EMAIL
            and ConversationParticipant.objects.filter(
                conversation=conversation, email=value
            ).exists()
        )
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


def attachment_sizes_check(attachments: Iterable[Any]) -> None:
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
