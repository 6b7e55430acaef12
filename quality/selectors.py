"""Reads of the quality app: reviews, calibrations, ideas, cancellations, check-ins and the pulse.

Every read is scoped with the viewer's visibility (``visible_review_q``, ``visible_conversations_q``).
"""

from __future__ import annotations

import statistics
from collections import defaultdict
from datetime import date
from decimal import Decimal
from typing import Any

from django.conf import settings
from django.db.models import Avg, Count, Exists, OuterRef, Prefetch, Q, QuerySet, Sum
from django.db.models.functions import TruncDate, TruncMonth, TruncWeek
from django.http import Http404
from django.utils import timezone

from quality.models import (
    Calibration,
    Cancellation,
    CheckIn,
    Idea,
    IdeaMention,
    PulseAnswer,
    PulseResponse,
    PulseWeek,
    QAAnswer,
    QAReview,
)
from quality.services import PULSE_MIN_ANSWERS, local_day_start
from supportdesk import extensions
from supportdesk.models import Team, User
from tickets.models import Conversation, Message
from tickets.selectors import visible_conversations_q


def visible_review_q(user: User) -> Q:
    """Reviews a user may open: their own (given or received); managers: their teams' too."""
    own = Q(agent=user) | Q(reviewer=user)
    if user.is_admin:
        return Q()
    if user.is_manager:
        return own | Q(team__in=user.teams.all())
    return own


def qa_review_get_for_user(*, user: User, pk: Any) -> QAReview:
    try:
        return (
            QAReview.objects.filter(visible_review_q(user))
            .select_related(
                "conversation__customer",
                "agent",
                "reviewer",
                "rubric",
                "team",
                "second_of__reviewer",
                "replacement",
                "replaced_by",
            )
            .get(pk=int(pk))
        )
    except (QAReview.DoesNotExist, ValueError, TypeError) as exc:
        raise Http404("No such review.") from exc


def qa_review_timeline(*, review: QAReview) -> list[Message]:
    """The reviewed conversation's messages in time order, with their authors (one query); the
    caller already holds the review through ``qa_review_get_for_user``."""
    return list(
        Message.objects.filter(conversation_id=review.conversation_id)
        .select_related("author")
        .order_by("sent_at", "id")
    )


def qa_review_answers(*, review: QAReview) -> list[QAAnswer]:
    return list(review.answers.select_related("criterion").order_by("criterion__position"))


def qa_second_review(*, review: QAReview) -> QAReview | None:
    return QAReview.objects.filter(second_of=review).select_related("reviewer").first()


def _review_list() -> QuerySet[QAReview]:
    return QAReview.objects.select_related("conversation__customer", "agent", "reviewer")


def qa_review_list_to_do(*, user: User) -> QuerySet[QAReview]:
    """Reviews waiting for ``user`` to score them, oldest first."""
    return (
        _review_list()
        .filter(reviewer=user, state=QAReview.State.PENDING)
        .order_by("created_at", "id")
    )


def qa_review_list_for_agent(*, user: User, limit: int = 50) -> QuerySet[QAReview]:
    """Reviews of the agent's conversations (calibrations excluded), newest first."""
    return (
        _review_list()
        .filter(agent=user, submitted_at__isnull=False)
        .exclude(kind=QAReview.Kind.CALIBRATION)
        .order_by("-submitted_at", "-id")[:limit]
    )


def qa_sample_reviews(*, user: User, week_start: date | None = None) -> tuple[Any, list[QAReview]]:
    """The latest (or given) week's sampled reviews a manager may see, with the replacements."""
    from quality.models import QASample

    samples = QASample.objects.order_by("-week_start")
    sample = (samples.filter(week_start=week_start) if week_start else samples).first()
    if sample is None:
        return None, []
    reviews = list(
        _review_list()
        .select_related("replaced_by", "replacement")
        .filter(visible_review_q(user), sample=sample)
        .order_by("agent__email", "channel_kind", "conversation_id")
    )
    return sample, reviews


