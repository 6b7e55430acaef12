"""Business time: opening intervals of a schedule, business seconds between two instants, and
the instant a number of business seconds after another.

A ``Schedule`` is plain data (no query), built by ``routing.selectors.schedule_for_team``. The
scorecards count the same business seconds in SQL with ``business_seconds_sql``, which reads the
``BusinessInterval`` rows ``routing.services.business_intervals_rebuild`` writes from the same
``Schedule.intervals``: the two can never disagree.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, time, timedelta
from typing import Any, TypeVar
from zoneinfo import ZoneInfo

from django.db.models import (
    DateTimeField,
    Expression,
    ExpressionWrapper,
    F,
    FloatField,
    Func,
    IntegerField,
    OuterRef,
    QuerySet,
    Subquery,
    Value,
)
from django.db.models.functions import Coalesce, Least

WEEKDAYS = ("mon", "tue", "wed", "thu", "fri", "sat", "sun")
# A day's intervals in minutes after local midnight: [(540, 1020)] is 09:00 to 17:00.
DayHours = tuple[tuple[int, int], ...]
# How far ``add_business_seconds`` looks for opening hours before giving up.
HORIZON_DAYS = 800


def parse_hhmm(value: str) -> int:
    """ "09:30" -> 570; "24:00" is the end of the day. ValueError if malformed."""
    hours, _, minutes = str(value).strip().partition(":")
    if not (hours.isdigit() and (minutes.isdigit() or not minutes)):
        raise ValueError(f"{value!r} is not a time of day (HH:MM).")
    h, m = int(hours), int(minutes or 0)
    if not (0 <= h <= 24 and 0 <= m < 60) or (h == 24 and m):
        raise ValueError(f"{value!r} is not a time of day (HH:MM).")
    return h * 60 + m


def format_hhmm(minutes: int) -> str:
    return f"{minutes // 60:02d}:{minutes % 60:02d}"


def day_hours(intervals: Any) -> DayHours:
    """``[["09:00", "12:00"], ["13:00", "17:00"]]`` -> sorted minute pairs; ValueError when an
    interval is empty or two overlap."""
    pairs = sorted((parse_hhmm(a), parse_hhmm(b)) for a, b in intervals or [])
    for i, (start, end) in enumerate(pairs):
        if start >= end:
            raise ValueError(f"{format_hhmm(start)}-{format_hhmm(end)} ends before it starts.")
        if i and start < pairs[i - 1][1]:
            raise ValueError("Two intervals of one day overlap.")
    return tuple(pairs)


@dataclass(frozen=True)
class Schedule:
    """Weekly hours in a time zone, with dated exceptions (an empty day is a holiday)."""

    tz: ZoneInfo
    week: tuple[DayHours, ...]  # Monday first
    exceptions: dict[date, DayHours] = field(default_factory=dict)

    def hours_on(self, day: date) -> DayHours:
        if day in self.exceptions:
            return self.exceptions[day]
        return self.week[day.weekday()]

    def intervals(self, start: datetime, end: datetime) -> Iterator[tuple[datetime, datetime]]:
        """Opening intervals (UTC) overlapping ``[start, end)``, clipped to it, in order."""
        day = start.astimezone(self.tz).date() - timedelta(days=1)
        last = end.astimezone(self.tz).date() + timedelta(days=1)
        while day <= last:
            for a, b in self.hours_on(day):
                lo = max(_local(day, a, self.tz), start)
                hi = min(_local(day, b, self.tz), end)
                if lo < hi:
                    yield lo.astimezone(UTC), hi.astimezone(UTC)
            day += timedelta(days=1)

    def is_open(self, at: datetime) -> bool:
        return any(True for _ in self.intervals(at, at + timedelta(seconds=1)))

    def seconds_between(self, start: datetime, end: datetime) -> float:
        """Business seconds in ``[start, end)`` (0 when end <= start)."""
        if end <= start:
            return 0.0
        return sum((b - a).total_seconds() for a, b in self.intervals(start, end))

    def add(self, start: datetime, seconds: float) -> datetime | None:
        """The instant ``seconds`` business seconds after ``start``; None if never open."""
        remaining = float(seconds)
        window = start
        for _ in range(HORIZON_DAYS // 30):
            stop = window + timedelta(days=30)
            for a, b in self.intervals(window, stop):
                span = (b - a).total_seconds()
                if remaining <= span:
                    return a + timedelta(seconds=remaining)
                remaining -= span
            window = stop
        return None


def _local(day: date, minutes: int, tz: ZoneInfo) -> datetime:
    """Local ``day`` at ``minutes`` after midnight, aware ("24:00" is the next midnight)."""
    if minutes == 1440:
        return datetime.combine(day + timedelta(days=1), time(0), tzinfo=tz)
    return datetime.combine(day, time(minutes // 60, minutes % 60), tzinfo=tz)


ALWAYS_OPEN = Schedule(tz=ZoneInfo("UTC"), week=tuple(((0, 1440),) for _ in WEEKDAYS))


class Epoch(Func):
    template = "EXTRACT(EPOCH FROM %(expressions)s)"
    output_field = FloatField()


def _clock(team_alias: str, at_alias: str) -> Subquery:
    """SQL: the team's business seconds up to the outer row's ``at_alias`` (NULL when the team
    has no intervals: it is always open)."""
    from routing.models import BusinessInterval

    return Subquery(
        BusinessInterval.objects.filter(
            team_key=OuterRef(team_alias), opens_at__lte=OuterRef(at_alias)
        )
        .order_by("-opens_at")
        .annotate(
            clock=F("before_seconds")
            + Epoch(Least(OuterRef(at_alias), F("closes_at"), output_field=DateTimeField()))
            - Epoch(F("opens_at"))
        )
        .values("clock")[:1],
        output_field=FloatField(),
    )


Q_T = TypeVar("Q_T", bound=QuerySet[Any])


def annotate_business_seconds(
    qs: Q_T, *, name: str, team: str | Expression, start: str | Expression, end: str | Expression
) -> Q_T:
    """``qs`` annotated with ``name``: business seconds from ``start`` to ``end`` in the hours
    of ``team`` (a team id; NULL: conversations without a team), or calendar seconds when that
    team is always open. Two correlated subqueries on an indexed table per row."""
    team_expr = F(team) if isinstance(team, str) else team
    start_expr = F(start) if isinstance(start, str) else start
    end_expr = F(end) if isinstance(end, str) else end
    qs = qs.annotate(
        **{
            f"{name}_tk": Coalesce(team_expr, Value(0), output_field=IntegerField()),
            f"{name}_t0": ExpressionWrapper(start_expr, output_field=DateTimeField()),
            f"{name}_t1": ExpressionWrapper(end_expr, output_field=DateTimeField()),
        }
    )
    return qs.annotate(
        **{
            name: Coalesce(
                _clock(f"{name}_tk", f"{name}_t1") - _clock(f"{name}_tk", f"{name}_t0"),
                Epoch(F(f"{name}_t1")) - Epoch(F(f"{name}_t0")),
                output_field=FloatField(),
            )
        }
    )
