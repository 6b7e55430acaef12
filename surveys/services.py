"""Every write of the surveys app: scheduling, sending, answers, unsubscribes and follow-ups.

Rules that hold throughout:

- One survey per solve event, by a one-to-one constraint (``Survey.event``), not check-then-insert.
- The schedule lives in the database (``Survey.due_at``); beat's ``surveys_send_due_task`` picks
  due surveys up. A send is claimed by a conditional UPDATE of a lease (``send_claimed_at``), so
  two workers or a redelivered task send once; a worker killed mid-send leaves the lease, and the
  next beat run after the lease expires sends it.
- Eligibility (throttle, unsubscribe, bounce, auto-reply, reopen) is checked when the survey goes
  out, because it can change during the delay. Channel and sampling are decided at the solve.
- One response per survey (``surveys_surveyresponse_one_per_survey``); answers are written under a
  row lock of the survey, so concurrent submissions serialise and the last one wins.
"""

from __future__ import annotations

import logging
import random
from dataclasses import dataclass
from datetime import datetime, timedelta
from email.utils import make_msgid
from typing import Any

from django.conf import settings
from django.core import signing
from django.core.mail import EmailMultiAlternatives
from django.db import IntegrityError, transaction
from django.db.models import F, Q
from django.template.loader import render_to_string
from django.urls import reverse
from django.utils import timezone

from supportdesk import events as event_bus
from supportdesk.errors import ApplicationError
from supportdesk.models import AuditEntry, SentMail, User
from supportdesk.services import (
    audit_record,
    automatic_mail_claim,
    automatic_mail_release,
    notification_create,
    outbox_enqueue,
)
from surveys.models import FollowUp, Survey, SurveyResponse, SurveySettings, SurveyUnsubscribe
from tickets import tokens
from tickets.models import Conversation, Event, Identity, Message
from tickets.services import conversation_close, conversation_reopen

logger = logging.getLogger(__name__)

Status = Survey.Status
Skip = Survey.SkipReason
Resolved = SurveyResponse.Resolved

TOKEN_SALT = "surveys.survey-link"
# A claimed send that has not finished after this long is considered abandoned (worker died).
SEND_LEASE = timedelta(minutes=10)
# Subscribers of this kind get ``event_id`` = the solve event the answer is about (metrics marks
# that event's periods for recompute).
ANSWERED_KIND = "survey.answered"


class SurveyNotFound(ApplicationError):
    status = 404


class SurveyExpired(ApplicationError):
    status = 410


# --- Settings -------------------------------------------------------------------------------------


@dataclass(frozen=True)
class SurveyPolicy:
    delay: timedelta
    min_days_between: int
    window_days: int
    reminder_days: int
    reminders_enabled: bool
    channels: tuple[str, ...]
    sampling_rate: float
    nps_interval_days: int


def survey_policy() -> SurveyPolicy:
    """The effective rules: the admin's SurveySettings over the environment's defaults."""
    row = SurveySettings.objects.filter(pk=1).first() or SurveySettings(pk=1)

    def pick(value: int | None, default: int) -> int:
        return default if value is None else value

    return SurveyPolicy(
        delay=timedelta(minutes=pick(row.delay_minutes, settings.SURVEY_DELAY_MINUTES)),
        min_days_between=pick(row.min_days_between, settings.SURVEY_MIN_DAYS_BETWEEN),
        window_days=pick(row.window_days, settings.SURVEY_WINDOW_DAYS),
        reminder_days=pick(row.reminder_days, settings.SURVEY_REMINDER_DAYS),
        reminders_enabled=row.reminders_enabled,
        channels=tuple(row.channels or ()),
        sampling_rate=row.sampling_rate,
        nps_interval_days=row.nps_interval_days,
    )


