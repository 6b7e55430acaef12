"""Reads of the surveys app, for its pages and API and for the apps above it (metrics).

Responses belong to their solve event (docs/metrics.md, "Attribution"): agent, team, channel and date
are the solve's, copied on the Survey. Staff see the responses of conversations they may open
(``tickets.selectors.visible_conversations_q``).
"""

from __future__ import annotations

from datetime import date, datetime, time
from typing import Any
from zoneinfo import ZoneInfo

from django.conf import settings
from django.db.models import F, Q, QuerySet
from django.http import Http404

from supportdesk.models import User
from surveys.models import FollowUp, Survey, SurveyResponse, SurveyWording
from tickets.selectors import visible_conversations_q


def _local_midnight(day: date) -> datetime:
    return datetime.combine(day, time.min, tzinfo=ZoneInfo(settings.TIME_ZONE))


def _responses() -> QuerySet[SurveyResponse]:
    return SurveyResponse.objects.select_related(
        "survey",
        "survey__agent",
        "survey__team",
        "survey__conversation",
        "survey__customer",
    )


def response_list_for_user(
    *,
    user: User,
    from_date: date | None = None,
    to_date: date | None = None,
    agent_id: int | None = None,
    team_id: int | None = None,
    conversation_id: int | None = None,
) -> QuerySet[SurveyResponse]:
    """Responses the user may see, newest answer first. ``from``/``to`` are local dates of the
    solve event, half-open ``[from, to)`` like every period."""
    qs = _responses().filter(visible_conversations_q(user, prefix="survey__conversation__"))
    if from_date is not None:
        qs = qs.filter(survey__solved_at__gte=_local_midnight(from_date))
    if to_date is not None:
        qs = qs.filter(survey__solved_at__lt=_local_midnight(to_date))
    if agent_id is not None:
        qs = qs.filter(survey__agent_id=agent_id)
    if team_id is not None:
        qs = qs.filter(survey__team_id=team_id)
    if conversation_id is not None:
        qs = qs.filter(survey__conversation_id=conversation_id)
    return qs.order_by("-answered_at", "-id")


def responses_for_conversation(*, conversation_id: int) -> QuerySet[SurveyResponse]:
    """Every answer about a conversation (one per solve event that was surveyed), newest first."""
    return _responses().filter(survey__conversation_id=conversation_id).order_by("-answered_at")


def responses_for_agent(*, agent_id: int) -> QuerySet[SurveyResponse]:
    """Answers about the solves of one agent, newest first."""
    return _responses().filter(survey__agent_id=agent_id).order_by("-answered_at", "-id")


def responses_for_team(*, team_id: int) -> QuerySet[SurveyResponse]:
    """Answers about the solves of one team (the team at the time of the solve)."""
    return _responses().filter(survey__team_id=team_id).order_by("-answered_at", "-id")


def latest_response_for_customer(*, user: User, customer_id: int) -> SurveyResponse | None:
    """The customer's most recent answer in a conversation the user may see.

    A customer shared by two teams has answers in both: each team reads only its own.
    """
    return (
        SurveyResponse.objects.select_related("survey")  # the sidebar shows its conversation's id
        .filter(
            visible_conversations_q(user, prefix="survey__conversation__"),
            survey__customer_id=customer_id,
        )
        .order_by("-answered_at", "-id")
        .first()
    )


def shout_outs_for_agent(*, agent_id: int, limit: int = 10) -> list[SurveyResponse]:
    """The latest answers in which a customer recognised this agent by name."""
    return list(
        _responses()
        .filter(survey__agent_id=agent_id, shout_out=True)
        .order_by("-answered_at", "-id")[:limit]
    )


def comments_for_agent(*, agent_id: int, limit: int = 10) -> list[SurveyResponse]:
    """The latest non-empty comments on this agent's solves."""
    return list(
        _responses()
        .filter(survey__agent_id=agent_id)
        .exclude(comment="")
        .order_by("-answered_at", "-id")[:limit]
    )


