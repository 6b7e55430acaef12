"""The nightly recompute: only the days whose sources changed, a full pass on demand."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta

import pytest
import time_machine
from django.core.management import call_command

from metrics.models import DailyFact, DirtyDay, FactDay, RecomputeJob
from metrics.nightly import facts_recompute_nightly
from metrics.services import facts_mark_dirty
from metrics.tasks import facts_recompute_nightly_task
from tests.factories import send_email
from tickets.models import Conversation
from tickets.services import conversation_solve, inbound_chat

NIGHT = datetime(2026, 12, 20, 2, 30, tzinfo=UTC)
TODAY = date(2026, 12, 20)
RECENT = range(9)  # today and the 8 days of still-open repeat and reopen windows


def _days_back(*ns: int, today: date = TODAY) -> list[date]:
    return sorted(today - timedelta(days=n) for n in ns)


@pytest.fixture
def window(settings):
    settings.METRICS_RETENTION_DAYS = 30
    settings.TIME_ZONE = "UTC"


@pytest.mark.django_db
def test_the_first_night_computes_the_window_and_a_quiet_night_only_the_open_windows(window):
    # The first run has no watermark: every day of the window
    with time_machine.travel(NIGHT, tick=False):
        assert facts_recompute_nightly() == _days_back(*range(30))
    assert FactDay.objects.count() == 30

    # A quiet day later: only the days whose repeat/reopen windows are still open
    with time_machine.travel(NIGHT + timedelta(days=1), tick=False):
        days = facts_recompute_nightly()
    assert days == _days_back(*RECENT, today=TODAY + timedelta(days=1))


@pytest.mark.django_db
def test_a_night_after_changes_recomputes_their_days_and_only_them(window, channels):
    with time_machine.travel(NIGHT, tick=False):
        facts_recompute_nightly()
    # During the next day: an old day marked dirty by an event, and a chat message dated two
    # weeks back (a provider replaying history) that the beat's watermark never looked at
    with time_machine.travel(NIGHT + timedelta(hours=8), tick=False):
        facts_mark_dirty(days=[TODAY - timedelta(days=20)])
        inbound_chat(
            channel=channels["chat"],
            external_id="late-1",
            session_id="s-late",
            visitor_id="v-late",
            body="Sent long ago, delivered today",
            sent_at=NIGHT - timedelta(days=14),
        )

    with time_machine.travel(NIGHT + timedelta(days=1), tick=False):
        days = facts_recompute_nightly()

    recent = set(_days_back(*RECENT, today=TODAY + timedelta(days=1)))
    # The message's day is found from the rows written since the last run, the other by its mark
    assert set(days) - recent == {TODAY - timedelta(days=20), TODAY - timedelta(days=14)}
    assert len(days) == len(recent) + 2
    assert not DirtyDay.objects.exists()


@pytest.mark.django_db
def test_the_nightly_task_runs_the_changed_days_and_a_full_pass_is_a_job(window, settings):
    with time_machine.travel(NIGHT, tick=False):
        assert facts_recompute_nightly_task() == 30
        assert facts_recompute_nightly_task() == 9
        job_id = facts_recompute_nightly_task(full=True)
        settings.METRICS_NIGHTLY_FULL = True
        second_job_id = facts_recompute_nightly_task()
    assert RecomputeJob.objects.get(pk=job_id).days_total == 30
    assert RecomputeJob.objects.get(pk=second_job_id).days_total == 30


@pytest.mark.django_db
def test_the_command_runs_the_changed_days_or_the_full_window(window, channels, agent_a, capsys):
    with time_machine.travel(NIGHT - timedelta(days=3), tick=False):
        conversation = Conversation.objects.get(
            pk=send_email(channels["email"], sender="Kim <kim@example.com>").conversation_id
        )
        conversation_solve(conversation=conversation, actor=agent_a)
    with time_machine.travel(NIGHT, tick=False):
        call_command("facts_recompute")
        assert capsys.readouterr().out.strip().splitlines()[-1] == "recomputed 30 days"
        DailyFact.objects.all().delete()
        call_command("facts_recompute", "--full")
        assert capsys.readouterr().out.strip().splitlines()[-1] == "recomputed 30 days (done)"
    fact = DailyFact.objects.get(day=TODAY - timedelta(days=3), metric="internal_fcr")
    assert (fact.numerator, fact.denominator) == (1, 1)