def calibration_get_for_user(*, user: User, pk: Any) -> Calibration:
    calibration = (
        Calibration.objects.filter(pk=pk if str(pk).isdigit() else 0)
        .select_related("conversation", "rubric", "created_by")
        .first()
    )
    if calibration is None:
        raise Http404("No such calibration.")
    if calibration.reviews.filter(reviewer=user).exists():
        return calibration  # a reviewer asked to score it
    if (
        not user.is_manager
        or not Conversation.objects.filter(
            visible_conversations_q(user), pk=calibration.conversation_id
        ).exists()
    ):
        raise Http404("No such calibration.")
    return calibration


def calibration_spread(*, calibration: Calibration) -> dict[str, Any]:
    """Per criterion: each reviewer's value (on 0-100), the min, max, spread and standard deviation."""
    reviews = list(
        calibration.reviews.select_related("reviewer")
        .prefetch_related(
            Prefetch("answers", queryset=QAAnswer.objects.select_related("criterion"))
        )
        .order_by("reviewer__email")
    )
    criteria = list(calibration.rubric.criteria.all())
    rows = []
    for criterion in criteria:
        low, high = criterion.bounds
        values: list[int | None] = []
        for review in reviews:
            answer = next((a for a in review.answers.all() if a.criterion_id == criterion.pk), None)
            values.append(answer.value if answer else None)
        scored = [round(100 * (v - low) / (high - low)) for v in values if v is not None]
        rows.append(
            {
                "criterion": criterion,
                "values": values,
                "min": min(scored) if scored else None,
                "max": max(scored) if scored else None,
                "spread": (max(scored) - min(scored)) if len(scored) >= 2 else None,
                "stdev": round(statistics.pstdev(scored), 1) if len(scored) >= 2 else None,
            }
        )
    scores = [float(r.score) for r in reviews if r.score is not None]
    return {
        "reviews": reviews,
        "rows": rows,
        "submitted": sum(1 for r in reviews if r.is_submitted),
        "score_spread": (max(scores) - min(scores)) if len(scores) >= 2 else None,
    }


def calibration_list(*, user: User) -> QuerySet[Calibration]:
    qs = Calibration.objects.select_related("conversation", "created_by").annotate(
        reviewers=Count("reviews"),
        submitted=Count("reviews", filter=Q(reviews__submitted_at__isnull=False)),
    )
    if not user.is_manager:
        qs = qs.filter(reviews__reviewer=user)
    else:
        # Managers: calibrations on conversations they may open, and those they review.
        qs = qs.filter(
            Q(visible_conversations_q(user, prefix="conversation__"))
            | Q(pk__in=QAReview.objects.filter(reviewer=user).values("calibration_id"))
        )
    return qs.order_by("-created_at", "-id")[:50]


def scored_reviews() -> QuerySet[QAReview]:
    """Reviews that count in ``qa_score``: submitted sample and second reviews; calibration never;
    a disputed review whose second review is in counts through the second review only."""
    return QAReview.objects.filter(
        submitted_at__isnull=False,
        score__isnull=False,
        kind__in=[QAReview.Kind.SAMPLE, QAReview.Kind.SECOND],
        conversation__spam_at__isnull=True,  # spam is in no metric
    ).exclude(second_review__submitted_at__isnull=False)


