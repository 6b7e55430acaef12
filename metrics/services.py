"""Every write of the metrics app: facts, dirty days, recompute jobs and targets."""

from __future__ import annotations

import logging
from collections.abc import Iterable
from concurrent.futures import ThreadPoolExecutor
from datetime import date, datetime, timedelta
from typing import Any

from django.conf import settings
from django.db import connection, transaction
from django.db.models import F, Q
from django.utils import timezone

from metrics.facts import fact_rows, facts_insert, topic_fact_rows
from metrics.models import (
    TARGETABLE_METRICS,
    DailyFact,
    DirtyDay,
    DurationBucket,
    FactDay,
    FactWeek,
    RecomputeJob,
    SourceWatermark,
    Target,
    TopicFact,
    WeeklyDuration,
    WeeklyFact,
)
from quality.models import (
    QAReview,
)
from supportdesk.errors import ApplicationError, Conflict
from supportdesk.models import AuditEntry, Team, User
from supportdesk.outbox import outbox_enqueue
from supportdesk.services import audit_record
from tickets.models import Contact, Event, Message

# --- Scorecards, facts and the dashboard ---------------------------------------------------

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


ROLL_UP_TASK = "metrics.tasks.facts_roll_up_task"


def facts_roll_up_enqueue(*, day_from: date, day_to: date, warm: bool = False) -> None:
    """After the facts of ``[day_from, day_to)`` were recomputed: rebuild the roll-ups of its
    settled weeks (``metrics.rollups``) once the transaction commits; ``warm`` then refills the
    standard scorecards' cache. Without ``warm``, nothing is queued when no settled week is
    touched."""
    first_week_ends = day_from - timedelta(days=day_from.weekday()) + timedelta(days=7)
    if first_week_ends > local_today() and not warm:
        return  # the first week of the range (and so every later one) has not ended yet
    outbox_enqueue(
        task_name=ROLL_UP_TASK,
        kwargs={"day_from": day_from.isoformat(), "day_to": day_to.isoformat(), "warm": warm},
    )


def facts_roll_ups_drop_expired(*, first: date) -> None:
    """Drop the roll-ups of weeks that began before ``first`` (a day of theirs is gone)."""
    WeeklyFact.objects.filter(week__lt=first).delete()
    WeeklyDuration.objects.filter(week__lt=first).delete()
    FactWeek.objects.filter(week__lt=first).delete()


