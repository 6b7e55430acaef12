"""Weekly roll-ups of settled days (metrics.rollups): a scorecard read from them is exactly the
one read from the daily rows, and a roll-up that a recompute made stale is never read.

The facts are generated (random rows over 12 weeks and some loose days), not computed from
conversations: the roll-ups only add up what the daily rows hold, whatever they hold.
"""

from __future__ import annotations

import random
from collections import defaultdict
from datetime import UTC, date, datetime, timedelta
from typing import Any

import pytest
import time_machine
from django.core.cache import cache
from django.db import connection
from django.db.models import F, Sum
from django.test.utils import CaptureQueriesContext

from metrics.facts import bucket_value
from metrics.models import DailyFact, DirtyDay, DurationBucket, FactDay, FactWeek, WeeklyFact
from metrics.nightly import facts_recompute_nightly
from metrics.rollups import facts_roll_up, facts_roll_up_weeks, facts_weeks_to_roll, scorecards_warm
from metrics.scorecards import build_metrics, histogram_durations
from metrics.selectors import Scope, facts_state, scorecard_groups, visible_facts_q, weekly_trend
from metrics.services import (
    facts_compute,
    facts_mark_dirty,
    facts_recompute_dirty,
    recompute_job_create,
)
from metrics.sums import cache_key, durations
from metrics.tasks import facts_roll_up_task
from supportdesk.models import OutboxItem
from tests.conftest import client_for
from tests.services import require_postgres

NOW = datetime(2026, 11, 20, 12, 0, tzinfo=UTC)  # a Friday
TODAY = date(2026, 11, 20)
FIRST = date(2026, 8, 27)  # a Thursday: three loose days before the first whole week
SETTLED = [date(2026, 8, 31) + timedelta(weeks=n) for n in range(11)]  # 31 Aug .. 9 Nov
METRICS = ("internal_fcr", "customer_fcr", "gap_internal_fcr", "resolution_rate", "csat")
DURATIONS = ("first_response_time", "handle_time")

pytestmark = [pytest.mark.django_db, pytest.mark.usefixtures("_utc")]


@pytest.fixture
def _utc(settings):
    settings.TIME_ZONE = "UTC"
    cache.clear()


class Facts:
    """The generated rows, kept to sum them in Python (the expected figures)."""

    def __init__(self, rows: list[dict[str, Any]], buckets: list[dict[str, Any]]):
        self.rows = rows
        self.buckets = buckets

    def expected(
        self, date_from: date, date_to: date, group: str | None, keep: Any = lambda row: True
    ) -> dict[Any, Any]:
        """``build_metrics`` of the rows of ``[date_from, date_to)`` that ``keep`` admits."""
        sums: dict[Any, dict[str, list[int]]] = defaultdict(lambda: defaultdict(lambda: [0, 0]))
        histograms: dict[Any, dict[str, dict[int, int]]] = defaultdict(
            lambda: defaultdict(lambda: defaultdict(int))
        )
        for row in self.rows:
            if date_from <= row["day"] < date_to and keep(row):
                cell = sums[row[group] if group else "desk"][row["metric"]]
                cell[0] += row["numerator"]
                cell[1] += row["denominator"]
        for row in self.buckets:
            if date_from <= row["day"] < date_to and keep(row):
                histograms[row[group] if group else "desk"][row["metric"]][row["bucket"]] += row[
                    "count"
                ]
        keys = {"desk"} if group is None else set(sums) | set(histograms)
        return {
            key: build_metrics(
                {m: (n, d) for m, (n, d) in sums[key].items()},
                histogram_durations({m: dict(h) for m, h in histograms[key].items()}),
            )
            for key in keys
        }

    def drop_day(self, day: date) -> None:
        self.rows = [row for row in self.rows if row["day"] != day]
        self.buckets = [row for row in self.buckets if row["day"] != day]


