"""Weekly roll-ups of settled days, and warming the standard scorecards (services).

A 90-day scorecard sums every daily fact row of its 90 days: at 1M conversations, ~1.4M
``DailyFact`` and ~0.5M ``DurationBucket`` rows on the first read after any change. Once a
Monday-to-Sunday week has ended (settled) and all 7 of its days are computed, its rows are summed
per cell (metric, team, agent, channel kind; and bucket) into ``WeeklyFact`` and
``WeeklyDuration``, so the read sums ~13 weekly rows per cell plus the loose days at both ends.

A roll-up records the sum of its 7 days' ``FactDay.version`` (``FactWeek.days_version``), read
under the days' row locks in the transaction that builds it. Every recompute of a day bumps its
version, and the readers (``metrics.selectors.facts_state``) use a week's roll-up only while that
sum is unchanged: a roll-up made stale by a recompute is never read; the week's daily rows are,
until ``facts_roll_up`` rebuilds it (after the nightly pass, a recompute job and a dirty day's
recompute, by ``metrics.tasks.facts_roll_up_task``).
"""

from __future__ import annotations

import logging
from collections import defaultdict
from collections.abc import Iterable
from datetime import date, timedelta

from django.db import connection, transaction
from django.utils import timezone

from metrics.models import DailyFact, DurationBucket, FactDay, FactWeek, WeeklyDuration, WeeklyFact
from metrics.selectors import Scope, scorecard_groups, weekly_trend
from metrics.services import facts_vacuum, local_today
from supportdesk.models import User

logger = logging.getLogger(__name__)

WEEK = timedelta(days=7)
# The scorecards warmed after the nightly pass: the last N days up to today (the API's usual
# 7/30/90 days and the dashboard's "last 4 weeks"), plus "this week" and "this quarter".
WARM_PERIOD_DAYS = (7, 28, 30, 90)
WARM_GROUPINGS = ("desk", "agent", "channel")

_CELL = "metric, team_id, agent_id, channel_kind"


def week_of(day: date) -> date:
    """The Monday of ``day``'s week."""
    return day - timedelta(days=day.weekday())


def week_settled(week: date, *, today: date) -> bool:
    """Whether the week of Monday ``week`` ended before ``today``."""
    return week + WEEK <= today


def _roll_up_sql(week: date) -> None:
    """Replace the week's roll-up rows by the sums of its 7 days' rows, cell by cell (set-based:
    nothing is loaded into Python)."""
    qn = connection.ops.quote_name
    stop = week + WEEK
    with connection.cursor() as cursor:
        for target, source, columns, sums in (
            (WeeklyFact, DailyFact, _CELL, "SUM(numerator), SUM(denominator)"),
            (WeeklyDuration, DurationBucket, f"{_CELL}, bucket", "SUM(count)"),
        ):
            table = qn(target._meta.db_table)
            values = "numerator, denominator" if target is WeeklyFact else "count"
            cursor.execute(f"DELETE FROM {table} WHERE week = %s", [week])
            cursor.execute(
                f"INSERT INTO {table} (week, {columns}, {values}) "
                f"SELECT %s, {columns}, {sums} FROM {qn(source._meta.db_table)} "
                f"WHERE day >= %s AND day < %s GROUP BY {columns}",
                [week, week, stop],
            )


def facts_roll_up_weeks(*, weeks: Iterable[date]) -> list[date]:
    """(Re)build the roll-ups of ``weeks`` (any day names its week); returns the weeks rolled.

    Only settled weeks (ended before today) whose 7 days all have a ``FactDay`` are rolled; a week
    with a missing day loses any roll-up it had. One transaction per week: it locks the week's
    ``FactDay`` rows in day order (as ``facts_compute`` does: a recompute of one of the days waits
    for the roll-up, or the roll-up for it), so the rows summed and the versions recorded in
    ``FactWeek.days_version`` are those of the same computation of each day.
    """
    today = local_today()
    rolled: list[date] = []
    for week in sorted({week_of(day) for day in weeks}):
        if not week_settled(week, today=today):
            continue
        with transaction.atomic():
            versions = list(
                FactDay.objects.select_for_update()
                .filter(day__gte=week, day__lt=week + WEEK)
                .order_by("day")
                .values_list("version", flat=True)
            )
            if len(versions) < 7:
                WeeklyFact.objects.filter(week=week).delete()
                WeeklyDuration.objects.filter(week=week).delete()
                FactWeek.objects.filter(week=week).delete()
                continue
            _roll_up_sql(week)
            FactWeek.objects.update_or_create(
                week=week, defaults={"days_version": sum(versions), "rolled_at": timezone.now()}
            )
        rolled.append(week)
    return rolled