@transaction.atomic
def facts_compute(*, day_from: date, day_to: date) -> int:
    """Rebuild the facts of local days ``[day_from, day_to)``; returns the rows written.

    Side effects: replaces the ``DailyFact``, ``DurationBucket`` and ``TopicFact`` (outcomes by
    topic) rows of those days and
    stamps their ``FactDay.computed_at`` and bumps their ``version`` (the scorecard cache key).
    Idempotent. Locks the days' ``FactDay`` rows (in day order, so two overlapping ranges cannot
    deadlock) for the length of the transaction.
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
    DailyFact.objects.filter(day__gte=day_from, day__lt=day_to).delete()
    DurationBucket.objects.filter(day__gte=day_from, day__lt=day_to).delete()
    TopicFact.objects.filter(day__gte=day_from, day__lt=day_to).delete()
    topics = topic_fact_rows(day_from, day_to, connection=connection)
    TopicFact.objects.bulk_create(
        [
            TopicFact(**cell, metric=metric, numerator=numerator, denominator=denominator)
            for cell, metric, numerator, denominator in topics
        ],
        batch_size=1000,
    )
    if connection.vendor == "postgresql":
        # Set-based: INSERT ... SELECT per fact query, nothing loaded into Python.
        written = facts_insert(day_from, day_to, connection=connection)
    else:
        facts, durations = fact_rows(day_from, day_to)
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
        written = len(facts) + len(durations)
    written += len(topics)
    FactDay.objects.filter(day__gte=day_from, day__lt=day_to).update(
        computed_at=timezone.now(), version=F("version") + 1
    )
    return written


def _split_days(day_from: date, day_to: date, parts: int) -> list[tuple[date, date]]:
    """``[day_from, day_to)`` cut into ``parts`` contiguous ranges of (almost) equal length."""
    days = (day_to - day_from).days
    parts = max(1, min(parts, days))
    ranges, start = [], day_from
    for i in range(parts):
        end = start + timedelta(days=days // parts + (1 if i < days % parts else 0))
        ranges.append((start, end))
        start = end
    return ranges


def _facts_compute_on_own_connection(day_from: date, day_to: date) -> int:
    try:
        return facts_compute(day_from=day_from, day_to=day_to)
    finally:
        connection.close()  # this thread's connection, not the caller's


def facts_compute_chunk(*, day_from: date, day_to: date) -> int:
    """``facts_compute`` of ``[day_from, day_to)`` on up to ``METRICS_RECOMPUTE_CONNECTIONS``
    database connections at once; returns the rows written.

    The fact queries are set-based ``INSERT ... SELECT`` statements: one connection keeps one
    PostgreSQL backend (one core) busy while the others idle, so the nightly recompute splits
    each chunk into contiguous day ranges. The first range is computed in the caller's
    transaction; each other range in its own thread, connection and transaction (disjoint days:
    their ``FactDay`` locks never meet). All ranges finish before this returns; the first error
    is raised after that (a range that committed stays computed: facts are idempotent).
    """
    ranges = _split_days(day_from, day_to, settings.METRICS_RECOMPUTE_CONNECTIONS)
    if len(ranges) <= 1 or connection.vendor != "postgresql":
        return facts_compute(day_from=day_from, day_to=day_to)
    with ThreadPoolExecutor(max_workers=len(ranges) - 1) as pool:
        futures = [pool.submit(_facts_compute_on_own_connection, *r) for r in ranges[1:]]
        error: BaseException | None = None
        written = 0
        try:
            written += facts_compute(day_from=ranges[0][0], day_to=ranges[0][1])
        except BaseException as exc:  # wait for the threads before raising
            error = exc
        for future in futures:
            try:
                written += future.result()
            except BaseException as exc:
                error = error or exc
    if error is not None:
        raise error
    return written


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


FACT_WINDOW = timedelta(days=8)  # reopen/repeat windows (7 days) plus a day of time zones
REPLY_LOOKBACK = timedelta(days=30)  # a reply changes the first-response day of its contacts


def _solve_days(customer_ids: Iterable[int], *, since: datetime, until: datetime) -> set[date]:
    """Local days of the customers' solves in ``[since, until]`` (one query)."""
    customer_ids = list(customer_ids)
    if not customer_ids:
        return set()
    tz = timezone.get_current_timezone()
    stamps = Event.objects.filter(
        kind=Event.Kind.SOLVED,
        conversation__customer_id__in=customer_ids,
        occurred_at__gte=since,
        occurred_at__lte=until,
    ).values_list("occurred_at", flat=True)
    return {stamp.astimezone(tz).date() for stamp in stamps}


def _affected_days(event: Event) -> set[date]:
    """The local days whose facts an event can change.

    The event's own day; for anything about a customer, the days of their solves in the window
    before it (a reopen or a survey answer changes an earlier solve's figures). Merges and
    moves carry the days they touched (``data.affected_dates``).
    """
    tz = timezone.get_current_timezone()
    days = {event.occurred_at.astimezone(tz).date()}
    for value in (event.data or {}).get("affected_dates", []):
        try:
            days.add(date.fromisoformat(value))
        except (TypeError, ValueError):
            logger.warning("event %s has a bad affected date %r", event.pk, value)
    customer_id = event.customer_id
    if not customer_id and event.conversation is not None:
        customer_id = event.conversation.customer_id
    if customer_id is not None:
        days |= _solve_days(
            [customer_id], since=event.occurred_at - FACT_WINDOW, until=event.occurred_at
        )
    return days


def facts_mark_dirty_for_event(*, event_id: int) -> int:
    """React to a domain event: mark the days it changes. Missing event: log and return."""
    event = Event.objects.select_related("conversation").filter(pk=event_id).first()
    if event is None:
        logger.warning("metrics: event %s not found", event_id)
        return 0
    return facts_mark_dirty(days=_affected_days(event))


# A row committed this long after its timestamp could be missed by the watermark; the nightly
# recompute catches it.
SOURCE_LAG = timedelta(seconds=2)


