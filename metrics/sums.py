"""Sums of facts over a period (reads): what every scorecard and agents' table adds up.

A period's facts are the roll-ups of its whole settled weeks (``WeeklyFact``, ``WeeklyDuration``)
where they are current (``facts_state``), and the daily rows of every other day of the period
(the "loose" days: those before its first whole week, and the current week's).

The roll-ups of settled weeks change only when a roll-up is rebuilt (after a recompute of one of
their days), while the loose days change all day: each recompute of today's facts (a dirty day)
bumps the version every scorecard of the period is cached under. So the sums of a period's
rolled weeks are cached apart, under the weeks and the versions their roll-ups were built from
(``FactsState.rolled_token``), with each duration histogram kept as its sorted buckets and
running counts: a read after a recompute of a recent day reads only the loose days from the
database (2 queries) and finds the quantiles of the rolled and loose histograms together by
bisection, without adding them up bucket by bucket. At 1M conversations the desk's 90-day agents'
table had the database sum 638,269 weekly histogram rows into 221,718 on every such read.
"""

from __future__ import annotations

import hashlib
import math
from array import array
from bisect import bisect_right
from collections import defaultdict
from dataclasses import dataclass
from datetime import date, timedelta
from itertools import accumulate
from typing import Any

from django.conf import settings
from django.core.cache import cache
from django.db import connections
from django.db.models import DateField, OuterRef, Q, QuerySet, Subquery, Sum
from django.db.models.functions import Cast, TruncWeek

from metrics.models import (
    DailyFact,
    DurationBucket,
    FactDay,
    FactWeek,
    TopicFact,
    WeeklyDuration,
    WeeklyFact,
)
from metrics.scorecards import DURATION_QUANTILES, ranked_duration

# {group: {metric: (numerator, denominator)}}
Sums = dict[Any, dict[str, tuple[int, int]]]
# {group: {metric: {"median", "p90", "n"}}}
Durations = dict[Any, dict[str, dict[str, Any]]]
# A histogram as its buckets in order and the running count of samples up to each of them.
Cumulative = tuple["array[int]", "array[int]"]
# {group: {metric: Cumulative}}
Histograms = dict[Any, dict[str, Cumulative]]


def cache_key(kind: str, *parts: Any) -> str:
    digest = hashlib.blake2b("|".join(map(str, parts)).encode(), digest_size=16).hexdigest()
    return f"metrics:{kind}:v2:{digest}"


def sum_rows(qs: QuerySet[Any], fields: list[str]) -> QuerySet[Any]:
    rows: QuerySet[Any] = (
        qs.values(*fields)
        .annotate(n=Sum("numerator"), d=Sum("denominator"))
        .order_by()
        .values_list(*fields, "n", "d")
    )
    return rows


def _add_sum_rows(result: Sums, rows: Any, group_field: str | None) -> None:
    for *cell, n, d in rows:
        key = cell[0] if group_field else "desk"
        before = result.setdefault(key, {}).get(cell[-1], (0, 0))
        result[key][cell[-1]] = (before[0] + int(n or 0), before[1] + int(d or 0))


def sums(qs: QuerySet[DailyFact] | QuerySet[TopicFact], group_field: str | None) -> Sums:
    """Numerator and denominator sums per group and metric of ``qs``'s rows (one query)."""
    fields = [group_field, "metric"] if group_field else ["metric"]
    result: Sums = {}
    _add_sum_rows(result, sum_rows(qs, fields), group_field)
    return result


def count_rows(qs: QuerySet[Any], fields: list[str]) -> QuerySet[Any]:
    rows: QuerySet[Any] = (
        qs.values(*fields).annotate(c=Sum("count")).order_by().values_list(*fields, "c")
    )
    return rows


