"""Saved replies (macros) for the composer."""

from __future__ import annotations

from supportdesk.errors import ApplicationError
from supportdesk.models import User
from tickets.models import Customer, SavedReply
from tickets.saved_reply_defaults import DEFAULT_SAVED_REPLIES

SAVED_REPLY_VARIABLES = ("{customer_first_name}", "{agent_first_name}")


def saved_reply_create_or_update(*, title: str, body: str, is_active: bool = True) -> SavedReply:
    """Create or update a saved reply by title."""
    title, body = title.strip()[:100], body.strip()
    if not title or not body:
        raise ApplicationError("A saved reply needs a title and a body.")
    reply, _ = SavedReply.objects.update_or_create(
        title=title, defaults={"body": body, "is_active": is_active}
    )
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