@transaction.atomic
def survey_settings_update(*, actor: User | None = None, **values: Any) -> SurveySettings:
    """Creates or updates the singleton settings row; invalid values (ValidationError) or unknown
    keys (ValueError) change nothing. Changed values are audited."""
    allowed = {
        "delay_minutes",
        "min_days_between",
        "window_days",
        "reminder_days",
        "reminders_enabled",
        "channels",
        "sampling_rate",
        "nps_interval_days",
    }
    unknown = set(values) - allowed
    if unknown:
        raise ValueError(f"unknown survey settings: {', '.join(sorted(unknown))}")
    row, _ = SurveySettings.objects.select_for_update().get_or_create(pk=1)
    before = {key: getattr(row, key) for key in values}
    for key, value in values.items():
        setattr(row, key, value)
    row.full_clean()
    row.save()
    changed = {
        key: {"from": _jsonable(before[key]), "to": _jsonable(value)}
        for key, value in values.items()
        if before[key] != value
    }
    if changed:
        audit_record(
            action=AuditEntry.Action.SURVEY_SETTINGS_CHANGED,
            target=row,
            actor=actor,
            summary="Survey settings: "
            + ", ".join(f"{key} {v['from']} -> {v['to']}" for key, v in changed.items()),
            details=changed,
        )
    return row


def _jsonable(value: Any) -> Any:
    if isinstance(value, int | float | str | bool | type(None)):
        return value
    if isinstance(value, list | tuple):
        return [_jsonable(item) for item in value]
    return str(value)


# --- Tokens ---------------------------------------------------------------------------------------


def survey_token(survey: Survey) -> str:
    """The signed token of the survey's link, ``<id>.<random key>:<signature>``: bound to this
    one survey (and so to its solve event). Expiry is the survey's ``expires_at``."""
    return signing.Signer(salt=TOKEN_SALT).sign(f"{survey.pk}.{survey.token_key}")


def survey_from_token(token: str) -> Survey:
    """The survey a link is for. Tampered or unknown: SurveyNotFound (404). Expired: SurveyExpired
    (410). Only a survey that was sent can be opened."""
    try:
        value = signing.Signer(salt=TOKEN_SALT).unsign(token)
        survey_id, key = value.split(".", 1)
        survey_pk = int(survey_id)
    except (signing.BadSignature, ValueError):
        raise SurveyNotFound("This survey link is not valid.") from None
    survey = (
        Survey.objects.select_related("agent", "conversation")
        .filter(pk=survey_pk, token_key=key, status__in=[Status.SENT, Status.BOUNCED])
        .first()
    )
    if survey is None:
        raise SurveyNotFound("This survey link is not valid.")
    if survey.is_expired:
        raise SurveyExpired("This survey has closed.")
    return survey


def survey_url(survey: Survey, *, resolved: str | None = None) -> str:
    url = settings.SITE_URL + reverse("surveys:survey", kwargs={"token": survey_token(survey)})
    return f"{url}?resolved={resolved}" if resolved else url


def survey_unsubscribe_url(survey: Survey) -> str:
    return settings.SITE_URL + reverse(
        "surveys:unsubscribe", kwargs={"token": survey_token(survey)}
    )


# --- Scheduling -----------------------------------------------------------------------------------


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
    customer = conversation.customer
    while customer.merged_into_id is not None:
        customer = customer.merged_into
    skip = Skip.NONE
    if policy.channels and event.channel_kind not in policy.channels:
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


# --- Sending --------------------------------------------------------------------------------------