def durations(qs: QuerySet[DurationBucket], group_field: str | None) -> Durations:
    """Each group's duration metrics ``{metric: {"median", "p90", "n"}}`` over ``qs``'s
    histogram rows (one query).

    The database sums each group's histogram and finds the buckets the quantiles interpolate
    between (``ranked_duration``), so one row per group and metric comes back, not every bucket:
    the desk's 90-day agents' table at 1M conversations was 164,554 bucket rows read into Python
    (most of the first read's time, and the web worker's memory peak).
    """
    fields = [group_field, "metric", "bucket"] if group_field else ["metric", "bucket"]
    rows = count_rows(qs, fields)
    alias = rows.db
    inner, params = rows.query.get_compiler(using=alias).as_sql()
    group = "g" if group_field else "0"
    cells = "g, metric" if group_field else "metric"
    # A quantile q of n samples interpolates between ranks floor(p) and ceil(p), p = (n - 1) q
    # (0-based): the first buckets whose running count exceeds p, and reaches p + 1 (the same
    # float arithmetic as ``quantile``: the product is taken in double precision).
    picks = []
    for q in DURATION_QUANTILES:
        position = "(CAST(total AS DOUBLE PRECISION) - 1) * %s"
        picks.append(f"MIN(CASE WHEN cum > {position} THEN bucket END)")
        picks.append(f"MIN(CASE WHEN cum >= {position} + 1 THEN bucket END)")
        params = (*params, q, q)
    sql = (
        f"WITH h({cells}, bucket, c) AS ({inner}), "
        f"r AS (SELECT {cells}, bucket, "
        f"SUM(c) OVER (PARTITION BY {cells} ORDER BY bucket) AS cum, "
        f"SUM(c) OVER (PARTITION BY {cells}) AS total FROM h) "
        f"SELECT {group}, metric, MAX(total), {', '.join(picks)} FROM r GROUP BY {cells}"
    )
    result: Durations = defaultdict(dict)
    with connections[alias].cursor() as cursor:
        cursor.execute(sql, params)
        for key, metric, total, *ranks in cursor.fetchall():
            ranked = ranked_duration(int(total), tuple(ranks))
            result[key if group_field else "desk"][metric] = ranked
    return result


@dataclass(frozen=True)
class FactsState:
    """What ``facts_state`` reads of a period's days: see there."""

    computed_at: Any
    token: str
    # Mondays of the period's whole weeks whose roll-up is current (see ``facts_state``).
    rolled: tuple[date, ...]
    # The rolled weeks and the day versions their roll-ups were built from.
    rolled_token: str = ""
    # Each computed day of the period and its version.
    versions: tuple[tuple[date, int], ...] = ()


def facts_state(date_from: date, date_to: date) -> FactsState:
    """When the facts of ``[date_from, date_to)`` were last computed, a token that changes with
    every recompute of any of those days, and which of the period's weeks can be read from their
    roll-ups (1 query).

    ``facts_compute`` bumps each day's ``FactDay.version``; versions only grow, so the count,
    sum and latest ``computed_at`` of the period's days change whenever one of them is recomputed,
    even twice within one clock tick. For the same reason a week's roll-up (``WeeklyFact``,
    ``WeeklyDuration``) is read only when all 7 of its days exist and the sum of their versions
    is still the ``FactWeek.days_version`` it was built from: a recompute of any of its days
    since makes the readers take that week's daily rows instead, so a stale roll-up never shows.
    """
    rolled_version = FactWeek.objects.filter(week=OuterRef("week")).values("days_version")[:1]
    rows = (
        FactDay.objects.filter(day__gte=date_from, day__lt=date_to)
        .annotate(
            week=Cast(TruncWeek("day"), DateField()),  # the Monday
            rolled=Subquery(rolled_version),
        )
        .order_by("day")
        .values_list("day", "computed_at", "version", "week", "rolled")
    )
    last = None
    versions: list[tuple[date, int]] = []
    weeks: dict[date, list[int]] = defaultdict(list)
    rolled_at: dict[date, int | None] = {}
    for day, computed_at, version, week, rolled_at_version in rows:
        if computed_at is not None and (last is None or computed_at > last):
            last = computed_at
        versions.append((day, int(version)))
        weeks[week].append(int(version))
        rolled_at[week] = rolled_at_version
    rolled = [
        (week, int(days_version))
        for week, week_versions in sorted(weeks.items())
        if len(week_versions) == 7
        and (days_version := rolled_at[week]) is not None
        and days_version == sum(week_versions)
        and week >= date_from
        and week + timedelta(days=7) <= date_to
    ]
    token = f"{len(versions)}.{sum(v for _, v in versions)}.{last.isoformat() if last else '-'}"
    rolled_token = ",".join(f"{week.isoformat()}:{version}" for week, version in rolled)
    return FactsState(
        computed_at=last,
        token=token,
        rolled=tuple(week for week, _ in rolled),
        rolled_token=rolled_token,
        versions=tuple(versions),
    )


