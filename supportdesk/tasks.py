from celery import shared_task

from supportdesk.services import outbox_prune, outbox_relay_pending


@shared_task(ignore_result=True)
def outbox_relay_task() -> int:
    return outbox_relay_pending()


@shared_task(ignore_result=True)
def outbox_prune_task() -> int:
    return outbox_prune()
