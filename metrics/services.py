"""Every write of the metrics app: daily facts, dirty days, recompute jobs and targets.

Facts are derived data: ``facts_compute`` rebuilds a range of days from the source tables and
replaces their rows in one transaction, so running it twice gives the same rows, and a reader
sees either the old or the new day, never half of it. Concurrent computations of the same day
queue on that day's ``FactDay`` row lock.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable
from datetime import date, timedelta

from django.conf import settings
from django.db import transaction
from django.db.models import F, Q
from django.utils import timezone

from metrics.facts import fact_rows
from metrics.models import (
    TARGETABLE_METRICS,
    DailyFact,
    DirtyDay,
    DurationBucket,
    FactDay,
    RecomputeJob,
    SourceWatermark,
    Target,
)
from supportdesk.errors import ApplicationError, Conflict
from supportdesk.models import Team, User
from supportdesk.services import outbox_enqueue
from tickets.models import Event

logger = logging.getLogger(__name__)

# A burst of events on one day is recomputed once it has been quiet this long...
DIRTY_DEBOUNCE = timedelta(seconds=2)
# ...or at the latest this long after its first event, so a busy day is never starved.
DIRTY_MAX_WAIT = timedelta(seconds=6)
# An on-demand or nightly job computes this many days per task, then chains the next task.
JOB_CHUNK_DAYS = 14


def local_today() -> date:
    return timezone.localdate()


def _days(day_from: date, day_to: date) -> list[date]:
    return [day_from + timedelta(days=i) for i in range((day_to - day_from).days)]


@transaction.atomic
def facts_compute(*, day_from: date, day_to: date) -> int:
    """Rebuild the facts of local days ``[day_from, day_to)``; returns the rows written.

    Side effects: replaces the ``DailyFact`` and ``DurationBucket`` rows of those days and
    stamps their ``FactDay.computed_at``. Idempotent. Locks the days' ``FactDay`` rows (in day
    order, so two overlapping ranges cannot deadlock) for the length of the transaction.
    """
    if day_to <= day_from:
        return 0
    days = _days(day_from, day_to)
    FactDay.objects.bulk_create([FactDay(day=d) for d in days], ignore_conflicts=True)
    list(
        FactDay.objects.select_for_update()
        .filter(day__gte=day_from, day__lt=day_to)
        .order_by("day")
        .values_list("pk", flat=True)
    )
    facts, durations = fact_rows(day_from, day_to)
    DailyFact.objects.filter(day__gte=day_from, day__lt=day_to).delete()
    DurationBucket.objects.filter(day__gte=day_from, day__lt=day_to).delete()
    DailyFact.objects.bulk_create(
        [
            DailyFact(**cell, metric=metric, numerator=numerator, denominator=denominator)
            for cell, metric, numerator, denominator in facts
        ],
        batch_size=1000,
    )
    DurationBucket.objects.bulk_create(
        [
            DurationBucket(**cell, metric=metric, bucket=bucket, count=count)
            for cell, metric, bucket, count in durations
        ],
        batch_size=1000,
    )
    FactDay.objects.filter(day__gte=day_from, day__lt=day_to).update(computed_at=timezone.now())
    return len(facts) + len(durations)


# --- Dirty days: debounced recompute after events ------------------------------------------------


def facts_mark_dirty(*, days: Iterable[date]) -> int:
    """Mark days for recomputation. A day already marked keeps one row (its ``marked_at``
    moves on: the debounce). Returns how many days were marked."""
    days = sorted(set(days))
    if not days:
        return 0
    now = timezone.now()
    with transaction.atomic():
        DirtyDay.objects.bulk_create(
            [DirtyDay(day=d, first_marked_at=now, marked_at=now) for d in days],
            ignore_conflicts=True,
        )
        DirtyDay.objects.filter(day__in=days).update(marked_at=now)
    return len(days)


def _affected_days(event: Event) -> set[date]:
    """The local days whose facts an event can change.

    The event's own day (speed and contact facts), and for anything about a conversation or a
    customer the days of that customer's solves in the window before it: a reopen, a new
    conversation or a survey answer changes the solve-based facts of an earlier day. Merges and
    moves carry the days they touched (``data.affected_dates``).
    """
    tz = timezone.get_current_timezone()
    days = {event.occurred_at.astimezone(tz).date()}
    for value in (event.data or {}).get("affected_dates", []):
        try:
            days.add(date.fromisoformat(value))
        except (TypeError, ValueError):
            logger.warning("event %s has a bad affected date %r", event.pk, value)
    customer_id = event.customer_id or (
        event.conversation.customer_id if event.conversation_id else None
    )
    if customer_id is not None:
        window = timedelta(days=max(7, settings.SURVEY_WINDOW_DAYS) + 1)
        stamps = Event.objects.filter(
            kind=Event.Kind.SOLVED,
            conversation__customer_id=customer_id,
            occurred_at__gte=event.occurred_at - window,
            occurred_at__lte=event.occurred_at,
        ).values_list("occurred_at", flat=True)
        days |= {stamp.astimezone(tz).date() for stamp in stamps}
    return days


def facts_mark_dirty_for_event(*, event_id: int) -> int:
    """React to a domain event: mark the days it changes. Missing event: log and return."""
    event = Event.objects.select_related("conversation").filter(pk=event_id).first()
    if event is None:
        logger.warning("metrics: event %s not found", event_id)
        return 0
    return facts_mark_dirty(days=_affected_days(event))


def facts_mark_dirty_days(*, days: Iterable[date]) -> int:
    """Mark days dirty for changes recorded outside the tickets event log (survey answers,
    QA reviews): the surveys and QA reactions call this with the solve's day."""
    return facts_mark_dirty(days=days)


