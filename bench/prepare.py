"""Helpers the harness runs inside Django (``manage.py shell -c``), on the benchmark database.

They print one JSON line; the harness reads the last line of the output.
"""

from __future__ import annotations

import json
from datetime import timedelta

from django.conf import settings
from django.db.models import Q
from django.utils import timezone


def sent_survey_link(team_name: str = "Team 01") -> None:
    """A sent, unexpired, unanswered survey of the team: reuse one, or solve a conversation and
    send its survey now (its due time moved to now; the email goes to the file sink)."""
    from surveys.models import Survey, SurveyResponse
    from surveys.services import survey_schedule, survey_send, survey_token
    from tickets.models import Conversation
    from tickets.services import conversation_solve

    now = timezone.now()
    answered = SurveyResponse.objects.values("survey_id")
    survey = (
        Survey.objects.filter(
            status=Survey.Status.SENT, team__name=team_name, expires_at__gt=now + timedelta(hours=1)
        )
        .exclude(pk__in=answered)
        .order_by("-sent_at")
        .first()
    )
    tried = 0
    while survey is None and tried < 50:
        tried += 1
        conversation = (
            Conversation.objects.filter(
                team__name=team_name,
                status__in=["open", "new", "pending"],
                assignee__isnull=False,
                customer__identities__kind="email",
            )
            .exclude(customer__surveys__sent_at__gt=now - timedelta(days=30))
            .order_by("-last_activity_at")[tried - 1 : tried]
            .first()
        )
        if conversation is None:
            break
        event = conversation_solve(conversation=conversation, actor=conversation.assignee)
        candidate = survey_schedule(event=event)  # what the worker does on the solve event
        if candidate is None or candidate.status != Survey.Status.SCHEDULED:
            continue
        Survey.objects.filter(pk=candidate.pk).update(due_at=now)
        if survey_send(survey_id=candidate.pk):
            survey = Survey.objects.get(pk=candidate.pk)
    if survey is None:
        raise SystemExit("no survey could be sent")
    print(
        json.dumps(
            {
                "survey": survey.pk,
                "token": survey_token(survey),
                "solved_day": timezone.localdate(survey.solved_at).isoformat(),
            }
        )
    )


def recompute_nightly() -> None:
    """The nightly pass as beat runs it (``facts_recompute_nightly``), on the night after a day:
    its watermark set to 24 hours ago, so it recomputes the days still dirty, the open windows,
    and the days whose sources changed since (this run's W1 messages among them). Runs here, in
    this process; prints the days and the seconds."""
    import time

    from metrics.models import SourceWatermark
    from metrics.nightly import NIGHTLY_MARK, facts_recompute_nightly

    SourceWatermark.objects.update_or_create(
        name=NIGHTLY_MARK, defaults={"seen_until": timezone.now() - timedelta(hours=24)}
    )
    started = time.monotonic()
    days = facts_recompute_nightly()
    computed = time.monotonic()
    # What the task it queued does on the worker, here, so that the time is known and W5 does
    # not run beside it (the queued task then finds every week rolled and the cache warm).
    from metrics.rollups import facts_roll_up, scorecards_warm
    from metrics.services import local_today

    today = local_today()
    weeks = facts_roll_up(
        day_from=today - timedelta(days=settings.METRICS_RETENTION_DAYS - 1),
        day_to=today + timedelta(days=1),
    )
    warmed = scorecards_warm()
    print(
        json.dumps(
            {
                "days": len(days),
                "seconds": round(computed - started, 2),
                "weeks": len(weeks),
                "roll_up_and_warm_seconds": round(time.monotonic() - computed, 2),
                "warmed": warmed,
            }
        )
    )


def recompute_retention() -> None:
    """The full recompute of the retention window, on demand (``manage.py facts_recompute
    --full``), as a job: prints the job id to follow."""
    from metrics.services import facts_recompute_retention

    job = facts_recompute_retention()
    print(json.dumps({"job": job.pk, "days": job.days_total}))


def counts() -> None:
    from tickets.models import Conversation, Message

    print(
        json.dumps(
            {
                "conversations": Conversation.objects.count(),
                "messages": Message.objects.count(),
                "open": Conversation.objects.filter(~Q(status__in=["solved", "closed"])).count(),
            }
        )
    )
