"""The event log and the conversation row's status and version (every write goes through here)."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from django.db.models import F
from django.utils import timezone

from supportdesk import events as event_bus
from supportdesk.models import Team, User
from supportdesk.outbox import outbox_enqueue_each
from tickets.models import Conversation, Customer, Event, Message

Status = Conversation.Status


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
    # The conversation's customer and team by id: reading the rows only for their keys would
    # cost a query each.
    customer_id = customer.pk if customer is not None else None
    if customer is None and conversation is not None:
        customer_id = conversation.customer_id
    team_id = team.pk if team is not None else None
    if team is None and conversation is not None:
        team_id = conversation.team_id
    event = Event.objects.create(
        kind=kind,
        occurred_at=occurred_at or timezone.now(),
        conversation=conversation,
        customer_id=customer_id,
        message=message,
        actor=actor,
        agent=agent,
        team_id=team_id,
        channel_kind=channel_kind,
        data=data or {},
    )
    task_names = event_bus.subscribers_for(kind)
    if task_names:
        outbox_enqueue_each(task_names=task_names, kwargs={"event_id": event.pk})
    return event


def conversation_set_status(
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


def conversation_save(conversation: Conversation, *fields: str, locked: bool = False) -> None:
    """Save ``fields`` and bump the row's version. ``locked``: the caller created the row or
    holds its lock (``select_for_update``) in this transaction, so the version it read is the
    row's and the new one is known without reading it back."""
    read = conversation.version
    conversation.version = F("version") + 1
    conversation.save(update_fields=[*fields, "version", "updated_at"])
    if locked and isinstance(read, int):
        conversation.version = read + 1
    else:
        conversation.refresh_from_db(fields=["version"])