def _skip_reason(survey: Survey, policy: SurveyPolicy, now: datetime) -> str:
    """Why this survey must not go out now ("" when it may)."""
    if Event.objects.filter(
        conversation_id=survey.conversation_id,
        kind=Event.Kind.REOPENED,
        occurred_at__gt=survey.solved_at,
        occurred_at__lte=now,
    ).exists():
        return Skip.REOPENED
    last_inbound = (
        Message.objects.filter(
            conversation_id=survey.conversation_id,
            direction=Message.Direction.INBOUND,
            sent_at__lte=survey.solved_at,
        )
        .order_by("-sent_at", "-id")
        .only("automated")
        .first()
    )
    if last_inbound is not None and last_inbound.automated:
        return Skip.AUTO_REPLY
    if SurveyUnsubscribe.objects.filter(customer_id=survey.customer_id).exists():
        return Skip.UNSUBSCRIBED
    if policy.min_days_between and (
        Survey.objects.filter(
            customer_id=survey.customer_id,
            sent_at__gt=now - timedelta(days=policy.min_days_between),
        )
        .exclude(pk=survey.pk)
        .exists()
    ):
        return Skip.THROTTLED
    return ""


def _recipient(survey: Survey) -> tuple[Identity | None, str]:
    """The customer's email identity to survey, or (None, reason)."""
    emails = list(Identity.objects.filter(customer_id=survey.customer_id, kind=Identity.Kind.EMAIL))
    unsubscribed = set(
        SurveyUnsubscribe.objects.filter(email__in=[i.value for i in emails]).values_list(
            "email", flat=True
        )
    )
    usable = [i for i in emails if i.undeliverable_at is None and i.value not in unsubscribed]
    if not usable:
        if any(i.undeliverable_at is not None for i in emails):
            return None, Skip.BOUNCED
        return None, Skip.UNSUBSCRIBED if unsubscribed else Skip.NO_EMAIL
    # The address the customer wrote from in this conversation, else a verified one, else any.
    used = set(
        Message.objects.filter(
            conversation_id=survey.conversation_id,
            direction=Message.Direction.INBOUND,
            identity__in=usable,
        ).values_list("identity_id", flat=True)
    )
    usable.sort(key=lambda i: (i.pk not in used, not i.verified, i.pk))
    return usable[0], ""


def _nps_due(survey: Survey, policy: SurveyPolicy, now: datetime) -> bool:
    """The relationship question: asked of a customer at most once every nps_interval_days."""
    return (
        not Survey.objects.filter(
            customer_id=survey.customer_id,
            asks_nps=True,
            sent_at__gt=now - timedelta(days=policy.nps_interval_days),
        )
        .exclude(pk=survey.pk)
        .exists()
    )


def _claim_send(survey_id: int, now: datetime) -> bool:
    return bool(
        Survey.objects.filter(
            Q(send_claimed_at__isnull=True) | Q(send_claimed_at__lt=now - SEND_LEASE),
            pk=survey_id,
            status=Status.SCHEDULED,
            due_at__lte=now,
        ).update(send_claimed_at=now, send_attempts=F("send_attempts") + 1)
    )


def survey_send(*, survey_id: int) -> bool:
    """Sends a due survey email exactly once; returns whether this call sent it.

    Side effects: claims the send (lease), then either marks the survey ``skipped`` with a reason
    (throttled, unsubscribed, bounced, no email, auto-reply, reopened, or over the per-address
    cap on automatic mail) or emails the customer's
    email identity and marks it ``sent`` with its link's expiry. A failed send releases the lease
    and raises (the task retries).
    """
    now = timezone.now()
    if not _claim_send(survey_id, now):
        return False
    survey = Survey.objects.select_related("conversation", "agent").get(pk=survey_id)
    policy = survey_policy()
    reason = _skip_reason(survey, policy, now)
    identity = None
    if not reason:
        identity, reason = _recipient(survey)
    if reason:
        Survey.objects.filter(pk=survey_id, status=Status.SCHEDULED).update(
            status=Status.SKIPPED, skip_reason=reason, send_claimed_at=None
        )
        return False
    assert identity is not None
    survey.identity = identity
    survey.email = identity.value
    survey.asks_nps = _nps_due(survey, policy, now)
    survey.expires_at = now + timedelta(days=policy.window_days)
    survey.message_id = survey.message_id or make_msgid(
        domain=settings.SUPPORT_EMAIL.rpartition("@")[2] or "supportdesk.localhost"
    ).strip("<>")
    Survey.objects.filter(pk=survey_id).update(
        identity=identity,
        email=survey.email,
        asks_nps=survey.asks_nps,
        expires_at=survey.expires_at,
        message_id=survey.message_id,
    )
    claim = automatic_mail_claim(
        address=survey.email, message_id=survey.message_id, kind=SentMail.Kind.SURVEY
    )
    if claim is None:
        Survey.objects.filter(pk=survey_id, status=Status.SCHEDULED).update(
            status=Status.SKIPPED, skip_reason=Skip.MAIL_CAP, send_claimed_at=None
        )
        return False
    try:
        _survey_email(survey, reminder=False).send(fail_silently=False)
    except Exception:
        automatic_mail_release(claim=claim)
        Survey.objects.filter(pk=survey_id).update(send_claimed_at=None)
        raise
    Survey.objects.filter(pk=survey_id, status=Status.SCHEDULED).update(
        status=Status.SENT, sent_at=timezone.now()
    )
    return True


