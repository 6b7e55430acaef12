"""Every write of the metrics app."""

from __future__ import annotations

import hashlib
import hmac
import logging
import random
from collections import defaultdict
from collections.abc import Iterable, Mapping
from concurrent.futures import ThreadPoolExecutor
from datetime import date, datetime, time, timedelta
from decimal import ROUND_HALF_UP, Decimal
from typing import Any

from django.conf import settings
from django.db import IntegrityError, connection, transaction
from django.db.models import F, Q
from django.urls import reverse
from django.utils import timezone

from metrics.facts import fact_rows, facts_insert
from metrics.models import (
    TARGETABLE_METRICS,
    Calibration,
    Cancellation,
    CancellationReason,
    CheckIn,
    CheckInRule,
    Criterion,
    DailyFact,
    DirtyDay,
    DurationBucket,
    FactDay,
    Idea,
    IdeaMention,
    PulseAnswer,
    PulseResponse,
    PulseWeek,
    QAAnswer,
    QAReview,
    QASample,
    RecomputeJob,
    Rubric,
    SourceWatermark,
    Target,
)
from supportdesk.errors import ApplicationError, Conflict
from supportdesk.models import AuditEntry, Team, User
from supportdesk.services import audit_record, notification_create, outbox_enqueue
from surveys.models import SurveyResponse
from tickets.models import Contact, Conversation, Event, Message
from tickets.selectors import visible_conversations_q
from tickets.services import conversation_reply

# --- QA, ideas, cancellations, check-ins, pulse ----------------------------------------------------
# Issue 6. Periods are local dates of the desk's time zone; see docs/metrics.md.

DEFAULT_RUBRIC = "Default"
# (name, description, weight, scale, critical)
DEFAULT_CRITERIA = (
    (
        "Accurate product information",
        "What the agent said about the product was correct.",
        3,
        "yes_no",
        True,
    ),
    ("Conversational tone", "Plain, warm words; no script or jargon.", 1, "1_5", False),
    (
        "Understood the real issue",
        "Answered what the customer needed, not only what they asked.",
        2,
        "1_5",
        False,
    ),
    ("Created connection", "The customer was treated as a person.", 1, "1_3", False),
    (
        "Left the door open",
        "The customer knows how to come back and what happens next.",
        1,
        "yes_no",
        False,
    ),
)
DEFAULT_CANCELLATION_REASONS = (
    "Too expensive",
    "Missing a feature",
    "Product quality or bugs",
    "Poor support experience",
    "Switching to a competitor",
    "No longer needed",
    "Other",
)
PULSE_MIN_ANSWERS = 5


def bounded_text(value: str, *, what: str, limit: int) -> None:
    """Refuse free text longer than ``limit`` characters (a clear 400; nothing is stored)."""
    if value and len(value) > limit:
        raise ApplicationError(f"{what} is too long: at most {limit:,} characters.")


def local_day_start(day: date) -> datetime:
    """The aware datetime at which ``day`` starts in the desk's time zone."""
    return timezone.make_aware(datetime.combine(day, time.min), timezone.get_current_timezone())


