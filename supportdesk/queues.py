"""Celery queues: which task runs on which queue, so each kind of work scales on its own workers.

Four groups of workers, five queues:

- ``ingest``: mailbox polls and the batches of the asynchronous ingestion mode (bursts of
  inbound messages must not wait behind a nightly recompute);
- ``mail`` and ``webhooks``: everything delivered to the outside world (replies, surveys,
  notifications, acknowledgements; channel webhooks), slow and retried, on one worker group;
- ``facts``: the metrics' dirty marks and recomputes (CPU and database heavy);
- ``housekeeping``: the outbox relay, event reactions and the periodic chores; its workers also
  consume the default queue, so tasks queued before the split (or unknown to this map) still run.

A worker started without ``-Q`` consumes every queue (``bin/dev``, tests). ``CELERY_QUEUE_PREFIX``
puts a prefix before every queue name, so several deployments or test runs share one Redis.
This module is plain data (no Django), read by the settings.
"""

from __future__ import annotations

INGEST = "ingest"
MAIL = "mail"
WEBHOOKS = "webhooks"
FACTS = "facts"
HOUSEKEEPING = "housekeeping"
QUEUES = (INGEST, MAIL, WEBHOOKS, FACTS, HOUSEKEEPING)

# The worker groups of docker-compose.yml: each consumes these queues (``celery worker -Q``).
WORKER_GROUPS: dict[str, tuple[str, ...]] = {
    "ingest": (INGEST,),
    "delivery": (MAIL, WEBHOOKS),
    "facts": (FACTS,),
    "housekeeping": (HOUSEKEEPING,),
}

TASK_QUEUES: dict[str, str] = {
    # ingest
    "tickets.tasks.mailboxes_poll_task": INGEST,
    "tickets.tasks.mailbox_poll_task": INGEST,
    "tickets.tasks.inbound_queue_ingest_task": INGEST,
    # mail and webhooks
    "tickets.tasks.message_email_send_task": MAIL,
    "tickets.tasks.acknowledgement_send_task": MAIL,
    "supportdesk.tasks.notification_email_task": MAIL,
    "notifications.tasks.notification_digests_send_task": MAIL,
    "surveys.tasks.surveys_send_due_task": MAIL,
    "surveys.tasks.surveys_remind_due_task": MAIL,
    "tickets.tasks.message_webhook_send_task": WEBHOOKS,
    # facts
    "metrics.tasks.facts_mark_dirty_task": FACTS,
    "metrics.tasks.facts_recompute_dirty_task": FACTS,
    "metrics.tasks.facts_recompute_nightly_task": FACTS,
    "metrics.tasks.facts_roll_up_task": FACTS,
    "metrics.tasks.facts_vacuum_task": FACTS,
    "metrics.tasks.recompute_job_run_task": FACTS,
    "routing.tasks.business_intervals_rebuild_task": FACTS,
    # housekeeping: the relay, reactions to events, periodic chores
    "supportdesk.tasks.outbox_relay_task": HOUSEKEEPING,
    # A bundle of outbox rows is published to its rows' queue (this is only its default).
    "supportdesk.tasks.outbox_bundle_task": HOUSEKEEPING,
    "supportdesk.tasks.outbox_prune_task": HOUSEKEEPING,
    "supportdesk.tasks.idempotency_keys_prune_task": HOUSEKEEPING,
    "tickets.tasks.conversations_close_solved_task": HOUSEKEEPING,
    "tickets.tasks.retention_run_task": HOUSEKEEPING,
    "notifications.tasks.notifications_for_event_task": HOUSEKEEPING,
    "surveys.tasks.survey_schedule_task": HOUSEKEEPING,
    "surveys.tasks.survey_cancel_for_inbound_task": HOUSEKEEPING,
    "surveys.tasks.surveys_cancel_for_spam_task": HOUSEKEEPING,
    "surveys.tasks.survey_mark_bounced_task": HOUSEKEEPING,
    "surveys.tasks.surveys_customer_merged_task": HOUSEKEEPING,
    "quality.tasks.qa_sample_draw_task": HOUSEKEEPING,
    "quality.tasks.pulse_week_open_task": HOUSEKEEPING,
    "quality.tasks.checkins_create_due_task": HOUSEKEEPING,
    "routing.tasks.routing_sweep_task": HOUSEKEEPING,
    "routing.tasks.rules_no_reply_task": HOUSEKEEPING,
}


def queue_name(queue: str, prefix: str = "") -> str:
    return f"{prefix}{queue}"


def task_routes(prefix: str = "") -> dict[str, dict[str, str]]:
    """``CELERY_TASK_ROUTES``: every task by name to its (prefixed) queue."""
    return {task: {"queue": queue_name(queue, prefix)} for task, queue in TASK_QUEUES.items()}


def task_queue_names(prefix: str = "", *, default_queue: str = "celery") -> list[str]:
    """The queues a worker without ``-Q`` consumes: all five and the default queue."""
    return [queue_name(queue, prefix) for queue in QUEUES] + [default_queue]
