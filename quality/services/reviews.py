"""QA: rubrics, the weekly sample, reviewing, disputes and calibration."""

from __future__ import annotations

import hashlib
import hmac
import random
from collections import defaultdict
from collections.abc import Iterable, Mapping, Sequence
from datetime import date, datetime, timedelta
from decimal import ROUND_HALF_UP, Decimal
from typing import Any

from django.conf import settings
from django.db import IntegrityError, transaction
from django.urls import reverse
from django.utils import timezone

from quality.models import (
    Calibration,
    Criterion,
    QAAnswer,
    QAReview,
    QASample,
    Rubric,
)
from quality.services.common import DEFAULT_CRITERIA, DEFAULT_RUBRIC, bounded_text, local_day_start
from supportdesk.errors import ApplicationError, Conflict
from supportdesk.models import User
from supportdesk.services import notification_create
from tickets.models import Conversation, Event

# --- Rubrics ---------------------------------------------------------------------------------------


def review_score(answers: Iterable[tuple[Criterion, int | None]]) -> tuple[Decimal | None, bool]:
    """The score (0-100, 2 decimals) and whether a critical criterion failed.

    Each answered criterion is placed on 0..1 by its scale (yes = 1, no = 0; on 1-3 and 1-5 the
    lowest value is 0 and the highest 1) and the score is the weight-weighted mean times 100.
    N/A (``None``) criteria leave both the numerator and the weights. A critical criterion
    answered with its lowest value (no, or 1) makes the score 0. Every criterion N/A: ``None``.
    """
    total = Decimal(0)
    weights = 0
    critical_failed = False
    for criterion, value in answers:
        if value is None:
            continue
        low, high = criterion.bounds
        if criterion.critical and value == low:
            critical_failed = True
        total += Decimal(criterion.weight) * Decimal(value - low) / Decimal(high - low)
        weights += criterion.weight
    if critical_failed:
        return Decimal("0.00"), True
    if weights == 0:
        return None, False
    score = (total * 100 / weights).quantize(Decimal("0.01"), rounding=ROUND_HALF_UP)
    return score, False


@transaction.atomic
def rubric_publish(
    *, criteria: Sequence[Mapping[str, Any]], actor: User | None, name: str = DEFAULT_RUBRIC
) -> Rubric:
    """Publish a new version of a rubric; the previous version stops being current.

    ``criteria``: mappings with name, weight (1-100), scale (yes_no, 1_3, 1_5), allow_na,
    critical and an optional description. Reviews already made keep the version they used.
    """
    if actor is not None and not actor.is_manager:
        raise ApplicationError("Only managers edit rubrics.")
    cleaned = []
    seen: set[str] = set()
    for item in criteria:
        title = str(item.get("name", "")).strip()
        if not title:
            continue
        if title.lower() in seen:
            raise ApplicationError(f"Two criteria are called {title!r}.")
        seen.add(title.lower())
        try:
            weight = int(item.get("weight", 1))
        except (TypeError, ValueError) as exc:
            raise ApplicationError(f"The weight of {title!r} must be a whole number.") from exc
        if not 1 <= weight <= 100:
            raise ApplicationError(f"The weight of {title!r} must be between 1 and 100.")
        scale = item.get("scale", Criterion.Scale.YES_NO)
        if scale not in Criterion.Scale.values:
            raise ApplicationError(f"The scale of {title!r} must be yes/no, 1-3 or 1-5.")
        cleaned.append(
            {
                "name": title[:120],
                "description": str(item.get("description", "")).strip()[:500],
                "weight": weight,
                "scale": scale,
                "allow_na": bool(item.get("allow_na", True)),
                "critical": bool(item.get("critical", False)),
            }
        )
    if not cleaned:
        raise ApplicationError("A rubric needs at least one criterion.")
    previous = Rubric.objects.select_for_update().filter(name=name).order_by("-version").first()
    Rubric.objects.filter(name=name, is_current=True).update(is_current=False)
    rubric = Rubric.objects.create(
        name=name, version=(previous.version + 1) if previous else 1, created_by=actor
    )
    Criterion.objects.bulk_create(
        Criterion(rubric=rubric, position=index, **item) for index, item in enumerate(cleaned)
    )
    return rubric


