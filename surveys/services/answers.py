"""Answers: recording them and their effects (reopen, close, follow-ups), opens, unsubscribes."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from django.db import IntegrityError, transaction
from django.urls import reverse
from django.utils import timezone
from django.utils.translation import gettext

from supportdesk import events as event_bus
from supportdesk.errors import ApplicationError
from supportdesk.models import User
from supportdesk.outbox import outbox_enqueue
from supportdesk.services import notification_create
from surveys.models import FollowUp, Survey, SurveyResponse, SurveyUnsubscribe
from surveys.services.policy import ANSWERED_KIND, SurveyExpired, SurveyNotFound
from tickets.models import Conversation
from tickets.services import conversation_close, conversation_reopen

Status = Survey.Status
Resolved = SurveyResponse.Resolved


@dataclass(frozen=True)
class Answer:
    resolved: str = ""
    contacts_declared: int | None = None
    csat: int | None = None
    nps: int | None = None
    comment: str = ""
    shout_out: bool = False
    needs_nothing_more: bool = False


def _needs_follow_up_by_agent(answer: Answer) -> bool:
    return answer.resolved == Resolved.NO or (
        answer.resolved == Resolved.PARTLY and not answer.needs_nothing_more
    )


def _confirms_resolution(answer: Answer) -> bool:
    return answer.resolved == Resolved.YES or (
        answer.resolved == Resolved.PARTLY and answer.needs_nothing_more
    )


def validate(answer: Answer, survey: Survey) -> Answer:
    errors: dict[str, str] = {}
    if answer.resolved not in ("", *Resolved.values):
        errors["resolved"] = gettext("Choose yes, partly or no.")
    if answer.contacts_declared is not None and not 1 <= answer.contacts_declared <= 5:
        errors["contacts"] = gettext("Choose 1 to 5.")
    if answer.csat is not None and not 1 <= answer.csat <= 5:
        errors["csat"] = gettext("Choose 1 to 5.")
    if answer.nps is not None and not 0 <= answer.nps <= 10:
        errors["nps"] = gettext("Choose 0 to 10.")
    if len(answer.comment) > 5000:
        errors["comment"] = gettext("Please keep the comment under 5000 characters.")
    if errors:
        raise ApplicationError(gettext("Please check your answers."), extra={"errors": errors})
    if (
        not answer.resolved
        and answer.contacts_declared is None
        and answer.csat is None
        and answer.nps is None
        and not answer.comment.strip()
        and not answer.shout_out
    ):
        raise ApplicationError(
            gettext("Please answer at least one question."),
            extra={"errors": {"resolved": gettext("Required.")}},
        )
    return Answer(
        resolved=answer.resolved,
        contacts_declared=answer.contacts_declared,
        csat=answer.csat,
        # NPS only counts on a survey that asked it (the relationship cadence).
        nps=answer.nps if survey.asks_nps else None,
        comment=answer.comment.strip(),
        shout_out=bool(answer.shout_out and survey.agent_id),
        needs_nothing_more=bool(answer.needs_nothing_more and answer.resolved == Resolved.PARTLY),
    )


def team_manager(team_id: int | None) -> User | None:
    if team_id is None:
        return None
    return (
        User.objects.filter(
            teams__id=team_id, role__in=[User.Role.MANAGER, User.Role.ADMIN], is_active=True
        )
        .order_by("role", "id")
        .first()
    )


@transaction.atomic
def survey_answer(*, survey: Survey, answer: Answer, now: datetime | None = None) -> SurveyResponse:
    """Records the customer's answer, or replaces their previous one (one response per survey).

    Side effects, each at most once per survey:
    - resolved *no* (or *partly* without "I need nothing more") reopens the conversation if it is
      solved or closed and notifies its agent in the workspace and by email;
    - resolved *yes* (or *partly* with "I need nothing more") closes the conversation if it is
      still solved by this survey's solve (the customer confirmed it);
    - CSAT 1-2 or NPS 0-6 opens a close-the-loop FollowUp for the team's manager, notified;
    - a shout-out notifies the agent who solved it;
    - every answer queues the ``survey.answered`` subscribers (metrics recompute) after commit.
    Raises SurveyExpired (410) after the window, ApplicationError (400) on invalid input.
    """
    now = now or timezone.now()
    survey = (
        Survey.objects.select_for_update(of=("self",))
        .select_related("conversation", "agent")
        .get(pk=survey.pk)
    )
    if survey.status not in (Status.SENT, Status.BOUNCED):
        raise SurveyNotFound("This survey link is not valid.")
    if survey.expires_at is not None and now >= survey.expires_at:
        raise SurveyExpired("This survey has closed.")
    answer = validate(answer, survey)
    response = SurveyResponse.objects.filter(survey=survey).first()
    fields = {
        "resolved": answer.resolved,
        "contacts_declared": answer.contacts_declared,
        "csat": answer.csat,
        "nps": answer.nps,
        "comment": answer.comment,
        "shout_out": answer.shout_out,
        "needs_nothing_more": answer.needs_nothing_more,
        "answered_at": now,
    }
    if response is None:
        response = SurveyResponse.objects.create(
            survey=survey,
            contacts_counted=survey.contacts_counted,
            first_answered_at=now,
            **fields,
        )
    else:
        for key, value in fields.items():
            setattr(response, key, value)
        response.times_answered += 1
    _answer_effects(survey, response, answer, now=now)
    response.save()
    for task_name in event_bus.subscribers_for(ANSWERED_KIND):
        outbox_enqueue(task_name=task_name, kwargs={"event_id": survey.event_id})
    return response


def _answer_effects(
    survey: Survey, response: SurveyResponse, answer: Answer, *, now: datetime
) -> None:
    """The effects of an answer, each once per survey (the survey row is locked by the caller)."""
    conversation_url = reverse("workspace:conversation", args=[survey.conversation_id])
    if response.escalated_at is None and _needs_follow_up_by_agent(answer):
        response.escalated_at = now
        conversation = Conversation.objects.select_for_update().get(pk=survey.conversation_id)
        reopen = conversation.status in (Conversation.Status.SOLVED, Conversation.Status.CLOSED)
        if reopen:
            conversation_reopen(
                conversation=conversation,
                actor=None,
                reason=f"Survey: the customer answered resolved = {answer.resolved}.",
                at=now,
            )
        agent = survey.agent or conversation.assignee
        if agent is not None:
            word = "not resolved" if answer.resolved == Resolved.NO else "only partly resolved"
            notification_create(
                recipient=agent,
                kind="survey.not_resolved",
                title=f"#{conversation.pk} {word}, the customer says",
                body=(
                    f"The customer answered the survey about “{conversation.subject}”: {word}. "
                    + ("The conversation is open again." if reopen else "It is still open.")
                    + (f"\n\nTheir comment: {answer.comment}" if answer.comment else "")
                ),
                url=conversation_url,
                email=True,
            )
    elif response.escalated_at is None and _confirms_resolution(answer):
        # The customer confirmed it (docs/api.md: closed = "survey window over or customer
        # confirmed"), if this survey is about the conversation's current solve.
        conversation = Conversation.objects.select_for_update().get(pk=survey.conversation_id)
        if (
            conversation.status == Conversation.Status.SOLVED
            and conversation.solved_at == survey.solved_at
        ):
            conversation_close(
                conversation=conversation,
                actor=None,
                reason=f"Survey: the customer answered resolved = {answer.resolved}.",
                at=now,
            )
    low_csat = answer.csat is not None and answer.csat <= 2
    detractor = answer.nps is not None and answer.nps <= 6
    if (low_csat or detractor) and not FollowUp.objects.filter(survey=survey).exists():
        manager = team_manager(survey.team_id)
        FollowUp.objects.create(
            survey=survey,
            team_id=survey.team_id,
            assignee=manager,
            reason=FollowUp.Reason.LOW_CSAT if low_csat else FollowUp.Reason.DETRACTOR,
            created_at=now,
        )
        if manager is not None:
            score = f"CSAT {answer.csat}" if low_csat else f"NPS {answer.nps}"
            notification_create(
                recipient=manager,
                kind="survey.follow_up",
                title=f"Close the loop: {score} on #{survey.conversation_id}",
                body=answer.comment,
                url=reverse("surveys:follow_ups"),
                email=True,
            )
    if answer.shout_out and response.shout_out_notified_at is None and survey.agent is not None:
        response.shout_out_notified_at = now
        notification_create(
            recipient=survey.agent,
            kind="survey.shout_out",
            title=f"A shout-out from a customer on #{survey.conversation_id}",
            body=answer.comment,
            url=conversation_url,
        )


@transaction.atomic
def survey_mark_opened(*, survey: Survey, now: datetime | None = None) -> bool:
    """Records that a person's browser showed the survey (the page's script, never a plain GET)."""
    return bool(
        Survey.objects.filter(pk=survey.pk, opened_at__isnull=True).update(
            opened_at=now or timezone.now()
        )
    )


@transaction.atomic
def survey_unsubscribe(*, survey: Survey) -> SurveyUnsubscribe:
    """The customer asks for no more surveys at the address this one went to (idempotent)."""
    email = survey.email
    if not email and survey.via in (Survey.Via.CHAT, Survey.Via.SOCIAL):
        # Surveyed on their own channel: no more surveys for this customer, on any channel.
        existing = SurveyUnsubscribe.objects.filter(
            customer_id=survey.customer_id, email=""
        ).first()
        return existing or SurveyUnsubscribe.objects.create(
            email="", customer_id=survey.customer_id, survey=survey
        )
    if not email:
        raise SurveyNotFound("This survey link is not valid.")
    try:
        with transaction.atomic():
            row, _ = SurveyUnsubscribe.objects.get_or_create(
                email=email, defaults={"customer_id": survey.customer_id, "survey": survey}
            )
    except IntegrityError:
        row = SurveyUnsubscribe.objects.get(email=email)
    return row


@transaction.atomic
def follow_up_close(*, follow_up: FollowUp, actor: User, note: str = "") -> FollowUp:
    """A manager closes the loop with the customer; records who, when and an optional note."""
    follow_up = FollowUp.objects.select_for_update().get(pk=follow_up.pk)
    if follow_up.status == FollowUp.Status.DONE:
        return follow_up
    follow_up.status = FollowUp.Status.DONE
    follow_up.closed_at = timezone.now()
    follow_up.closed_by = actor
    follow_up.note = note.strip()[:5000]
    follow_up.save(update_fields=["status", "closed_at", "closed_by", "note"])
    return follow_up
