"""Reads for the bell, the notifications list and the @-mention autocomplete."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

from django.db.models import Count, QuerySet, Window

from notifications.models import EmailMode, NotificationPreference
from supportdesk.models import Notification, User
from tickets.models import Conversation
from tickets.selectors import conversation_staff_who_can_see

BELL_ITEMS = 5


@dataclass
class Bell:
    unread: int
    items: Sequence[Notification] = field(default_factory=list)

    @property
    def latest_id(self) -> int:
        return max((item.pk for item in self.items), default=0)


def notification_bell(*, user: User, limit: int = BELL_ITEMS) -> Bell:
    """The unread count and the newest unread notifications, in ONE query.

    ``COUNT(*) OVER ()`` is computed before the LIMIT, so each row carries the total; the
    partial index ``supportdesk_notif_unread`` serves it. Polled every
    ``NOTIFICATION_POLL_SECONDS`` by every open workspace tab, so it stays this cheap.
    """
    rows = list(
        Notification.objects.filter(recipient=user, read_at__isnull=True)
        .annotate(unread_total=Window(Count("id")))
        .order_by("-created_at", "-id")[:limit]
    )
    return Bell(unread=rows[0].unread_total if rows else 0, items=rows)


def notification_page_for_user(*, user: User, unread_only: bool = False) -> QuerySet[Notification]:
    """The caller's notifications, newest first, with the conversation each one is about."""
    notifications = Notification.objects.filter(recipient=user).select_related("conversation_link")
    if unread_only:
        notifications = notifications.filter(read_at__isnull=True)
    return notifications.order_by("-created_at", "-id")


def notification_preference_for(*, user: User) -> NotificationPreference:
    """The agent's preference row, or an unsaved default one."""
    preference = NotificationPreference.objects.filter(user=user).first()
    return preference or NotificationPreference(user=user, email=EmailMode.IMMEDIATE)


def mention_candidates(*, conversation: Conversation, user: User, search: str) -> list[User]:
    """Teammates ``user`` may @-mention on ``conversation``: who may open it, not ``user``."""
    staff = conversation_staff_who_can_see(conversation=conversation, search=search)
    return list(staff.exclude(pk=user.pk)[:8])