def rubric_ensure_default() -> Rubric:
    """The current default rubric, publishing the five seeded criteria the first time."""
    current = Rubric.objects.filter(name=DEFAULT_RUBRIC, is_current=True).first()
    if current is not None:
        return current
    return rubric_publish(
        actor=None,
        criteria=[
            {"name": n, "description": d, "weight": w, "scale": s, "critical": c, "allow_na": True}
            for n, d, w, s, c in DEFAULT_CRITERIA
        ],
    )


# --- The weekly sample ------------------------------------------------------------------------------


def _allocate(strata: Mapping[str, list[Any]], size: int) -> dict[str, int]:
    """Proportional allocation of ``size`` picks over strata (largest remainder, ties by name)."""
    total = sum(len(items) for items in strata.values())
    size = min(size, total)
    if size <= 0:
        return dict.fromkeys(strata, 0)
    exact = {key: size * len(items) / total for key, items in strata.items()}
    quota = {key: int(value) for key, value in exact.items()}
    rest = size - sum(quota.values())
    for key in sorted(exact, key=lambda k: (-(exact[k] - quota[k]), k))[:rest]:
        quota[key] += 1
    return quota


def _reviewer_pool(agent: User, team_ids: set[int]) -> list[User]:
    """Who may review ``agent``: managers and (when peer review is on) agents of their teams.

    Never the agent. Admins only when the teams have nobody else.
    """
    roles = ["manager", "agent"] if settings.QA_PEER_REVIEW else ["manager"]
    pool = list(
        User.objects.filter(is_active=True, role__in=roles, teams__in=team_ids)
        .exclude(pk=agent.pk)
        .distinct()
        .order_by("pk")
    )
    if not pool:
        pool = list(
            User.objects.filter(is_active=True, role="admin").exclude(pk=agent.pk).order_by("pk")
        )
    return pool


def _solves_in(start: datetime, end: datetime) -> dict[int, dict[int, Event]]:
    """agent id -> conversation id -> the last solve event of that conversation in [start, end)."""
    by_agent: dict[int, dict[int, Event]] = defaultdict(dict)
    events = (
        Event.objects.filter(
            kind=Event.Kind.SOLVED,
            occurred_at__gte=start,
            occurred_at__lt=end,
            agent__isnull=False,
            conversation__isnull=False,
            conversation__spam_at__isnull=True,  # spam is never sampled for QA
        )
        .select_related("agent")
        .order_by("occurred_at", "id")
    )
    for event in events:
        if event.agent_id is None or event.conversation_id is None:  # excluded by the filter
            continue
        by_agent[event.agent_id][event.conversation_id] = event  # later solves win
    return by_agent