def facts_version(date_from: date, date_to: date) -> tuple[Any, str]:
    """``facts_state``'s ``(computed_at, token)`` (1 query)."""
    state = facts_state(date_from, date_to)
    return state.computed_at, state.token


def loose_days(date_from: date, date_to: date, rolled: tuple[date, ...]) -> list[date]:
    """The days of ``[date_from, date_to)`` outside the ``rolled`` weeks, in order."""
    weeks = set(rolled)
    return [
        day
        for n in range((date_to - date_from).days)
        if (day := date_from + timedelta(days=n)) - timedelta(days=day.weekday()) not in weeks
    ]


def days_q(days: list[date]) -> Q:
    """``days`` (in order) as runs of consecutive days."""
    q = Q()
    start = previous = days[0]
    for day in [*days[1:], None]:
        if day is not None and day == previous + timedelta(days=1):
            previous = day
            continue
        q |= Q(day__gte=start, day__lt=previous + timedelta(days=1))
        if day is not None:
            start = previous = day
    return q


def loose_days_q(date_from: date, date_to: date, rolled: tuple[date, ...]) -> Q | None:
    """``loose_days`` as runs of consecutive days (None when every day is in a rolled week)."""
    days = loose_days(date_from, date_to, rolled)
    return days_q(days) if days else None


def _parts(querysets: list[QuerySet[Any]]) -> tuple[str, tuple[Any, ...], str]:
    """One statement of the rows of ``querysets``, each row led by its queryset's index."""
    alias = querysets[0].db
    statements, params = [], ()
    for i, qs in enumerate(querysets):
        sql, qs_params = qs.query.get_compiler(using=alias).as_sql()
        statements.append(f"SELECT {i} AS part, p{i}.* FROM ({sql}) p{i}")
        params = (*params, *qs_params)
    return " UNION ALL ".join(statements), params, alias


def rows_by_part(querysets: list[QuerySet[Any]]) -> list[list[tuple[Any, ...]]]:
    """The rows of each of ``querysets`` (one query: ``UNION ALL``, each row tagged)."""
    sql, params, alias = _parts(querysets)
    result: list[list[tuple[Any, ...]]] = [[] for _ in querysets]
    with connections[alias].cursor() as cursor:
        cursor.execute(sql, params)
        for part, *row in cursor.fetchall():
            result[part].append(tuple(row))
    return result


def _sums_by_part(querysets: list[QuerySet[Any]], group_field: str | None) -> list[Sums]:
    """``sums`` of each of ``querysets`` (one query)."""
    fields = [group_field, "metric"] if group_field else ["metric"]
    result: list[Sums] = []
    for rows in rows_by_part([sum_rows(qs, fields) for qs in querysets]):
        result.append({})
        _add_sum_rows(result[-1], rows, group_field)
    return result


