"""Agents reaching out: start a conversation with a customer, log a phone call.

Both count contacts by the one rule (docs/metrics.md, "Counting contacts"): a conversation the
desk starts has no contact until the customer writes; an inbound call an agent logs goes through
the ingestion path like a phone system's call (one call, one contact); an outbound call is never a
contact.
"""

from __future__ import annotations

import secrets
from dataclasses import dataclass
from datetime import datetime

from django.core.exceptions import ValidationError
from django.db import transaction
from django.utils import timezone

from supportdesk.errors import ApplicationError, Conflict
from supportdesk.models import Team, User
from tickets import tokens
from tickets.identities import normalise_identity
from tickets.models import (
    Call,
    Channel,
    ChannelKind,
    Contact,
    Conversation,
    Customer,
    Event,
    Identity,
    Message,
)
from tickets.services.conversations import TEAM_NOT_YOURS, conversation_reply
from tickets.services.customers import HandleTaken, customer_create, identity_link
from tickets.services.events import conversation_save, conversation_set_status, event_record
from tickets.services.ingest import Inbound, clamp_sent_at, ingest

Status = Conversation.Status
Direction = Message.Direction

# The identity kind an agent writes to on each channel kind a conversation can start on.
START_KINDS = {ChannelKind.EMAIL: "email", ChannelKind.CHAT: "chat", ChannelKind.SOCIAL: "social"}
# Longest call the desk takes a log of (a day); anything longer is a typing error.
CALL_MAX_SECONDS = 24 * 3600


@dataclass(frozen=True)
class Handle:
    """A handle the agent typed: ``kind`` (email, phone, chat, social) and ``value``."""

    kind: str
    value: str


def _team_for_start(*, actor: User, channel: Channel, team: Team | None) -> Team | None:
    """The team the new conversation belongs to: the one asked for (one of the actor's own),
    else the channel's team when the actor works in it, else the actor's only team."""
    own = list(actor.teams.all())
    if team is not None:
        if not actor.is_admin and team not in own:
            raise ApplicationError(TEAM_NOT_YOURS)
        return team
    if channel.team is not None and (actor.is_admin or channel.team in own):
        return channel.team
    if len(own) == 1:
        return own[0]
    if not own and actor.is_admin:
        return channel.team
    raise ApplicationError("Choose the team this conversation belongs to.")


def _recipient(
    *, actor: User, kind: str, customer: Customer | None, to: Handle | None
) -> tuple[Customer, Identity]:
    """The customer and the handle to write to; a new customer (or a new handle of ``customer``)
    when the handle is unknown."""
    if customer is not None and customer.merged_into_id is not None:
        raise Conflict("This customer was merged into another one; write to that one instead.")
    if to is not None:
        if to.kind != kind:
            raise ApplicationError(
                f"A {kind} conversation is written to a {kind} handle, not {to.kind}."
            )
        try:
            value = normalise_identity(to.kind, to.value)
        except ValidationError as exc:
            raise ApplicationError(exc.messages[0]) from exc
        identity = (
            Identity.objects.select_related("customer").filter(kind=to.kind, value=value).first()
        )
        if identity is not None:
            holder = identity.customer
            while holder.merged_into_id is not None:
                holder = Customer.objects.get(pk=holder.merged_into_id)
            if customer is not None and holder.pk != customer.pk:
                raise HandleTaken(holder_id=holder.pk)
            return holder, identity
        if customer is not None:
            return customer, identity_link(
                customer=customer, kind=to.kind, value=to.value, actor=actor
            )
        created = customer_create(actor=actor, handles=[(to.kind, to.value)])
        return created, created.identities.get()
    if customer is None:
        raise ApplicationError("Say who to write to: a customer, or a handle in `to`.")
    identity = (
        Identity.objects.filter(customer=customer, kind=kind, undeliverable_at__isnull=True)
        .order_by("-verified", "pk")
        .first()
    )
    if identity is None:
        raise ApplicationError(
            f"{customer} has no {'deliverable ' if kind == 'email' else ''}{kind} handle; "
            f"give one in `to` (it is linked to them)."
        )
    return customer, identity


