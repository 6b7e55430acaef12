"""Proactive check-ins with customers, and the weekly agent pulse."""

from __future__ import annotations

from datetime import date, datetime, timedelta

from django.db import IntegrityError, transaction
from django.urls import reverse
from django.utils import timezone

from quality.models import (
    Cancellation,
    CheckIn,
    CheckInRule,
    PulseAnswer,
    PulseResponse,
    PulseWeek,
)
from quality.services.common import bounded_text
from supportdesk.errors import ApplicationError, Conflict
from supportdesk.models import User
from supportdesk.services import notification_create
from surveys.models import SurveyResponse
from tickets.models import Conversation, Event, Identity
from tickets.selectors import visible_conversations_q
from tickets.services import conversation_reply, customer_channel_route

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
                conversation__spam_at__isnull=True,  # nobody checks in with a spammer
            ).order_by("occurred_at", "id")
            for conversation_id, agent_id, at in solves.values_list(
                "conversation_id", "agent_id", "occurred_at"
            ):
                causes[conversation_id] = (agent_id, at)
        else:
            for conversation_id, saved_by, saved_at in Cancellation.objects.filter(
                outcome=Cancellation.Outcome.SAVED, outcome_at__gt=since, outcome_at__lte=until
            ).values_list("conversation_id", "outcome_by_id", "outcome_at"):
                # A saved cancellation has both (services.cancellation_record sets them together).
                if saved_by is not None and saved_at is not None:
                    causes[conversation_id] = (saved_by, saved_at)
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
                        url=reverse("quality:checkins"),
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
    message = conversation_reply(
        conversation=checkin.conversation,
        author=actor,
        body=body,
        channel_kind=_checkin_channel_kind(checkin.conversation),
    )
    checkin.state = CheckIn.State.SENT
    checkin.message = message
    checkin.done_at = timezone.now()
    checkin.save(update_fields=["state", "message", "done_at"])
    return checkin


def _checkin_channel_kind(conversation: Conversation) -> str | None:
    """Where the check-in goes: as any reply (the customer's last channel, email for a call)
    when the customer has a deliverable email; else on the chat or social channel where they
    wrote, so a customer with no email is reached too (None: the reply's own rule)."""
    if Identity.objects.filter(
        customer_id=conversation.customer_id,
        kind=Identity.Kind.EMAIL,
        undeliverable_at__isnull=True,
    ).exists():
        return None
    route = customer_channel_route(conversation_id=conversation.pk)
    return route.channel.kind if route is not None and route.deliverable else None


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
                url=reverse("quality:pulse"),
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
