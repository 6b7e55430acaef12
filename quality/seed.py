"""seed_demo's "qa" seeder: everything goes through metrics.services, like real use."""

from __future__ import annotations

import contextlib
import random
from datetime import timedelta
from typing import Any

from django.utils import timezone

from quality import services
from quality.models import CancellationReason, Idea, QAReview
from supportdesk.errors import ApplicationError
from supportdesk.models import User
from tickets.models import Conversation, Message

IDEAS = (
    ("Export invoices as CSV", "Could I download all my invoices as a spreadsheet?"),
    ("Dark mode in the app", "Please add a dark mode, the white screen hurts at night."),
    ("Pause a subscription", "I'd rather pause my plan for the summer than cancel it."),
    ("SMS delivery updates", "A text message when the parcel ships would be great."),
    ("Shared family account", "Can my partner and I share one account?"),
)


def seed(*, rng: random.Random, stdout: Any = None) -> None:
    services.rubric_ensure_default()
    services.cancellation_reasons_ensure_default()
    services.checkin_rules_ensure_default()
    today = timezone.localdate()
    this_week = services.week_start_of(today)
    # QA: the last three full weeks drawn, most reviews done.
    for weeks_back in (3, 2, 1):
        week = this_week - timedelta(days=7 * weeks_back)
        sample = services.qa_sample_draw(week_start=week, seed=f"demo-{week.isoformat()}")
        pending = list(sample.reviews.filter(state=QAReview.State.PENDING).order_by("pk"))
        for index, review in enumerate(pending):
            if weeks_back == 1 and index % 3 == 0:
                continue  # some left to do this week
            values: dict[int, int | None] = {}
            for criterion in review.rubric.criteria.all():
                low, high = criterion.bounds
                roll = rng.random()
                if criterion.allow_na and roll < 0.08:
                    values[criterion.pk] = None
                elif roll < 0.75:
                    values[criterion.pk] = high
                else:
                    values[criterion.pk] = rng.randint(low, high)
            review = services.qa_review_submit(
                review=review,
                reviewer=review.reviewer,
                values=values,
                comment=rng.choice(("", "Clear and kind.", "Check the refund policy wording.")),
            )
            roll = rng.random()
            try:
                if roll < 0.5:
                    services.qa_review_acknowledge(review=review, agent=review.agent)
                elif roll < 0.58:
                    services.qa_review_dispute(
                        review=review,
                        agent=review.agent,
                        comment="The customer had already confirmed the address by phone.",
                    )
            except ApplicationError:
                pass
    # Calibration on one solved conversation.
    managers = list(
        User.objects.filter(role__in=["manager", "admin"], is_active=True).order_by("pk")
    )
    solved = (
        Conversation.objects.filter(status__in=["solved", "closed"]).order_by("-solved_at").first()
    )
    if solved is not None and len(managers) >= 1:
        others = User.objects.filter(role="agent", is_active=True)
        if solved.assignee_id is not None:
            others = others.exclude(pk=solved.assignee_id)
        peers = list(others)
        try:
            calibration = services.calibration_create(
                conversation=solved, actor=managers[0], reviewers=[*managers, *peers[:1]]
            )
            for review in calibration.reviews.all():
                values = {c.pk: rng.randint(*c.bounds) for c in review.rubric.criteria.all()}
                services.qa_review_submit(review=review, reviewer=review.reviewer, values=values)
        except ApplicationError:
            pass
    # Ideas from customer messages.
    inbound = list(
        Message.objects.filter(direction=Message.Direction.INBOUND, automated="")
        .exclude(body_text="")
        .select_related("conversation")
        .order_by("pk")[:400]
    )
    agents = list(User.objects.filter(role="agent", is_active=True).order_by("pk"))
    if inbound and agents:
        picks = rng.sample(inbound, min(len(inbound), 24))
        ideas = []
        for (title, quote), message in zip(IDEAS, picks, strict=False):
            ideas.append(
                services.idea_create(
                    message=message, actor=rng.choice(agents), title=title, quote=quote
                )
            )
        for message in picks[len(ideas) :]:
            idea = rng.choice(ideas)
            with contextlib.suppress(ApplicationError):
                services.idea_attach(
                    idea=idea,
                    message=message,
                    actor=rng.choice(agents),
                    quote=dict(IDEAS)[idea.title],
                )
        if managers:
            for idea, status in zip(
                ideas, ("planned", "under_review", "shipped", "new"), strict=False
            ):
                services.idea_set_status(idea=idea, actor=managers[0], status=status)
    # Cancellation requests.
    reasons = list(CancellationReason.objects.filter(is_active=True))
    conversations = list(Conversation.objects.order_by("pk")[:300])
    for conversation in rng.sample(conversations, min(len(conversations), 14)):
        actor = conversation.assignee or (agents[0] if agents else None)
        if actor is None:
            continue
        services.cancellation_record(
            conversation=conversation,
            actor=actor,
            reason=rng.choice(reasons),
            outcome=rng.choice(("saved", "saved", "cancelled", "pending")),
            note="Customer mentioned it in the conversation.",
        )
    # Pulse: last week's, answered by every agent (the demo has fewer than 5: it stays hidden).
    pulse_week, _ = services.pulse_week_open(week_start=this_week - timedelta(days=7))
    for agent in agents:
        services.pulse_answer(
            user=agent,
            week=pulse_week,
            week_rating=rng.choice((3, 4, 4, 5)),
            has_what_needed=rng.choice(("yes", "yes", "partly")),
        )
    services.pulse_week_open(week_start=this_week)
    services.checkins_create_due()
    if stdout is not None:
        stdout.write(
            f"QA: {QAReview.objects.count()} reviews, {Idea.objects.count()} ideas, "
            f"{len(reasons)} cancellation reasons\n"
        )
