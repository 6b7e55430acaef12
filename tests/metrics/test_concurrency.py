"""Recomputes of the same days running at once give the same rows as one (PostgreSQL)."""

from __future__ import annotations

import threading
from datetime import date

import pytest
from django.db import connections

from metrics.models import DailyFact, DurationBucket, FactDay
from metrics.services import facts_compute
from tests.metrics.desk import answer_surveys, build_desk
from tests.services import require_postgres

THREADS = 4


@pytest.mark.django_db(transaction=True)
def test_concurrent_recomputes_of_overlapping_ranges(agent_a, agent_b, channels, channels_b):
    require_postgres()
    answer_surveys(build_desk(channels=channels, channels_b=channels_b))
    facts_compute(day_from=date(2026, 11, 2), day_to=date(2026, 11, 9))

    def snapshot() -> tuple[list, list]:
        return (
            sorted(
                DailyFact.objects.values_list(
                    "day",
                    "metric",
                    "team_id",
                    "agent_id",
                    "channel_kind",
                    "numerator",
                    "denominator",
                )
            ),
            sorted(
                DurationBucket.objects.values_list("day", "metric", "agent_id", "bucket", "count")
            ),
        )

    expected = snapshot()
    ranges = [
        (date(2026, 11, 2), date(2026, 11, 9)),
        (date(2026, 11, 4), date(2026, 11, 6)),
        (date(2026, 11, 1), date(2026, 11, 5)),
        (date(2026, 11, 3), date(2026, 11, 10)),
    ]
    barrier = threading.Barrier(THREADS)
    errors: list[BaseException] = []

    def work(i: int) -> None:
        try:
            barrier.wait(timeout=10)
            facts_compute(day_from=ranges[i][0], day_to=ranges[i][1])
        except BaseException as exc:  # surfaced below
            errors.append(exc)
        finally:
            connections.close_all()

    threads = [threading.Thread(target=work, args=(i,)) for i in range(THREADS)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=120)
    assert errors == []
    assert snapshot() == expected
    assert (
        FactDay.objects.filter(day__gte=date(2026, 11, 1), day__lt=date(2026, 11, 10)).count() == 9
    )