def surveys_send_due(*, now: datetime | None = None, limit: int = 200) -> int:
    """Beat: sends the surveys whose due time has come. Returns how many went out."""
    now = now or timezone.now()
    ids = list(
        Survey.objects.filter(
            Q(send_claimed_at__isnull=True) | Q(send_claimed_at__lt=now - SEND_LEASE),
            status=Status.SCHEDULED,
            due_at__lte=now,
        )
        .order_by("due_at")
        .values_list("pk", flat=True)[:limit]
    )
    sent = 0
    for survey_id in ids:
        try:
            sent += survey_send(survey_id=survey_id)
        except Exception:  # one bad address must not hold up the others; the lease is released
            logger.exception("survey %s not sent", survey_id)
    return sent


def survey_remind(*, survey_id: int) -> bool:
    """Sends the single reminder of an unanswered survey once; returns whether this call sent it.

    Side effects: claims ``reminder_claimed_at`` by a conditional UPDATE, emails the same link,
    sets ``reminded_at``. Nothing when the survey was answered, expired, bounced or unsubscribed.
    """
    now = timezone.now()
    policy = survey_policy()
    claimed = (
        Survey.objects.filter(
            Q(reminder_claimed_at__isnull=True) | Q(reminder_claimed_at__lt=now - SEND_LEASE),
            pk=survey_id,
            status=Status.SENT,
            reminded_at__isnull=True,
            sent_at__lte=now - timedelta(days=policy.reminder_days),
            expires_at__gt=now,
            responses__isnull=True,
        )
        .exclude(customer__survey_unsubscribes__isnull=False)
        .update(reminder_claimed_at=now)
    )
    if not claimed:
        return False
    survey = Survey.objects.select_related("conversation", "agent").get(pk=survey_id)
    if Identity.objects.filter(
        kind=Identity.Kind.EMAIL, value=survey.email, undeliverable_at__isnull=False
    ).exists():
        return False  # the address bounced since (beat looks again only after the lease)
    message_id = make_msgid(
        domain=settings.SUPPORT_EMAIL.rpartition("@")[2] or "supportdesk.localhost"
    ).strip("<>")
    claim = automatic_mail_claim(
        address=survey.email, message_id=message_id, kind=SentMail.Kind.SURVEY_REMINDER
    )
    if claim is None:
        # Over the per-address cap: the claim stays until its lease ends, then a later beat
        # tries again (the reminder is late, never doubled).
        return False
    try:
        email = _survey_email(survey, reminder=True)
        email.extra_headers["Message-ID"] = f"<{message_id}>"  # what a bounce of it names
        email.send(fail_silently=False)
    except Exception:
        automatic_mail_release(claim=claim)
        Survey.objects.filter(pk=survey_id).update(reminder_claimed_at=None)
        raise
    Survey.objects.filter(pk=survey_id).update(reminded_at=timezone.now())
    return True