def qa_scores(*, start: date, end: date, group_by: str = "agent") -> list[dict[str, Any]]:
    """``qa_score`` for the period ``[start, end)`` of local dates, by solve date (docs/metrics.md).

    ``group_by``: "desk", "agent" (``agent_id``), "team" (``team_id``), "channel"
    (``channel_kind``) or "day" (``day``). Each row: the key, ``value`` (mean 0-100, float) and
    ``n`` (reviews). One query.
    """
    keys = {
        "desk": [],
        "agent": ["agent_id"],
        "team": ["team_id"],
        "channel": ["channel_kind"],
        "day": ["day"],
    }[group_by]
    qs = scored_reviews().filter(
        solved_at__gte=local_day_start(start), solved_at__lt=local_day_start(end)
    )
    if group_by == "desk":
        total = qs.aggregate(value=Avg("score"), n=Count("id"))
        return [{"value": round(float(total["value"]), 2), "n": total["n"]}] if total["n"] else []
    if group_by == "day":
        qs = qs.annotate(day=TruncDate("solved_at", tzinfo=timezone.get_current_timezone()))
    rows = qs.values(*keys).annotate(value=Avg("score"), n=Count("id")).order_by(*keys)
    return [
        {**{k: row[k] for k in keys}, "value": round(float(row["value"]), 2), "n": row["n"]}
        for row in rows
    ]


def ideas_captured(*, start: date, end: date, group_by: str = "desk") -> list[dict[str, Any]]:
    """``ideas_captured`` for ``[start, end)``: customer messages logged behind ideas, the distinct
    ideas and the distinct customers behind them, grouped by "desk", "agent" (who logged it,
    ``logged_by_id``) or "team" (the conversation's team, ``team_id``). One query.
    """
    keys = {"desk": [], "agent": ["logged_by_id"], "team": ["conversation__team_id"]}[group_by]
    mentions = IdeaMention.objects.filter(
        created_at__gte=local_day_start(start), created_at__lt=local_day_start(end)
    )
    counts = {
        "mentions": Count("id"),
        "ideas": Count("idea", distinct=True),
        "customers": Count("customer", distinct=True),
    }
    if group_by == "desk":
        return [mentions.aggregate(**counts)]
    rows = (
        mentions.values(*keys)
        .annotate(
            mentions=Count("id"),
            ideas=Count("idea", distinct=True),
            customers=Count("customer", distinct=True),
        )
        .order_by(*keys)
    )
    out = []
    for row in rows:
        item = {"mentions": row["mentions"], "ideas": row["ideas"], "customers": row["customers"]}
        if group_by == "agent":
            item["agent_id"] = row["logged_by_id"]
        elif group_by == "team":
            item["team_id"] = row["conversation__team_id"]
        out.append(item)
    return out


def _pulse_group_shown(n: int, desk_n: int) -> bool:
    """A team's pulse is shown when at least 5 answered and the rest of the desk is 0 or at least 5
    too: otherwise desk minus team would reveal a group smaller than 5."""
    rest = desk_n - n
    return n >= PULSE_MIN_ANSWERS and (rest == 0 or rest >= PULSE_MIN_ANSWERS)


def pulse_means(*, start: date, end: date) -> list[dict[str, Any]]:
    """``agent_pulse`` per team (``team_id``; None is the whole desk) for weeks starting in
    ``[start, end)``. A week's group counts only when it may be shown (at least 5 answers, see
    ``_pulse_group_shown``); ``n`` is the answers in the weeks that count and ``value`` their mean
    (1-5), None when no week counts. Never per agent. One query.
    """
    cells = list(
        PulseAnswer.objects.filter(week__week_start__gte=start, week__week_start__lt=end)
        .values("week_id", "team_id")
        .annotate(n=Count("id"), total=Sum("week_rating"))
        .order_by("week_id", "team_id")
    )
    desk_n = {c["week_id"]: c["n"] for c in cells if c["team_id"] is None}
    sums: dict[int | None, list[int]] = {}
    for cell in cells:
        team_sums = sums.setdefault(cell["team_id"], [0, 0])
        shown = (
            cell["n"] >= PULSE_MIN_ANSWERS
            if cell["team_id"] is None
            else _pulse_group_shown(cell["n"], desk_n.get(cell["week_id"], 0))
        )
        if shown:
            team_sums[0] += cell["n"]
            team_sums[1] += cell["total"]
    return [
        {
            "team_id": team_id,
            "n": n,
            "value": round(total / n, 2) if n else None,
        }
        for team_id, (n, total) in sorted(
            sums.items(), key=lambda kv: (kv[0] is not None, kv[0] or 0)
        )
    ]