# A row committed this long after its timestamp could be missed by the watermark; the nightly
# recompute catches it.
SOURCE_LAG = timedelta(seconds=2)


def facts_mark_dirty_from_sources() -> int:
    """Mark the solve days of surveys sent, bounced or answered since the last look.

    The surveys app records no tickets event for these (it must not import metrics), so beat
    polls them by timestamp. The watermark row is locked while it moves, so concurrent beats
    look at each interval once. Returns how many days were marked.
    """
    from surveys.models import Survey

    now = timezone.now()
    until = now - SOURCE_LAG
    with transaction.atomic():
        SourceWatermark.objects.bulk_create(
            [SourceWatermark(name="surveys", seen_until=until)], ignore_conflicts=True
        )
        mark = SourceWatermark.objects.select_for_update().get(name="surveys")
        since = mark.seen_until
        if since >= until:
            return 0
        changed = Survey.objects.filter(
            Q(sent_at__gt=since, sent_at__lte=until)
            | Q(bounced_at__gt=since, bounced_at__lte=until)
            | Q(cancelled_at__gt=since, cancelled_at__lte=until)
            | Q(responses__answered_at__gt=since, responses__answered_at__lte=until)
        ).values_list("solved_at", flat=True)
        tz = timezone.get_current_timezone()
        days = {stamp.astimezone(tz).date() for stamp in changed}
        mark.seen_until = until
        mark.save(update_fields=["seen_until"])
    return facts_mark_dirty(days=days)


def facts_recompute_dirty(*, limit: int = 31) -> list[date]:
    """Recompute the days that are due (quiet for ``DIRTY_DEBOUNCE`` or waiting longer than
    ``DIRTY_MAX_WAIT``). Returns the days recomputed.

    Each day is claimed with ``SELECT ... FOR UPDATE SKIP LOCKED`` so two beats never compute
    the same day at once, and its row is deleted only if no event marked it again during the
    computation (conditional delete on ``marked_at``): such a day stays dirty for the next tick.
    """
    now = timezone.now()
    due = list(
        DirtyDay.objects.filter(
            Q(marked_at__lte=now - DIRTY_DEBOUNCE) | Q(first_marked_at__lte=now - DIRTY_MAX_WAIT)
        ).values_list("day", flat=True)
    )
    done: list[date] = []
    for day in sorted(set(due))[:limit]:
        with transaction.atomic():
            row = (
                DirtyDay.objects.select_for_update(skip_locked=True)
                .filter(day=day)
                .values("pk", "marked_at")
                .first()
            )
            if row is None:
                continue
            facts_compute(day_from=day, day_to=day + timedelta(days=1))
        # Outside the claim: an event that marked the day meanwhile bumped marked_at.
        DirtyDay.objects.filter(pk=row["pk"], marked_at=row["marked_at"]).delete()
        done.append(day)
    return done


# --- Recompute jobs ------------------------------------------------------------------------------


def _check_range(day_from: date, day_to: date) -> None:
    if day_to <= day_from:
        raise ApplicationError("'to' must be after 'from' (the period is [from, to)).")
    if (day_to - day_from).days > settings.METRICS_RETENTION_DAYS + 1:
        raise ApplicationError(
            f"A recompute covers at most {settings.METRICS_RETENTION_DAYS} days "
            "(METRICS_RETENTION_DAYS); split the period."
        )


