"""Scheduling a survey at a solve, and what cancels, suppresses or moves it."""

from __future__ import annotations

import random
from datetime import datetime, timedelta

from django.db import IntegrityError, transaction
from django.db.models import Q
from django.utils import timezone

from surveys.models import Survey, SurveyResponse, SurveyUnsubscribe
from surveys.services.policy import SEND_LEASE, survey_policy
from tickets.models import Conversation, Event, Message

Status = Survey.Status
Skip = Survey.SkipReason
Resolved = SurveyResponse.Resolved


def _sampled(event_id: int, rate: float) -> bool:
    # Deterministic per solve event: re-running the handler never flips the decision.
    return rate >= 1 or random.Random(f"survey-sample-{event_id}").random() < rate


@transaction.atomic
def survey_schedule(*, event: Event, now: datetime | None = None) -> Survey | None:
    """Schedules the survey of a solve event (idempotent: the existing survey is returned).

    Side effects: one Survey row, ``scheduled`` due ``SURVEY_DELAY_MINUTES`` after the solve, or
    ``skipped`` with a reason when the channel is not surveyed or the event is outside the sample.
    A solve older than the survey window (imports, seeded history) gets no survey: returns None.
    """
    if event.kind != Event.Kind.SOLVED or event.conversation_id is None:
        raise ValueError(f"event {event.pk} is not a solve event")
    existing = Survey.objects.filter(event=event).first()
    if existing is not None:
        return existing
    now = now or timezone.now()
    policy = survey_policy()
    if event.occurred_at <= now - timedelta(days=policy.window_days):
        return None
    conversation = Conversation.objects.select_related("customer").get(pk=event.conversation_id)
    if conversation.spam_at is not None:
        return None  # spam is never surveyed
    customer = conversation.customer
    while customer.merged_into is not None:
        customer = customer.merged_into
    skip = Skip.NONE
    # The channel the customer last wrote on, when an admin turned its surveys off.
    channel_surveyed = (
        Message.objects.filter(
            conversation_id=conversation.pk,
            direction=Message.Direction.INBOUND,
            automated="",
            channel__isnull=False,
            sent_at__lte=event.occurred_at,
        )
        .order_by("-sent_at", "-id")
        .values_list("channel__surveyed", flat=True)
        .first()
    )
    if (policy.channels and event.channel_kind not in policy.channels) or (
        channel_surveyed is False
    ):
        skip = Skip.CHANNEL
    elif not _sampled(event.pk, policy.sampling_rate):
        skip = Skip.SAMPLED_OUT
    try:
        with transaction.atomic():
            return Survey.objects.create(
                event=event,
                conversation=conversation,
                customer=customer,
                agent_id=event.agent_id,
                team_id=event.team_id,
                channel_kind=event.channel_kind,
                solved_at=event.occurred_at,
                contacts_counted=int(event.data.get("contacts_counted") or 0),
                status=Status.SKIPPED if skip else Status.SCHEDULED,
                skip_reason=skip,
                due_at=event.occurred_at + policy.delay,
            )
    except IntegrityError:  # a concurrent handler of the same event won
        return Survey.objects.get(event=event)


def survey_cancel_for_inbound(*, event: Event, now: datetime | None = None) -> int:
    """The customer wrote again: cancels the conversation's surveys not sent yet.

    Side effects: scheduled surveys of solves before the message become ``cancelled``. A send
    already in progress (a live lease) is left to finish. Automated mail (auto-replies) cancels
    nothing. Returns how many were cancelled.
    """
    if event.conversation_id is None or (event.data or {}).get("automated"):
        return 0
    now = now or timezone.now()
    return Survey.objects.filter(
        Q(send_claimed_at__isnull=True) | Q(send_claimed_at__lt=now - SEND_LEASE),
        conversation_id=event.conversation_id,
        status=Status.SCHEDULED,
        solved_at__lte=event.occurred_at,
    ).update(status=Status.CANCELLED, cancelled_at=now)


def surveys_cancel_for_spam(*, conversation_id: int, now: datetime | None = None) -> int:
    """A conversation was marked as spam: its surveys not sent yet are ``cancelled`` (a send in
    progress, with a live lease, is left to finish). Returns how many were cancelled."""
    now = now or timezone.now()
    return Survey.objects.filter(
        Q(send_claimed_at__isnull=True) | Q(send_claimed_at__lt=now - SEND_LEASE),
        conversation_id=conversation_id,
        status=Status.SCHEDULED,
    ).update(status=Status.CANCELLED, cancelled_at=now)


def survey_mark_bounced(*, identity_id: int, now: datetime | None = None) -> int:
    """An address bounced: surveys sent to it in the survey window become ``bounced``."""
    now = now or timezone.now()
    window = timedelta(days=survey_policy().window_days)
    return Survey.objects.filter(
        identity_id=identity_id, status=Status.SENT, sent_at__gte=now - window
    ).update(status=Status.BOUNCED, bounced_at=now)


def surveys_move_customer(*, from_customer_id: int, to_customer_id: int) -> int:
    """A merge moved a customer: their survey history and unsubscribes follow."""
    SurveyUnsubscribe.objects.filter(customer_id=from_customer_id).update(
        customer_id=to_customer_id
    )
    return Survey.objects.filter(customer_id=from_customer_id).update(customer_id=to_customer_id)


def surveys_follow_conversations(*, conversation_ids: list[int]) -> int:
    """After a merge is undone: each survey belongs to its conversation's customer again."""
    moved = 0
    for conversation in Conversation.objects.filter(pk__in=conversation_ids).only("customer_id"):
        moved += (
            Survey.objects.filter(conversation_id=conversation.pk)
            .exclude(customer_id=conversation.customer_id)
            .update(customer_id=conversation.customer_id)
        )
    return moved