@transaction.atomic
def conversation_start(
    *,
    actor: User,
    channel: Channel,
    body: str,
    customer: Customer | None = None,
    to: Handle | None = None,
    subject: str = "",
    team: Team | None = None,
) -> Conversation:
    """The desk writes first: a new conversation with the agent's message, sent on ``channel``.

    ``customer`` and/or ``to`` say who: an existing customer (their handle on the channel's kind),
    a handle that finds one, or an unknown handle, which creates the customer (or links it to
    ``customer``). On email the message goes out through the outbox like any reply, with its own
    Message-ID and the signed reply address, so the answer threads back; on chat and social it is
    posted to the channel's webhook. The conversation waits on the customer (``pending``), is
    assigned to the actor and counts **no contact** until the customer writes (docs/metrics.md).
    Records ``conversation.created`` (``by: agent``), ``message.replied`` and the status change.
    """
    body = (body or "").strip()
    if not body:
        raise ApplicationError("Write the message to send.")
    if not channel.is_active:
        raise ApplicationError(f"The channel {channel.name} is switched off.")
    kind = START_KINDS.get(ChannelKind(channel.kind))
    if kind is None:
        raise ApplicationError("A phone conversation starts with a call: log the call instead.")
    if channel.kind != ChannelKind.EMAIL and not channel.webhook_url:
        raise ApplicationError(
            f"The {channel.kind} channel {channel.name} has no webhook URL to deliver a first "
            "message to; the customer has to start there."
        )
    conversation_team = _team_for_start(actor=actor, channel=channel, team=team)
    recipient, identity = _recipient(actor=actor, kind=kind, customer=customer, to=to)
    if kind == "email" and identity.undeliverable_at is not None:
        raise ApplicationError(f"{identity.value} bounced; give another address.")
    now = timezone.now()
    subject = " ".join((subject or "").split())[:998]
    conversation = Conversation.objects.create(
        customer=recipient,
        team=conversation_team,
        subject=subject or _first_line(body),
        status=Status.NEW,
        channels=[],
        last_activity_at=now,
    )
    event_record(
        kind=Event.Kind.CONVERSATION_CREATED,
        conversation=conversation,
        actor=actor,
        channel_kind=channel.kind,
        occurred_at=now,
        data={"status_to": Status.NEW, "follow_up_of": None, "by": "agent"},
    )
    message = conversation_reply(
        conversation=conversation,
        author=actor,
        body=body,
        channel_kind=channel.kind,
        at=now,
        route=(channel, identity),
    )
    if message.channel_kind == ChannelKind.EMAIL:
        # The first mail of a conversation is no reply: its subject carries no "Re:".
        tag = tokens.subject_tag(conversation.pk)
        Message.objects.filter(pk=message.pk).update(subject=f"{conversation.subject} {tag}")
    conversation.refresh_from_db()
    conversation_set_status(conversation, Status.PENDING, actor=actor, at=now)
    conversation_save(conversation, "status")
    return conversation


def _first_line(body: str) -> str:
    line = next((part.strip() for part in body.splitlines() if part.strip()), "")
    return line[:80] + ("…" if len(line) > 80 else "")


def _phone_channel(conversation: Conversation) -> Channel:
    """The phone line of the conversation's last call, else its team's, else the desk's first."""
    last = (
        Message.objects.filter(
            conversation=conversation, channel_kind=ChannelKind.PHONE, channel__isnull=False
        )
        .select_related("channel")
        .order_by("-sent_at", "-id")
        .first()
    )
    if last is not None and last.channel is not None and last.channel.is_active:
        return last.channel
    phones = Channel.objects.filter(kind=ChannelKind.PHONE, is_active=True)
    same_team = phones.filter(team=conversation.team) if conversation.team else phones.none()
    channel = same_team.order_by("pk").first() or phones.order_by("pk").first()
    if channel is None:
        raise ApplicationError(
            "This desk has no phone channel to log calls on; an admin creates one with "
            "`manage.py create_channel phone NAME --team TEAM`."
        )
    return channel


