"""Triage: tags (topics) and priority, spam and blocked senders, macros, bulk actions, saved views.

Every change to a conversation goes through ``conversation_lock`` (row lock, optional ``expected_version``)
and ``conversation_save`` (version bump), records an ``Event`` (higher apps react: metrics
recompute the days of the conversation's solves, surveys drop a spam conversation's survey) and an
audit entry, in one transaction.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass, field

from django.db import IntegrityError, transaction
from django.db.models.functions import Lower
from django.utils import timezone

from supportdesk import extensions
from supportdesk.errors import ApplicationError, Conflict
from supportdesk.models import AuditAction, User
from supportdesk.services import audit_record
from tickets.models import (
    Contact,
    Conversation,
    Event,
    Identity,
    Message,
    SavedReply,
    SavedView,
    Tag,
)
from tickets.services.conversations import (
    conversation_assign,
    conversation_lock,
    conversation_reply,
    conversation_set_pending,
    conversation_solve,
)
from tickets.services.customers import solve_dates
from tickets.services.events import conversation_save, event_record

Priority = Conversation.Priority


class Forbidden(ApplicationError):
    status = 403


class NotFound(ApplicationError):
    status = 404


TAG_NAME_MAX = 50
TAGS_PER_CONVERSATION_MAX = 20


# --- Tags (managers) ---------------------------------------------------------------------------


def _tag_name(name: str) -> str:
    name = " ".join((name or "").split())
    if not name:
        raise ApplicationError("A tag needs a name.")
    if len(name) > TAG_NAME_MAX:
        raise ApplicationError(f"A tag name has at most {TAG_NAME_MAX} characters.")
    if "," in name:
        raise ApplicationError("A tag name cannot hold a comma (commas separate tags).")
    return name


def _manager_only(actor: User) -> None:
    if not actor.is_manager:
        raise Forbidden("Only managers create, rename and archive tags.")


@transaction.atomic
def tag_create(*, name: str, actor: User) -> Tag:
    """A new topic. Names are unique whatever their case (409 for a taken name)."""
    _manager_only(actor)
    name = _tag_name(name)
    try:
        with transaction.atomic():
            tag = Tag.objects.create(name=name)
    except IntegrityError as exc:
        raise Conflict(f"There is already a tag {name!r}.") from exc
    audit_record(
        action=AuditAction.TAG_CHANGED,
        target=tag,
        actor=actor,
        summary=f"Tag {name!r} created",
        details={"created": name},
    )
    return tag


@transaction.atomic
def tag_rename(*, tag: Tag, name: str, actor: User) -> Tag:
    """Rename a topic; every conversation carrying it shows the new name."""
    _manager_only(actor)
    name = _tag_name(name)
    tag = Tag.objects.select_for_update().get(pk=tag.pk)
    before = tag.name
    if before == name:
        return tag
    tag.name = name
    try:
        with transaction.atomic():
            tag.save(update_fields=["name", "updated_at"])
    except IntegrityError as exc:
        raise Conflict(f"There is already a tag {name!r}.") from exc
    audit_record(
        action=AuditAction.TAG_CHANGED,
        target=tag,
        actor=actor,
        summary=f"Tag {before!r} renamed to {name!r}",
        details={"renamed": {"from": before, "to": name}},
    )
    return tag


@transaction.atomic
def tag_archive(*, tag: Tag, actor: User, archived: bool = True) -> Tag:
    """Archive (or restore) a topic: it stays where it is but cannot be put on a conversation."""
    _manager_only(actor)
    tag = Tag.objects.select_for_update().get(pk=tag.pk)
    if (tag.archived_at is not None) == archived:
        return tag
    tag.archived_at = timezone.now() if archived else None
    tag.save(update_fields=["archived_at", "updated_at"])
    audit_record(
        action=AuditAction.TAG_CHANGED,
        target=tag,
        actor=actor,
        summary=f"Tag {tag.name!r} {'archived' if archived else 'restored'}",
        details={"archived": archived},
    )
    return tag


def tags_by_names(names: Iterable[str]) -> list[Tag]:
    """The tags named (any case), in the order given; ApplicationError names the unknown ones."""
    wanted: list[str] = []
    for name in names:
        clean = " ".join((name or "").split())
        if clean and clean.lower() not in {w.lower() for w in wanted}:
            wanted.append(clean)
    if len(wanted) > TAGS_PER_CONVERSATION_MAX:
        raise ApplicationError(f"A conversation has at most {TAGS_PER_CONVERSATION_MAX} tags.")
    found = {
        tag.name.lower(): tag
        for tag in Tag.objects.annotate(lname=Lower("name")).filter(
            lname__in=[w.lower() for w in wanted]
        )
    }
    unknown = [w for w in wanted if w.lower() not in found]
    if unknown:
        raise ApplicationError(
            f"No tag {', '.join(repr(u) for u in unknown)}; a manager creates tags on the Tags page.",
            extra={"unknown_tags": unknown},
        )
    return [found[w.lower()] for w in wanted]


# --- Tags and priority on a conversation ---------------------------------------------------------


def _affected_dates(conversation: Conversation) -> list[str]:
    """The days whose metrics a change of this conversation's tags or spam mark can move: its
    solves (outcomes by topic), and for spam also its contacts and replies (speed metrics)."""
    return solve_dates([conversation.pk])


@transaction.atomic
def conversation_triage(
    *,
    conversation: Conversation,
    actor: User | None,
    tags: list[Tag] | None = None,
    priority: str | None = None,
    expected_version: int | None = None,
) -> Conversation:
    """Set the conversation's tags (the whole set) and/or priority.

    A tag that is archived may stay on a conversation that has it but cannot be added. Nothing
    changes when the values are the same (no event, no version bump). Records
    ``conversation.tags_changed`` (with the solve days to recompute: outcomes by topic) and/or
    ``conversation.priority_changed``, each with an audit entry. ``StaleVersion`` (409) when
    ``expected_version`` is not the current one. ``actor`` None: a rule of the desk (routing).
    """
    conversation = conversation_lock(conversation, expected_version=expected_version)
    changed: list[str] = []
    if priority is not None:
        if priority not in Priority.values:
            raise ApplicationError(f"priority must be one of {', '.join(Priority.values)}.")
        if priority != conversation.priority:
            before = conversation.priority
            conversation.priority = priority
            changed.append("priority")
            event_record(
                kind=Event.Kind.PRIORITY_CHANGED,
                conversation=conversation,
                actor=actor,
                agent=conversation.assignee,
                data={"from": before, "to": priority},
            )
            audit_record(
                action=AuditAction.CONVERSATION_PRIORITY,
                target=conversation,
                actor=actor,
                team=conversation.team,
                summary=f"#{conversation.pk} priority {before} -> {priority}",
                details={"from": before, "to": priority},
            )
    if tags is not None:
        current = {tag.pk: tag for tag in conversation.tags.all()}
        wanted = {tag.pk: tag for tag in tags}
        added = [tag for pk, tag in wanted.items() if pk not in current]
        removed = [tag for pk, tag in current.items() if pk not in wanted]
        # Read from the database: the caller's Tag objects may predate an archive.
        archived = list(
            Tag.objects.filter(pk__in=[t.pk for t in added], archived_at__isnull=False)
            .order_by("name")
            .values_list("name", flat=True)
        )
        if archived:
            raise ApplicationError(
                f"The tag {', '.join(repr(a) for a in archived)} is archived: it can no longer "
                "be put on a conversation."
            )
        if len(wanted) > TAGS_PER_CONVERSATION_MAX:
            raise ApplicationError(f"A conversation has at most {TAGS_PER_CONVERSATION_MAX} tags.")
        if added or removed:
            conversation.tags.remove(*removed)
            conversation.tags.add(*added)
            changed.append("tags")
            names = {"added": [t.name for t in added], "removed": [t.name for t in removed]}
            event_record(
                kind=Event.Kind.TAGS_CHANGED,
                conversation=conversation,
                actor=actor,
                agent=conversation.assignee,
                data={
                    **names,
                    "tags": sorted(t.name for t in wanted.values()),
                    "affected_dates": _affected_dates(conversation),
                },
            )
            audit_record(
                action=AuditAction.CONVERSATION_TAGS,
                target=conversation,
                actor=actor,
                team=conversation.team,
                summary=f"#{conversation.pk} tags +{names['added']} -{names['removed']}",
                details=names,
            )
    if "priority" in changed:
        # Routing moves the reply the desk promised to the new priority's promise (it may set
        # ``due_at``); saved below with the priority, one version bump.
        extensions.run_hooks("conversation.priority_changed", conversation=conversation)
        changed.append("due_at")
    if changed:
        conversation_save(conversation, *(f for f in changed if f != "tags"))
    return conversation


# --- Spam -------------------------------------------------------------------------------------------


def _conversation_senders(conversation: Conversation) -> list[Identity]:
    """The handles the customer wrote from in this conversation."""
    ids = (
        Message.objects.filter(
            conversation=conversation, direction=Message.Direction.INBOUND, identity__isnull=False
        )
        .values_list("identity_id", flat=True)
        .distinct()
    )
    return list(Identity.objects.filter(pk__in=list(ids)).order_by("pk"))


def _spam_dates(conversation: Conversation) -> list[str]:
    tz = timezone.get_current_timezone()
    days = set(solve_dates([conversation.pk]))
    stamps = [
        *Contact.objects.filter(conversation=conversation).values_list("started_at", flat=True),
        *Message.objects.filter(
            conversation=conversation, direction=Message.Direction.OUTBOUND
        ).values_list("sent_at", flat=True),
    ]
    days |= {stamp.astimezone(tz).date().isoformat() for stamp in stamps}
    return sorted(days)


@transaction.atomic
def conversation_mark_spam(
    *,
    conversation: Conversation,
    actor: User | None,
    block_sender: bool = False,
    expected_version: int | None = None,
    reason: str = "agent",
) -> Conversation:
    """Mark as spam: hidden from the queue, never surveyed, never in any metric.

    ``block_sender``: the handles the customer wrote from in it are blocked too, so that
    whatever arrives from them later is stored as spam at once. Records
    ``conversation.spam_marked`` (surveys cancel its survey; metrics recompute every day the
    conversation touched) and an audit entry. Marking a spam conversation again only blocks.
    """
    conversation = conversation_lock(conversation, expected_version=expected_version)
    now = timezone.now()
    blocked: list[str] = []
    if block_sender:
        for identity in _conversation_senders(conversation):
            if identity.blocked_at is None:
                Identity.objects.filter(pk=identity.pk).update(blocked_at=now)
                blocked.append(identity.value)
                audit_record(
                    action=AuditAction.SENDER_BLOCKED,
                    target=identity,
                    actor=actor,
                    team=conversation.team,
                    summary=f"Sender {identity.value} blocked (spam in #{conversation.pk})",
                    details={"conversation": conversation.pk},
                )
    if conversation.spam_at is not None:
        return conversation
    conversation.spam_at = now
    conversation_save(conversation, "spam_at")
    event_record(
        kind=Event.Kind.SPAM_MARKED,
        conversation=conversation,
        actor=actor,
        agent=conversation.assignee,
        data={
            "by": reason,
            "blocked": blocked,
            "affected_dates": _spam_dates(conversation),
        },
    )
    audit_record(
        action=AuditAction.CONVERSATION_SPAM,
        target=conversation,
        actor=actor,
        team=conversation.team,
        summary=f"#{conversation.pk} marked as spam"
        + (f", blocked {', '.join(blocked)}" if blocked else ""),
        details={"blocked": blocked, "by": reason},
    )
    return conversation


@transaction.atomic
def conversation_unmark_spam(
    *, conversation: Conversation, actor: User, expected_version: int | None = None
) -> Conversation:
    """Not spam after all: back in the queue and the metrics; its senders are unblocked.

    A survey cancelled when it was marked stays cancelled (the customer is never asked late).
    """
    conversation = conversation_lock(conversation, expected_version=expected_version)
    if conversation.spam_at is None:
        raise Conflict("This conversation is not marked as spam.")
    unblocked: list[str] = []
    for identity in _conversation_senders(conversation):
        if identity.blocked_at is not None:
            Identity.objects.filter(pk=identity.pk).update(blocked_at=None)
            unblocked.append(identity.value)
            audit_record(
                action=AuditAction.SENDER_UNBLOCKED,
                target=identity,
                actor=actor,
                team=conversation.team,
                summary=f"Sender {identity.value} unblocked (#{conversation.pk} is not spam)",
                details={"conversation": conversation.pk},
            )
    conversation.spam_at = None
    conversation_save(conversation, "spam_at")
    event_record(
        kind=Event.Kind.SPAM_UNMARKED,
        conversation=conversation,
        actor=actor,
        agent=conversation.assignee,
        data={"unblocked": unblocked, "affected_dates": _spam_dates(conversation)},
    )
    audit_record(
        action=AuditAction.CONVERSATION_NOT_SPAM,
        target=conversation,
        actor=actor,
        team=conversation.team,
        summary=f"#{conversation.pk} is not spam",
        details={"unblocked": unblocked},
    )
    return conversation


# --- Macros ------------------------------------------------------------------------------------------


@transaction.atomic
def saved_reply_apply(
    *,
    conversation: Conversation,
    saved_reply: SavedReply,
    actor: User,
    body: str | None = None,
    expected_version: int | None = None,
    seen_up_to: int | None = None,
) -> Conversation:
    """Run a macro in one click: send its reply (``body``: the agent's edited text, else the
    macro's filled in), add its tags, set its priority and assignee, then its status; each step
    through its own service (a solve still gets its survey). All or nothing: if a step is
    refused, nothing of the macro stays."""
    from tickets.services.saved_replies import saved_reply_render

    conversation = conversation_lock(conversation, expected_version=expected_version)
    text = (
        body
        if body is not None and body.strip()
        else saved_reply_render(
            saved_reply=saved_reply, customer=conversation.customer, agent=actor
        )
        if saved_reply.body.strip()
        else ""
    )
    if text.strip():
        conversation_reply(
            conversation=conversation, author=actor, body=text, seen_up_to=seen_up_to
        )
    add = list(saved_reply.add_tags.all())
    if add or saved_reply.set_priority:
        current = list(conversation.tags.all())
        conversation_triage(
            conversation=conversation,
            actor=actor,
            tags=[*current, *(t for t in add if t not in current)] if add else None,
            priority=saved_reply.set_priority or None,
        )
    if saved_reply.set_assignee == SavedReply.Assignee.ME:
        conversation_assign(conversation=conversation, actor=actor, agent=actor)
    elif saved_reply.set_assignee == SavedReply.Assignee.NOBODY:
        conversation_assign(conversation=conversation, actor=actor, unassign=True)
    conversation.refresh_from_db()
    if saved_reply.set_status == SavedReply.Status.SOLVED and conversation.is_active:
        conversation_solve(conversation=conversation, actor=actor)
    elif saved_reply.set_status == SavedReply.Status.PENDING and conversation.status in (
        Conversation.Status.NEW,
        Conversation.Status.OPEN,
    ):
        conversation_set_pending(conversation=conversation, actor=actor)
    conversation.refresh_from_db()
    return conversation


# --- Bulk actions ------------------------------------------------------------------------------------

BULK_MAX = 100


@dataclass
class BulkResult:
    done: list[int] = field(default_factory=list)
    skipped: list[tuple[int, str]] = field(default_factory=list)


def conversations_bulk(
    *, conversations: Iterable[Conversation], change: Callable[[Conversation], object]
) -> BulkResult:
    """Apply one service to each conversation, each in its own transaction: one refusal (solved
    already, changed meanwhile) skips that conversation with its reason and leaves the others
    done. The services record their own events and audit entries; a bulk solve is a solve per
    conversation, each with its survey."""
    result = BulkResult()
    items = list(conversations)
    if len(items) > BULK_MAX:
        raise ApplicationError(f"Select at most {BULK_MAX} conversations at once.")
    for conversation in items:
        try:
            with transaction.atomic():
                change(conversation)
        except ApplicationError as exc:
            result.skipped.append((conversation.pk, str(exc)))
        else:
            result.done.append(conversation.pk)
    return result


# --- Saved views -------------------------------------------------------------------------------------

SAVED_VIEWS_PER_USER_MAX = 30


@transaction.atomic
def saved_view_save(*, user: User, name: str, query: str) -> SavedView:
    """Save (or overwrite, by name) the agent's current queue filters."""
    name = " ".join((name or "").split())[:60]
    if not name:
        raise ApplicationError("Give the view a name.")
    if len(query) > 500:
        raise ApplicationError("These filters are too long to save.")
    existing = SavedView.objects.filter(user=user, name=name).first()
    if existing is not None:
        existing.query = query
        existing.save(update_fields=["query", "updated_at"])
        return existing
    if SavedView.objects.filter(user=user).count() >= SAVED_VIEWS_PER_USER_MAX:
        raise ApplicationError(
            f"You have {SAVED_VIEWS_PER_USER_MAX} saved views; delete one first."
        )
    return SavedView.objects.create(user=user, name=name, query=query)


@transaction.atomic
def saved_view_delete(*, user: User, view_id: int) -> None:
    deleted, _ = SavedView.objects.filter(user=user, pk=view_id).delete()
    if not deleted:
        raise NotFound("No such saved view.")