def qa_disagreements(*, user: User, limit: int = 200) -> dict[str, list[QAReview]]:
    """Where QA and the customer disagree: reviews that passed (score >= QA_PASS_SCORE) on
    conversations the customer said were not resolved, and failed reviews of conversations the
    customer said were resolved. The customer's word comes from the surveys app's
    ``conversation.outcome`` annotation."""
    reviews = list(
        scored_reviews()
        .filter(visible_review_q(user))
        .select_related("conversation__customer", "agent", "reviewer")
        .order_by("-solved_at", "-id")[:limit]
    )
    outcomes = extensions.annotate("conversation.outcome", [r.conversation_id for r in reviews])
    passing = Decimal(settings.QA_PASS_SCORE)
    qa_passed_customer_no = []
    qa_failed_customer_yes = []
    for review in reviews:
        outcome = outcomes.get(review.conversation_id)
        review.customer_outcome = outcome
        score = review.score
        if score is None:  # scored_reviews() keeps scored reviews only
            continue
        if score >= passing and outcome == "not_resolved":
            qa_passed_customer_no.append(review)
        elif score < passing and outcome == "resolved":
            qa_failed_customer_yes.append(review)
    return {"passed_not_resolved": qa_passed_customer_no, "failed_resolved": qa_failed_customer_yes}


# --- Ideas -----------------------------------------------------------------------------------------


def _visible_mentions_q(user: User | None, prefix: str = "") -> Q:
    """Idea mentions on conversations the user may open (every mention when no user is given)."""
    if user is None:
        return Q()
    return visible_conversations_q(user, prefix=f"{prefix}conversation__")


def idea_list(*, status: str = "", q: str = "", user: User | None = None) -> QuerySet[Idea]:
    """The board: each idea with its distinct customers and mentions counted. One query.

    With ``user``, only ideas behind which the user can open at least one customer message,
    counted and searched over those messages only: another team's customers never show, not
    even as a number (docs/security/authz.md).
    """
    visible = _visible_mentions_q(user, prefix="mentions__")
    qs = Idea.objects.select_related("created_by").annotate(
        customers=Count("mentions__customer", distinct=True, filter=visible),
        mention_count=Count("mentions", distinct=True, filter=visible),
    )
    if user is not None and not user.is_admin:
        qs = qs.filter(mention_count__gt=0)
    if status in Idea.Status.values:
        qs = qs.filter(status=status)
    if q:
        quote_ids = IdeaMention.objects.filter(_visible_mentions_q(user), quote__icontains=q)
        qs = qs.filter(Q(title__icontains=q) | Q(pk__in=quote_ids.values("idea_id")))
    return qs.order_by("-customers", "-created_at", "-id")


def idea_credits(*, ideas: list[Idea]) -> dict[int, list[User]]:
    """The agents who found each idea (logged a mention), in one query."""
    credits: dict[int, dict[int, User]] = defaultdict(dict)
    for mention in (
        IdeaMention.objects.filter(idea__in=ideas)
        .select_related("logged_by")
        .order_by("created_at")
    ):
        credits[mention.idea_id].setdefault(mention.logged_by_id, mention.logged_by)
    return {idea_id: list(users.values()) for idea_id, users in credits.items()}


def idea_get(*, pk: Any, user: User | None = None) -> Idea:
    """An idea; with ``user``, only one behind which the user can open a message (Http404)."""
    qs = Idea.objects.select_related("created_by")
    if user is not None and not user.is_admin:
        qs = qs.filter(
            pk__in=IdeaMention.objects.filter(_visible_mentions_q(user)).values("idea_id")
        )
    try:
        return qs.get(pk=int(pk))
    except (Idea.DoesNotExist, ValueError, TypeError) as exc:
        raise Http404("No such idea.") from exc