def _summary(direction: str, number: str, wait: int, talk: int, hold: int, ended_by: str) -> str:
    minutes, seconds = divmod(talk, 60)
    who = f" {number}" if number else ""
    if direction == Call.Direction.INBOUND:
        head = f"Phone call from{who or ' the customer'}"
    elif talk:
        head = f"Called{who or ' the customer'}"
    else:
        head = f"Called{who or ' the customer'}: no answer"
    return (
        f"{head}: waited {wait}s, talked {minutes}m {seconds}s, on hold {hold}s, "
        f"ended by {ended_by}."
    )


@transaction.atomic
def call_log(
    *,
    conversation: Conversation | None,
    actor: User,
    direction: str,
    started_at: datetime | None,
    wait_seconds: int,
    talk_seconds: int,
    hold_seconds: int,
    ended_by: str,
    notes: str = "",
    customer: Customer | None = None,
    team: Team | None = None,
) -> Call:
    """Log a call on a conversation, during it or afterwards.

    With ``conversation=None`` the call starts a new conversation of ``customer`` in ``team``
    (default: the actor's team; ``conversation.created`` with ``by: agent``).

    **Inbound** (the customer called): stored through the ingestion path exactly like a phone
    system's call (``inbound_phone``): one call is one contact (docs/metrics.md), it reopens a
    solved conversation, opens a follow-up of a closed one, cancels a pending survey, and its
    Contact carries the times and the actor as the call's agent (``handle_time``,
    ``system_disconnect_rate``). **Outbound** (we called): never a contact. With talk time it is
    the agent's public answer on the phone (a ``message.replied`` event, like a reply); without,
    it is an internal note that nobody picked up. Either way a ``Call`` row keeps the times and
    who logged it, and ``call.logged`` is recorded. Returns the Call.
    """
    if direction not in Call.Direction.values:
        raise ApplicationError("direction must be inbound or outbound.")
    if ended_by not in Contact.EndedBy.values:
        raise ApplicationError("ended_by must be customer, agent or system.")
    for label, value in (("wait", wait_seconds), ("talk", talk_seconds), ("hold", hold_seconds)):
        if value < 0 or value > CALL_MAX_SECONDS:
            raise ApplicationError(f"{label}_seconds must be between 0 and {CALL_MAX_SECONDS}.")
    at = clamp_sent_at(started_at)
    notes = (notes or "").strip()
    if conversation is None:
        if customer is None:
            raise ApplicationError("Say whose call it is: a conversation or a customer.")
        conversation = _conversation_for_call(
            actor=actor, customer=customer, team=team, notes=notes, at=at
        )
    channel = _phone_channel(conversation)
    phone = (
        Identity.objects.filter(customer_id=conversation.customer_id, kind=Identity.Kind.PHONE)
        .order_by("-verified", "pk")
        .first()
    )
    number = phone.value if phone is not None else ""
    summary = _summary(direction, number, wait_seconds, talk_seconds, hold_seconds, ended_by)
    body = f"{summary}\n\n{notes}".strip()
    if direction == Call.Direction.INBOUND:
        result = ingest(
            Inbound(
                channel=channel,
                external_id=f"logged-call-{secrets.token_hex(12)}",
                handles=[("phone", phone.value, phone.display_value)] if phone else [],
                name="",
                subject=_first_line(notes) or f"Phone call from {number or 'the customer'}",
                body_text=body,
                sent_at=at,
                raw=b"",
                call={
                    "wait_seconds": wait_seconds,
                    "talk_seconds": talk_seconds,
                    "hold_seconds": hold_seconds,
                    "ended_by": ended_by,
                    "agent": actor,
                },
                conversation_id=conversation.pk,
            )
        )
        message = Message.objects.select_related("conversation").get(pk=result.message_id)
    else:
        message = _outbound_call_message(
            conversation=conversation,
            actor=actor,
            channel=channel,
            phone=phone,
            body=body,
            at=at,
            answered=talk_seconds > 0,
        )
    call = Call.objects.create(
        message=message,
        direction=direction,
        started_at=at,
        wait_seconds=wait_seconds,
        talk_seconds=talk_seconds,
        hold_seconds=hold_seconds,
        ended_by=ended_by,
        logged_by=actor,
    )
    event_record(
        kind=Event.Kind.CALL_LOGGED,
        conversation=message.conversation,
        message=message,
        actor=actor,
        agent=actor,
        channel_kind=ChannelKind.PHONE,
        occurred_at=at,
        data={
            "call": call.pk,
            "direction": direction,
            "talk_seconds": talk_seconds,
            "contact": message.contact_id,
        },
    )
    return call


