"""Separate Celery queues: every task and every beat entry lands on its group's queue."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import yaml
from django.conf import settings

from supportdesk import queues
from supportdesk.celery import app as celery_app
from tests.services import celery_publishing_to

EXPECTED = {
    "tickets.tasks.mailboxes_poll_task": "ingest",
    "tickets.tasks.mailbox_poll_task": "ingest",
    "tickets.tasks.inbound_queue_ingest_task": "ingest",
    "tickets.tasks.message_email_send_task": "mail",
    "tickets.tasks.acknowledgement_send_task": "mail",
    "supportdesk.tasks.notification_email_task": "mail",
    "notifications.tasks.notification_digests_send_task": "mail",
    "surveys.tasks.surveys_send_due_task": "mail",
    "surveys.tasks.surveys_remind_due_task": "mail",
    "tickets.tasks.message_webhook_send_task": "webhooks",
    "metrics.tasks.facts_mark_dirty_task": "facts",
    "metrics.tasks.facts_recompute_dirty_task": "facts",
    "metrics.tasks.facts_recompute_nightly_task": "facts",
    "metrics.tasks.facts_roll_up_task": "facts",
    "metrics.tasks.facts_vacuum_task": "facts",
    "metrics.tasks.recompute_job_run_task": "facts",
    "routing.tasks.business_intervals_rebuild_task": "facts",
    "supportdesk.tasks.outbox_relay_task": "housekeeping",
    "supportdesk.tasks.outbox_bundle_task": "housekeeping",
    "supportdesk.tasks.outbox_prune_task": "housekeeping",
    "supportdesk.tasks.idempotency_keys_prune_task": "housekeeping",
    "tickets.tasks.conversations_close_solved_task": "housekeeping",
    "tickets.tasks.retention_run_task": "housekeeping",
    "notifications.tasks.notifications_for_event_task": "housekeeping",
    "surveys.tasks.survey_schedule_task": "housekeeping",
    "surveys.tasks.survey_cancel_for_inbound_task": "housekeeping",
    "surveys.tasks.surveys_cancel_for_spam_task": "housekeeping",
    "surveys.tasks.survey_mark_bounced_task": "housekeeping",
    "surveys.tasks.surveys_customer_merged_task": "housekeeping",
    "quality.tasks.qa_sample_draw_task": "housekeeping",
    "quality.tasks.pulse_week_open_task": "housekeeping",
    "quality.tasks.checkins_create_due_task": "housekeeping",
    "routing.tasks.routing_sweep_task": "housekeeping",
    "routing.tasks.rules_no_reply_task": "housekeeping",
}


def _our_tasks() -> set[str]:
    celery_app.loader.import_default_modules()
    return {name for name in celery_app.tasks if not name.startswith("celery.")}


def _routed_queue(task_name: str) -> str:
    return str(celery_app.amqp.router.route({}, task_name)["queue"].name)


def test_every_task_of_the_desk_has_a_queue_and_no_route_names_a_missing_task():
    assert _our_tasks() == set(EXPECTED)
    assert queues.TASK_QUEUES == EXPECTED


@pytest.mark.parametrize("task_name", sorted(EXPECTED))
def test_each_task_routes_to_its_queue(task_name):
    assert _routed_queue(task_name) == EXPECTED[task_name]


def test_beat_entries_are_published_on_their_groups_queues():
    routed = {
        entry: _routed_queue(spec["task"]) for entry, spec in settings.CELERY_BEAT_SCHEDULE.items()
    }
    assert routed == {
        "relay-outbox": "housekeeping",
        "poll-mailboxes": "ingest",
        "ingest-inbound-queue": "ingest",
        "close-solved-conversations": "housekeeping",
        "notification-digests": "mail",
        "send-due-surveys": "mail",
        "send-survey-reminders": "mail",
        "recompute-dirty-facts": "facts",
        "recompute-facts-nightly": "facts",
        "prune-idempotency-keys": "housekeeping",
        "prune-outbox": "housekeeping",
        "qa-weekly-sample": "housekeeping",
        "pulse-weekly": "housekeeping",
        "checkins-daily": "housekeeping",
        "retention-nightly": "housekeeping",
        "routing-sweep": "housekeeping",
        "rules-no-reply": "housekeeping",
        "business-intervals-nightly": "facts",
    }
    # No entry overrides its route with a queue of its own.
    assert all(
        "queue" not in spec.get("options", {}) for spec in settings.CELERY_BEAT_SCHEDULE.values()
    )


def test_a_worker_without_q_consumes_every_queue_and_the_default_one():
    names = [queue.name for queue in settings.CELERY_TASK_QUEUES]
    default = settings.CELERY_TASK_DEFAULT_QUEUE
    assert names == ["ingest", "mail", "webhooks", "facts", "housekeeping", default]


def test_the_worker_groups_cover_every_queue_once():
    grouped = [queue for group in queues.WORKER_GROUPS.values() for queue in group]
    assert sorted(grouped) == sorted(queues.QUEUES)


def test_a_test_run_publishes_on_its_own_prefixed_queues():
    with celery_publishing_to("redis://127.0.0.1:1/0", queue="sd-test-x"):
        assert _routed_queue("tickets.tasks.message_email_send_task") == "sd-test-x.mail"
        assert _routed_queue("metrics.tasks.facts_mark_dirty_task") == "sd-test-x.facts"
    assert _routed_queue("tickets.tasks.message_email_send_task") == "mail"


def _compose() -> dict[str, Any]:
    return yaml.safe_load((Path(settings.BASE_DIR) / "docker-compose.yml").read_text())


def test_compose_runs_one_worker_service_per_group_and_together_they_consume_every_queue():
    services = _compose()["services"]
    consumed = {}
    for name, service in services.items():
        command = service.get("command") or []
        if command[:4] == ["celery", "-A", "supportdesk", "worker"]:
            consumed[name] = command[command.index("-Q") + 1].split(",")
    assert consumed == {
        "worker-ingest": ["ingest"],
        "worker-delivery": ["mail", "webhooks"],
        "worker-facts": ["facts"],
        "worker-housekeeping": ["housekeeping", "celery"],
    }
    for name in consumed:
        assert (
            f"worker-{next(g for g, q in queues.WORKER_GROUPS.items() if q[0] == consumed[name][0])}"
            == name
        )


def test_compose_has_a_replica_service_and_passes_replica_urls_to_the_app():
    compose = _compose()
    replica = compose["services"]["postgres-replica"]
    assert replica["profiles"] == ["replica"]
    assert "pg_basebackup -h postgres" in replica["command"][-1]
    assert "DATABASE_REPLICA_URLS" in compose["services"]["web"]["environment"]
    assert "DATABASE_REPLICA_URLS" in compose["services"]["worker-facts"]["environment"]
