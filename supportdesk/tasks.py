from celery import shared_task

from supportdesk.services import (
    idempotency_keys_prune,
    notification_email_send,
    outbox_prune,
    outbox_relay_pending,
)


@shared_task(ignore_result=True)
def outbox_relay_task() -> int:
    return outbox_relay_pending()


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