def _conversation_for_call(
    *, actor: User, customer: Customer, team: Team | None, notes: str, at: datetime
) -> Conversation:
    own = list(actor.teams.all())
    if team is not None and not actor.is_admin and team not in own:
        raise ApplicationError(TEAM_NOT_YOURS)
    if team is None and len(own) > 1:
        raise ApplicationError("Choose the team this call belongs to.")
    if customer.merged_into_id is not None:
        raise Conflict("This customer was merged into another one; log the call there.")
    conversation = Conversation.objects.create(
        customer=customer,
        team=team or (own[0] if own else None),
        subject=_first_line(notes) or "Phone call",
        status=Status.NEW,
        channels=[],
        last_activity_at=at,
    )
    event_record(
        kind=Event.Kind.CONVERSATION_CREATED,
        conversation=conversation,
        actor=actor,
        channel_kind=ChannelKind.PHONE,
        occurred_at=at,
        data={"status_to": Status.NEW, "follow_up_of": None, "by": "agent"},
    )
    return conversation


def _outbound_call_message(
    *,
    conversation: Conversation,
    actor: User,
    channel: Channel,
    phone: Identity | None,
    body: str,
    at: datetime,
    answered: bool,
) -> Message:
    locked = Conversation.objects.select_for_update(of=("self",)).get(pk=conversation.pk)
    if not answered:
        message = Message.objects.create(
            conversation=locked,
            channel=channel,
            channel_kind=ChannelKind.PHONE,
            direction=Direction.NOTE,
            author=actor,
            identity=phone,
            body_text=body,
            sent_at=at,
        )
        locked.last_activity_at = max(locked.last_activity_at, at)
        conversation_save(locked, "last_activity_at")
        return message
    if locked.status == Status.CLOSED:
        raise Conflict("This conversation is closed; log the call on a new conversation.")
    message = Message.objects.create(
        conversation=locked,
        channel=channel,
        channel_kind=ChannelKind.PHONE,
        direction=Direction.OUTBOUND,
        author=actor,
        identity=phone,
        body_text=body,
        sent_at=at,
        delivery_state=Message.Delivery.SENT,
        delivered_at=at,
    )
    if ChannelKind.PHONE not in locked.channels:
        locked.channels = [*locked.channels, ChannelKind.PHONE]
    if locked.status == Status.NEW:
        conversation_set_status(locked, Status.OPEN, actor=actor, at=at, message=message)
    if locked.assignee_id is None and (
        locked.team_id is None or actor.teams.filter(pk=locked.team_id).exists()
    ):
        locked.assignee = actor
    locked.last_activity_at = max(locked.last_activity_at, at)
    conversation_save(locked, "channels", "status", "assignee", "last_activity_at")
    event_record(
        kind=Event.Kind.REPLIED,
        conversation=locked,
        message=message,
        actor=actor,
        agent=actor,
        channel_kind=ChannelKind.PHONE,
        occurred_at=at,
    )
    return message
