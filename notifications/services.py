"""Conversation notifications: made from the events tickets records, sent by email or digest."""

from __future__ import annotations

import logging
from dataclasses import dataclass
from datetime import datetime, timedelta

from django.conf import settings
from django.core.mail import EmailMessage
from django.db import IntegrityError, transaction
from django.urls import reverse
from django.utils import timezone

from notifications.mentions import mentioned
from notifications.models import ConversationNotification, EmailMode, NotificationPreference, Reason
from supportdesk.models import Notification, User
from supportdesk.services import notification_create
from tickets.models import Conversation, Event
from tickets.selectors import conversation_staff_who_can_see

logger = logging.getLogger(__name__)

EXCERPT_CHARS = 280


@dataclass(frozen=True)
class Planned:
    recipient: User
    reason: str
    title: str
    body: str


def notifications_for_event(*, event_id: int) -> list[Notification]:
    """The notifications one event causes, created once each; returns those this call created.

    - ``message.inbound``: the conversation's assignee hears that the customer wrote (not for
      automated mail, and not when the same message reopened the conversation: that is the
      reopen's notification).
    - ``conversation.reopened`` by the customer writing back: the assignee at the reopen.
    - ``conversation.assigned``: the new assignee, unless they assigned it to themselves, or it
      is no longer theirs (or no longer active) when the reaction runs.
    - ``message.note``: each teammate the note @-mentions among the staff who may open the
      conversation (``conversation_staff_who_can_see``); never its author.

    A move to another team also withdraws the conversation's notifications of the people who
    may no longer open it. Nobody hears about their own action, deactivated accounts hear nothing, and an event older
    than ``NOTIFICATION_MAX_AGE_HOURS`` notifies nobody. Each
    notification commits with its ``ConversationNotification`` link, whose unique constraints
    refuse a second one for the same event and person: a retried task or a re-delivered event
    creates nothing more. The email goes out through the outbox (preference "at once") or in
    the next digest (hourly, daily).
    """
    if _unassigned_inbound(event_id):
        return []
    event = (
        Event.objects.select_related(
            "conversation__customer", "conversation__assignee", "message__author", "actor", "agent"
        )
        .filter(pk=event_id)
        .first()
    )
    if event is None or event.conversation is None:
        logger.info("event %s: nothing to notify", event_id)
        return []
    if event.kind == Event.Kind.ASSIGNED:
        _withdraw_unseeable(event.conversation)
    created = []
    for plan in _planned(event):
        notification = _notify_once(event, event.conversation, plan)
        if notification is not None:
            created.append(notification)
    return created


def _unassigned_inbound(event_id: int) -> bool:
    """A customer's message on a conversation nobody is assigned to (every new one) tells
    nobody: known from one light query, without the event's five joins and its message."""
    head = (
        Event.objects.filter(pk=event_id).values_list("kind", "conversation__assignee_id").first()
    )
    return head is not None and head[0] == Event.Kind.INBOUND and head[1] is None


