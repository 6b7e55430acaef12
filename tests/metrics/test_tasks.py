"""Freshness: events mark days dirty, beat recomputes each day once per burst, jobs chain with
progress, tasks are idempotent; and a real worker turns a solve into figures."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta

import pytest
import time_machine

from metrics.models import DailyFact, DirtyDay, FactDay, RecomputeJob
from metrics.services import (
    facts_compute,
    facts_mark_dirty,
    facts_mark_dirty_from_sources,
    facts_recompute_dirty,
    recompute_job_create,
    recompute_job_run,
)
from metrics.tasks import (
    facts_recompute_dirty_task,
    facts_recompute_nightly_task,
    recompute_job_run_task,
)
from tests.factories import send_email
from tests.metrics.desk import record_survey
from tickets.models import Conversation
from tickets.services import conversation_reopen, conversation_solve

T0 = datetime(2026, 11, 10, 9, 0, tzinfo=UTC)
DAY = date(2026, 11, 10)


def _solved(channels, agent, at=T0) -> Conversation:
    conversation = Conversation.objects.get(
        pk=send_email(channels["email"], sender="Kim <kim@example.com>").conversation_id
    )
    conversation_solve(conversation=conversation, actor=agent, at=at)
    return conversation


@pytest.mark.django_db
def test_a_solve_marks_its_day_and_beat_recomputes_it_once(
    channels, agent_a, django_capture_on_commit_callbacks
):
    # Given a solve: the event's reaction (run after commit) marks its day dirty
    with time_machine.travel(T0, tick=False):
        with django_capture_on_commit_callbacks(execute=True):
            _solved(channels, agent_a)
        assert list(DirtyDay.objects.values_list("day", flat=True)) == [DAY]
        # A beat tick during the burst does nothing (debounce)...
        assert facts_recompute_dirty() == []
        assert not DailyFact.objects.exists()
    # ...2 seconds of quiet later, the day is computed once and no longer dirty.
    with time_machine.travel(T0 + timedelta(seconds=3), tick=False):
        assert facts_recompute_dirty_task() == 1
        assert facts_recompute_dirty() == []
    assert not DirtyDay.objects.exists()
    fact = DailyFact.objects.get(metric="internal_fcr")
    assert (fact.day, fact.numerator, fact.denominator, fact.agent_id) == (DAY, 1, 1, agent_a.pk)


@pytest.mark.django_db
def test_a_burst_keeps_one_dirty_row_and_a_busy_day_is_not_starved(channels, agent_a):
    with time_machine.travel(T0, tick=False):
        facts_mark_dirty(days=[DAY])
    for second in range(1, 7):
        with time_machine.travel(T0 + timedelta(seconds=second), tick=False):
            facts_mark_dirty(days=[DAY, DAY])
            assert DirtyDay.objects.count() == 1
            if second < 6:
                assert facts_recompute_dirty() == []  # still bursting
    # Six seconds after the first mark the day is computed even though events keep coming.
    with time_machine.travel(T0 + timedelta(seconds=6), tick=False):
        assert facts_recompute_dirty() == [DAY]
    assert FactDay.objects.get(day=DAY).computed_at is not None


@pytest.mark.django_db
def test_a_reopen_marks_the_earlier_solve_day(
    channels, agent_a, django_capture_on_commit_callbacks
):
    conversation = _solved(channels, agent_a)
    later = T0 + timedelta(days=3)
    with time_machine.travel(later, tick=False), django_capture_on_commit_callbacks(execute=True):
        conversation_reopen(conversation=conversation, actor=agent_a)
    assert set(DirtyDay.objects.values_list("day", flat=True)) == {DAY, later.date()}


@pytest.mark.django_db
def test_survey_answers_mark_the_solve_day_by_watermark(channels, agent_a):
    conversation = _solved(channels, agent_a)
    with time_machine.travel(T0 + timedelta(days=2), tick=False):
        assert facts_mark_dirty_from_sources() == 0  # first look: sets the watermark
    solve = conversation.events.get(kind="conversation.solved")
    record_survey(
        solve,
        sent_at=T0 + timedelta(days=2, minutes=1),
        answered_at=T0 + timedelta(days=2, minutes=2),
        resolved="yes",
    )
    with time_machine.travel(T0 + timedelta(days=2, minutes=5), tick=False):
        assert facts_mark_dirty_from_sources() == 1
        assert facts_mark_dirty_from_sources() == 0  # looked at once
    assert list(DirtyDay.objects.values_list("day", flat=True)) == [DAY]


@pytest.mark.django_db
def test_recompute_job_runs_in_chained_chunks_with_progress(
    channels, agent_a, manager_a, django_capture_on_commit_callbacks
):
    _solved(channels, agent_a)
    with django_capture_on_commit_callbacks(execute=True):
        job = recompute_job_create(
            day_from=date(2026, 11, 1), day_to=date(2026, 12, 1), requested_by=manager_a
        )
    job.refresh_from_db()
    # 30 days in chunks of 14: three tasks, chained through the outbox.
    assert (job.state, job.days_done, job.days_total, job.progress) == ("done", 30, 30, 1.0)
    assert FactDay.objects.filter(computed_at__isnull=False).count() == 30
    # Delivered again, the task finds nothing to claim and changes nothing.
    before = list(DailyFact.objects.values_list("day", "metric", "numerator", "denominator"))
    recompute_job_run_task(job.pk)
    assert recompute_job_run(job_id=job.pk) is None
    job.refresh_from_db()
    assert job.days_done == 30
    assert (
        list(DailyFact.objects.values_list("day", "metric", "numerator", "denominator")) == before
    )


@pytest.mark.django_db
def test_job_progress_midway(channels, agent_a, manager_a):
    job = recompute_job_create(
        day_from=date(2026, 11, 1), day_to=date(2026, 12, 1), requested_by=manager_a
    )
    # No commit in this test, so the chain is not relayed: run one chunk by hand.
    recompute_job_run(job_id=job.pk)
    job.refresh_from_db()
    assert (job.state, job.days_done, round(job.progress, 4)) == ("running", 14, 0.4667)
    assert job.next_day == date(2026, 11, 15)


@pytest.mark.django_db
def test_facts_compute_is_idempotent_and_replaces_a_day(channels, agent_a):
    conversation = _solved(channels, agent_a)
    facts_compute(day_from=DAY, day_to=DAY + timedelta(days=1))
    facts_compute(day_from=DAY, day_to=DAY + timedelta(days=1))
    assert DailyFact.objects.filter(metric="internal_fcr").count() == 1
    # The reopen three days later changes the solve day's reopen rate once recomputed.
    with time_machine.travel(T0 + timedelta(days=3), tick=False):
        conversation_reopen(conversation=conversation, actor=agent_a)
    facts_compute(day_from=DAY, day_to=DAY + timedelta(days=1))
    fact = DailyFact.objects.get(metric="reopen_rate")
    assert (fact.numerator, fact.denominator) == (1, 1)


# --- A real worker ---------------------------------------------------------------------------------


@pytest.mark.services
@pytest.mark.django_db(transaction=True)
def test_worker_turns_a_solve_into_figures(channels, agent_a):
    from tests.services import (
        broker_url_for_tests,
        celery_publishing_to,
        celery_worker,
        redis_delete_queue,
        require_postgres,
        require_redis,
        unique_queue_name,
        wait_for,
    )

    require_postgres()
    broker_url = broker_url_for_tests()
    require_redis(broker_url)
    queue = unique_queue_name()
    conversation = Conversation.objects.get(
        pk=send_email(channels["email"], sender="Kim <kim@example.com>").conversation_id
    )
    try:
        with (
            celery_worker(broker_url, {"CELERY_TASK_DEFAULT_QUEUE": queue}),
            celery_publishing_to(broker_url, queue=queue),
        ):
            # When an agent solves: the worker marks the day from the event...
            conversation_solve(conversation=conversation, actor=agent_a)

            def solved_fact() -> DailyFact | None:
                # ...and beat's tick (sent here as beat would) recomputes it after the debounce.
                facts_recompute_dirty_task.delay()
                return DailyFact.objects.filter(metric="internal_fcr", denominator=1).first()

            fact = wait_for(solved_fact, timeout=30, interval=0.5, what="the solve's facts")
            assert (fact.numerator, fact.agent_id) == (1, agent_a.pk)
    finally:
        redis_delete_queue(broker_url, queue)


@pytest.mark.django_db
def test_a_full_nightly_pass_covers_the_retention_window_and_drops_older_facts(
    settings, channels, agent_a
):
    settings.METRICS_RETENTION_DAYS = 30
    _solved(channels, agent_a)
    facts_compute(day_from=DAY, day_to=DAY + timedelta(days=1))
    assert DailyFact.objects.filter(day=DAY).exists()
    with time_machine.travel(T0 + timedelta(days=45), tick=False):
        job_id = facts_recompute_nightly_task(full=True)
    job = RecomputeJob.objects.get(pk=job_id)
    assert (job.date_from, job.date_to, job.days_total) == (
        date(2026, 11, 26),
        date(2026, 12, 26),
        30,
    )
    assert not DailyFact.objects.filter(day=DAY).exists()


@pytest.mark.django_db
def test_a_customer_coming_back_marks_the_earlier_solve_day_by_watermark(channels, agent_a):
    with time_machine.travel(T0, tick=False):
        _solved(channels, agent_a)
        assert facts_mark_dirty_from_sources() == 0  # first look: sets the watermark
        DirtyDay.objects.all().delete()
    # Kim writes again two days later: a new conversation, a repeat contact of Tuesday's solve.
    later = T0 + timedelta(days=2)
    with time_machine.travel(later, tick=False):
        send_email(channels["email"], sender="Kim <kim@example.com>", subject="Again")
    with time_machine.travel(later + timedelta(seconds=5), tick=False):
        assert facts_mark_dirty_from_sources() == 2
    assert set(DirtyDay.objects.values_list("day", flat=True)) == {DAY, later.date()}


@pytest.mark.django_db
def test_a_late_reply_marks_the_day_of_the_contact_it_answers(channels, agent_a):
    from tickets.services import conversation_reply

    with time_machine.travel(T0, tick=False):
        conversation = Conversation.objects.get(
            pk=send_email(channels["email"], sender="Kim <kim@example.com>").conversation_id
        )
    later = T0 + timedelta(days=2)
    with time_machine.travel(later - timedelta(seconds=5), tick=False):
        facts_mark_dirty_from_sources()  # the watermark, after Kim's message
        DirtyDay.objects.all().delete()
    with time_machine.travel(later, tick=False):
        conversation_reply(conversation=conversation, author=agent_a, body="Sorry for the wait.")
    with time_machine.travel(later + timedelta(seconds=5), tick=False):
        facts_mark_dirty_from_sources()
    # First response belongs to Tuesday's contact: Tuesday is recomputed, not only Thursday.
    assert set(DirtyDay.objects.values_list("day", flat=True)) == {DAY, later.date()}