def _histograms_by_part(
    querysets: list[QuerySet[Any]], group_field: str | None
) -> list[Histograms]:
    """Each group's histogram of every duration metric, of each of ``querysets`` (one query).

    On PostgreSQL one row per part, group and metric comes back, its buckets and counts as two
    arrays; elsewhere one row per bucket.
    """
    fields = [group_field, "metric", "bucket"] if group_field else ["metric", "bucket"]
    inner, params, alias = _parts([count_rows(qs, fields) for qs in querysets])
    cells = "part, g, metric" if group_field else "part, metric"
    if connections[alias].vendor == "postgresql":
        sql = (
            f"SELECT {cells}, array_agg(bucket ORDER BY bucket), array_agg(c ORDER BY bucket) "
            f"FROM ({inner}) h({cells}, bucket, c) GROUP BY {cells}"
        )
    else:
        sql = f"WITH h({cells}, bucket, c) AS ({inner}) SELECT * FROM h ORDER BY {cells}, bucket"
    with connections[alias].cursor() as cursor:
        cursor.execute(sql, params)
        rows = cursor.fetchall()
    lists: dict[tuple[Any, ...], tuple[list[int], list[int]]] = {}
    if connections[alias].vendor == "postgresql":
        for *cell, buckets, counts in rows:
            lists[tuple(cell)] = (buckets, counts)
    else:
        for *cell, bucket, count in rows:
            buckets, counts = lists.setdefault(tuple(cell), ([], []))
            buckets.append(bucket)
            counts.append(count)
    result: list[Histograms] = [{} for _ in querysets]
    for cell, (buckets, counts) in lists.items():
        part, key, metric = cell if group_field else (cell[0], "desk", cell[1])
        result[part].setdefault(key, {})[metric] = _cumulative(buckets, counts)
    return result


def _cumulative(buckets: list[int], counts: list[int]) -> Cumulative:
    """A histogram as two machine arrays, 4 bytes an entry while the numbers fit (a 90-day
    agents' table at 1M conversations: 221,718 buckets, 1.8 MB in the cache)."""
    running = list(accumulate(int(c) for c in counts))
    try:
        return array("i", buckets), array("I", running)
    except OverflowError:
        return array("q", buckets), array("q", running)


def _count_upto(histograms: list[Cumulative], bucket: int) -> int:
    total = 0
    for buckets, running in histograms:
        i = bisect_right(buckets, bucket)
        if i:
            total += running[i - 1]
    return total


def _first_over(histograms: list[Cumulative], rank: int) -> int:
    """The smallest bucket whose running count, over all ``histograms`` together, exceeds
    ``rank`` (0-based: the bucket holding the sample of that rank)."""
    if len(histograms) == 1:
        buckets, running = histograms[0]
        return buckets[bisect_right(running, rank)]
    low = min(buckets[0] for buckets, _ in histograms)
    high = max(buckets[-1] for buckets, _ in histograms)
    # Bounds from each histogram alone: where it exceeds ``rank`` by itself, the sum does; and
    # before it exceeds ``rank`` less all the others' samples, the sum cannot. With one large
    # histogram (the rolled weeks) and small ones (loose days) the search is left a few buckets.
    n = sum(running[-1] for _, running in histograms)
    for buckets, running in histograms:
        if rank < running[-1]:
            high = min(high, buckets[bisect_right(running, rank)])
        if (floor := rank - (n - running[-1])) >= 0:
            low = max(low, buckets[bisect_right(running, floor)])
    while low < high:
        middle = (low + high) // 2
        if _count_upto(histograms, middle) > rank:
            high = middle
        else:
            low = middle + 1
    return low


def merged_duration(histograms: list[Cumulative]) -> dict[str, Any]:
    """``duration`` of the sum of ``histograms``, without adding them up (``_first_over``)."""
    n = sum(running[-1] for _, running in histograms if running)
    histograms = [h for h in histograms if len(h[0])]
    ranks: list[int | None] = []
    for q in DURATION_QUANTILES:
        position = (n - 1) * q
        lower = _first_over(histograms, math.floor(position)) if n else None
        upper_rank = math.ceil(position)
        if lower is not None and _count_upto(histograms, lower) > upper_rank:
            upper: int | None = lower
        else:
            upper = _first_over(histograms, upper_rank) if n else None
        ranks += [lower, upper]
    return ranked_duration(n, tuple(ranks))