def idea_mentions(*, idea: Idea, user: User) -> list[IdeaMention]:
    """The customer messages behind an idea that the user may open."""
    return list(
        idea.mentions.filter(visible_conversations_q(user, prefix="conversation__"))
        .select_related("customer", "conversation", "logged_by", "notified_message")
        .order_by("created_at", "id")
    )


def ideas_for_customer(*, customer_id: int, user: User | None = None) -> list[Idea]:
    """Open ideas this customer is behind (the conversation sidebar). One query. With ``user``,
    only through mentions on conversations the user may open."""
    mentions = IdeaMention.objects.filter(_visible_mentions_q(user), customer_id=customer_id)
    return list(
        Idea.objects.filter(
            pk__in=mentions.values("idea_id"), status__in=Idea.OPEN_STATUSES
        ).order_by("-created_at")[:10]
    )


# --- Cancellations -----------------------------------------------------------------------------------


def cancellation_report(
    *, start: date, end: date, bucket: str = "month", user: User | None = None
) -> dict[str, Any]:
    """Cancellation requests of ``[start, end)`` by reason, channel and period bucket, with
    outcomes. One query. With ``user``, only those on conversations the user may open."""
    trunc = {"week": TruncWeek, "month": TruncMonth}[bucket]
    visible = Q() if user is None else visible_conversations_q(user, prefix="conversation__")
    rows = list(
        Cancellation.objects.filter(
            visible, created_at__gte=local_day_start(start), created_at__lt=local_day_start(end)
        )
        .annotate(period=trunc("created_at", tzinfo=timezone.get_current_timezone()))
        .values("period", "reason__name", "channel_kind")
        .annotate(
            total=Count("id"),
            saved=Count("id", filter=Q(outcome="saved")),
            cancelled=Count("id", filter=Q(outcome="cancelled")),
            pending=Count("id", filter=Q(outcome="pending")),
        )
        .order_by("period", "reason__name", "channel_kind")
    )
    by_reason: dict[str, dict[str, int]] = defaultdict(lambda: defaultdict(int))
    channels: set[str] = set()
    for row in rows:
        channel = row["channel_kind"] or "unknown"
        channels.add(channel)
        by_reason[row["reason__name"]][channel] += row["total"]
        by_reason[row["reason__name"]]["total"] += row["total"]
        by_reason[row["reason__name"]]["saved"] += row["saved"]
        by_reason[row["reason__name"]]["cancelled"] += row["cancelled"]
    return {
        "rows": [{**row, "channel_kind": row["channel_kind"] or "unknown"} for row in rows],
        "channels": sorted(channels),
        "by_reason": sorted(
            (
                {
                    "reason": name,
                    **counts,
                    "cells": [counts.get(channel, 0) for channel in sorted(channels)],
                }
                for name, counts in by_reason.items()
            ),
            key=lambda item: -item["total"],
        ),
    }


def cancellations_for_customer(*, customer_id: int, user: User) -> list[Cancellation]:
    """The customer's cancellation requests on conversations the user may open, newest first
    (the customer page). One query."""
    return list(
        Cancellation.objects.filter(
            visible_conversations_q(user, prefix="conversation__"), customer_id=customer_id
        )
        .select_related("reason", "conversation")
        .order_by("-created_at", "-id")[:20]
    )


def cancellation_for_conversation(*, conversation_id: int) -> Cancellation | None:
    return (
        Cancellation.objects.filter(conversation_id=conversation_id)
        .select_related("reason")
        .first()
    )


# --- Check-ins -----------------------------------------------------------------------------------------


def checkin_list_for_user(*, user: User, state: str = "due") -> QuerySet[CheckIn]:
    qs = CheckIn.objects.select_related("conversation__customer", "agent", "message").filter(
        visible_conversations_q(user, prefix="conversation__")
    )
    if not user.is_manager:
        qs = qs.filter(agent=user)
    if state:
        qs = qs.filter(state=state)
    return qs.order_by("due_at", "id")


def checkin_get_for_user(*, user: User, pk: Any) -> CheckIn:
    found = checkin_list_for_user(user=user, state="").filter(pk=int(pk)).first()
    if found is None:
        raise Http404("No such check-in.")
    return found