def _planned(event: Event) -> list[Planned]:
    conversation = event.conversation
    assert conversation is not None
    if event.occurred_at < timezone.now() - timedelta(hours=settings.NOTIFICATION_MAX_AGE_HOURS):
        # News that old is not news (history replayed by seed_demo or an import, a reaction
        # that waited out a long outage): the queue shows it.
        return []
    customer = str(conversation.customer)
    ref = f"#{conversation.pk}"
    subject = conversation.subject or "(no subject)"
    message = event.message
    excerpt = _excerpt(message.body_text) if message is not None else ""
    plans: list[Planned] = []
    if event.kind == Event.Kind.INBOUND:
        reopened = (
            message is not None
            and Event.objects.filter(kind=Event.Kind.REOPENED, message=message).exists()
        )
        assignee = conversation.assignee
        if message is not None and not event.data.get("automated") and not reopened and assignee:
            plans.append(
                Planned(
                    assignee,
                    Reason.CUSTOMER_WROTE,
                    f"{customer} wrote on {ref}: {subject}",
                    excerpt,
                )
            )
    elif event.kind == Event.Kind.REOPENED:
        if event.data.get("by") == "customer" and event.agent is not None:
            title = f"{customer} reopened {ref} by writing back: {subject}"
            plans.append(Planned(event.agent, Reason.REOPENED, title, excerpt))
    elif event.kind == Event.Kind.ASSIGNED:
        agent, actor = event.agent, event.actor
        moved_to_agent = (event.data.get("from") or {}).get("agent") != (
            event.data.get("to") or {}
        ).get("agent")
        still_theirs = (
            agent is not None and conversation.assignee_id == agent.pk and conversation.is_active
        )
        if (
            agent is not None
            and moved_to_agent
            and still_theirs
            and (actor is None or actor.pk != agent.pk)
        ):
            by = f"{actor} assigned" if actor is not None else "Assigned"
            plans.append(Planned(agent, Reason.ASSIGNED, f"{by} {ref} to you: {subject}", customer))
    elif event.kind == Event.Kind.NOTE_ADDED and message is not None:
        author = message.author
        candidates = conversation_staff_who_can_see(conversation=conversation)
        if author is not None:
            candidates = candidates.exclude(pk=author.pk)
        title = f"{author or 'Someone'} mentioned you on {ref}: {subject}"
        plans.extend(
            Planned(user, Reason.MENTIONED, title, excerpt)
            for user in mentioned(message.body_text, candidates)
        )
    actor_id = event.actor_id
    return [
        plan
        for plan in plans
        if plan.recipient.is_active and (actor_id is None or plan.recipient.pk != actor_id)
    ]


def _withdraw_unseeable(conversation: Conversation) -> int:
    """Deletes this conversation's notifications of people who may no longer open it (it moved
    to another team): a title and excerpt must not outlive the right to read them."""
    staff = conversation_staff_who_can_see(conversation=conversation).values("pk")
    stale = ConversationNotification.objects.filter(conversation=conversation).exclude(
        recipient__in=staff
    )
    deleted, _ = Notification.objects.filter(
        pk__in=list(stale.values_list("notification_id", flat=True))
    ).delete()
    return deleted


def _excerpt(text: str) -> str:
    flat = " ".join(text.split())
    return flat if len(flat) <= EXCERPT_CHARS else flat[: EXCERPT_CHARS - 1] + "…"


def _notify_once(event: Event, conversation: Conversation, plan: Planned) -> Notification | None:
    url = reverse("workspace:conversation", args=[conversation.pk])
    if event.message_id is not None:
        url += f"#message-{event.message_id}"
    mode = notification_email_mode(user=plan.recipient)
    try:
        with transaction.atomic():
            notification = notification_create(
                recipient=plan.recipient,
                kind=f"conversation.{plan.reason}",
                title=plan.title,
                body=plan.body,
                url=url,
                email=mode == EmailMode.IMMEDIATE,
            )
            ConversationNotification.objects.create(
                notification=notification,
                event=event,
                recipient=plan.recipient,
                conversation=conversation,
                reason=plan.reason,
            )
    except IntegrityError:
        # This event already notified this person (a retry or a second delivery): nothing more.
        return None
    return notification


# --- Preferences ----------------------------------------------------------------------------------


def notification_email_mode(*, user: User) -> str:
    mode = NotificationPreference.objects.filter(user=user).values_list("email", flat=True).first()
    return mode or EmailMode.IMMEDIATE


@transaction.atomic
def notification_preference_set(*, user: User, email: str) -> NotificationPreference:
    """Sets how ``user`` gets conversation notifications by email (``EmailMode``).

    A personal setting: no audit entry (it changes nobody else's access or data). Moving to a
    digest leaves what is pending for the next digest; moving to "at once" or "never" leaves
    the pending ones in the app only.
    """
    if email not in EmailMode.values:
        raise ValueError(f"email must be one of {', '.join(EmailMode.values)}")
    preference, _ = NotificationPreference.objects.select_for_update().get_or_create(user=user)
    if preference.email != email:
        preference.email = email
        if email in (EmailMode.HOURLY, EmailMode.DAILY) and preference.last_digest_at is None:
            preference.last_digest_at = timezone.now()
        preference.save(update_fields=["email", "last_digest_at", "updated_at"])
    return preference


