"""Saved replies (macros) for the composer."""

from __future__ import annotations

from django.db import transaction

from supportdesk.errors import ApplicationError
from supportdesk.models import AuditEntry, User
from supportdesk.services import audit_record
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


_FIELDS = ("title", "body", "is_active", "set_priority", "set_status", "set_assignee")


@transaction.atomic
def saved_reply_save(
    *,
    saved_reply: SavedReply | None,
    title: str,
    body: str,
    is_active: bool,
    add_tags: list[Tag],
    set_priority: str,
    set_status: str,
    set_assignee: str,
    actor: User,
) -> SavedReply:
    """Create (``saved_reply=None``) or edit a saved reply from the admin page, rename included.
    Validated like ``saved_reply_create_or_update`` (ApplicationError, nothing stored); a title
    another saved reply has is refused. Audited with what changed."""
    title, body = title.strip()[:100], body.strip()
    if set_priority not in ("", *Conversation.Priority.values):
        raise ApplicationError(
            f"set_priority must be one of {', '.join(Conversation.Priority.values)}."
        )
    if set_status not in SavedReply.Status.values or set_assignee not in SavedReply.Assignee.values:
        raise ApplicationError("Unknown status or assignee action.")
    if not title or not (body or add_tags or set_priority or set_status or set_assignee):
        raise ApplicationError("A saved reply needs a title and a body (or something it sets).")
    others = SavedReply.objects.filter(title=title)
    if saved_reply is not None:
        others = others.exclude(pk=saved_reply.pk)
    if others.exists():
        raise ApplicationError(f"Another saved reply is already called {title!r}.")
    created = saved_reply is None
    reply = (
        SavedReply()
        if saved_reply is None
        else SavedReply.objects.select_for_update().get(pk=saved_reply.pk)
    )
    values = {
        "title": title,
        "body": body,
        "is_active": is_active,
        "set_priority": set_priority,
        "set_status": set_status,
        "set_assignee": set_assignee,
    }
    changed = [field for field in _FIELDS if getattr(reply, field) != values[field]]
    tags_before = set() if created else set(reply.add_tags.values_list("name", flat=True))
    for field, value in values.items():
        setattr(reply, field, value)
    reply.save()
    reply.add_tags.set(add_tags)
    tags_after = {tag.name for tag in add_tags}
    if tags_after != tags_before:
        changed.append("add_tags")
    if created or changed:
        audit_record(
            action=(
                AuditEntry.Action.SAVED_REPLY_CREATED
                if created
                else AuditEntry.Action.SAVED_REPLY_CHANGED
            ),
            target=reply,
            actor=actor,
            summary=(
                f"Saved reply {title!r} created"
                if created
                else f"Saved reply {title!r} changed: {', '.join(changed)}"
            ),
            details={"changed": changed, "tags": sorted(tags_after)},
        )
    return reply


@transaction.atomic
def saved_reply_delete(*, saved_reply: SavedReply, actor: User) -> None:
    """Delete a saved reply (agents no longer see it; sent replies are unaffected). Audited."""
    reply = SavedReply.objects.select_for_update().get(pk=saved_reply.pk)
    audit_record(
        action=AuditEntry.Action.SAVED_REPLY_DELETED,
        target=reply,
        actor=actor,
        summary=f"Saved reply {reply.title!r} deleted",
        details={"title": reply.title},
    )
    reply.delete()


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