# --- Pulse -----------------------------------------------------------------------------------------------


def pulse_current_week() -> PulseWeek | None:
    return PulseWeek.objects.order_by("-week_start").first()


def pulse_last_closed_week() -> PulseWeek | None:
    """The latest week whose pulse has closed (a newer week has opened since).

    Results are shown for closed weeks only: a summary that changed with every answer would let
    anyone watching it between two answers tell who wrote which comment.
    """
    return PulseWeek.objects.order_by("-week_start")[1:2].first()


def pulse_has_answered(*, user: User, week: PulseWeek) -> bool:
    return PulseResponse.objects.filter(week=week, user=user).exists()


def pulse_open_for_user(*, user: User) -> bool:
    """Whether there is a pulse week and ``user`` has not answered it (one query)."""
    answered = (
        PulseWeek.objects.order_by("-week_start")
        .annotate(answered=Exists(PulseResponse.objects.filter(week=OuterRef("pk"), user=user)))
        .values_list("answered", flat=True)
        .first()
    )
    return answered is False


# --- The agent's start page (the agent.home panel) ---------------------------------------------


def agent_home_reviews(*, user: User, limit: int = 10) -> tuple[list[QAReview], list[QAReview]]:
    """The agent's submitted reviews to answer (newest first) and the reviews waiting for them
    to score (oldest first, as ``qa_review_list_to_do``), ``limit`` of each (two queries).

    Only what the panel shows (id, conversation id, kind, score): no joins.
    """
    fields = ("id", "conversation_id", "kind", "score")
    to_answer = (
        QAReview.objects.filter(agent=user, state=QAReview.State.SUBMITTED)
        .exclude(kind=QAReview.Kind.CALIBRATION)
        .only(*fields)
        .order_by("-submitted_at", "-id")[:limit]
    )
    to_do = (
        QAReview.objects.filter(reviewer=user, state=QAReview.State.PENDING)
        .only(*fields)
        .order_by("created_at", "id")[:limit]
    )
    return list(to_answer), list(to_do)


def agent_home_checkins(*, user: User, limit: int = 10) -> list[CheckIn]:
    """The agent's own due check-ins that they may open, soonest first (id, conversation id,
    due time only)."""
    return list(
        CheckIn.objects.filter(
            visible_conversations_q(user, prefix="conversation__"),
            agent=user,
            state=CheckIn.State.DUE,
        )
        .only("id", "conversation_id", "due_at")
        .order_by("due_at", "id")[:limit]
    )


def pulse_summary(*, week: PulseWeek) -> list[dict[str, Any]]:
    """Per team (and the desk): how many answered, and only when at least 5 did, the mean, the
    yes/partly/no split and the comments (shuffled by their random key). Two queries."""
    teams = {team.pk: team for team in Team.objects.all()}
    answers = list(PulseAnswer.objects.filter(week=week).order_by("team_id", "id"))
    grouped: dict[int | None, list[PulseAnswer]] = defaultdict(list)
    for answer in answers:
        grouped[answer.team_id].append(answer)
    out = []
    desk_n = len(grouped.get(None, []))
    for team_id in [None, *sorted(teams, key=lambda pk: teams[pk].name)]:
        group = grouped.get(team_id, [])
        shown = (
            len(group) >= PULSE_MIN_ANSWERS
            if team_id is None
            else _pulse_group_shown(len(group), desk_n)
        )
        out.append(
            {
                "team": teams.get(team_id) if team_id else None,
                "n": len(group),
                "shown": shown,
                "mean": round(statistics.mean(a.week_rating for a in group), 2) if shown else None,
                "need": {
                    need: sum(1 for a in group if a.has_what_needed == need)
                    for need in PulseAnswer.Need.values
                }
                if shown
                else None,
                "comments": [a.comment for a in group if a.comment] if shown else [],
            }
        )
    return out