@transaction.atomic
def recompute_job_create(
    *, day_from: date, day_to: date, requested_by: User | None
) -> RecomputeJob:
    """Queue a recompute of ``[day_from, day_to)``: a job row, run by the worker after commit."""
    _check_range(day_from, day_to)
    job = RecomputeJob.objects.create(
        requested_by=requested_by,
        date_from=day_from,
        date_to=day_to,
        next_day=day_from,
        days_total=(day_to - day_from).days,
    )
    outbox_enqueue(task_name="metrics.tasks.recompute_job_run_task", kwargs={"job_id": job.pk})
    return job


def recompute_job_run(*, job_id: int) -> RecomputeJob | None:
    """Compute the job's next chunk of days, record progress, and chain the next chunk.

    The chunk is claimed by a conditional UPDATE on ``next_day``: a task delivered twice
    computes each chunk once. Returns the job, or None when it is missing or already finished.
    """
    job = RecomputeJob.objects.filter(pk=job_id).first()
    if job is None:
        logger.warning("metrics: recompute job %s not found", job_id)
        return None
    if job.state in (RecomputeJob.State.DONE, RecomputeJob.State.FAILED):
        return None
    start = job.next_day
    end = min(start + timedelta(days=JOB_CHUNK_DAYS), job.date_to)
    with transaction.atomic():
        claimed = RecomputeJob.objects.filter(
            pk=job.pk, next_day=start, state__in=["queued", "running"]
        ).update(next_day=end, state=RecomputeJob.State.RUNNING, updated_at=timezone.now())
        if not claimed:
            return None
        try:
            with transaction.atomic():
                facts_compute(day_from=start, day_to=end)
        except Exception as exc:
            RecomputeJob.objects.filter(pk=job.pk).update(
                state=RecomputeJob.State.FAILED, error=str(exc)[:2000], finished_at=timezone.now()
            )
            raise
        finished = end >= job.date_to
        RecomputeJob.objects.filter(pk=job.pk).update(
            days_done=F("days_done") + (end - start).days,
            state=RecomputeJob.State.DONE if finished else RecomputeJob.State.RUNNING,
            finished_at=timezone.now() if finished else None,
        )
        if not finished:
            outbox_enqueue(
                task_name="metrics.tasks.recompute_job_run_task", kwargs={"job_id": job.pk}
            )
    job.refresh_from_db()
    return job


def facts_recompute_retention(*, requested_by: User | None = None) -> RecomputeJob:
    """The nightly job: every day of the retention window up to and including today."""
    today = local_today()
    return recompute_job_create(
        day_from=today - timedelta(days=settings.METRICS_RETENTION_DAYS - 1),
        day_to=today + timedelta(days=1),
        requested_by=requested_by,
    )


# --- Targets -------------------------------------------------------------------------------------


@transaction.atomic
def target_set(
    *, metric: str, team: Team | None, value: float | None, actor: User
) -> Target | None:
    """Set (or with ``value=None`` clear) a target on an outcome or connection metric.

    Speed metrics refuse targets (METRICS.md). Managers set targets for their own teams only;
    desk-wide targets are for admins.
    """
    if metric not in TARGETABLE_METRICS:
        raise ApplicationError(
            "Targets can be set on outcome and connection metrics only, never on speed."
        )
    if not actor.is_manager:
        raise ApplicationError("Only managers set targets.")
    if team is None and not actor.is_admin:
        raise Conflict("Only admins set desk-wide targets; choose one of your teams.")
    if team is not None and not actor.is_admin and not actor.teams.filter(pk=team.pk).exists():
        raise ApplicationError("You manage other teams than this one.")
    existing = Target.objects.select_for_update().filter(metric=metric, team=team).first()
    if value is None:
        if existing is not None:
            existing.delete()
        return None
    if metric == "nps":
        if not -100 <= value <= 100:
            raise ApplicationError("An NPS target lies between -100 and 100.")
    elif metric == "csat_mean":
        if not 1 <= value <= 5:
            raise ApplicationError("A CSAT mean target lies between 1 and 5.")
    elif metric == "resolution_gap":
        if not -1 <= value <= 1:
            raise ApplicationError("A resolution gap target lies between -100% and 100%.")
    elif not 0 <= value <= 1:
        raise ApplicationError("A rate target lies between 0% and 100%.")
    if existing is None:
        return Target.objects.create(metric=metric, team=team, value=value, set_by=actor)
    existing.value = value
    existing.set_by = actor
    existing.save(update_fields=["value", "set_by", "updated_at"])
    return existing
