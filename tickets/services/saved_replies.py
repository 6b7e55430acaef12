"""Saved replies (macros) for the composer."""

from __future__ import annotations

from django.db import transaction

from supportdesk.errors import ApplicationError
from supportdesk.models import User
from tickets.models import Conversation, Customer, SavedReply, Tag
from tickets.saved_reply_defaults import DEFAULT_SAVED_REPLIES

SAVED_REPLY_VARIABLES = ("{customer_first_name}", "{agent_first_name}")


@transaction.atomic
def saved_reply_create_or_update(
    *,
    title: str,
    body: str,
    is_active: bool = True,
    add_tags: list[Tag] | None = None,
    set_priority: str = "",
    set_status: str = "",
    set_assignee: str = "",
) -> SavedReply:
    """Create or update a saved reply (a macro) by title: its body, and what it also sets when
    run in one click (tags added, priority, status, assignee). A macro without a body must set
    something."""
    title, body = title.strip()[:100], body.strip()
    if set_priority not in ("", *Conversation.Priority.values):
        raise ApplicationError(
            f"set_priority must be one of {', '.join(Conversation.Priority.values)}."
        )
    if set_status not in SavedReply.Status.values or set_assignee not in SavedReply.Assignee.values:
        raise ApplicationError("Unknown status or assignee action.")
    if not title or not (body or add_tags or set_priority or set_status or set_assignee):
        raise ApplicationError("A saved reply needs a title and a body (or something it sets).")
    reply, _ = SavedReply.objects.update_or_create(
        title=title,
        defaults={
            "body": body,
            "is_active": is_active,
            "set_priority": set_priority,
            "set_status": set_status,
            "set_assignee": set_assignee,
        },
    )
    if add_tags is not None:
        reply.add_tags.set(add_tags)
    return reply


def saved_replies_seed_defaults() -> int:
    """Create the default saved replies that are missing (by title); returns how many."""
    created = 0
    for title, body in DEFAULT_SAVED_REPLIES:
        _, was_created = SavedReply.objects.get_or_create(title=title, defaults={"body": body})
        created += was_created
    return created


def saved_reply_render(*, saved_reply: SavedReply, customer: Customer, agent: User) -> str:
    """The body with its variables filled in (pure: no query, nothing stored)."""
    customer_first = (customer.name or "").split()[0] if (customer.name or "").split() else "there"
    return saved_reply.body.replace("{customer_first_name}", customer_first).replace(
        "{agent_first_name}", agent.first_name or "the support team"
    )