@transaction.atomic
def qa_sample_draw(
    *, week_start: date, size_per_agent: int | None = None, seed: str | None = None
) -> QASample:
    """Draw the week's QA sample and create one pending review per sampled conversation.

    For each agent with solves in the week ``[week_start, week_start + 7)``, their solved
    conversations are split by the channel of the solve, the sample size is spread over channels
    in proportion (largest remainder), and each channel's picks are drawn with
    ``random.Random(f"{seed}:{agent_id}:{channel}")`` from the conversation ids in order: the
    same seed and the same solves always give the same sample. The default seed is an HMAC of the
    week under ``SECRET_KEY``, so agents cannot predict it; it is stored on the sample. Reviewers are the agent's team
    managers and peers, never the agent; each pick goes to the least-loaded reviewer, ties broken by
    the same seeded generator. Running it again for a drawn week returns the existing sample.
    """
    existing = QASample.objects.filter(week_start=week_start).first()
    if existing is not None:
        return existing
    size = settings.QA_SAMPLE_SIZE if size_per_agent is None else size_per_agent
    if size < 1:
        raise ApplicationError("The sample size must be at least 1.")
    seed = seed or _default_seed(week_start)
    try:
        with transaction.atomic():
            sample = QASample.objects.create(week_start=week_start, seed=seed, size_per_agent=size)
    except IntegrityError:
        return QASample.objects.get(week_start=week_start)
    rubric = rubric_ensure_default()
    start = local_day_start(week_start)
    solves = _solves_in(start, local_day_start(week_start + timedelta(days=7)))
    load: dict[int, int] = defaultdict(int)
    reviews = []
    # A reviewer must be able to open what they review: pools follow each conversation's team
    # now (it may have moved since the solve), never the agent's other teams.
    current_team = dict(
        Conversation.objects.filter(
            pk__in={cid for events in solves.values() for cid in events}
        ).values_list("pk", "team_id")
    )
    pools: dict[tuple[int, int | None], list[User]] = {}
    for agent_id in sorted(solves):
        events = solves[agent_id]
        agent = next(iter(events.values())).agent
        if agent is None:  # _solves_in keeps only solves by an agent
            continue
        strata: dict[str, list[int]] = defaultdict(list)
        for conversation_id in sorted(events):
            strata[events[conversation_id].channel_kind or "unknown"].append(conversation_id)
        quota = _allocate(strata, size)
        picks_rng = random.Random(f"{seed}:{agent_id}:reviewers")
        for channel in sorted(strata):
            rng = random.Random(f"{seed}:{agent_id}:{channel}")
            for conversation_id in sorted(rng.sample(strata[channel], quota[channel])):
                team_id = current_team.get(conversation_id)
                if (agent_id, team_id) not in pools:
                    pools[agent_id, team_id] = _reviewer_pool(
                        agent, {team_id} if team_id else set()
                    )
                pool = pools[agent_id, team_id]
                if not pool:
                    continue
                reviewer = _least_loaded(pool, load, picks_rng)
                load[reviewer.pk] += 1
                reviews.append(
                    _sample_review(
                        sample,
                        events[conversation_id],
                        reviewer,
                        rubric,
                        conversation_id=conversation_id,
                        agent_id=agent_id,
                    )
                )
    QAReview.objects.bulk_create(reviews)
    for reviewer_id, count in load.items():
        notification_create(
            recipient=User.objects.get(pk=reviewer_id),
            kind="qa.sample",
            title=f"{count} conversation{'s' if count != 1 else ''} to review this week",
            url=reverse("quality:qa_home"),
        )
    return sample


def _default_seed(week_start: date) -> str:
    digest = hmac.new(
        settings.SECRET_KEY.encode(), f"qa-sample:{week_start.isoformat()}".encode(), hashlib.sha256
    )
    return digest.hexdigest()[:16]


def _least_loaded(pool: list[User], load: Mapping[int, int], rng: random.Random) -> User:
    lowest = min(load.get(user.pk, 0) for user in pool)
    return rng.choice([user for user in pool if load.get(user.pk, 0) == lowest])


def _sample_review(
    sample: QASample,
    event: Event,
    reviewer: User,
    rubric: Rubric,
    *,
    conversation_id: int,
    agent_id: int,
) -> QAReview:
    """A pending review of the solve ``event`` (of ``conversation_id`` by ``agent_id``)."""
    return QAReview(
        kind=QAReview.Kind.SAMPLE,
        sample=sample,
        conversation_id=conversation_id,
        solve_event=event,
        solved_at=event.occurred_at,
        channel_kind=event.channel_kind,
        team_id=event.team_id,
        agent_id=agent_id,
        reviewer=reviewer,
        rubric=rubric,
    )