def week_start_of(moment: datetime | date) -> date:
    day = timezone.localdate(moment) if isinstance(moment, datetime) else moment
    return day - timedelta(days=day.weekday())


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
    *, criteria: list[Mapping[str, Any]], actor: User | None, name: str = DEFAULT_RUBRIC
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
        )
        .select_related("agent")
        .order_by("occurred_at", "id")
    )
    for event in events:
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
                reviews.append(_sample_review(sample, events[conversation_id], reviewer, rubric))
    QAReview.objects.bulk_create(reviews)
    for reviewer_id, count in load.items():
        notification_create(
            recipient=User.objects.get(pk=reviewer_id),
            kind="qa.sample",
            title=f"{count} conversation{'s' if count != 1 else ''} to review this week",
            url=reverse("metrics:qa_home"),
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


def _sample_review(sample: QASample, event: Event, reviewer: User, rubric: Rubric) -> QAReview:
    return QAReview(
        kind=QAReview.Kind.SAMPLE,
        sample=sample,
        conversation_id=event.conversation_id,
        solve_event=event,
        solved_at=event.occurred_at,
        channel_kind=event.channel_kind,
        team_id=event.team_id,
        agent_id=event.agent_id,
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
    event = events[rng.choice(candidates)]
    replacement = _sample_review(sample, event, review.reviewer, review.rubric)
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
            url=reverse("metrics:qa_review", args=[review.pk]),
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
        url=reverse("metrics:qa_review", args=[second.pk]),
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
    if event is None:
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
            url=reverse("metrics:qa_calibration", args=[calibration.pk]),
        )
    return calibration


# --- Ideas -------------------------------------------------------------------------------------------


def _customer_message(message: Message) -> Message:
    if message.direction != Message.Direction.INBOUND:
        raise ApplicationError("Ideas are logged from the customer's own messages.")
    return message


@transaction.atomic
def idea_create(*, message: Message, actor: User, title: str, quote: str = "") -> Idea:
    """A new idea on the board, with this customer message behind it."""
    bounded_text(title, what="The title", limit=200)
    bounded_text(quote, what="The quote", limit=5000)
    title = (title or "").strip()
    if not title:
        raise ApplicationError("Give the idea a short title.")
    _customer_message(message)
    idea = Idea.objects.create(title=title[:200], created_by=actor)
    idea_attach(idea=idea, message=message, actor=actor, quote=quote)
    return idea


@transaction.atomic
def idea_attach(*, idea: Idea, message: Message, actor: User, quote: str = "") -> IdeaMention:
    """Put one more customer message behind an existing idea (once per message)."""
    bounded_text(quote, what="The quote", limit=5000)
    _customer_message(message)
    quote = (quote or "").strip() or message.body_text.strip()[:500]
    if not quote:
        raise ApplicationError("Quote what the customer said.")
    conversation = message.conversation
    if IdeaMention.objects.filter(idea=idea, message=message).exists():
        raise Conflict("This message is already behind that idea.")
    return IdeaMention.objects.create(
        idea=idea,
        message=message,
        conversation=conversation,
        customer_id=conversation.customer_id,
        quote=quote[:2000],
        logged_by=actor,
    )


@transaction.atomic
def idea_set_status(*, idea: Idea, actor: User, status: str) -> Idea:
    if not actor.is_manager:
        raise ApplicationError("Only managers move ideas on the board.")
    if status not in Idea.Status.values:
        raise ApplicationError("Unknown status.")
    idea = Idea.objects.select_for_update().get(pk=idea.pk)
    if idea.status != status:
        idea.status = status
        idea.status_changed_at = timezone.now()
        idea.save(update_fields=["status", "status_changed_at"])
    return idea


def idea_notify_customers(
    *, idea: Idea, actor: User, body: str, visible_to: User | None = None
) -> tuple[int, list[str]]:
    """Tell every customer behind a shipped idea, once, by a reply on their latest conversation.

    Each reply is a real outbound message (``tickets.services.conversation_reply``), in its own
    transaction; a customer already told is skipped, so a second click sends nothing twice.
    Returns how many were told and the problems of those who could not be (no address...).
    With ``visible_to``, only the customers of conversations that user may open are told (a
    manager never writes into another team's conversations).
    """
    bounded_text(body, what="The message", limit=50000)
    body = (body or "").strip()
    if not body:
        raise ApplicationError("Write the message the customers will get.")
    if idea.status != Idea.Status.SHIPPED:
        raise ApplicationError("Customers are told once the idea has shipped.")
    mentions = idea.mentions.filter(notified_message__isnull=True)
    if visible_to is not None:
        mentions = mentions.filter(visible_conversations_q(visible_to, prefix="conversation__"))
    latest: dict[int, IdeaMention] = {}
    for mention in mentions.select_related("conversation"):
        current = latest.get(mention.customer_id)
        if current is None or mention.created_at >= current.created_at:
            latest[mention.customer_id] = mention
    told = 0
    problems: list[str] = []
    for customer_id, mention in sorted(latest.items()):
        try:
            with transaction.atomic():
                claimed = list(
                    IdeaMention.objects.select_for_update()
                    .filter(idea=idea, customer_id=customer_id, notified_message__isnull=True)
                    .values_list("pk", flat=True)
                )
                if not claimed:
                    continue
                reply = conversation_reply(
                    conversation=mention.conversation, author=actor, body=body
                )
                IdeaMention.objects.filter(pk__in=claimed).update(notified_message=reply)
                told += 1
        except ApplicationError as exc:
            problems.append(f"Conversation #{mention.conversation_id}: {exc.message}")
    return told, problems


# --- Cancellations --------------------------------------------------------------------------------------


def cancellation_reason_save(
    *, actor: User, name: str, is_active: bool = True, position: int = 0, pk: int | None = None
) -> CancellationReason:
    """Create or rename/retire a reason of the managed list (retired reasons stay on old rows)."""
    if not actor.is_manager:
        raise ApplicationError("Only managers edit the cancellation reasons.")
    name = (name or "").strip()
    if not name:
        raise ApplicationError("A reason needs a name.")
    if not 0 <= position <= 1000:
        raise ApplicationError("The order is a number from 0 to 1000.")
    reason = CancellationReason() if pk is None else CancellationReason.objects.get(pk=pk)
    reason.name = name[:100]
    reason.is_active = is_active
    reason.position = position
    try:
        with transaction.atomic():
            reason.save()
    except IntegrityError as exc:
        raise Conflict(f"There is already a reason called {name!r}.") from exc
    return reason


def cancellation_reasons_ensure_default() -> None:
    for index, name in enumerate(DEFAULT_CANCELLATION_REASONS):
        CancellationReason.objects.get_or_create(name=name, defaults={"position": index})


@transaction.atomic
def cancellation_record(
    *,
    conversation: Conversation,
    actor: User,
    reason: CancellationReason,
    outcome: str = Cancellation.Outcome.PENDING,
    note: str = "",
) -> Cancellation:
    """Record (or update) why the customer of this conversation wants to cancel, and the outcome.

    One record per conversation. Moving to *saved* starts the saved-cancellation check-in rule's
    clock (``outcome_at``).
    """
    bounded_text(note, what="The note", limit=5000)
    if outcome not in Cancellation.Outcome.values:
        raise ApplicationError("The outcome is cancelled, saved or pending.")
    if not reason.is_active:
        raise ApplicationError("That reason is retired; pick another.")
    channel = (
        Message.objects.filter(conversation=conversation, direction=Message.Direction.INBOUND)
        .order_by("-sent_at", "-id")
        .values_list("channel_kind", flat=True)
        .first()
    ) or ""
    record = Cancellation.objects.select_for_update().filter(conversation=conversation).first()
    now = timezone.now()
    if record is None:
        record = Cancellation(
            conversation=conversation,
            customer_id=conversation.customer_id,
            recorded_by=actor,
            channel_kind=channel,
            team_id=conversation.team_id,
        )
    if record.outcome != outcome:
        record.outcome_at = now if outcome != Cancellation.Outcome.PENDING else None
        record.outcome_by = actor if outcome != Cancellation.Outcome.PENDING else None
    record.reason = reason
    record.outcome = outcome
    record.note = (note or "").strip()
    record.save()
    return record


# --- Check-ins ----------------------------------------------------------------------------------------


DEFAULT_CHECKIN_DAYS = {"not_resolved": 3, "high_effort": 7, "saved": 14}
# How far behind the rule's day the daily task still looks (it may not have run for a while).
CHECKIN_LOOKBACK_DAYS = 7
HIGH_EFFORT_CONTACTS = 3


def checkin_rules_ensure_default() -> None:
    for trigger, days in DEFAULT_CHECKIN_DAYS.items():
        CheckInRule.objects.get_or_create(trigger=trigger, defaults={"days_after": days})


def checkin_rule_update(
    *, actor: User, rule: CheckInRule, days_after: int, is_active: bool
) -> CheckInRule:
    if not actor.is_manager:
        raise ApplicationError("Only managers change check-in rules.")
    if not 1 <= days_after <= 90:
        raise ApplicationError("Check-ins are due 1 to 90 days after their cause.")
    rule.days_after = days_after
    rule.is_active = is_active
    rule.save(update_fields=["days_after", "is_active"])
    return rule


def checkins_create_due(*, now: datetime | None = None) -> int:
    """Create the check-ins the active rules call for; returns how many were created.

    - not_resolved: ``days_after`` days after the customer answered the resolution survey *no* or
      *partly* (to the agent the survey is about);
    - high_effort: ``days_after`` days after a solve with 3 contacts counted or more;
    - saved: ``days_after`` days after a cancellation was saved.
    Each cause gives one check-in (unique per conversation and trigger), to the agent who solved
    (or saved). Idempotent: it runs daily over a window of ``CHECKIN_LOOKBACK_DAYS``.
    """
    now = now or timezone.now()
    checkin_rules_ensure_default()
    created = 0
    for rule in CheckInRule.objects.filter(is_active=True):
        until = now - timedelta(days=rule.days_after)
        since = until - timedelta(days=CHECKIN_LOOKBACK_DAYS)
        causes: dict[int, tuple[int, datetime]] = {}
        if rule.trigger == CheckInRule.Trigger.NOT_RESOLVED:
            answers = SurveyResponse.objects.filter(
                resolved__in=[SurveyResponse.Resolved.NO, SurveyResponse.Resolved.PARTLY],
                answered_at__gt=since,
                answered_at__lte=until,
                survey__agent__isnull=False,
            ).order_by("answered_at", "id")
            for conversation_id, agent_id, at in answers.values_list(
                "survey__conversation_id", "survey__agent_id", "answered_at"
            ):
                causes[conversation_id] = (agent_id, at)
        elif rule.trigger == CheckInRule.Trigger.HIGH_EFFORT:
            solves = Event.objects.filter(
                kind=Event.Kind.SOLVED,
                occurred_at__gt=since,
                occurred_at__lte=until,
                agent__isnull=False,
                data__contacts_counted__gte=HIGH_EFFORT_CONTACTS,
            ).order_by("occurred_at", "id")
            for conversation_id, agent_id, at in solves.values_list(
                "conversation_id", "agent_id", "occurred_at"
            ):
                causes[conversation_id] = (agent_id, at)
        else:
            for conversation_id, agent_id, at in Cancellation.objects.filter(
                outcome=Cancellation.Outcome.SAVED, outcome_at__gt=since, outcome_at__lte=until
            ).values_list("conversation_id", "outcome_by_id", "outcome_at"):
                causes[conversation_id] = (agent_id, at)
        for conversation_id, (agent_id, at) in sorted(causes.items()):
            with transaction.atomic():
                checkin, was_created = CheckIn.objects.get_or_create(
                    conversation_id=conversation_id,
                    trigger=rule.trigger,
                    defaults={"agent_id": agent_id, "due_at": at + timedelta(days=rule.days_after)},
                )
                if was_created:
                    created += 1
                    notification_create(
                        recipient=checkin.agent,
                        kind="checkin.due",
                        title=f"Check in with the customer of #{conversation_id}",
                        body=rule.get_trigger_display(),
                        url=reverse("metrics:checkins"),
                    )
    return created


@transaction.atomic
def checkin_send(*, checkin: CheckIn, actor: User, body: str) -> CheckIn:
    """Send the check-in as a real reply on the conversation (no survey in it) and track it."""
    bounded_text(body, what="The message", limit=50000)
    checkin = CheckIn.objects.select_for_update().select_related("conversation").get(pk=checkin.pk)
    if checkin.state != CheckIn.State.DUE:
        raise Conflict("This check-in was already sent or dismissed.")
    if actor.pk != checkin.agent_id and not actor.is_manager:
        raise ApplicationError("This check-in belongs to another agent.")
    if not Conversation.objects.filter(
        visible_conversations_q(actor), pk=checkin.conversation_id
    ).exists():
        # The conversation moved to a team the actor is not in: it is theirs to answer now.
        raise ApplicationError("This conversation has moved to another team.")
    message = conversation_reply(conversation=checkin.conversation, author=actor, body=body)
    checkin.state = CheckIn.State.SENT
    checkin.message = message
    checkin.done_at = timezone.now()
    checkin.save(update_fields=["state", "message", "done_at"])
    return checkin


@transaction.atomic
def checkin_dismiss(*, checkin: CheckIn, actor: User) -> CheckIn:
    checkin = CheckIn.objects.select_for_update().get(pk=checkin.pk)
    if checkin.state != CheckIn.State.DUE:
        raise Conflict("This check-in was already sent or dismissed.")
    if actor.pk != checkin.agent_id and not actor.is_manager:
        raise ApplicationError("This check-in belongs to another agent.")
    if not Conversation.objects.filter(
        visible_conversations_q(actor), pk=checkin.conversation_id
    ).exists():
        # The conversation moved to a team the actor is not in: it is theirs to answer now.
        raise ApplicationError("This conversation has moved to another team.")
    checkin.state = CheckIn.State.DISMISSED
    checkin.done_at = timezone.now()
    checkin.save(update_fields=["state", "done_at"])
    return checkin


# --- Agent pulse -------------------------------------------------------------------------------------


@transaction.atomic
def pulse_week_open(*, week_start: date) -> tuple[PulseWeek, bool]:
    """Open the week's pulse and ask every active agent, once (the week is unique)."""
    week, created = PulseWeek.objects.get_or_create(week_start=week_start)
    if created:
        for agent in User.objects.filter(is_active=True, role=User.Role.AGENT).order_by("pk"):
            notification_create(
                recipient=agent,
                kind="pulse.open",
                title="Two questions about your week (anonymous)",
                url=reverse("metrics:pulse"),
            )
    return week, created


@transaction.atomic
def pulse_answer(
    *, user: User, week: PulseWeek, week_rating: int, has_what_needed: str, comment: str = ""
) -> None:
    """Record an anonymous pulse answer: who answered is kept apart from what they answered.

    The answer is stored once for the desk and once per team of the agent, with no user and no
    time on it. A second answer for the same week is a Conflict.
    """
    bounded_text(comment, what="The comment", limit=5000)
    if not 1 <= int(week_rating) <= 5:
        raise ApplicationError("Rate your week from 1 to 5.")
    if has_what_needed not in PulseAnswer.Need.values:
        raise ApplicationError("Answer yes, partly or no.")
    try:
        with transaction.atomic():
            PulseResponse.objects.create(week=week, user=user)
    except IntegrityError as exc:
        raise Conflict("You already answered this week's pulse.") from exc
    team_ids = [None, *sorted(user.teams.values_list("pk", flat=True))]
    PulseAnswer.objects.bulk_create(
        PulseAnswer(
            week=week,
            team_id=team_id,
            week_rating=int(week_rating),
            has_what_needed=has_what_needed,
            comment=(comment or "").strip()[:2000],
        )
        for team_id in team_ids
    )


# --- Scorecards, facts and the dashboard (issue 5) ----------------------------------------

logger = logging.getLogger(__name__)

# A burst of events on one day is recomputed once it has been quiet this long...
DIRTY_DEBOUNCE = timedelta(seconds=2)
# ...or at the latest this long after its first event, so a busy day is never starved.
DIRTY_MAX_WAIT = timedelta(seconds=6)
# An on-demand or nightly job computes this many days per task, then chains the next task.
JOB_CHUNK_DAYS = 14


def local_today() -> date:
    return timezone.localdate()


def _days(day_from: date, day_to: date) -> list[date]:
    return [day_from + timedelta(days=i) for i in range((day_to - day_from).days)]


@transaction.atomic
def facts_compute(*, day_from: date, day_to: date) -> int:
    """Rebuild the facts of local days ``[day_from, day_to)``; returns the rows written.

    Side effects: replaces the ``DailyFact`` and ``DurationBucket`` rows of those days and
    stamps their ``FactDay.computed_at`` and bumps their ``version`` (the scorecard cache key).
    Idempotent. Locks the days' ``FactDay`` rows (in day order, so two overlapping ranges cannot
    deadlock) for the length of the transaction.
    """
    if day_to <= day_from:
        return 0
    days = _days(day_from, day_to)
    FactDay.objects.bulk_create([FactDay(day=d) for d in days], ignore_conflicts=True)
    list(
        FactDay.objects.select_for_update()
        .filter(day__gte=day_from, day__lt=day_to)
        .order_by("day")
        .values_list("pk", flat=True)
    )
    DailyFact.objects.filter(day__gte=day_from, day__lt=day_to).delete()
    DurationBucket.objects.filter(day__gte=day_from, day__lt=day_to).delete()
    if connection.vendor == "postgresql":
        # Set-based: INSERT ... SELECT per fact query, nothing loaded into Python.
        written = facts_insert(day_from, day_to, connection=connection)
    else:
        facts, durations = fact_rows(day_from, day_to)
        DailyFact.objects.bulk_create(
            [
                DailyFact(**cell, metric=metric, numerator=numerator, denominator=denominator)
                for cell, metric, numerator, denominator in facts
            ],
            batch_size=1000,
        )
        DurationBucket.objects.bulk_create(
            [
                DurationBucket(**cell, metric=metric, bucket=bucket, count=count)
                for cell, metric, bucket, count in durations
            ],
            batch_size=1000,
        )
        written = len(facts) + len(durations)
    FactDay.objects.filter(day__gte=day_from, day__lt=day_to).update(
        computed_at=timezone.now(), version=F("version") + 1
    )
    return written


def _split_days(day_from: date, day_to: date, parts: int) -> list[tuple[date, date]]:
    """``[day_from, day_to)`` cut into ``parts`` contiguous ranges of (almost) equal length."""
    days = (day_to - day_from).days
    parts = max(1, min(parts, days))
    ranges, start = [], day_from
    for i in range(parts):
        end = start + timedelta(days=days // parts + (1 if i < days % parts else 0))
        ranges.append((start, end))
        start = end
    return ranges


def _facts_compute_on_own_connection(day_from: date, day_to: date) -> int:
    try:
        return facts_compute(day_from=day_from, day_to=day_to)
    finally:
        connection.close()  # this thread's connection, not the caller's


def facts_compute_chunk(*, day_from: date, day_to: date) -> int:
    """``facts_compute`` of ``[day_from, day_to)`` on up to ``METRICS_RECOMPUTE_CONNECTIONS``
    database connections at once; returns the rows written.

    The fact queries are set-based ``INSERT ... SELECT`` statements: one connection keeps one
    PostgreSQL backend (one core) busy while the others idle, so the nightly recompute splits
    each chunk into contiguous day ranges. The first range is computed in the caller's
    transaction; each other range in its own thread, connection and transaction (disjoint days:
    their ``FactDay`` locks never meet). All ranges finish before this returns; the first error
    is raised after that (a range that committed stays computed: facts are idempotent).
    """
    ranges = _split_days(day_from, day_to, settings.METRICS_RECOMPUTE_CONNECTIONS)
    if len(ranges) <= 1 or connection.vendor != "postgresql":
        return facts_compute(day_from=day_from, day_to=day_to)
    with ThreadPoolExecutor(max_workers=len(ranges) - 1) as pool:
        futures = [pool.submit(_facts_compute_on_own_connection, *r) for r in ranges[1:]]
        error: BaseException | None = None
        written = 0
        try:
            written += facts_compute(day_from=ranges[0][0], day_to=ranges[0][1])
        except BaseException as exc:  # wait for the threads before raising
            error = exc
        for future in futures:
            try:
                written += future.result()
            except BaseException as exc:
                error = error or exc
    if error is not None:
        raise error
    return written


# --- Dirty days: debounced recompute after events ------------------------------------------------


def facts_mark_dirty(*, days: Iterable[date]) -> int:
    """Mark days for recomputation. A day already marked keeps one row (its ``marked_at``
    moves on: the debounce). Returns how many days were marked."""
    days = sorted(set(days))
    if not days:
        return 0
    now = timezone.now()
    with transaction.atomic():
        DirtyDay.objects.bulk_create(
            [DirtyDay(day=d, first_marked_at=now, marked_at=now) for d in days],
            ignore_conflicts=True,
        )
        DirtyDay.objects.filter(day__in=days).update(marked_at=now)
    return len(days)


FACT_WINDOW = timedelta(days=8)  # reopen/repeat windows (7 days) plus a day of time zones
REPLY_LOOKBACK = timedelta(days=30)  # a reply changes the first-response day of its contacts


def _solve_days(customer_ids: Iterable[int], *, since: datetime, until: datetime) -> set[date]:
    """Local days of the customers' solves in ``[since, until]`` (one query)."""
    customer_ids = list(customer_ids)
    if not customer_ids:
        return set()
    tz = timezone.get_current_timezone()
    stamps = Event.objects.filter(
        kind=Event.Kind.SOLVED,
        conversation__customer_id__in=customer_ids,
        occurred_at__gte=since,
        occurred_at__lte=until,
    ).values_list("occurred_at", flat=True)
    return {stamp.astimezone(tz).date() for stamp in stamps}


def _affected_days(event: Event) -> set[date]:
    """The local days whose facts an event can change.

    The event's own day; for anything about a customer, the days of their solves in the window
    before it (a reopen or a survey answer changes an earlier solve's figures). Merges and
    moves carry the days they touched (``data.affected_dates``).
    """
    tz = timezone.get_current_timezone()
    days = {event.occurred_at.astimezone(tz).date()}
    for value in (event.data or {}).get("affected_dates", []):
        try:
            days.add(date.fromisoformat(value))
        except (TypeError, ValueError):
            logger.warning("event %s has a bad affected date %r", event.pk, value)
    customer_id = event.customer_id or (
        event.conversation.customer_id if event.conversation_id else None
    )
    if customer_id is not None:
        days |= _solve_days(
            [customer_id], since=event.occurred_at - FACT_WINDOW, until=event.occurred_at
        )
    return days


def facts_mark_dirty_for_event(*, event_id: int) -> int:
    """React to a domain event: mark the days it changes. Missing event: log and return."""
    event = Event.objects.select_related("conversation").filter(pk=event_id).first()
    if event is None:
        logger.warning("metrics: event %s not found", event_id)
        return 0
    return facts_mark_dirty(days=_affected_days(event))


# A row committed this long after its timestamp could be missed by the watermark; the nightly
# recompute catches it.
SOURCE_LAG = timedelta(seconds=2)


def facts_mark_dirty_from_sources() -> int:
    """Mark the days changed since the last look by what records no event for metrics.

    - customer messages (calls included): their day, and the customer's solves in the window
      before (a new conversation is a repeat contact of an earlier solve);
    - agent replies: their day and the start days of their conversation's recent contacts;
      messages are polled rather than subscribed to: a query per tick, not a task per message;
    - surveys sent, bounced, cancelled or answered, and QA reviews submitted: their solve's day.

    The watermark row is locked while it moves, so concurrent beats look at each interval once.
    Returns how many days were marked.
    """
    from surveys.models import Survey

    now = timezone.now()
    until = now - SOURCE_LAG
    tz = timezone.get_current_timezone()
    with transaction.atomic():
        SourceWatermark.objects.bulk_create(
            [SourceWatermark(name="sources", seen_until=until)], ignore_conflicts=True
        )
        mark = SourceWatermark.objects.select_for_update().get(name="sources")
        since = mark.seen_until
        if since >= until:
            return 0
        # One indexed range per kind of change (an OR of them scans every survey and response).
        changed = [
            stamp
            for window in (
                Q(sent_at__gt=since, sent_at__lte=until),
                Q(bounced_at__gt=since, bounced_at__lte=until),
                Q(cancelled_at__gt=since, cancelled_at__lte=until),
                Q(responses__answered_at__gt=since, responses__answered_at__lte=until),
            )
            for stamp in Survey.objects.filter(window).values_list("solved_at", flat=True)
        ]
        reviewed = QAReview.objects.filter(
            submitted_at__gt=since, submitted_at__lte=until
        ).values_list("solved_at", flat=True)
        inbound = list(
            Message.objects.filter(
                direction=Message.Direction.INBOUND, created_at__gt=since, created_at__lte=until
            ).values_list("sent_at", "conversation__customer_id")
        )
        replies = list(
            Message.objects.filter(
                direction=Message.Direction.OUTBOUND, created_at__gt=since, created_at__lte=until
            ).values_list("sent_at", "conversation_id")
        )
        days = {stamp.astimezone(tz).date() for stamp in [*changed, *reviewed]}
        days |= {sent_at.astimezone(tz).date() for sent_at, _ in inbound}
        if inbound:
            days |= _solve_days(
                {customer for _, customer in inbound},
                since=min(sent_at for sent_at, _ in inbound) - FACT_WINDOW,
                until=max(sent_at for sent_at, _ in inbound),
            )
        if replies:
            # First response and chat session length belong to the day of the contact replied to.
            days |= {sent_at.astimezone(tz).date() for sent_at, _ in replies}
            starts = Contact.objects.filter(
                conversation_id__in={conversation for _, conversation in replies},
                started_at__gte=min(sent_at for sent_at, _ in replies) - REPLY_LOOKBACK,
                started_at__lte=max(sent_at for sent_at, _ in replies),
            ).values_list("started_at", flat=True)
            days |= {stamp.astimezone(tz).date() for stamp in starts}
        mark.seen_until = until
        mark.save(update_fields=["seen_until"])
    return facts_mark_dirty(days=days)


def facts_recompute_dirty(*, limit: int = 31) -> list[date]:
    """Recompute the days that are due (quiet for ``DIRTY_DEBOUNCE`` or waiting longer than
    ``DIRTY_MAX_WAIT``). Returns the days recomputed.

    Each day is claimed with ``SELECT ... FOR UPDATE SKIP LOCKED`` so two beats never compute
    the same day at once, and its row is deleted only if no event marked it again during the
    computation (conditional delete on ``marked_at``): such a day stays dirty for the next tick.
    """
    now = timezone.now()
    due = list(
        DirtyDay.objects.filter(
            Q(marked_at__lte=now - DIRTY_DEBOUNCE) | Q(first_marked_at__lte=now - DIRTY_MAX_WAIT)
        ).values_list("day", flat=True)
    )
    done: list[date] = []
    for day in sorted(set(due))[:limit]:
        with transaction.atomic():
            row = (
                DirtyDay.objects.select_for_update(skip_locked=True)
                .filter(day=day)
                .values("pk", "marked_at")
                .first()
            )
            if row is None:
                continue
            facts_compute(day_from=day, day_to=day + timedelta(days=1))
        # Outside the claim: an event that marked the day meanwhile bumped marked_at.
        DirtyDay.objects.filter(pk=row["pk"], marked_at=row["marked_at"]).delete()
        done.append(day)
    return done


# --- Recompute jobs ------------------------------------------------------------------------------


def _check_range(day_from: date, day_to: date) -> None:
    if day_to <= day_from:
        raise ApplicationError("'to' must be after 'from' (the period is [from, to)).")
    if (day_to - day_from).days > settings.METRICS_RETENTION_DAYS + 1:
        raise ApplicationError(
            f"A recompute covers at most {settings.METRICS_RETENTION_DAYS} days "
            "(METRICS_RETENTION_DAYS); split the period."
        )


@transaction.atomic
def recompute_job_create(
    *, day_from: date, day_to: date, requested_by: User | None
) -> RecomputeJob:
    """Queue a recompute of ``[day_from, day_to)``: a job row, run by the worker after commit."""
    _check_range(day_from, day_to)
    job = RecomputeJob.objects.create(
        requested_by=requested_by,
        date_from=day_from,
        date_to=day_to,
        next_day=day_from,
        days_total=(day_to - day_from).days,
    )
    if requested_by is not None:  # the nightly run is routine, not somebody's decision
        audit_record(
            action=AuditEntry.Action.SCORECARDS_RECOMPUTE,
            target=job,
            actor=requested_by,
            summary=f"Scorecards recompute of [{day_from}, {day_to}) requested",
            details={"from": day_from.isoformat(), "to": day_to.isoformat()},
        )
    outbox_enqueue(task_name="metrics.tasks.recompute_job_run_task", kwargs={"job_id": job.pk})
    return job


def recompute_job_run(*, job_id: int) -> RecomputeJob | None:
    """Compute the job's next chunk of days, record progress, and chain the next chunk.

    The chunk is claimed by a conditional UPDATE on ``next_day``: a task delivered twice
    computes each chunk once. Returns the job, or None when it is missing or already finished.
    """
    job = RecomputeJob.objects.filter(pk=job_id).first()
    if job is None:
        logger.warning("metrics: recompute job %s not found", job_id)
        return None
    if job.state in (RecomputeJob.State.DONE, RecomputeJob.State.FAILED):
        return None
    start = job.next_day
    end = min(start + timedelta(days=JOB_CHUNK_DAYS), job.date_to)
    with transaction.atomic():
        claimed = RecomputeJob.objects.filter(
            pk=job.pk, next_day=start, state__in=["queued", "running"]
        ).update(next_day=end, state=RecomputeJob.State.RUNNING, updated_at=timezone.now())
        if not claimed:
            return None
        try:
            with transaction.atomic():
                facts_compute_chunk(day_from=start, day_to=end)
        except Exception as exc:
            RecomputeJob.objects.filter(pk=job.pk).update(
                state=RecomputeJob.State.FAILED, error=str(exc)[:2000], finished_at=timezone.now()
            )
            raise
        finished = end >= job.date_to
        RecomputeJob.objects.filter(pk=job.pk).update(
            days_done=F("days_done") + (end - start).days,
            state=RecomputeJob.State.DONE if finished else RecomputeJob.State.RUNNING,
            finished_at=timezone.now() if finished else None,
        )
        if not finished:
            outbox_enqueue(
                task_name="metrics.tasks.recompute_job_run_task", kwargs={"job_id": job.pk}
            )
        elif job.days_total > JOB_CHUNK_DAYS:
            # Every fact row of those days was replaced: half of the tables is dead rows.
            outbox_enqueue(task_name="metrics.tasks.facts_vacuum_task", kwargs={})
    job.refresh_from_db()
    return job


FACT_TABLES = ("metrics_dailyfact", "metrics_durationbucket")


def facts_vacuum() -> bool:
    """``VACUUM (ANALYZE)`` the fact tables; returns whether it ran.

    A recompute deletes and re-inserts every fact row of its days, so after the nightly job the
    tables hold as many dead rows as live ones until autovacuum comes by, and every scorecard
    read visits both (at 1M, a team's 90-day read took 173 ms before and 46 ms after). On
    PostgreSQL only, and never inside a transaction (VACUUM cannot run in one): it is skipped.
    """
    if connection.vendor != "postgresql" or connection.in_atomic_block:
        return False
    with connection.cursor() as cursor:
        cursor.execute(f"VACUUM (ANALYZE) {', '.join(FACT_TABLES)}")
    return True


@transaction.atomic
def facts_recompute_retention(*, requested_by: User | None = None) -> RecomputeJob:
    """The nightly job: every day of the retention window up to and including today.

    Side effects: deletes the facts of days older than the window (nobody can ask for them:
    periods are limited to the window) and queues the recompute job.
    """
    today = local_today()
    first = today - timedelta(days=settings.METRICS_RETENTION_DAYS - 1)
    DailyFact.objects.filter(day__lt=first).delete()
    DurationBucket.objects.filter(day__lt=first).delete()
    FactDay.objects.filter(day__lt=first).delete()
    return recompute_job_create(
        day_from=first, day_to=today + timedelta(days=1), requested_by=requested_by
    )


# --- Targets -------------------------------------------------------------------------------------


@transaction.atomic
def target_set(
    *, metric: str, team: Team | None, value: float | None, actor: User
) -> Target | None:
    """Set (or with ``value=None`` clear) a target on an outcome or connection metric.

    Speed metrics refuse targets (docs/metrics.md). Managers set targets for their own teams only;
    desk-wide targets are for admins.
    """
    if metric not in TARGETABLE_METRICS:
        raise ApplicationError(
            "Targets can be set on outcome and connection metrics only, never on speed."
        )
    if not actor.is_manager:
        raise ApplicationError("Only managers set targets.")
    if team is None and not actor.is_admin:
        raise Conflict("Only admins set desk-wide targets; choose one of your teams.")
    if team is not None and not actor.is_admin and not actor.teams.filter(pk=team.pk).exists():
        raise ApplicationError("You manage other teams than this one.")
    existing = Target.objects.select_for_update().filter(metric=metric, team=team).first()
    scope = team.name if team is not None else "the desk"
    if value is None:
        if existing is not None:
            _audit_target(metric, team, existing.value, None, actor, f"{metric} of {scope}")
            existing.delete()
        return None
    if metric == "nps":
        if not -100 <= value <= 100:
            raise ApplicationError("An NPS target lies between -100 and 100.")
    elif metric == "csat_mean":
        if not 1 <= value <= 5:
            raise ApplicationError("A CSAT mean target lies between 1 and 5.")
    elif metric == "resolution_gap":
        if not -1 <= value <= 1:
            raise ApplicationError("A resolution gap target lies between -100% and 100%.")
    elif not 0 <= value <= 1:
        raise ApplicationError("A rate target lies between 0% and 100%.")
    _audit_target(
        metric, team, existing.value if existing else None, value, actor, f"{metric} of {scope}"
    )
    if existing is None:
        return Target.objects.create(metric=metric, team=team, value=value, set_by=actor)
    existing.value = value
    existing.set_by = actor
    existing.save(update_fields=["value", "set_by", "updated_at"])
    return existing


def _audit_target(
    metric: str,
    team: Team | None,
    old: float | None,
    new: float | None,
    actor: User,
    label: str,
) -> None:
    audit_record(
        action=AuditEntry.Action.TARGET_CHANGED,
        target=("metrics.target", f"{metric}:{team.pk if team else 'desk'}"),
        actor=actor,
        team=team,
        summary=f"Target {label}: {old} -> {new}",
        details={"metric": metric, "team": team.pk if team else None, "from": old, "to": new},
    )


def facts_seed(*, rng: Any = None, stdout: Any = None) -> int:
    """``seed_demo``'s last step: compute the facts of every seeded day (within the retention
    window) so the dashboard has figures at once. Returns the fact rows written."""
    first = Event.objects.order_by("occurred_at").values_list("occurred_at", flat=True).first()
    if first is None:
        return 0
    today = local_today()
    day_from = max(
        timezone.localdate(first), today - timedelta(days=settings.METRICS_RETENTION_DAYS - 1)
    )
    written = 0
    day = day_from
    while day <= today:
        chunk_end = min(day + timedelta(days=JOB_CHUNK_DAYS), today + timedelta(days=1))
        written += facts_compute_chunk(day_from=day, day_to=chunk_end)
        day = chunk_end
    if stdout is not None:
        stdout.write(f"Computed {written} scorecard fact rows from {day_from} to {today}.")
    return written