def source_changed_days(since: datetime, until: datetime) -> set[date]:
    """The local days whose facts rows created in ``(since, until]`` change (see
    ``facts_mark_dirty_from_sources``); a handful of indexed range queries."""
    from surveys.models import Survey

    tz = timezone.get_current_timezone()
    # One indexed range per kind of change (an OR of them scans every survey and response).
    changed = [
        stamp
        for window in (
            Q(sent_at__gt=since, sent_at__lte=until),
            Q(bounced_at__gt=since, bounced_at__lte=until),
            Q(cancelled_at__gt=since, cancelled_at__lte=until),
            Q(responses__answered_at__gt=since, responses__answered_at__lte=until),
        )
        for stamp in Survey.objects.filter(window).values_list("solved_at", flat=True)
    ]
    reviewed = QAReview.objects.filter(submitted_at__gt=since, submitted_at__lte=until).values_list(
        "solved_at", flat=True
    )
    inbound = list(
        Message.objects.filter(
            direction=Message.Direction.INBOUND, created_at__gt=since, created_at__lte=until
        ).values_list("sent_at", "conversation__customer_id")
    )
    replies = list(
        Message.objects.filter(
            direction=Message.Direction.OUTBOUND, created_at__gt=since, created_at__lte=until
        ).values_list("sent_at", "conversation_id")
    )
    days = {stamp.astimezone(tz).date() for stamp in [*changed, *reviewed]}
    days |= {sent_at.astimezone(tz).date() for sent_at, _ in inbound}
    if inbound:
        days |= _solve_days(
            {customer for _, customer in inbound},
            since=min(sent_at for sent_at, _ in inbound) - FACT_WINDOW,
            until=max(sent_at for sent_at, _ in inbound),
        )
    if replies:
        # First response and chat session length belong to the day of the contact replied to.
        days |= {sent_at.astimezone(tz).date() for sent_at, _ in replies}
        starts = Contact.objects.filter(
            conversation_id__in={conversation for _, conversation in replies},
            started_at__gte=min(sent_at for sent_at, _ in replies) - REPLY_LOOKBACK,
            started_at__lte=max(sent_at for sent_at, _ in replies),
        ).values_list("started_at", flat=True)
        days |= {stamp.astimezone(tz).date() for stamp in starts}
    return days