# --- Digests --------------------------------------------------------------------------------------

DIGEST_PERIODS = {EmailMode.HOURLY: timedelta(hours=1), EmailMode.DAILY: timedelta(days=1)}
# Beat runs the digest at the top of each hour; a run a few minutes early still counts.
DIGEST_SLACK = timedelta(minutes=10)


def notification_digests_send(*, now: datetime | None = None) -> int:
    """Emails each agent on a digest whose period is over the notifications they have not read
    yet; returns how many digests went out.

    Hourly: at most once an hour. Daily: once a day, on the first run at or after
    ``NOTIFICATION_DIGEST_HOUR`` (desk time), or whenever the last one is over a day old (a
    missed run catches up). A notification read in the app before its digest is never emailed.
    Each agent's row is locked (``SKIP LOCKED``: two beats never send one digest twice) and
    the notifications are claimed by a conditional UPDATE of ``emailed_at``; a failed send
    gives them back, and the error propagates so the task retries.
    """
    now = now or timezone.now()
    sent = 0
    user_ids = list(
        NotificationPreference.objects.filter(email__in=list(DIGEST_PERIODS)).values_list(
            "user_id", flat=True
        )
    )
    for user_id in user_ids:
        if _digest_one(user_id=user_id, now=now):
            sent += 1
    return sent


def _digest_due(preference: NotificationPreference, now: datetime) -> bool:
    last = preference.last_digest_at
    period = DIGEST_PERIODS.get(EmailMode(preference.email))
    if period is None:
        return False
    if last is None or last <= now - period - DIGEST_SLACK:
        return True
    if preference.email == EmailMode.HOURLY:
        return last <= now - period + DIGEST_SLACK
    local = timezone.localtime(now)
    return local.hour >= settings.NOTIFICATION_DIGEST_HOUR and timezone.localtime(last).date() < (
        local.date()
    )


def _digest_one(*, user_id: int, now: datetime) -> bool:
    with transaction.atomic():
        preference = (
            NotificationPreference.objects.select_for_update(skip_locked=True)
            .select_related("user")
            .filter(user_id=user_id, email__in=list(DIGEST_PERIODS))
            .first()
        )
        if preference is None or not _digest_due(preference, now):
            return False
        previous_digest = preference.last_digest_at
        preference.last_digest_at = now
        preference.save(update_fields=["last_digest_at", "updated_at"])
        pending = Notification.objects.filter(
            recipient_id=user_id,
            read_at__isnull=True,
            emailed_at__isnull=True,
            conversation_link__isnull=False,
            created_at__lte=now,
        )
        items = list(pending.order_by("created_at", "id")[:200])
        if not items or not preference.user.is_active:
            return False
        ids = [item.pk for item in items]
        Notification.objects.filter(
            pk__in=ids, emailed_at__isnull=True, read_at__isnull=True
        ).update(emailed_at=now)
    try:
        _digest_email(preference, items).send()
    except Exception:
        with transaction.atomic():
            Notification.objects.filter(pk__in=ids, emailed_at=now).update(emailed_at=None)
            NotificationPreference.objects.filter(pk=preference.pk, last_digest_at=now).update(
                last_digest_at=previous_digest
            )
        raise
    return True


def _digest_email(preference: NotificationPreference, items: list[Notification]) -> EmailMessage:
    count = len(items)
    period = "hour" if preference.email == EmailMode.HOURLY else "day"
    lines = [f"{count} notification{'s' if count != 1 else ''} you have not read yet:", ""]
    for item in items:
        when = timezone.localtime(item.created_at).strftime("%b %d, %H:%M")
        lines.append(f"- {when}  {item.title}")
        if item.body:
            lines.append(f"  {item.body}")
        lines.append(f"  {settings.SITE_URL}{item.url}")
        lines.append("")
    lines.append(
        f"Change how you get these: {settings.SITE_URL}{reverse('notifications-settings')}"
    )
    return EmailMessage(
        subject=f"Supportdesk: {count} notification{'s' if count != 1 else ''} this {period}",
        body="\n".join(lines) + "\n",
        to=[preference.user.email],
        headers={"Auto-Submitted": "auto-generated"},
    )
