from typing import Any

from celery import Task, shared_task

from supportdesk.outbox import outbox_bundle_run, outbox_prune, outbox_relay_pending
from supportdesk.services import idempotency_keys_prune, notification_email_send


@shared_task(ignore_result=True)
def outbox_relay_task() -> int:
    return outbox_relay_pending()


@shared_task(bind=True, ignore_result=True, acks_late=True, max_retries=None)
def outbox_bundle_task(self: Task[[list[list[Any]]], int], items: list[list[Any]]) -> int:
    """Several outbox rows bound for one queue, published as one message (``_publish``)."""
    left = outbox_bundle_run(items=items)
    if left:  # not even published again: the broker went away; this message carries them
        raise self.retry(kwargs={"items": left}, countdown=10)
    return len(items)


@shared_task(ignore_result=True)
def outbox_prune_task() -> int:
    return outbox_prune()


@shared_task(
    ignore_result=True, acks_late=True, autoretry_for=(OSError,), retry_backoff=True, max_retries=8
)
def notification_email_task(notification_id: int) -> bool:
    return notification_email_send(notification_id=notification_id)


@shared_task(ignore_result=True)
def idempotency_keys_prune_task() -> int:
    return idempotency_keys_prune()