@transaction.atomic
def qa_review_replace(*, review: QAReview, actor: User, reason: str) -> QAReview:
    """Swap a sampled conversation for another of the same agent's week; the reason is logged.

    A replacement comes from the same channel when one is left, otherwise from any channel, drawn
    by a generator seeded from the sample's seed and the replaced review. The replaced review keeps
    its reason, who replaced it, when, and which review replaced it.
    """
    bounded_text(reason, what="The reason", limit=500)
    review = (
        QAReview.objects.select_for_update(of=("self",)).select_related("sample").get(pk=review.pk)
    )
    reason = (reason or "").strip()
    if not reason:
        raise ApplicationError("Say why this conversation is replaced.")
    if review.kind != QAReview.Kind.SAMPLE or review.sample is None:
        raise ApplicationError("Only sampled conversations are replaced.")
    if review.state != QAReview.State.PENDING:
        raise Conflict("This review is already done or replaced.")
    if actor.pk != review.reviewer_id and not actor.is_manager:
        raise ApplicationError("Only the reviewer or a manager replaces a sampled conversation.")
    sample = review.sample
    start = local_day_start(sample.week_start)
    events = _solves_in(start, local_day_start(sample.week_start + timedelta(days=7))).get(
        review.agent_id, {}
    )
    taken = set(sample.reviews.values_list("conversation_id", flat=True))
    left = sorted(cid for cid in events if cid not in taken)
    same_channel = [cid for cid in left if events[cid].channel_kind == review.channel_kind]
    candidates = same_channel or left
    if not candidates:
        raise Conflict("This agent has no other solved conversation that week to review instead.")
    rng = random.Random(f"{sample.seed}:replace:{review.pk}")
    picked = rng.choice(candidates)
    replacement = _sample_review(
        sample,
        events[picked],
        review.reviewer,
        review.rubric,
        conversation_id=picked,
        agent_id=review.agent_id,
    )
    replacement.save()
    review.state = QAReview.State.REPLACED
    review.replaced_reason = reason[:500]
    review.replaced_by = actor
    review.replaced_at = timezone.now()
    review.replacement = replacement
    review.save(
        update_fields=["state", "replaced_reason", "replaced_by", "replaced_at", "replacement"]
    )
    return replacement


# --- Reviewing --------------------------------------------------------------------------------------


@transaction.atomic
def qa_review_submit(
    *, review: QAReview, reviewer: User, values: Mapping[int, int | None], comment: str = ""
) -> QAReview:
    """Score a pending review: ``values`` maps every criterion id of its rubric to a value or None
    (N/A, only where the criterion allows it). Tells the agent (not for calibration reviews).
    """
    bounded_text(comment, what="The comment", limit=5000)
    review = QAReview.objects.select_for_update().get(pk=review.pk)
    if review.reviewer_id != reviewer.pk:
        raise ApplicationError("This review is assigned to someone else.")
    if review.state != QAReview.State.PENDING:
        raise Conflict("This review was already submitted.")
    criteria = list(review.rubric.criteria.all())
    answers: list[tuple[Criterion, int | None]] = []
    for criterion in criteria:
        if criterion.pk not in values:
            raise ApplicationError(f"Answer “{criterion.name}”.")
        value = values[criterion.pk]
        if value is None and not criterion.allow_na:
            raise ApplicationError(f"“{criterion.name}” cannot be N/A.")
        low, high = criterion.bounds
        if value is not None and not low <= value <= high:
            raise ApplicationError(f"“{criterion.name}” takes a value from {low} to {high}.")
        answers.append((criterion, value))
    score, critical_failed = review_score(answers)
    QAAnswer.objects.bulk_create(
        QAAnswer(review=review, criterion=criterion, value=value) for criterion, value in answers
    )
    review.score = score
    review.critical_failed = critical_failed
    review.comment = (comment or "").strip()
    review.submitted_at = timezone.now()
    review.state = QAReview.State.SUBMITTED
    review.save(update_fields=["score", "critical_failed", "comment", "submitted_at", "state"])
    if review.kind != QAReview.Kind.CALIBRATION:
        second = " (second review of your dispute)" if review.kind == QAReview.Kind.SECOND else ""
        notification_create(
            recipient=review.agent,
            kind="qa.reviewed",
            title=f"Your conversation #{review.conversation_id} was reviewed{second}",
            body=f"Score: {score if score is not None else 'n/a'}",
            url=reverse("quality:qa_review", args=[review.pk]),
        )
    return review


@transaction.atomic
def qa_review_acknowledge(*, review: QAReview, agent: User, comment: str = "") -> QAReview:
    """The reviewed agent has read the review and accepts it."""
    bounded_text(comment, what="The comment", limit=5000)
    review = QAReview.objects.select_for_update().get(pk=review.pk)
    if review.agent_id != agent.pk:
        raise ApplicationError("Only the reviewed agent acknowledges a review.")
    if review.state != QAReview.State.SUBMITTED or review.kind == QAReview.Kind.CALIBRATION:
        raise Conflict("This review is not waiting for your answer.")
    review.state = QAReview.State.ACKNOWLEDGED
    review.agent_comment = (comment or "").strip()
    review.responded_at = timezone.now()
    review.save(update_fields=["state", "agent_comment", "responded_at"])
    return review


