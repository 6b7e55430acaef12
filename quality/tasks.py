"""Thin Celery tasks of the quality app (beat: the weekly QA sample, the pulse, daily check-ins)."""

from __future__ import annotations

from datetime import date, timedelta

from celery import shared_task
from django.db import OperationalError
from django.utils import timezone

from quality.services import checkins_create_due, pulse_week_open, qa_sample_draw, week_start_of


@shared_task(
    ignore_result=True, autoretry_for=(OperationalError,), retry_backoff=True, max_retries=5
)
def qa_sample_draw_task(week_start: str | None = None) -> int:
    """Beat, weekly: draw last week's sample (or ``week_start``'s). Idempotent per week."""
    week = (
        date.fromisoformat(week_start)
        if week_start
        else week_start_of(timezone.now()) - timedelta(days=7)
    )
    return qa_sample_draw(week_start=week).pk


@shared_task(
    ignore_result=True, autoretry_for=(OperationalError,), retry_backoff=True, max_retries=5
)
def pulse_week_open_task(week_start: str | None = None) -> int:
    """Beat, weekly: open this week's pulse and ask every agent once."""
    week = date.fromisoformat(week_start) if week_start else week_start_of(timezone.now())
    return pulse_week_open(week_start=week)[0].pk


@shared_task(
    ignore_result=True, autoretry_for=(OperationalError,), retry_backoff=True, max_retries=5
)
def checkins_create_due_task() -> int:
    """Beat, daily: create the check-ins the rules call for (unique per cause)."""
    return checkins_create_due()