@pytest.fixture
def facts(team_a, team_b, agent_a, agent_b, manager_a) -> Facts:
    rng = random.Random(21)
    cells = [
        {"team_id": team_a.pk, "agent_id": agent_a.pk, "channel_kind": "email"},
        {"team_id": team_a.pk, "agent_id": agent_a.pk, "channel_kind": "chat"},
        {"team_id": team_a.pk, "agent_id": manager_a.pk, "channel_kind": "email"},
        {"team_id": team_b.pk, "agent_id": agent_b.pk, "channel_kind": "email"},
        {"team_id": team_b.pk, "agent_id": agent_b.pk, "channel_kind": "voice"},
        {"team_id": None, "agent_id": agent_b.pk, "channel_kind": "chat"},
        {"team_id": team_a.pk, "agent_id": None, "channel_kind": ""},
        {"team_id": None, "agent_id": None, "channel_kind": ""},
    ]
    rows, buckets = [], []
    day = FIRST
    while day < TODAY:
        for cell in cells:
            # One denominator per day and cell (the solves), as the real facts have: ratios
            # across metrics (the resolution gap) stay within [0, 1].
            denominator = rng.randint(0, 40)
            metrics = METRICS if rng.random() < 0.8 else ()
            rows += [
                {
                    **cell,
                    "day": day,
                    "metric": metric,
                    "denominator": denominator,
                    "numerator": rng.randint(0, denominator),
                }
                for metric in metrics
            ]
            for metric in DURATIONS:
                for bucket in rng.sample(range(0, 700), 4):
                    buckets.append(
                        {
                            **cell,
                            "day": day,
                            "metric": metric,
                            "bucket": bucket,
                            "count": rng.randint(1, 9),
                        }
                    )
        day += timedelta(days=1)
    DailyFact.objects.bulk_create([DailyFact(**row) for row in rows])
    DurationBucket.objects.bulk_create([DurationBucket(**row) for row in buckets])
    FactDay.objects.bulk_create(
        [
            FactDay(day=FIRST + timedelta(days=n), computed_at=NOW, version=1 + n % 3)
            for n in range((TODAY - FIRST).days)
        ]
    )
    return Facts(rows, buckets)


def _metrics(data: dict[str, Any]) -> dict[Any, Any]:
    return {group["key"]: group["metrics"] for group in data["groups"]}


def _read(user, date_from, date_to, group_by, scope=None) -> dict[Any, Any]:
    cache.clear()
    return _metrics(
        scorecard_groups(
            user=user, date_from=date_from, date_to=date_to, group_by=group_by, scope=scope
        )
    )


PERIODS = [
    (date(2026, 8, 27), date(2026, 11, 20)),  # every day: loose days at both ends
    (date(2026, 9, 2), date(2026, 10, 29)),  # Wednesday to Thursday
    (date(2026, 9, 7), date(2026, 10, 5)),  # four whole weeks, nothing loose
    (date(2026, 11, 3), date(2026, 11, 12)),  # no whole week inside
]
GROUPS = {"desk": None, "team": "team_id", "agent": "agent_id", "channel": "channel_kind"}


def _without_desk_only(expected: dict[Any, Any]) -> dict[Any, Any]:
    return {
        k: {m: v for m, v in metrics.items() if m != "promises_kept_rate"}
        for k, metrics in expected.items()
    }


