from celery import shared_task

from notifications.services import notification_digests_send, notifications_for_event
from supportdesk.events import REACTION_TASK_OPTIONS


@shared_task(**REACTION_TASK_OPTIONS)
def notifications_for_event_task(event_id: int) -> int:
    return len(notifications_for_event(event_id=event_id))


@shared_task(
    ignore_result=True, acks_late=True, autoretry_for=(OSError,), retry_backoff=True, max_retries=8
)
def notification_digests_send_task() -> int:
    return notification_digests_send()