def feedback_for_agent_home(
    *, agent_id: int, limit: int = 5
) -> tuple[list[SurveyResponse], list[SurveyResponse]]:
    """``shout_outs_for_agent`` and ``comments_for_agent`` for the agent.home panel (two
    queries): only what it shows, the answer's id, comment, shout-out flag and time and its
    conversation's id (``conversation_pk``), no other joins.

    Each walks its partial index (``surveys_response_shout_outs``, ``surveys_response_comments``)
    newest first and stops at ``limit`` of the agent's (a few hundred index rows at 200k
    conversations; an agent with fewer than ``limit`` reads the whole partial index): cheaper
    than one query ranking every answer of the agent, which was tried.
    """
    answers = (
        SurveyResponse.objects.filter(survey__agent_id=agent_id)
        .only("id", "comment", "shout_out", "answered_at")
        .annotate(conversation_pk=F("survey__conversation_id"))
        .order_by("-answered_at", "-id")
    )
    shout_outs: list[SurveyResponse] = list(answers.filter(shout_out=True)[:limit])
    comments: list[SurveyResponse] = list(answers.exclude(comment="")[:limit])
    return shout_outs, comments


def survey_latest_for_conversation(*, conversation_id: int) -> Survey | None:
    """The survey of the conversation's latest solve, with its answer prefetched."""
    return (
        Survey.objects.filter(conversation_id=conversation_id)
        .prefetch_related("responses")
        .order_by("-solved_at", "-id")
        .first()
    )


OUTCOME_BY_ANSWER = {"yes": "resolved", "partly": "partly", "no": "not_resolved"}


def conversation_outcomes(ids: list[int]) -> dict[int, str]:
    """``conversation.outcome``: what the customer said about each conversation's latest solve.

    "resolved", "partly", "not_resolved" from the answer; "no_answer" when the survey went out
    and has no resolution answer (yet, or ever); "no_survey" otherwise (not sent yet, cancelled,
    skipped, or bounced unanswered). One query: the surveys with their answer joined (one
    answer a survey at most, ``surveys_surveyresponse_one_per_survey``).
    """
    latest: dict[int, tuple[str | None, str | None]] = {}
    for conversation_id, survey_status, answer_resolved in (
        Survey.objects.filter(conversation_id__in=ids)
        .order_by("conversation_id", "-solved_at", "-id")
        .values_list("conversation_id", "status", "responses__resolved")
    ):
        latest.setdefault(conversation_id, (survey_status, answer_resolved))
    outcomes: dict[int, str] = {}
    for conversation_id in ids:
        status, resolved = latest.get(conversation_id, (None, None))
        answer = OUTCOME_BY_ANSWER.get(resolved or "")
        if answer is not None:
            outcomes[conversation_id] = answer
        elif status == Survey.Status.SENT:
            outcomes[conversation_id] = "no_answer"
        else:  # never sent (scheduled, cancelled, skipped) or bounced without an answer
            outcomes[conversation_id] = "no_survey"
    return outcomes


def follow_up_list_for_user(*, user: User, status: str = "open") -> QuerySet[FollowUp]:
    """Close-the-loop follow-ups of the manager's teams (all for admins), oldest open first."""
    qs = FollowUp.objects.select_related(
        "survey",
        "survey__conversation",
        "survey__customer",
        "survey__agent",
        "assignee",
        "team",
    ).prefetch_related("survey__responses")
    if not user.is_admin:
        qs = qs.filter(Q(team__in=user.teams.all()) | Q(assignee=user))
    if status:
        qs = qs.filter(status=status)
    return qs.order_by("created_at", "id")


def follow_up_get_for_user(*, user: User, pk: Any) -> FollowUp:
    """A follow-up the user may close (a manager of its team, or an admin); Http404 otherwise."""
    if not user.is_manager:
        raise Http404
    follow_up = follow_up_list_for_user(user=user, status="").filter(pk=pk).first()
    if follow_up is None:
        raise Http404
    return follow_up


def survey_wording_for(*, language: str) -> SurveyWording | None:
    """The admin's survey page wording for ``language`` (or its base language); one query."""
    code = language.lower()
    codes = [c for c in dict.fromkeys((code, code.partition("-")[0])) if c]
    rows = {w.language: w for w in SurveyWording.objects.filter(language__in=codes)}
    return next((rows[c] for c in codes if c in rows), None)


def survey_wording_list() -> list[SurveyWording]:
    return list(SurveyWording.objects.select_related("updated_by"))