@transaction.atomic
def qa_review_dispute(*, review: QAReview, agent: User, comment: str) -> QAReview:
    """The agent disputes a review with a comment; a second reviewer gets a pending review.

    The second reviewer is a manager of the review's team who is neither the first reviewer nor
    the agent (any other manager or admin when the team has none, else a peer of the team). Once the second review is
    submitted, it counts in ``qa_score`` instead of the first one. Returns the second review.
    """
    bounded_text(comment, what="The comment", limit=5000)
    review = QAReview.objects.select_for_update().select_related("reviewer").get(pk=review.pk)
    comment = (comment or "").strip()
    if review.agent_id != agent.pk:
        raise ApplicationError("Only the reviewed agent disputes a review.")
    if not comment:
        raise ApplicationError("Say what you disagree with.")
    if review.kind != QAReview.Kind.SAMPLE or review.state != QAReview.State.SUBMITTED:
        raise Conflict("This review cannot be disputed.")
    excluded = [review.reviewer_id, review.agent_id]
    managers = User.objects.filter(is_active=True, role__in=["manager", "admin"]).exclude(
        pk__in=excluded
    )
    second_reviewer = (
        managers.filter(teams=review.team_id).order_by("pk").first() if review.team_id else None
    ) or managers.order_by("role", "pk").first()
    if second_reviewer is None and review.team_id:
        # A desk with one manager: a peer of the team gives the second opinion.
        second_reviewer = (
            User.objects.filter(is_active=True, role="agent", teams=review.team_id)
            .exclude(pk__in=excluded)
            .order_by("pk")
            .first()
        )
    if second_reviewer is None:
        raise Conflict("There is no other manager to give a second review.")
    review.state = QAReview.State.DISPUTED
    review.agent_comment = comment
    review.responded_at = timezone.now()
    review.save(update_fields=["state", "agent_comment", "responded_at"])
    second = QAReview.objects.create(
        kind=QAReview.Kind.SECOND,
        second_of=review,
        conversation_id=review.conversation_id,
        solve_event_id=review.solve_event_id,
        solved_at=review.solved_at,
        channel_kind=review.channel_kind,
        team_id=review.team_id,
        agent_id=review.agent_id,
        reviewer=second_reviewer,
        rubric_id=review.rubric_id,
    )
    notification_create(
        recipient=second_reviewer,
        kind="qa.disputed",
        title=f"A QA review of #{review.conversation_id} is disputed: please give a second review",
        body=comment,
        url=reverse("quality:qa_review", args=[second.pk]),
        email=True,
    )
    return second


@transaction.atomic
def calibration_create(
    *, conversation: Conversation, actor: User, reviewers: Iterable[User]
) -> Calibration:
    """Several reviewers score one solved conversation; their reviews never count in qa_score."""
    if not actor.is_manager:
        raise ApplicationError("Only managers start a calibration.")
    event = (
        Event.objects.filter(kind=Event.Kind.SOLVED, conversation=conversation, agent__isnull=False)
        .order_by("-occurred_at", "-id")
        .first()
    )
    if event is None or event.agent_id is None:  # the filter wants an agent
        raise ApplicationError("Calibrate on a solved conversation.")
    people = sorted(
        {user.pk: user for user in reviewers if user.pk != event.agent_id}.values(),
        key=lambda u: u.pk,
    )
    if len(people) < 2:
        raise ApplicationError("Pick at least two reviewers other than the agent who solved it.")
    rubric = rubric_ensure_default()
    calibration = Calibration.objects.create(
        conversation=conversation, rubric=rubric, created_by=actor
    )
    for person in people:
        QAReview.objects.create(
            kind=QAReview.Kind.CALIBRATION,
            calibration=calibration,
            conversation=conversation,
            solve_event=event,
            solved_at=event.occurred_at,
            channel_kind=event.channel_kind,
            team_id=event.team_id,
            agent_id=event.agent_id,
            reviewer=person,
            rubric=rubric,
        )
        notification_create(
            recipient=person,
            kind="qa.calibration",
            title=f"Calibration: score conversation #{conversation.pk}",
            url=reverse("quality:qa_calibration", args=[calibration.pk]),
        )
    return calibration
