"""The integrity panel: the substitute-trap detectors (surveys not sent, reassigned after a bad rating, opened and not answered)."""

from __future__ import annotations

from collections import defaultdict
from datetime import date, timedelta
from typing import Any

from django.db.models import Q

from metrics import facts as source
from metrics.drill import scope_filter, visible_rows_q
from metrics.selectors import Scope
from supportdesk.models import User

BAD_RATING_REASSIGN_HOURS = 48


def _survey_scope(user: User, scope: Scope) -> Q:
    q = visible_rows_q(user, team="team_id", agent="agent_id")
    return q & scope_filter(scope, team="team_id", agent="agent_id")


def integrity_surveys_not_sent(
    *, user: User, scope: Scope, date_from: date, date_to: date, limit: int = 200
) -> dict[str, Any]:
    """Surveys skipped, cancelled or bounced for solves in the period, with their reasons."""
    from surveys.models import Survey

    start, end = source.day_bounds(date_from, date_to)
    qs = (
        Survey.objects.filter(
            solved_at__gte=start, solved_at__lt=end, conversation__spam_at__isnull=True
        )
        .filter(_survey_scope(user, scope))
        .exclude(status__in=[Survey.Status.SENT, Survey.Status.SCHEDULED])
        .select_related("conversation__customer", "agent", "team")
        .order_by("-solved_at", "-id")
    )
    surveys = list(qs[:limit])
    reasons: dict[str, int] = defaultdict(int)
    for survey in surveys:
        reasons[
            survey.get_skip_reason_display() if survey.skip_reason else survey.get_status_display()
        ] += 1
    return {"surveys": surveys, "reasons": sorted(reasons.items(), key=lambda kv: -kv[1])}


def integrity_reassigned_after_bad_rating(
    *, user: User, scope: Scope, date_from: date, date_to: date, limit: int = 200
) -> list[Any]:
    """Answers of CSAT 1-2 or resolved = no after which the conversation was reassigned within
    48 hours: the agent who earned the rating should not lose it to a colleague."""
    from django.db.models import DateTimeField, Exists, ExpressionWrapper, OuterRef

    from surveys.models import SurveyResponse
    from tickets.models import Event

    start, end = source.day_bounds(date_from, date_to)
    window = ExpressionWrapper(
        OuterRef("answered_at") + timedelta(hours=BAD_RATING_REASSIGN_HOURS),
        output_field=DateTimeField(),
    )
    reassigned = Event.objects.filter(
        kind=Event.Kind.ASSIGNED,
        conversation_id=OuterRef("survey__conversation_id"),
        occurred_at__gte=OuterRef("answered_at"),
        occurred_at__lte=window,
    )
    qs = (
        SurveyResponse.objects.filter(
            survey__solved_at__gte=start,
            survey__solved_at__lt=end,
            survey__conversation__spam_at__isnull=True,
        )
        .filter(Q(csat__lte=2) | Q(resolved="no"))
        .filter(
            visible_rows_q(user, team="survey__team_id", agent="survey__agent_id")
            & scope_filter(scope, team="survey__team_id", agent="survey__agent_id")
        )
        .annotate(reassigned=Exists(reassigned))
        .filter(reassigned=True)
        .order_by("-answered_at")
    )
    return list(
        qs.values(
            "pk",
            "answered_at",
            "csat",
            "resolved",
            "survey__conversation_id",
            "survey__conversation__subject",
            "survey__agent__full_name",
            "survey__agent__email",
        )[:limit]
    )


def integrity_opened_not_answered(
    *, user: User, scope: Scope, date_from: date, date_to: date, limit: int = 200
) -> list[Any]:
    """Survey pages a person opened (the page's script says so) that got no answer."""
    from surveys.models import Survey

    start, end = source.day_bounds(date_from, date_to)
    return list(
        Survey.objects.filter(
            solved_at__gte=start,
            solved_at__lt=end,
            opened_at__isnull=False,
            responses__isnull=True,
            conversation__spam_at__isnull=True,
        )
        .filter(_survey_scope(user, scope))
        .select_related("conversation__customer", "agent", "team")
        .order_by("-opened_at")[:limit]
    )
