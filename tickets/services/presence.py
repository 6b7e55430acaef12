"""Presence: who else has a conversation open (collision warnings)."""

from __future__ import annotations

from django.db import connection
from django.utils import timezone

from supportdesk.models import User
from tickets.models import Conversation, ConversationViewer

PRESENCE_TTL_SECONDS = 40


_TOUCH_SQL = (
    f"INSERT INTO {ConversationViewer._meta.db_table}"
    " (conversation_id, user_id, last_seen_at, replying_at) VALUES (%s, %s, %s, %s)"
    " ON CONFLICT (conversation_id, user_id) DO UPDATE SET last_seen_at = excluded.last_seen_at"
)


def conversation_presence_touch(
    *, conversation: Conversation, user: User, replying: bool = False
) -> ConversationViewer:
    """Record that ``user`` has the conversation open (and is writing a reply, if ``replying``).

    One statement, in autocommit: ``INSERT ... ON CONFLICT DO UPDATE`` on (conversation, user)
    (``bulk_create`` wraps the same statement in ``BEGIN`` and ``COMMIT``: three round trips on
    every page view and heartbeat).
    """
    now = timezone.now()
    viewer = ConversationViewer(
        conversation=conversation,
        user=user,
        last_seen_at=now,
        replying_at=now if replying else None,
    )
    stamp = connection.ops.adapt_datetimefield_value(now)
    sql = _TOUCH_SQL + (", replying_at = excluded.replying_at" if replying else "")
    with connection.cursor() as cursor:
        cursor.execute(sql, [conversation.pk, user.pk, stamp, stamp if replying else None])
    return viewer


def conversation_presence_leave(*, conversation: Conversation, user: User) -> None:
    """The agent closed the page: drop their presence at once."""
    ConversationViewer.objects.filter(conversation=conversation, user=user).delete()
