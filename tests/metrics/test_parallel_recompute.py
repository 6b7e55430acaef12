"""A recompute chunk on several database connections (``METRICS_RECOMPUTE_CONNECTIONS``).

Each extra range runs in its own thread and connection, which cannot see a test transaction:
these tests commit (transactional database) and compare with the one-connection result.
"""

from __future__ import annotations

from datetime import date

import pytest
import time_machine
from django.db import connection, transaction

from metrics import services
from metrics.models import DailyFact, DurationBucket, FactDay
from supportdesk.models import OutboxItem
from tests.metrics.desk import NOW

pytestmark = [
    pytest.mark.django_db(transaction=True),
    pytest.mark.skipif(connection.vendor != "postgresql", reason="threads need PostgreSQL"),
]

FIRST, STOP = date(2026, 11, 1), date(2026, 11, 9)


def _rows() -> tuple[list, list]:
    facts = sorted(
        DailyFact.objects.filter(day__gte=FIRST, day__lt=STOP).values_list(
            "day", "metric", "team_id", "agent_id", "channel_kind", "numerator", "denominator"
        ),
        key=repr,
    )
    buckets = sorted(
        DurationBucket.objects.filter(day__gte=FIRST, day__lt=STOP).values_list(
            "day", "metric", "team_id", "agent_id", "channel_kind", "bucket", "count"
        ),
        key=repr,
    )
    return facts, buckets


def _versions() -> dict[date, int]:
    return dict(FactDay.objects.filter(day__gte=FIRST, day__lt=STOP).values_list("day", "version"))


def test_three_connections_write_what_one_connection_writes(desk, settings):
    with time_machine.travel(NOW, tick=False):
        settings.METRICS_RECOMPUTE_CONNECTIONS = 1
        one = services.facts_compute_chunk(day_from=FIRST, day_to=STOP)
        expected = _rows()
        settings.METRICS_RECOMPUTE_CONNECTIONS = 3
        three = services.facts_compute_chunk(day_from=FIRST, day_to=STOP)
    assert three == one == len(expected[0]) + len(expected[1]) > 0
    assert _rows() == expected
    # Every day was computed once per call, whichever connection it ran on (the fixture had
    # already computed 2 to 8 November once).
    assert _versions() == {FIRST: 2, **{date(2026, 11, d): 3 for d in range(2, 9)}}


def test_a_recompute_job_runs_its_chunks_on_three_connections(desk, settings, admin_user):
    settings.METRICS_RECOMPUTE_CONNECTIONS = 3
    with time_machine.travel(NOW, tick=False):
        expected = _rows()
        job = services.recompute_job_create(
            day_from=date(2026, 10, 19), day_to=STOP, requested_by=admin_user
        )  # 21 days: a chunk of 14, then one of 7, run by the (eager) task after commit
    job.refresh_from_db()
    assert (job.state, job.days_done, job.days_total, job.error) == ("done", 21, 21, "")
    assert _rows() == expected
    assert FactDay.objects.filter(day__gte=date(2026, 10, 19), day__lt=STOP).count() == 21
    # More than one chunk of days replaced: the fact tables are vacuumed after the last one.
    vacuums = OutboxItem.objects.filter(task_name="metrics.tasks.facts_vacuum_task")
    assert list(vacuums.values_list("kwargs", flat=True)) == [{}]


def test_the_fact_tables_are_vacuumed_outside_a_transaction_only():
    assert services.facts_vacuum() is True
    with transaction.atomic():
        assert services.facts_vacuum() is False  # VACUUM cannot run in a transaction block


def test_an_error_in_one_connection_fails_the_chunk_after_every_range_ended(
    desk, settings, monkeypatch
):
    """The error of a thread's range is raised to the caller, whose own range (in the caller's
    transaction) rolls back; the caller never returns while a thread still writes."""
    settings.METRICS_RECOMPUTE_CONNECTIONS = 2
    real_insert = services.facts_insert

    def failing_insert(day_from, day_to, *, connection):
        if day_from >= date(2026, 11, 5):  # the second range, [5, 9) November
            raise RuntimeError("disk full")
        return real_insert(day_from, day_to, connection=connection)

    monkeypatch.setattr(services, "facts_insert", failing_insert)
    before_rows, before_versions = _rows(), _versions()
    with (
        time_machine.travel(NOW, tick=False),
        pytest.raises(RuntimeError, match="disk full"),
        transaction.atomic(),
    ):
        services.facts_compute_chunk(day_from=FIRST, day_to=STOP)
    assert _rows() == before_rows
    assert _versions() == before_versions
