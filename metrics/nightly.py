"""The nightly recompute: only the days whose sources changed, plus a full pass on demand.

Every night (``facts_recompute_nightly``) recomputes:

- every day still marked dirty (``DirtyDay``), whether or not its debounce has run out;
- the days whose facts the sources written since the last nightly run change (the same rules
  as the beat's watermark, ``source_changed_days``, over the whole interval: so rows committed too
  late for the watermark are caught);
- the solve days of surveys whose answer window ran out since the last run (the facts flag
  ``window_over`` depends on the clock, not on a row);
- the last ``FACT_WINDOW`` days (repeat and reopen windows still open) and any day of the
  retention window that has never been computed.

Days are computed one by one (``facts_compute``); facts older than the retention window are
dropped. ``facts_recompute_retention`` (``manage.py facts_recompute --full``, or
``METRICS_NIGHTLY_FULL=1`` every night) recomputes the whole window instead.
"""

from __future__ import annotations

import logging
from datetime import date, datetime, timedelta

from django.conf import settings
from django.db import transaction
from django.utils import timezone

from metrics.models import DailyFact, DirtyDay, DurationBucket, FactDay, SourceWatermark, TopicFact
from metrics.services import (
    FACT_WINDOW,
    facts_compute,
    facts_roll_up_enqueue,
    facts_roll_ups_drop_expired,
    local_today,
    source_changed_days,
)

logger = logging.getLogger(__name__)

NIGHTLY_MARK = "nightly"


def _drop_expired_facts(first: date) -> None:
    DailyFact.objects.filter(day__lt=first).delete()
    DurationBucket.objects.filter(day__lt=first).delete()
    TopicFact.objects.filter(day__lt=first).delete()
    FactDay.objects.filter(day__lt=first).delete()
    facts_roll_ups_drop_expired(first=first)


def _expired_survey_days(since: datetime, until: datetime) -> set[date]:
    from surveys.models import Survey

    tz = timezone.get_current_timezone()
    stamps = Survey.objects.filter(expires_at__gt=since, expires_at__lte=until).values_list(
        "solved_at", flat=True
    )
    return {stamp.astimezone(tz).date() for stamp in stamps if stamp is not None}


def nightly_days(*, today: date, since: datetime | None, until: datetime) -> list[date]:
    """The days of the retention window the nightly pass recomputes (see the module docstring)."""
    first = today - timedelta(days=settings.METRICS_RETENTION_DAYS - 1)
    window = {first + timedelta(days=n) for n in range((today - first).days + 1)}
    days = set(DirtyDay.objects.values_list("day", flat=True))
    days |= {today - timedelta(days=n) for n in range(FACT_WINDOW.days + 1)}
    computed = set(FactDay.objects.filter(day__gte=first).values_list("day", flat=True))
    days |= window - computed
    if since is None:
        days |= window  # never run: everything
    else:
        days |= source_changed_days(since, until)
        days |= _expired_survey_days(since, until)
    return sorted(days & window)


def facts_recompute_nightly() -> list[date]:
    """Recompute the days whose sources changed since the last nightly run; returns them.

    The ``nightly`` watermark moves only once the days are computed, so a run that dies is
    repeated in full by the next one.
    """
    today = local_today()
    _drop_expired_facts(today - timedelta(days=settings.METRICS_RETENTION_DAYS - 1))
    until = timezone.now()
    mark = SourceWatermark.objects.filter(name=NIGHTLY_MARK).first()
    days = nightly_days(today=today, since=mark.seen_until if mark else None, until=until)
    for day in days:
        with transaction.atomic():
            marked = DirtyDay.objects.filter(day=day).values_list("marked_at", flat=True).first()
            facts_compute(day_from=day, day_to=day + timedelta(days=1))
        if marked is not None:  # marked again meanwhile: stays dirty for the beat
            DirtyDay.objects.filter(day=day, marked_at=marked).delete()
    SourceWatermark.objects.update_or_create(name=NIGHTLY_MARK, defaults={"seen_until": until})
    # Every settled week of the window whose roll-up a recompute made stale is rebuilt, and the
    # standard scorecards are warmed (metrics.rollups).
    facts_roll_up_enqueue(
        day_from=today - timedelta(days=settings.METRICS_RETENTION_DAYS - 1),
        day_to=today + timedelta(days=1),
        warm=True,
    )
    logger.info("nightly recompute: %s days", len(days))
    return days