def surveys_remind_due(*, now: datetime | None = None, limit: int = 200) -> int:
    """Beat: sends the reminders that are due (at most one per survey)."""
    now = now or timezone.now()
    policy = survey_policy()
    if not policy.reminders_enabled:
        return 0
    ids = list(
        Survey.objects.filter(
            status=Status.SENT,
            reminded_at__isnull=True,
            sent_at__lte=now - timedelta(days=policy.reminder_days),
            expires_at__gt=now,
            responses__isnull=True,
        )
        .order_by("sent_at")
        .values_list("pk", flat=True)[:limit]
    )
    sent = 0
    for survey_id in ids:
        try:
            sent += survey_remind(survey_id=survey_id)
        except Exception:
            logger.exception("survey reminder %s not sent", survey_id)
    return sent


def _survey_email(survey: Survey, *, reminder: bool) -> EmailMultiAlternatives:
    conversation = survey.conversation
    context = {
        "survey": survey,
        "reminder": reminder,
        "subject": conversation.subject,
        "agent_first_name": survey.agent.first_name if survey.agent else "",
        "survey_url": survey_url(survey),
        "answer_urls": [
            (label, survey_url(survey, resolved=value)) for value, label in Resolved.choices
        ],
        "unsubscribe_url": survey_unsubscribe_url(survey),
    }
    subject = "Did we resolve your request?"
    if conversation.subject:
        subject = f"{subject} {tokens.subject_tag(conversation.pk)}"
    if reminder:
        subject = f"Reminder: {subject}"
    headers = {
        "Auto-Submitted": "auto-generated",
        "X-Auto-Response-Suppress": "All",
        "List-Unsubscribe": f"<{context['unsubscribe_url']}>",
        "List-Unsubscribe-Post": "List-Unsubscribe=One-Click",
        "Reply-To": tokens.reply_address(conversation.pk),
        "X-Supportdesk-Survey": str(survey.pk),
    }
    if not reminder and survey.message_id:
        headers["Message-ID"] = f"<{survey.message_id}>"
    message = EmailMultiAlternatives(
        subject=subject,
        body=render_to_string("surveys/email.txt", context),
        from_email=settings.DEFAULT_FROM_EMAIL,
        to=[survey.email],
        headers=headers,
    )
    message.attach_alternative(render_to_string("surveys/email.html", context), "text/html")
    return message


# --- Answers --------------------------------------------------------------------------------------


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


def _validate(answer: Answer, survey: Survey) -> Answer:
    errors: dict[str, str] = {}
    if answer.resolved not in ("", *Resolved.values):
        errors["resolved"] = "Choose yes, partly or no."
    if answer.contacts_declared is not None and not 1 <= answer.contacts_declared <= 5:
        errors["contacts"] = "Choose 1 to 5."
    if answer.csat is not None and not 1 <= answer.csat <= 5:
        errors["csat"] = "Choose 1 to 5."
    if answer.nps is not None and not 0 <= answer.nps <= 10:
        errors["nps"] = "Choose 0 to 10."
    if len(answer.comment) > 5000:
        errors["comment"] = "Please keep the comment under 5000 characters."
    if errors:
        raise ApplicationError("Please check your answers.", extra={"errors": errors})
    if (
        not answer.resolved
        and answer.contacts_declared is None
        and answer.csat is None
        and answer.nps is None
        and not answer.comment.strip()
        and not answer.shout_out
    ):
        raise ApplicationError(
            "Please answer at least one question.", extra={"errors": {"resolved": "Required."}}
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


def _team_manager(team_id: int | None) -> User | None:
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
    answer = _validate(answer, survey)
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
        manager = _team_manager(survey.team_id)
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


# --- History (seeding, imports) -------------------------------------------------------------------


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
    answer = _validate(answer, survey)
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
            assignee=_team_manager(survey.team_id),
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