@dataclass(frozen=True)
class _Segment:
    """Part of a period read on its own: from the roll-ups (``weekly``) or the daily rows, cached
    under ``key`` (None: never cached)."""

    where: Q
    weekly: bool = False
    key: str | None = None


def _segments(
    cells: Q, date_from: date, date_to: date, state: FactsState, group_field: str | None
) -> list[_Segment]:
    """The rolled weeks; the loose days but the last (cached under their versions); the last
    loose day (read every time: today's facts are the ones recomputed all day)."""
    segments = [
        _Segment(
            Q(week__in=state.rolled),
            weekly=True,
            key=cache_key("rolled", cells, group_field, state.rolled_token),
        )
    ]
    loose = loose_days(date_from, date_to, state.rolled)
    if not loose:
        return segments
    stable, fresh = loose[:-1], loose[-1]
    if stable:
        versions = dict(state.versions)
        token = ",".join(f"{day.isoformat()}:{versions.get(day, '-')}" for day in stable)
        segments.append(_Segment(days_q(stable), key=cache_key("loose", cells, group_field, token)))
    segments.append(_Segment(Q(day=fresh)))
    return segments


def period_sums(
    cells: Q, date_from: date, date_to: date, state: FactsState, group_field: str | None
) -> tuple[Sums, Durations]:
    """The sums and duration metrics per group of the facts of ``cells`` over
    ``[date_from, date_to)`` (``state`` is ``facts_state`` of the period).

    Without a rolled week, the daily rows' (2 queries). Otherwise the period is read in segments
    (``_segments``): the rolled weeks' sums and histograms, and the loose days' but the last, come
    from the cache (``SCORECARD_CACHE_SECONDS``) under the versions they were built from; the
    rest from the database, every segment in the same 2 queries (``UNION ALL``, each row tagged
    with its segment). A read after a recompute of today reads today's rows only.
    """
    if not state.rolled:
        days = cells & Q(day__gte=date_from, day__lt=date_to)
        return (
            sums(DailyFact.objects.filter(days), group_field),
            durations(DurationBucket.objects.filter(days), group_field),
        )
    segments = _segments(cells, date_from, date_to, state, group_field)
    cached = cache.get_many([segment.key for segment in segments if segment.key])
    missing = [segment for segment in segments if segment.key not in cached]
    parts: list[tuple[Sums, Histograms]] = [cached[s.key] for s in segments if s.key in cached]
    if missing:
        read_sums = _sums_by_part(
            [
                (WeeklyFact if s.weekly else DailyFact).objects.filter(cells & s.where)
                for s in missing
            ],
            group_field,
        )
        read_histograms = _histograms_by_part(
            [
                (WeeklyDuration if s.weekly else DurationBucket).objects.filter(cells & s.where)
                for s in missing
            ],
            group_field,
        )
        read = list(zip(read_sums, read_histograms, strict=True))
        cache.set_many(
            {s.key: part for s, part in zip(missing, read, strict=True) if s.key},
            settings.SCORECARD_CACHE_SECONDS,
        )
        parts += read
    total: Sums = {}
    for part_sums, _ in parts:
        for key, part_metrics in part_sums.items():
            cell = total.setdefault(key, {})
            for metric, (n, d) in part_metrics.items():
                before = cell.get(metric, (0, 0))
                cell[metric] = (before[0] + n, before[1] + d)
    histograms: dict[Any, dict[str, list[Cumulative]]] = {}
    for _, part_histograms in parts:
        for key, part_cumulatives in part_histograms.items():
            cell_histograms = histograms.setdefault(key, {})
            for metric, histogram in part_cumulatives.items():
                cell_histograms.setdefault(metric, []).append(histogram)
    result: Durations = {
        key: {metric: merged_duration(pieces) for metric, pieces in by_metric.items()}
        for key, by_metric in histograms.items()
    }
    return total, result
