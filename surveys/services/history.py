"""History for seeding and imports: a past survey and its answer, written as the services would."""

from __future__ import annotations

from datetime import datetime, timedelta

from django.db import transaction

from surveys.models import FollowUp, Survey, SurveyResponse
from surveys.services.answers import Answer, team_manager, validate
from surveys.services.policy import survey_policy
from tickets.models import Conversation, Event, Identity

Status = Survey.Status
Skip = Survey.SkipReason
Resolved = SurveyResponse.Resolved


@transaction.atomic
def survey_record_past(
    *,
    event: Event,
    sent_at: datetime,
    answer: Answer | None = None,
    answered_at: datetime | None = None,
    skip_reason: str = "",
) -> Survey:
    """Records a survey of a past solve as sent (and answered) without emailing anyone.

    For ``seed_demo`` and imports of history: no notification, no reopen, no follow-up email.
    With ``skip_reason`` the survey is recorded as skipped instead. An existing survey of the
    event that was not sent yet is taken over; a sent one keeps its send and gets the answer
    if it has none.
    """
    survey = Survey.objects.select_for_update().filter(event=event).first()
    if survey is None:
        if event.conversation_id is None:  # a solve event always names its conversation
            raise Conversation.DoesNotExist(f"Event {event.pk} names no conversation.")
        conversation = Conversation.objects.get(pk=event.conversation_id)
        survey = Survey.objects.create(
            event=event,
            conversation=conversation,
            customer_id=conversation.customer_id,
            agent_id=event.agent_id,
            team_id=event.team_id,
            channel_kind=event.channel_kind,
            solved_at=event.occurred_at,
            contacts_counted=int(event.data.get("contacts_counted") or 0),
            due_at=sent_at,
            status=Status.SCHEDULED,
        )
    if survey.status == Status.SCHEDULED and not _record_past_send(
        survey, sent_at=sent_at, skip_reason=skip_reason
    ):
        return survey
    if survey.status != Status.SENT or answer is None or survey.responses.exists():
        return survey
    answer = validate(answer, survey)
    at = answered_at or sent_at
    SurveyResponse.objects.create(
        survey=survey,
        resolved=answer.resolved,
        contacts_declared=answer.contacts_declared,
        contacts_counted=survey.contacts_counted,
        csat=answer.csat,
        nps=answer.nps,
        comment=answer.comment,
        shout_out=answer.shout_out,
        needs_nothing_more=answer.needs_nothing_more,
        first_answered_at=at,
        answered_at=at,
    )
    low_csat = answer.csat is not None and answer.csat <= 2
    if low_csat or (answer.nps is not None and answer.nps <= 6):
        FollowUp.objects.create(
            survey=survey,
            team_id=survey.team_id,
            assignee=team_manager(survey.team_id),
            reason=FollowUp.Reason.LOW_CSAT if low_csat else FollowUp.Reason.DETRACTOR,
            created_at=at,
        )
    return survey


def _record_past_send(survey: Survey, *, sent_at: datetime, skip_reason: str) -> bool:
    """Marks a scheduled survey as sent at ``sent_at`` (or skipped); returns whether it was sent."""
    identity = None
    if not skip_reason:
        identity = (
            Identity.objects.filter(
                customer_id=survey.customer_id,
                kind=Identity.Kind.EMAIL,
                undeliverable_at__isnull=True,
            )
            .order_by("-verified", "id")
            .first()
        )
        skip_reason = "" if identity is not None else Skip.NO_EMAIL
    if skip_reason:
        survey.status = Status.SKIPPED
        survey.skip_reason = skip_reason
        survey.send_claimed_at = None
        survey.save(update_fields=["status", "skip_reason", "send_claimed_at"])
        return False
    assert identity is not None
    policy = survey_policy()
    survey.status = Status.SENT
    survey.identity = identity
    survey.email = identity.value
    survey.sent_at = sent_at
    survey.due_at = min(survey.due_at, sent_at)
    survey.expires_at = sent_at + timedelta(days=policy.window_days)
    survey.asks_nps = not Survey.objects.filter(
        customer_id=survey.customer_id,
        asks_nps=True,
        sent_at__gt=sent_at - timedelta(days=policy.nps_interval_days),
        sent_at__lte=sent_at,
    ).exists()
    survey.save()
    return True
