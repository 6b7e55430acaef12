"""Presence: who else has a conversation open (collision warnings)."""

from __future__ import annotations

from django.utils import timezone

from supportdesk.models import User
from tickets.models import Conversation, ConversationViewer

PRESENCE_TTL_SECONDS = 40


def conversation_presence_touch(
    *, conversation: Conversation, user: User, replying: bool = False
) -> ConversationViewer:
    """Record that ``user`` has the conversation open (and is writing a reply, if ``replying``).

    One INSERT ... ON CONFLICT DO UPDATE on (conversation, user): a heartbeat is one query.
    """
    now = timezone.now()
    viewer = ConversationViewer(
        conversation=conversation,
        user=user,
        last_seen_at=now,
        replying_at=now if replying else None,
    )
    ConversationViewer.objects.bulk_create(
        [viewer],
        update_conflicts=True,
        unique_fields=["conversation", "user"],
        update_fields=["last_seen_at", "replying_at"] if replying else ["last_seen_at"],
    )
    return viewer


def conversation_presence_leave(*, conversation: Conversation, user: User) -> None:
    """The agent closed the page: drop their presence at once."""
    ConversationViewer.objects.filter(conversation=conversation, user=user).delete()