def facts_mark_dirty_from_sources() -> int:
    """Mark the days changed since the last look by what records no event for metrics.

    - customer messages (calls included): their day, and the customer's solves in the window
      before (a new conversation is a repeat contact of an earlier solve);
    - agent replies: their day and the start days of their conversation's recent contacts;
      messages are polled rather than subscribed to: a query per tick, not a task per message;
    - surveys sent, bounced, cancelled or answered, and QA reviews submitted: their solve's day.

    The watermark row is locked while it moves, so concurrent beats look at each interval once.
    Returns how many days were marked.
    """
    now = timezone.now()
    until = now - SOURCE_LAG
    with transaction.atomic():
        SourceWatermark.objects.bulk_create(
            [SourceWatermark(name="sources", seen_until=until)], ignore_conflicts=True
        )
        mark = SourceWatermark.objects.select_for_update().get(name="sources")
        since = mark.seen_until
        if since >= until:
            return 0
        days = source_changed_days(since, until)
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
    if done:
        # A day of a settled week changed: its roll-up is stale (never read) until rebuilt.
        facts_roll_up_enqueue(day_from=min(done), day_to=max(done) + timedelta(days=1))
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
    if requested_by is not None:  # the nightly run is routine, not somebody's decision
        audit_record(
            action=AuditEntry.Action.SCORECARDS_RECOMPUTE,
            target=job,
            actor=requested_by,
            summary=f"Scorecards recompute of [{day_from}, {day_to}) requested",
            details={"from": day_from.isoformat(), "to": day_to.isoformat()},
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
                facts_compute_chunk(day_from=start, day_to=end)
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
        else:
            # The job's settled weeks are rolled up again, and the standard scorecards warmed.
            facts_roll_up_enqueue(day_from=job.date_from, day_to=job.date_to, warm=True)
            if job.days_total > JOB_CHUNK_DAYS:
                # Every fact row of those days was replaced: half of the tables is dead rows.
                outbox_enqueue(task_name="metrics.tasks.facts_vacuum_task", kwargs={})
    job.refresh_from_db()
    return job


FACT_TABLES = ("metrics_dailyfact", "metrics_durationbucket")


def facts_vacuum(*, tables: tuple[str, ...] = FACT_TABLES) -> bool:
    """``VACUUM (ANALYZE)`` the fact tables (or ``tables``); returns whether it ran.

    A recompute deletes and re-inserts every fact row of its days, so after the nightly job the
    tables hold as many dead rows as live ones until autovacuum comes by, and every scorecard
    read visits both (at 1M, a team's 90-day read took 173 ms before and 46 ms after). On
    PostgreSQL only, and never inside a transaction (VACUUM cannot run in one): it is skipped.
    """
    if connection.vendor != "postgresql" or connection.in_atomic_block:
        return False
    with connection.cursor() as cursor:
        cursor.execute(f"VACUUM (ANALYZE) {', '.join(tables)}")
    return True


@transaction.atomic
def facts_recompute_retention(*, requested_by: User | None = None) -> RecomputeJob:
    """The nightly job: every day of the retention window up to and including today.

    Side effects: deletes the facts of days older than the window (nobody can ask for them:
    periods are limited to the window) and queues the recompute job.
    """
    today = local_today()
    first = today - timedelta(days=settings.METRICS_RETENTION_DAYS - 1)
    DailyFact.objects.filter(day__lt=first).delete()
    DurationBucket.objects.filter(day__lt=first).delete()
    TopicFact.objects.filter(day__lt=first).delete()
    FactDay.objects.filter(day__lt=first).delete()
    facts_roll_ups_drop_expired(first=first)
    return recompute_job_create(
        day_from=first, day_to=today + timedelta(days=1), requested_by=requested_by
    )


# --- Targets -------------------------------------------------------------------------------------


@transaction.atomic
def target_set(
    *, metric: str, team: Team | None, value: float | None, actor: User
) -> Target | None:
    """Set (or with ``value=None`` clear) a target on an outcome or connection metric.

    Speed metrics refuse targets (docs/metrics.md). Managers set targets for their own teams only;
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
    scope = team.name if team is not None else "the desk"
    if value is None:
        if existing is not None:
            _audit_target(metric, team, existing.value, None, actor, f"{metric} of {scope}")
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
    _audit_target(
        metric, team, existing.value if existing else None, value, actor, f"{metric} of {scope}"
    )
    if existing is None:
        return Target.objects.create(metric=metric, team=team, value=value, set_by=actor)
    existing.value = value
    existing.set_by = actor
    existing.save(update_fields=["value", "set_by", "updated_at"])
    return existing


def _audit_target(
    metric: str,
    team: Team | None,
    old: float | None,
    new: float | None,
    actor: User,
    label: str,
) -> None:
    audit_record(
        action=AuditEntry.Action.TARGET_CHANGED,
        target=("metrics.target", f"{metric}:{team.pk if team else 'desk'}"),
        actor=actor,
        team=team,
        summary=f"Target {label}: {old} -> {new}",
        details={"metric": metric, "team": team.pk if team else None, "from": old, "to": new},
    )


def facts_seed(*, rng: Any = None, stdout: Any = None) -> int:
    """``seed_demo``'s last step: compute the facts of every seeded day (within the retention
    window) and roll up their settled weeks, so the dashboard has figures at once. Returns the
    fact rows written."""
    first = Event.objects.order_by("occurred_at").values_list("occurred_at", flat=True).first()
    if first is None:
        return 0
    today = local_today()
    day_from = max(
        timezone.localdate(first), today - timedelta(days=settings.METRICS_RETENTION_DAYS - 1)
    )
    written = 0
    day = day_from
    while day <= today:
        chunk_end = min(day + timedelta(days=JOB_CHUNK_DAYS), today + timedelta(days=1))
        written += facts_compute_chunk(day_from=day, day_to=chunk_end)
        day = chunk_end
    from metrics.rollups import facts_roll_up  # rollups reads through the selectors

    facts_roll_up(day_from=day_from, day_to=today + timedelta(days=1))
    if stdout is not None:
        stdout.write(f"Computed {written} scorecard fact rows from {day_from} to {today}.")
    return written
