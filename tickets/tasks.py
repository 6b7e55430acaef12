"""Thin Celery tasks: primitive ids in, one service call."""

from __future__ import annotations

import logging
import smtplib

from celery import Task, shared_task
from django.conf import settings
from django.db import OperationalError

from tickets.models import RetentionRun
from tickets.services import (
    WebhookRejected,
    acknowledgement_send,
    conversations_close_solved,
    mailbox_poll,
    mailboxes_poll_due,
    message_delivery_failed,
    message_email_send,
    message_webhook_send,
    retention_run,
)
from tickets.services.inbound_queue import inbound_queue_process

logger = logging.getLogger(__name__)


def _backoff(retries: int) -> int:
    """Seconds before the next delivery attempt: DELIVERY_RETRY_SECONDS, doubling, max 30 min."""
    delay: int = settings.DELIVERY_RETRY_SECONDS * 2**retries
    return min(delay, 1800)


_TRANSIENT = (smtplib.SMTPException, ConnectionError, TimeoutError, OSError, OperationalError)


@shared_task(bind=True, acks_late=True, max_retries=8, ignore_result=True)
def message_email_send_task(self: Task[[int], None], message_id: int) -> None:
    try:
        message_email_send(message_id=message_id)
    except _TRANSIENT as exc:
        if self.max_retries is not None and self.request.retries >= self.max_retries:
            message_delivery_failed(message_id=message_id, error=f"gave up after retries: {exc}")
            return
        # 30 s, 60 s, 2 min, ... capped at 30 min: the SMTP server gets time to come back.
        raise self.retry(exc=exc, countdown=_backoff(self.request.retries)) from exc


@shared_task(ignore_result=True)
def conversations_close_solved_task() -> int:
    return conversations_close_solved()


@shared_task(bind=True, acks_late=True, max_retries=8, ignore_result=True)
def message_webhook_send_task(self: Task[[int], None], message_id: int) -> None:
    """Deliver a chat/social reply as a signed webhook, retried with backoff on transient errors."""
    try:
        message_webhook_send(message_id=message_id)
    except WebhookRejected:
        return  # the message is marked failed with the receiver's answer
    except (OSError, ValueError) as exc:
        if self.max_retries is not None and self.request.retries >= self.max_retries:
            message_delivery_failed(message_id=message_id, error=f"gave up after retries: {exc}")
            return
        raise self.retry(exc=exc, countdown=_backoff(self.request.retries)) from exc


@shared_task(bind=True, acks_late=True, max_retries=8, ignore_result=True)
def acknowledgement_send_task(self: Task[[int], None], message_id: int) -> None:
    """The mailbox's "we got your message"; retried on transient SMTP errors, never resent."""
    try:
        acknowledgement_send(message_id=message_id)
    except _TRANSIENT as exc:
        if self.max_retries is not None and self.request.retries >= self.max_retries:
            logger.warning("acknowledgement of message %s not sent: %s", message_id, exc)
            return
        raise self.retry(exc=exc, countdown=_backoff(self.request.retries)) from exc


@shared_task(ignore_result=True)
def mailboxes_poll_task() -> int:
    """Beat, every MAILBOX_POLL_SECONDS: one poll task per active mailbox no poll holds now."""
    due = mailboxes_poll_due()
    for mailbox_id in due:
        mailbox_poll_task.delay(mailbox_id)
    return len(due)


@shared_task(acks_late=True, ignore_result=True)
def mailbox_poll_task(mailbox_id: int) -> str:
    """Poll one mailbox; failures are recorded on the mailbox (its health), never retried here:
    the next beat tick polls again."""
    return mailbox_poll(
        mailbox_id=mailbox_id, max_seconds=settings.MAILBOX_POLL_MAX_SECONDS
    ).summary()


@shared_task(ignore_result=True)
def retention_run_task() -> int:
    """Nightly (beat): apply the retention policy in batches, resuming an unfinished run. It
    works for a few minutes at a time (inside the task time limit) and queues its next turn."""
    run = retention_run(seconds=settings.RETENTION_TASK_SECONDS)
    if run.state == RetentionRun.State.RUNNING:
        retention_run_task.apply_async(countdown=1)
    return run.done


@shared_task(acks_late=True, ignore_result=True)
def inbound_queue_ingest_task(shard: int | None = None) -> int:
    """Asynchronous ingestion: drain the accepted rows of a shard (None: every shard)."""
    return inbound_queue_process(shard=shard)
