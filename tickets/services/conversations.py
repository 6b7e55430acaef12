"""Agent actions on a conversation: reply, solve, reopen, pending, assign, take next, move, close."""

from __future__ import annotations

import secrets
from collections.abc import Sequence
from datetime import datetime, timedelta

from django.conf import settings
from django.db import transaction
from django.utils import timezone

from supportdesk import extensions
from supportdesk.errors import ApplicationError, Conflict
from supportdesk.models import Team, User
from supportdesk.outbox import outbox_enqueue
from tickets import tokens
from tickets.models import (
    Channel,
    ChannelKind,
    Contact,
    Conversation,
    ConversationParticipant,
    Event,
    Identity,
    Message,
)
from tickets.services.contacts import conversation_recount_contacts
from tickets.services.customers import solve_dates
from tickets.services.delivery import chat_session_latest
from tickets.services.events import conversation_save, conversation_set_status, event_record
from tickets.services.outbound_mail import (
    OutboundFile,
    participants_add,
    reply_bodies,
    reply_copies_clean,
    reply_files_check,
    reply_files_store,
)

Status = Conversation.Status
Direction = Message.Direction


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


def conversation_lock(
    conversation: Conversation, *, expected_version: int | None = None
) -> Conversation:
    """The conversation, row-locked for the caller's transaction (``StaleVersion`` if it
    changed since ``expected_version``): for services of other modules."""
    return _locked(conversation, expected_version=expected_version)


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
    cc: Sequence[str] = (),
    bcc: Sequence[str] = (),
    attachments: Sequence[OutboundFile] = (),
    route: tuple[Channel, Identity] | None = None,
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

    Email replies also take ``cc`` and ``bcc`` (addresses; Cc'd people become participants,
    offered for reply-all later) and ``attachments`` (files, also allowed on notes), checked
    against the inbound limits before anything is stored (413 per file over
    ``ATTACHMENT_MAX_BYTES``). The stored body is what the customer receives: the agent's text,
    then the agent's and the mailbox's signatures; ``body_html`` is its rendered Markdown.
    ``route``: the channel and the customer's handle to write to, when the caller chose them
    (``conversation_start``); otherwise the customer's last channel of that kind decides.
    """
    body = (body or "").strip()
    if not body:
        raise ApplicationError("A reply needs a body.")
    reply_files_check(attachments)
    if internal and (cc or bcc):
        raise ApplicationError("An internal note is never sent; it takes no cc or bcc.")
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
        reply_files_store(message=message, files=attachments)
        conversation.last_activity_at = max(conversation.last_activity_at, at)
        conversation_save(conversation, "last_activity_at")
        # Higher apps react to notes (the notifications app tells the teammates @-mentioned).
        event_record(
            kind=Event.Kind.NOTE_ADDED,
            conversation=conversation,
            message=message,
            actor=author,
            occurred_at=at,
        )
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
    channel, identity = route or _reply_route(conversation, kind)
    copies: tuple[list[str], list[str]] = ([], [])
    if kind == ChannelKind.EMAIL:
        copies = reply_copies_clean(cc=cc, bcc=bcc, to=identity)
        body_text, body_html = reply_bodies(
            body=body, agent=author, channel=channel, conversation=conversation
        )
    elif cc or bcc:
        raise ApplicationError(f"cc and bcc are for email replies, not {kind}.")
    else:
        body_text, body_html = body, ""
    message = Message.objects.create(
        conversation=conversation,
        channel=channel,
        channel_kind=kind,
        direction=Direction.OUTBOUND,
        author=author,
        identity=identity,
        # A chat reply belongs to the session it answers: only that session's transcript shows it.
        thread_key=chat_session_latest(conversation, channel) if kind == ChannelKind.CHAT else "",
        body_text=body_text,
        body_html=body_html,
        cc=copies[0],
        bcc=copies[1],
        sent_at=at,
        delivery_state=_initial_delivery_state(channel, kind, deliver=deliver),
        delivered_at=None if deliver else at,
    )
    reply_files_store(message=message, files=attachments)
    if copies[0]:
        participants_add(
            conversation=conversation,
            people=[(address, "") for address in copies[0]],
            source=ConversationParticipant.Source.AGENT,
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
        conversation_set_status(conversation, Status.OPEN, actor=author, at=at, message=message)
    if conversation.assignee_id is None:
        conversation.assignee = author
    conversation.last_activity_at = max(conversation.last_activity_at, at)
    # Answered: the promise to the customer is kept or broken, and no longer due.
    conversation.due_at = None
    conversation_save(conversation, "channels", "status", "assignee", "last_activity_at", "due_at")
    event_record(
        kind=Event.Kind.REPLIED,
        conversation=conversation,
        message=message,
        actor=author,
        agent=author,
        channel_kind=kind,
        occurred_at=at,
        data=(
            {"cc": len(copies[0]), "bcc": len(copies[1]), "attachments": len(attachments)}
            if copies[0] or copies[1] or attachments
            else None
        ),
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
    # Attribution (docs/metrics.md): the channel of the last contact before the solve.
    channel_kind = last_contact.channel_kind if last_contact else ""
    if conversation.assignee_id is None:
        conversation.assignee = actor
    event = conversation_set_status(
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
    conversation.due_at = None
    conversation_save(
        conversation, "status", "solved_at", "closed_at", "assignee", "last_activity_at", "due_at"
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
    event = conversation_set_status(
        conversation,
        Status.OPEN,
        actor=actor,
        at=at,
        kind=Event.Kind.REOPENED,
        agent=conversation.assignee,
        data={"by": "agent" if actor else "system", "reason": reason[:500]},
    )
    conversation.last_activity_at = max(conversation.last_activity_at, at)
    conversation_save(conversation, "status", "closed_at", "last_activity_at")
    # Routing reacts in this transaction: the rules for reopened conversations, assignment.
    extensions.run_hooks("conversation.reopened", conversation_id=conversation.pk)
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
    event = conversation_set_status(conversation, Status.PENDING, actor=actor, at=timezone.now())
    conversation_save(conversation, "status")
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
    conversation_save(conversation, "team", "assignee")
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
            spam_at__isnull=True,  # spam is hidden, never handed out
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
            "affected_dates": solve_dates([source.pk, to_conversation.pk]),
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
    event = conversation_set_status(
        conversation,
        Status.CLOSED,
        actor=actor,
        at=at,
        kind=Event.Kind.CLOSED,
        data={"by": "agent" if actor else "system", "reason": reason[:500]},
    )
    conversation_save(conversation, "status", "closed_at")
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
            conversation_set_status(
                conversation, Status.CLOSED, actor=None, at=now, kind=Event.Kind.CLOSED
            )
            conversation_save(conversation, "status", "closed_at")
            closed += 1
    return closed
