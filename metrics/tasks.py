"""Thin Celery tasks of the metrics app: primitive arguments in, one service call."""

from __future__ import annotations

from datetime import date

from celery import shared_task
from django.conf import settings
from django.db import OperationalError

from metrics import nightly, rollups, services
from supportdesk.events import REACTION_TASK_OPTIONS


@shared_task(**REACTION_TASK_OPTIONS)
def facts_mark_dirty_task(event_id: int) -> int:
    """Subscribed to the domain events that change facts (see MetricsConfig.ready)."""
    return services.facts_mark_dirty_for_event(event_id=event_id)


@shared_task(ignore_result=True, expires=5)
def facts_recompute_dirty_task() -> int:
    """Beat, every few seconds: recompute the days that events marked, once per burst."""
    services.facts_mark_dirty_from_sources()
    return len(services.facts_recompute_dirty())


@shared_task(
    ignore_result=True,
    acks_late=True,
    autoretry_for=(OperationalError,),
    retry_backoff=True,
    max_retries=5,
)
def recompute_job_run_task(job_id: int) -> None:
    services.recompute_job_run(job_id=job_id)


@shared_task(ignore_result=True, acks_late=True)
def facts_vacuum_task() -> bool:
    """After a recompute of many days: reclaim the replaced fact rows (see ``facts_vacuum``)."""
    return services.facts_vacuum()


@shared_task(ignore_result=True, acks_late=True)
def facts_recompute_nightly_task(full: bool = False) -> int:
    """Beat, nightly: recompute the days whose sources changed (returns how many); with
    ``full`` (or METRICS_NIGHTLY_FULL) the whole retention window as a chained job (its id)."""
    if full or settings.METRICS_NIGHTLY_FULL:
        return services.facts_recompute_retention().pk
    return len(nightly.facts_recompute_nightly())


@shared_task(
    ignore_result=True,
    acks_late=True,
    autoretry_for=(OperationalError,),
    retry_backoff=True,
    max_retries=5,
)
def facts_roll_up_task(day_from: str, day_to: str, warm: bool = False) -> int:
    """After a recompute: rebuild the stale weekly roll-ups of the settled weeks touching
    ``[day_from, day_to)`` (returns how many); ``warm`` (after the nightly pass or a job) then
    fills the cache with the standard scorecards."""
    weeks = rollups.facts_roll_up(
        day_from=date.fromisoformat(day_from), day_to=date.fromisoformat(day_to)
    )
    if warm:
        rollups.scorecards_warm()
    return len(weeks)