def test_every_settled_week_is_rolled_up_and_the_current_one_is_not(facts):
    with time_machine.travel(NOW, tick=False):
        assert facts_weeks_to_roll(day_from=FIRST, day_to=TODAY) == SETTLED
        assert facts_roll_up(day_from=FIRST, day_to=TODAY) == SETTLED
        # Nothing stale any more: a second pass rolls nothing.
        assert facts_roll_up(day_from=FIRST, day_to=TODAY) == []
        # The week of 16 November has not ended; 24 August lacks 4 of its days.
        assert facts_roll_up_weeks(weeks=[date(2026, 11, 18), date(2026, 8, 28)]) == []
    assert list(FactWeek.objects.values_list("week", flat=True)) == SETTLED
    week = date(2026, 9, 14)
    expected_version = sum(1 + ((week - FIRST).days + n) % 3 for n in range(7))
    assert FactWeek.objects.get(week=week).days_version == expected_version
    # A cell's week row holds the sum of its 7 days' rows.
    some = facts.rows[len(facts.rows) // 2]
    monday = some["day"] - timedelta(days=some["day"].weekday())
    cell = {k: some[k] for k in ("metric", "team_id", "agent_id", "channel_kind")}
    daily = [
        r
        for r in facts.rows
        if all(r[k] == v for k, v in cell.items()) and 0 <= (r["day"] - monday).days < 7
    ]
    weekly = WeeklyFact.objects.get(week=monday, **cell)
    assert (weekly.numerator, weekly.denominator) == (
        sum(r["numerator"] for r in daily),
        sum(r["denominator"] for r in daily),
    )


@pytest.mark.parametrize(("date_from", "date_to"), PERIODS)
def test_roll_ups_give_exactly_the_daily_figures(facts, admin_user, date_from, date_to):
    with time_machine.travel(NOW, tick=False):
        facts_roll_up(day_from=FIRST, day_to=TODAY)
        whole = [w for w in SETTLED if w >= date_from and w + timedelta(days=7) <= date_to]
        assert facts_state(date_from, date_to).rolled == tuple(whole)
        for group_by, field in GROUPS.items():
            expected = facts.expected(date_from, date_to, field)
            if group_by == "agent":
                expected = _without_desk_only(expected)
            assert _read(admin_user, date_from, date_to, group_by) == expected, group_by


def test_team_and_agent_scopes_and_a_managers_view_read_the_roll_ups_exactly(
    facts, admin_user, manager_a, team_a, team_b, agent_b
):
    date_from, date_to = date(2026, 8, 29), date(2026, 11, 18)
    in_a = {team_a.pk, None}
    with time_machine.travel(NOW, tick=False):
        facts_roll_up(day_from=FIRST, day_to=TODAY)
        assert len(facts_state(date_from, date_to).rolled) == 11
        team = _read(admin_user, date_from, date_to, "agent", Scope("team", team=team_b))
        agent = _read(admin_user, date_from, date_to, "channel", Scope("agent", agent=agent_b))
        manager = _read(manager_a, date_from, date_to, "team")
    assert team == _without_desk_only(
        facts.expected(date_from, date_to, "agent_id", lambda r: r["team_id"] == team_b.pk)
    )
    assert set(team) == {agent_b.pk}
    assert agent == _without_desk_only(
        facts.expected(date_from, date_to, "channel_kind", lambda r: r["agent_id"] == agent_b.pk)
    )
    assert set(agent) == {"email", "voice", "chat"}
    assert manager == facts.expected(date_from, date_to, "team_id", lambda r: r["team_id"] in in_a)
    assert set(manager) == {team_a.pk, None}


def test_a_stale_roll_up_is_never_read(facts, admin_user):
    date_from, date_to = date(2026, 9, 2), date(2026, 11, 17)
    recomputed = date(2026, 10, 7)  # a Wednesday of the week of 5 October
    with time_machine.travel(NOW, tick=False):
        facts_roll_up(day_from=FIRST, day_to=TODAY)
        before = _read(admin_user, date_from, date_to, "team")
        # A recompute of one day (no source rows: the day's generated rows are replaced by none)
        facts_compute(day_from=recomputed, day_to=recomputed + timedelta(days=1))
        facts.drop_day(recomputed)
        # and its week's roll-up made wrong on purpose: it must not matter, it is stale.
        WeeklyFact.objects.filter(week=date(2026, 10, 5)).update(numerator=10**6)
        state = facts_state(date_from, date_to)
        assert date(2026, 10, 5) not in state.rolled
        assert len(state.rolled) == 9  # 7 Sep .. 9 Nov but 5 Oct
        stale = _read(admin_user, date_from, date_to, "team")
        assert stale == facts.expected(date_from, date_to, "team_id")
        assert stale != before
        # Rolled again: only that week, and the figures do not move.
        assert facts_weeks_to_roll(day_from=FIRST, day_to=TODAY) == [date(2026, 10, 5)]
        assert facts_roll_up(day_from=FIRST, day_to=TODAY) == [date(2026, 10, 5)]
        assert len(facts_state(date_from, date_to).rolled) == 10
        assert _read(admin_user, date_from, date_to, "team") == stale


def test_a_week_missing_a_day_loses_its_roll_up(facts, admin_user):
    with time_machine.travel(NOW, tick=False):
        facts_roll_up(day_from=FIRST, day_to=TODAY)
        FactDay.objects.filter(day=date(2026, 9, 16)).delete()
        assert date(2026, 9, 14) not in facts_state(date(2026, 9, 1), TODAY).rolled
        assert facts_roll_up_weeks(weeks=[date(2026, 9, 14)]) == []
    assert not FactWeek.objects.filter(week=date(2026, 9, 14)).exists()
    assert not WeeklyFact.objects.filter(week=date(2026, 9, 14)).exists()


def test_the_weekly_trend_reads_the_roll_ups_exactly(facts, admin_user):
    scope = Scope("desk")
    end = date(2026, 11, 19)
    with time_machine.travel(NOW, tick=False):
        daily = weekly_trend(user=admin_user, scope=scope, end=end)
        facts_roll_up(day_from=FIRST, day_to=TODAY)
        cache.clear()
        rolled = weekly_trend(user=admin_user, scope=scope, end=end)
    assert rolled == daily
    week = facts.expected(date(2026, 10, 12), date(2026, 10, 19), None)["desk"]
    index = rolled["weeks"].index("2026-10-12")
    assert rolled["series"]["csat"][index] == week["csat"]["value"]
    assert rolled["n"]["csat"][index] == week["csat"]["n"] > 0
    assert rolled["first_response_time"][index] == week["first_response_time"]["median"]


def test_a_cold_read_from_roll_ups_costs_the_queries_of_a_daily_read(
    facts, admin_user, manager_a, django_assert_num_queries
):
    with time_machine.travel(NOW, tick=False):
        facts_roll_up(day_from=FIRST, day_to=TODAY)
        cache.clear()
        # facts_state (days, versions and rolled weeks) (1); sums and histograms, each a UNION
        # ALL of the loose days' rows and the rolled weeks' rows (2); agent names (1).
        with django_assert_num_queries(4):
            scorecard_groups(
                user=admin_user, date_from=date(2026, 8, 23), date_to=TODAY, group_by="agent"
            )
        # A manager's: their teams (1, read once for the cache key and the sums alike); the same
        # 4 with team names.
        with django_assert_num_queries(5):
            scorecard_groups(
                user=manager_a, date_from=date(2026, 8, 23), date_to=TODAY, group_by="team"
            )


def test_the_task_rolls_up_and_warms_the_standard_scorecards(
    facts, admin_user, django_assert_num_queries
):
    client = client_for(admin_user)
    with time_machine.travel(NOW, tick=False):
        cache.clear()
        assert facts_roll_up_task(FIRST.isoformat(), TODAY.isoformat(), warm=True) == 11
        # Warm: token + user (1); facts version (1); agent names (1); ideas captured (1).
        with django_assert_num_queries(4):
            response = client.get(
                "/api/v1/scorecards/?from=2026-08-23&to=2026-11-21&group_by=agent"
            )
    assert response.status_code == 200
    by_agent = {g["key"]: g["metrics"] for g in response.json()["groups"]}
    expected = _without_desk_only(facts.expected(date(2026, 8, 23), TODAY, "agent_id"))
    assert {k: v["csat"] for k, v in by_agent.items()} == {
        k: v["csat"] for k, v in expected.items()
    }


def test_a_dirty_day_of_a_settled_week_rolls_its_week_up_again(
    facts, django_capture_on_commit_callbacks
):
    day = date(2026, 11, 4)
    with time_machine.travel(NOW, tick=False):
        facts_roll_up(day_from=FIRST, day_to=TODAY)
        version = FactWeek.objects.get(week=date(2026, 11, 2)).days_version
        facts_mark_dirty(days=[day])
    with (
        time_machine.travel(NOW + timedelta(seconds=10), tick=False),
        django_capture_on_commit_callbacks(execute=True),
    ):
        assert facts_recompute_dirty() == [day]
    assert not DirtyDay.objects.exists()
    item = OutboxItem.objects.get(task_name="metrics.tasks.facts_roll_up_task")
    assert item.kwargs == {"day_from": "2026-11-04", "day_to": "2026-11-05", "warm": False}
    # The task ran after commit: the week is current again, one version later.
    assert FactWeek.objects.get(week=date(2026, 11, 2)).days_version == version + 1
    # The recomputed day (no source rows) holds no facts any more, nor does its week's roll-up.
    kept = [r for r in facts.rows if date(2026, 11, 2) <= r["day"] < date(2026, 11, 9)]
    kept = [r for r in kept if r["day"] != day]
    assert WeeklyFact.objects.filter(week=date(2026, 11, 2)).aggregate(n=Sum("numerator")) == {
        "n": sum(r["numerator"] for r in kept)
    }


def test_a_finished_recompute_job_rolls_up_its_weeks_and_warms(
    facts, admin_user, manager_a, django_capture_on_commit_callbacks
):
    with time_machine.travel(NOW, tick=False):
        facts_roll_up(day_from=FIRST, day_to=TODAY)
        with django_capture_on_commit_callbacks(execute=True):
            recompute_job_create(
                day_from=date(2026, 10, 26), day_to=date(2026, 11, 9), requested_by=manager_a
            )
    item = OutboxItem.objects.get(task_name="metrics.tasks.facts_roll_up_task")
    assert item.kwargs == {"day_from": "2026-10-26", "day_to": "2026-11-09", "warm": True}
    rolled = dict(FactWeek.objects.values_list("week", "days_version"))
    assert {week: rolled[week] for week in (date(2026, 10, 26), date(2026, 11, 2))} == {
        week: sum(
            FactDay.objects.filter(day__gte=week, day__lt=week + timedelta(days=7)).values_list(
                "version", flat=True
            )
        )
        for week in (date(2026, 10, 26), date(2026, 11, 2))
    }
    assert not WeeklyFact.objects.filter(week__in=[date(2026, 10, 26), date(2026, 11, 2)]).exists()
    assert facts_state(date(2026, 10, 26), date(2026, 11, 9)).rolled == (
        date(2026, 10, 26),
        date(2026, 11, 2),
    )


def test_a_dirty_day_of_the_current_week_queues_no_roll_up(facts):
    with time_machine.travel(NOW, tick=False):
        facts_mark_dirty(days=[date(2026, 11, 17)])
    with time_machine.travel(NOW + timedelta(seconds=10), tick=False):
        assert facts_recompute_dirty() == [date(2026, 11, 17)]
    assert not OutboxItem.objects.filter(task_name="metrics.tasks.facts_roll_up_task").exists()


def test_the_nightly_pass_rolls_up_the_settled_weeks_of_the_window(
    settings, admin_user, django_capture_on_commit_callbacks
):
    settings.METRICS_RETENTION_DAYS = 30
    night = datetime(2026, 12, 20, 2, 30, tzinfo=UTC)  # a Sunday: its week has not ended
    with (
        time_machine.travel(night, tick=False),
        django_capture_on_commit_callbacks(execute=True),
    ):
        facts_recompute_nightly()
    item = OutboxItem.objects.get(task_name="metrics.tasks.facts_roll_up_task")
    assert item.kwargs == {"day_from": "2026-11-21", "day_to": "2026-12-21", "warm": True}
    # 16 November lacks the days before the window (21 November on); 14 December is this week.
    assert list(FactWeek.objects.values_list("week", flat=True)) == [
        date(2026, 11, 23),
        date(2026, 11, 30),
        date(2026, 12, 7),
    ]


@pytest.mark.django_db(transaction=True)
def test_rolling_up_many_weeks_vacuums_and_analyzes_the_roll_up_tables_and_a_few_do_not(facts):
    require_postgres()
    # Given every settled week rolled up once (outside a transaction, as the task runs)
    with time_machine.travel(NOW, tick=False):
        with CaptureQueriesContext(connection) as first:
            assert facts_roll_up(day_from=FIRST, day_to=TODAY) == SETTLED
        # When one day of one week is recomputed and its week rolled up again
        FactDay.objects.filter(day=date(2026, 9, 15)).update(version=F("version") + 1)
        with CaptureQueriesContext(connection) as again:
            assert facts_roll_up(day_from=FIRST, day_to=TODAY) == [date(2026, 9, 14)]

    # Then the 11 weeks' rebuild (each week deleted its old rows) vacuumed and analyzed the
    # roll-up tables, and the one week's did not
    vacuum = "VACUUM (ANALYZE) metrics_weeklyfact, metrics_weeklyduration"
    assert [q["sql"] for q in first.captured_queries if q["sql"].startswith("VACUUM")] == [vacuum]
    assert [q["sql"] for q in again.captured_queries if q["sql"].startswith("VACUUM")] == []


def test_the_database_finds_the_quantiles_buckets_as_python_does(agent_a, agent_b, manager_a):
    """``_durations`` sends one row per group and metric: its quantiles equal ``duration`` of
    the whole histogram, at the edges too (one sample, a position between two buckets, a
    position on a whole rank, durations under a second)."""
    histograms = {
        agent_a.pk: {"first_response_time": {40: 1}, "handle_time": {0: 1, 700: 1}},
        agent_b.pk: {"first_response_time": {0: 2, 5: 3, 9: 6}, "handle_time": {3: 7, 4: 13}},
        manager_a.pk: {"first_response_time": {b: b % 5 + 1 for b in range(100, 400, 7)}},
    }
    DurationBucket.objects.bulk_create(
        DurationBucket(day=day, agent_id=agent, metric=metric, bucket=bucket, count=part)
        for agent, metrics in histograms.items()
        for metric, histogram in metrics.items()
        for bucket, count in histogram.items()
        # Split over two days: the database sums them first.
        for day, part in ((date(2026, 9, 1), count // 2), (date(2026, 9, 2), count - count // 2))
        if part
    )
    queryset = DurationBucket.objects.filter(day__lt=date(2026, 9, 3))
    with CaptureQueriesContext(connection) as queries:
        by_agent = durations(queryset, "agent_id")
    assert len(queries) == 1
    assert by_agent == {agent: histogram_durations(m) for agent, m in histograms.items()}
    desk: dict[str, dict[int, int]] = defaultdict(lambda: defaultdict(int))
    for metrics in histograms.values():
        for metric, histogram in metrics.items():
            for bucket, count in histogram.items():
                desk[metric][bucket] += count
    assert durations(queryset, None) == {"desk": histogram_durations(desk)}
    assert by_agent[agent_b.pk]["first_response_time"] == {"median": 1.2, "p90": 1.2, "n": 11}


def test_after_a_recent_day_changes_the_rolled_weeks_come_from_the_cache(
    facts, admin_user, agent_a, team_a, django_assert_num_queries
):
    """A recompute of a loose day (today's facts change all day) misses the scorecard's cache;
    the rolled weeks' sums and histograms are still cached under their versions: only the loose
    days are read, and the figures are exactly those of the changed facts."""
    date_from, date_to = date(2026, 8, 27), TODAY
    changed = date(2026, 11, 18)  # the current week: never rolled
    cell = {"team_id": team_a.pk, "agent_id": agent_a.pk, "channel_kind": "email"}
    with time_machine.travel(NOW, tick=False):
        facts_roll_up(day_from=FIRST, day_to=TODAY)
        cache.clear()
        assert _metrics(
            scorecard_groups(
                user=admin_user, date_from=date_from, date_to=date_to, group_by="agent"
            )
        ) == _without_desk_only(facts.expected(date_from, date_to, "agent_id"))
        trend_before = weekly_trend(user=admin_user, scope=Scope("desk"), end=changed)
        new_rows = [{**cell, "day": changed, "metric": "csat", "numerator": 7, "denominator": 9}]
        new_buckets = [
            {**cell, "day": changed, "metric": "handle_time", "bucket": 2000, "count": 500},
            {**cell, "day": changed, "metric": "first_response_time", "bucket": 1, "count": 300},
        ]
        DailyFact.objects.bulk_create([DailyFact(**row) for row in new_rows])
        DurationBucket.objects.bulk_create([DurationBucket(**row) for row in new_buckets])
        FactDay.objects.filter(day=changed).update(version=F("version") + 1)
        facts.rows += new_rows
        facts.buckets += new_buckets
        # facts_state (1); the loose days' sums and histograms (2); agent names (1).
        with django_assert_num_queries(4):
            read = scorecard_groups(
                user=admin_user, date_from=date_from, date_to=date_to, group_by="agent"
            )
        # The trend likewise: facts_state (1); the loose days' sums and histogram (2).
        with django_assert_num_queries(3):
            trend = weekly_trend(user=admin_user, scope=Scope("desk"), end=changed)
        cache.clear()
        assert trend == weekly_trend(user=admin_user, scope=Scope("desk"), end=changed)
    assert trend != trend_before
    assert trend["n"]["csat"][-1] == trend_before["n"]["csat"][-1] + 9
    assert trend["n"]["csat"][:-1] == trend_before["n"]["csat"][:-1]
    expected = _without_desk_only(facts.expected(date_from, date_to, "agent_id"))
    assert _metrics(read) == expected
    handle_time = _metrics(read)[agent_a.pk]["handle_time"]
    assert handle_time["p90"] == round(bucket_value(2000), 1)
    assert handle_time["n"] == 500 + sum(
        row["count"]
        for row in facts.buckets[:-2]
        if row["agent_id"] == agent_a.pk and row["metric"] == "handle_time"
    )


def test_warming_caches_each_managers_rolled_weeks(facts, admin_user, manager_a, team_a):
    """A manager's reads are narrowed to their teams: the warm caches their own rolled weeks
    (their whole view and each team's), so their first read after a recent day's recompute
    reads only the loose days too."""
    date_from, date_to = TODAY - timedelta(days=89), TODAY + timedelta(days=1)
    with time_machine.travel(NOW, tick=False):
        facts_roll_up(day_from=FIRST, day_to=TODAY)
        cache.clear()
        state = facts_state(date_from, date_to)
        assert len(state.rolled) == 11
        keys = {
            (label, group_field): cache_key(
                "rolled",
                visible_facts_q(manager_a) & scope.fact_q(),
                group_field,
                state.rolled_token,
            )
            for label, scope in (("desk", Scope("desk")), ("team", Scope("team", team=team_a)))
            for group_field in (None, "agent_id", "channel_kind")
        }
        assert not any(cache.get(key) for key in keys.values())
        # 6 periods x 3 groupings and the trend for the admin; (2 periods x 3 groupings and the
        # trend) x (the whole view and Team A) for the manager.
        assert scorecards_warm() == 6 * 3 + 1 + 2 * (2 * 3 + 1)
        assert all(cache.get(key) is not None for key in keys.values())
        rolled_sums, _ = cache.get(keys[("team", "agent_id")])
        assert rolled_sums[manager_a.pk]["csat"] == tuple(
            sum(
                r[f]
                for r in facts.rows
                if date(2026, 8, 31) <= r["day"] < date(2026, 11, 16)
                and r["metric"] == "csat"
                and r["agent_id"] == manager_a.pk
                and r["team_id"] == team_a.pk
            )
            for f in ("numerator", "denominator")
        )


def test_after_todays_recompute_only_today_is_read(facts, admin_user, agent_b, team_b):
    """The loose days but the last are cached under their versions too: a recompute of the
    period's last day (today, all day long) reads that day's rows alone."""
    date_from, date_to = date(2026, 8, 27), TODAY
    last = TODAY - timedelta(days=1)
    cell = {"team_id": team_b.pk, "agent_id": agent_b.pk, "channel_kind": "email"}
    with time_machine.travel(NOW, tick=False):
        facts_roll_up(day_from=FIRST, day_to=TODAY)
        cache.clear()
        scorecard_groups(user=admin_user, date_from=date_from, date_to=date_to, group_by="channel")
        new_rows = [{**cell, "day": last, "metric": "csat", "numerator": 3, "denominator": 4}]
        new_buckets = [{**cell, "day": last, "metric": "handle_time", "bucket": 5, "count": 40}]
        DailyFact.objects.bulk_create([DailyFact(**row) for row in new_rows])
        DurationBucket.objects.bulk_create([DurationBucket(**row) for row in new_buckets])
        FactDay.objects.filter(day=last).update(version=F("version") + 1)
        facts.rows += new_rows
        facts.buckets += new_buckets
        with CaptureQueriesContext(connection) as queries:
            read = scorecard_groups(
                user=admin_user, date_from=date_from, date_to=date_to, group_by="channel"
            )
    assert _metrics(read) == facts.expected(date_from, date_to, "channel_kind")
    facts_sql = [q["sql"] for q in queries.captured_queries if "p0" in q["sql"]]
    assert len(facts_sql) == 2
    for sql in facts_sql:
        assert "p1" not in sql  # one segment: the last day
        assert f"'{last.isoformat()}'" in sql
        assert "2026-08-27" not in sql
        assert "weekly" not in sql