def facts_weeks_to_roll(*, day_from: date, day_to: date) -> list[date]:
    """The settled weeks touching ``[day_from, day_to)`` whose 7 days are computed and whose
    roll-up is missing or stale (2 queries)."""
    today = local_today()
    first = week_of(day_from)
    stop = min(week_of(day_to - timedelta(days=1)) + WEEK, week_of(today))
    if stop <= first:
        return []
    days: dict[date, list[int]] = defaultdict(list)
    for day, version in FactDay.objects.filter(day__gte=first, day__lt=stop).values_list(
        "day", "version"
    ):
        days[week_of(day)].append(version)
    current = dict(
        FactWeek.objects.filter(week__gte=first, week__lt=stop).values_list("week", "days_version")
    )
    return sorted(
        week
        for week, versions in days.items()
        if len(versions) == 7 and current.get(week) != sum(versions)
    )


# Rebuilding this many weeks replaces a large part of the roll-up tables: vacuum and analyze them.
VACUUM_AFTER_WEEKS = 4
ROLL_UP_TABLES = (WeeklyFact._meta.db_table, WeeklyDuration._meta.db_table)


def facts_roll_up(*, day_from: date, day_to: date) -> list[date]:
    """Roll up the stale or missing settled weeks touching ``[day_from, day_to)``; returns them.

    After ``VACUUM_AFTER_WEEKS`` or more, the roll-up tables are vacuumed and analyzed (outside a
    transaction; ``facts_vacuum`` skips it inside one): each rebuilt week deleted its old rows, and
    after a full recompute (every week) the tables held more dead rows than live ones, with the
    planner's statistics from before they were filled. At 1M the first 90-day read of a team's
    dashboard took 515 ms so, 280 ms with the daily facts alone.
    """
    weeks = facts_roll_up_weeks(weeks=facts_weeks_to_roll(day_from=day_from, day_to=day_to))
    if weeks:
        logger.info("facts roll-up: %s weeks (%s to %s)", len(weeks), weeks[0], weeks[-1])
    if len(weeks) >= VACUUM_AFTER_WEEKS:
        facts_vacuum(tables=ROLL_UP_TABLES)
    return weeks


# Managers' scorecards warmed: their dashboard's "last 4 weeks", and 90 days (each period warmed
# reads its own rolled weeks once: at 1M conversations with 20 managers, the warm took 197 s with
# this quarter too, beside the worker's other roll-ups).
MANAGER_WARM_PERIOD_DAYS = (28, 90)


def scorecards_warm() -> int:
    """Fill the cache with the desk's standard scorecards as the admins read them (every admin
    reads the same cache entries: their facts are not narrowed); returns the reads made.

    The last 7, 28, 30 and 90 days, this week and this quarter, up to today: by desk, agent and
    channel (the API's ``GET /api/v1/scorecards`` and the dashboard's figures, agents' table and
    coverage by channel), and the dashboard's trend. Managers' reads are narrowed to their teams
    (their own cache keys): each active manager's whole view and each of their teams, over the
    last 28 and 90 days. Besides the scorecards themselves, each read caches
    its period's rolled weeks (``metrics.sums.period_sums``), which the reads after the next
    recompute of a recent day take from the cache.
    """
    admin = User.objects.filter(role=User.Role.ADMIN, is_active=True).order_by("pk").first()
    if admin is None:
        return 0
    today = local_today()
    stop = today + timedelta(days=1)
    quarter = date(today.year, 3 * ((today.month - 1) // 3) + 1, 1)
    starts = {today - timedelta(days=n - 1) for n in WARM_PERIOD_DAYS}
    starts |= {week_of(today), quarter}
    reads = 0
    for start in sorted(starts):
        for group_by in WARM_GROUPINGS:
            scorecard_groups(user=admin, date_from=start, date_to=stop, group_by=group_by)
            reads += 1
    weekly_trend(user=admin, scope=Scope("desk"), end=today)
    reads += 1
    manager_starts = sorted({today - timedelta(days=n - 1) for n in MANAGER_WARM_PERIOD_DAYS})
    managers = User.objects.filter(role=User.Role.MANAGER, is_active=True).prefetch_related("teams")
    for manager in managers.order_by("pk"):
        scopes = [Scope("desk"), *(Scope("team", team=team) for team in manager.teams.all())]
        for scope in scopes:
            for start in manager_starts:
                for group_by in WARM_GROUPINGS:
                    scorecard_groups(
                        user=manager, date_from=start, date_to=stop, group_by=group_by, scope=scope
                    )
                    reads += 1
            weekly_trend(user=manager, scope=scope, end=today)
            reads += 1
    return reads
