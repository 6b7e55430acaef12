"""Thin Celery tasks: primitive ids in, one service call. Each is safe to run twice."""

from __future__ import annotations

import logging

from celery import shared_task

from supportdesk.events import REACTION_TASK_OPTIONS
from surveys import services
from tickets.models import Event

logger = logging.getLogger(__name__)


def _event(event_id: int) -> Event | None:
    event = Event.objects.filter(pk=event_id).first()
    if event is None:
        logger.warning("event %s not found", event_id)
    return event


@shared_task(**REACTION_TASK_OPTIONS)
def survey_schedule_task(event_id: int) -> None:
    """conversation.solved: schedule the survey (a database row; beat sends it when due)."""
    event = _event(event_id)
    if event is not None:
        services.survey_schedule(event=event)


@shared_task(**REACTION_TASK_OPTIONS)
def survey_cancel_for_inbound_task(event_id: int) -> None:
    """message.inbound: the customer wrote again before the survey went out."""
    event = _event(event_id)
    if event is not None:
        services.survey_cancel_for_inbound(event=event)


@shared_task(**REACTION_TASK_OPTIONS)
def surveys_cancel_for_spam_task(event_id: int) -> None:
    """conversation.spam_marked: spam is never surveyed."""
    event = _event(event_id)
    if event is not None and event.conversation_id is not None:
        services.surveys_cancel_for_spam(conversation_id=event.conversation_id)


@shared_task(**REACTION_TASK_OPTIONS)
def survey_mark_bounced_task(event_id: int) -> None:
    """identity.undeliverable: surveys sent to that address bounced."""
    event = _event(event_id)
    if event is not None and event.data.get("identity"):
        services.survey_mark_bounced(identity_id=int(event.data["identity"]))


@shared_task(**REACTION_TASK_OPTIONS)
def surveys_customer_merged_task(event_id: int) -> None:
    """customer.merged / customer.merge_undone: survey history follows the customer."""
    event = _event(event_id)
    if event is None:
        return
    if event.kind == Event.Kind.CUSTOMER_MERGED:
        services.surveys_move_customer(
            from_customer_id=int(event.data["merged"]), to_customer_id=int(event.data["target"])
        )
    else:
        services.surveys_follow_conversations(
            conversation_ids=[int(i) for i in event.data.get("conversation_ids", [])]
        )


@shared_task(ignore_result=True)
def surveys_send_due_task() -> int:
    """Beat, every minute: the surveys whose time has come."""
    return services.surveys_send_due()


@shared_task(ignore_result=True)
def surveys_remind_due_task() -> int:
    """Beat, hourly: the single reminder of unanswered surveys."""
    return services.surveys_remind_due()
