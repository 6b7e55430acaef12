"""Reads of the agent's queue: its views and tabs, filters, search, sorting and keyset pages,
the counts of its tabs, tags and saved replies (re-exported by ``tickets.selectors``)."""

from __future__ import annotations

import contextlib
import hashlib
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from django.conf import settings
from django.core.cache import cache
from django.db.models import Count, OuterRef, Prefetch, Q, Subquery
from django.db.models.functions import Substr
from django.http import Http404
from django.utils import timezone
from django.utils.safestring import SafeString

from supportdesk.errors import ApplicationError
from supportdesk.models import Team, User
from tickets.models import (
    Conversation,
    Customer,
    Identity,
    Message,
    SavedReply,
    SavedView,
    Tag,
)
from tickets.selectors import on_channel, visible_conversations_q
from tickets.selectors.customers import identity_search_q
from tickets.selectors.search import message_search_highlights, messages_matching, search_words

# --- The agent workspace: queue ---------------------------------------------------------------


@dataclass(frozen=True)
class QueueView:
    key: str
    label: str


QUEUE_VIEWS = (
    QueueView("open", "All open"),
    QueueView("mine", "Mine"),
    QueueView("unassigned", "Unassigned"),
    QueueView("pending", "Pending on customer"),
    QueueView("reopened", "Reopened"),
    QueueView("solved", "Recently solved"),
)
QUEUE_PAGE_SIZE = 25
RECENTLY_SOLVED_DAYS = 7


@dataclass
class QueuePage:
    conversations: Sequence[Conversation]
    counts: dict[str, int]
    next_cursor: str | None
    # Search of message text: conversation id -> escaped fragment with <mark>ed words.
    highlights: dict[int, SafeString] | None = None
    # Active conversations of the view's filters due within ``DUE_SOON`` (or overdue).
    due_soon: int = 0


# The one-line preview of the customer's last message in the queue.
PREVIEW_CHARS = 140


def _view_q(key: str, user: User) -> Q:
    active = list(Conversation.ACTIVE_STATUSES)
    if key == "spam":
        return Q(spam_at__isnull=False)
    if key == "mine":
        return Q(assignee=user, status__in=active)
    if key == "unassigned":
        return Q(assignee__isnull=True, status__in=active)
    if key == "pending":
        return Q(status=Conversation.Status.PENDING)
    if key == "reopened":
        # Solved once, active again (by the customer writing back or an agent reopening).
        return Q(status__in=active, solved_at__isnull=False)
    if key == "solved":
        since = timezone.now() - timedelta(days=RECENTLY_SOLVED_DAYS)
        return Q(
            status__in=[Conversation.Status.SOLVED, Conversation.Status.CLOSED],
            solved_at__gte=since,
        )
    return Q(status__in=active)


def queue_search_q(query: str) -> Q:
    """Message text (full text), subject, customer name, an identity (email, handle, phone in
    any format), a tag's name or an id; ``#<id>`` is that conversation only (it also matched
    every message with a word starting with its digits)."""
    query = query.strip()
    if not query:
        return Q()
    if query.startswith("#") and query[1:].isdigit() and len(query) <= 10:
        return Q(pk=int(query[1:]))
    matches = Q(subject__icontains=query) | _customers_named_q(query)
    if query.isdigit() and len(query) < 10:
        matches |= Q(pk=int(query))
    # A tag's name finds the conversations that carry it.
    matches |= Q(
        pk__in=Conversation.tags.through.objects.filter(tag__name__iexact=query).values(
            "conversation_id"
        )
    )
    words = search_words(query)
    if words:
        matches |= _messages_matching_q(words)
    return matches


# A search whose words match at most this many messages names their conversations by id.
SEARCH_MESSAGES_INLINE = 1000


def _messages_matching_q(words: list[str]) -> Q:
    """The conversations of the messages whose text holds the search's words (the GIN index on
    PostgreSQL), found once: at 1M a phone number's four prefixes took 15 ms, three times a page.
    Past ``SEARCH_MESSAGES_INLINE`` messages (a common word) the subquery stays."""
    matching = messages_matching(words).values_list("conversation_id", flat=True)
    found = list(matching[: SEARCH_MESSAGES_INLINE + 1])
    if len(found) <= SEARCH_MESSAGES_INLINE:
        return Q(pk__in=sorted(set(found))) if found else Q(pk__in=[])
    return Q(pk__in=matching)


# A search naming at most this many customers (by name or identity) names them by id.
SEARCH_CUSTOMERS_INLINE = 500


def _customers_named_q(query: str) -> Q:
    """The conversations of the customers whose name or identity the search names.

    The customers are found first, in one query (each side a trigram index on PostgreSQL: at 1M,
    15 and 22 ms for an email address), and their ids go into the statements that use the
    search: the page and the two counts evaluated those scans each, three times a page. A search
    that names more than ``SEARCH_CUSTOMERS_INLINE`` customers keeps the subqueries.
    """
    named = Customer.objects.filter(name__icontains=query).values_list("pk", flat=True)
    identified = Identity.objects.filter(identity_search_q(query)).values_list(
        "customer_id", flat=True
    )
    ids = list(named.union(identified)[: SEARCH_CUSTOMERS_INLINE + 1])
    if len(ids) <= SEARCH_CUSTOMERS_INLINE:
        return Q(customer_id__in=ids) if ids else Q(pk__in=[])
    return Q(customer_id__in=named) | Q(customer_id__in=identified)


# What the queue calls "due soon": the promised reply is due within the hour, or overdue.
DUE_SOON = timedelta(hours=1)


def queue_cursor(conversation: Conversation, *, sort: str = "") -> str:
    if sort == "due" and conversation.due_at is not None:
        return f"{conversation.due_at.isoformat()}_{conversation.pk}"
    return f"{conversation.last_activity_at.isoformat()}_{conversation.pk}"


def _parse_cursor(cursor: str) -> tuple[datetime, int]:
    stamp, _, pk = cursor.rpartition("_")
    try:
        at = datetime.fromisoformat(stamp)
        if at.tzinfo is None:
            raise ValueError("naive")
        return at, int(pk)
    except ValueError as exc:
        raise ApplicationError("That page link is not valid; go back to the first page.") from exc


def queue_page_for_user(
    *,
    user: User,
    view: str = "open",
    channel: str = "",
    status: str = "",
    team: int | None = None,
    assignee: str = "",
    search: str = "",
    cursor: str = "",
    tag: str = "",
    priority: str = "",
    sort: str = "",
    reuse_counts: bool = False,
) -> QueuePage:
    """One page of a queue view, newest activity first (keyset), and the count of every view.

    ``reuse_counts`` (the poll): the counts of the same user, filters and page (its rows'
    versions and last changes) counted in the last ``settings.QUEUE_COUNTS_SECONDS``, if any,
    are reused; the page itself is always read. Every call that counts keeps its counts.

    ``sort="due"``: only the conversations with a promised due time, soonest first (keyset on
    ``(due_at, id)``, the ``tickets_conv_due`` index). ``due_soon`` is counted in the same
    aggregate as the open views.

    Four queries whatever the page holds (seven with a search): the page (with its joins and,
    per row, the customer's last message: when, and its first characters), its tags, one
    aggregate for the open views' counts and one count of the recently solved; a search adds
    the customers and the messages it names (``_customers_named_q``, ``_messages_matching_q``)
    and the highlighted fragments. Filters and search apply to the counts too, so the numbers match
    what a click shows. Spam shows only in its own view (``spam``), never in a count.
    """
    base = Conversation.objects.filter(visible_conversations_q(user))
    if tag:
        base = base.filter(tags__in=Tag.objects.filter(name__iexact=tag))
    if priority:
        base = base.filter(priority=priority)
    if channel:
        base = on_channel(base, channel)
    if status:
        base = base.filter(status=status)
    if team is not None:
        base = base.filter(team_id=team)
    if assignee == "none":
        base = base.filter(assignee__isnull=True)
    elif assignee.isdigit():
        base = base.filter(assignee_id=int(assignee))
    if search:
        base = base.filter(queue_search_q(search))
    spam_view = view == "spam"
    base_spam = base
    base = base.filter(spam_at__isnull=True)
    last_in = Message.objects.filter(
        conversation_id=OuterRef("pk"), direction=Message.Direction.INBOUND, automated=""
    ).order_by("-sent_at", "-id")
    last_out = Message.objects.filter(
        conversation_id=OuterRef("pk"), direction=Message.Direction.OUTBOUND
    ).order_by("-sent_at", "-id")
    page = (
        (base_spam if spam_view else base)
        .filter(_view_q(view, user))
        .select_related("customer", "team", "assignee")
        .prefetch_related(Prefetch("tags", queryset=Tag.objects.order_by("name")))
        # The customer's last message and our last reply (the timeline index serves both).
        .annotate(
            last_in_at=Subquery(last_in.values("sent_at")[:1]),
            last_in_preview=Subquery(
                last_in.annotate(p=Substr("body_text", 1, PREVIEW_CHARS + 40)).values("p")[:1]
            ),
            last_out_at=Subquery(last_out.values("sent_at")[:1]),
            # A call someone talked on was answered then and there.
            last_in_talked=Subquery(last_in.values("contact__talk_seconds")[:1]),
        )
        .order_by("-last_activity_at", "-id")
    )
    if sort == "due":
        page = page.filter(due_at__isnull=False).order_by("due_at", "id")
        if cursor:
            at, pk = _parse_cursor(cursor)
            page = page.filter(Q(due_at__gt=at) | Q(due_at=at, pk__gt=pk))
    elif cursor:
        at, pk = _parse_cursor(cursor)
        page = page.filter(Q(last_activity_at__lt=at) | Q(last_activity_at=at, pk__lt=pk))
    rows = list(page[: QUEUE_PAGE_SIZE + 1])
    next_cursor = (
        queue_cursor(rows[QUEUE_PAGE_SIZE - 1], sort=sort) if len(rows) > QUEUE_PAGE_SIZE else None
    )
    rows = rows[:QUEUE_PAGE_SIZE]
    # The poll's counts: those of the same user and filters, kept while the page it shows is
    # the same page (its rows, their versions and last changes): a new or changed conversation
    # on the page is counted at once, a change elsewhere within QUEUE_COUNTS_SECONDS.
    counts_key = (
        "queue-counts:"
        + hashlib.blake2b(
            repr(
                (
                    (user.pk, view, channel, status, team, assignee, search, tag, priority, sort),
                    [(row.pk, row.version, row.updated_at) for row in rows],
                    cursor,
                )
            ).encode(),
            digest_size=16,
        ).hexdigest()
    )
    kept = None
    # A cache outage (Redis down) only means counting every time.
    with contextlib.suppress(Exception):
        kept = cache.get(counts_key) if reuse_counts else None
    if kept is not None:
        counts, due_soon = kept
    else:
        counts, due_soon = _queue_counts(base, user=user, view=view)
        if settings.QUEUE_COUNTS_SECONDS:
            with contextlib.suppress(Exception):
                cache.set(counts_key, (counts, due_soon), settings.QUEUE_COUNTS_SECONDS)
    for row in rows:
        _waiting_mark(row)
    highlights = (
        message_search_highlights(conversation_ids=[r.pk for r in rows], query=search)
        if search and rows
        else None
    )
    return QueuePage(
        conversations=rows,
        counts=counts,
        next_cursor=next_cursor,
        highlights=highlights,
        due_soon=due_soon,
    )


def _queue_counts(base: Any, *, user: User, view: str) -> tuple[dict[str, int], int]:
    """Every view's count and the "due soon" count (two queries)."""
    # The open views count active conversations only (a partial index: thousands of rows, not
    # the team's whole history); "recently solved" counts a week of solves by its own index.
    active = base.filter(status__in=Conversation.ACTIVE_STATUSES).aggregate(
        **{
            v.key: Count("pk", filter=_view_q(v.key, user))
            for v in QUEUE_VIEWS
            if v.key != "solved"
        },
        due_soon=Count(
            "pk",
            filter=_view_q(view if view != "spam" else "open", user)
            & Q(due_at__lte=timezone.now() + DUE_SOON),
        ),
    )
    solved = base.filter(_view_q("solved", user)).count()
    counts = {v.key: solved if v.key == "solved" else active[v.key] for v in QUEUE_VIEWS}
    return counts, active["due_soon"] or 0


def _waiting_mark(conversation: Any) -> None:
    """``waiting_since``: when the customer's last message went unanswered (no reply after it,
    and not a call someone talked on), for an active conversation; ``preview``: that message on
    one line."""
    last_in, last_out = conversation.last_in_at, conversation.last_out_at
    unanswered = (
        last_in is not None
        and (last_out is None or last_out < last_in)
        and not conversation.last_in_talked
    )
    conversation.waiting_since = last_in if unanswered and conversation.is_active else None
    preview = " ".join((conversation.last_in_preview or "").split())
    conversation.preview = (
        preview[: PREVIEW_CHARS - 1] + "…" if len(preview) > PREVIEW_CHARS else preview
    )


def team_list_for_user(*, user: User) -> list[Team]:
    """The teams a user works in (admins: all), by name."""
    teams = Team.objects.order_by("name")
    if not user.is_admin:
        teams = teams.filter(members=user)
    return list(teams)


def queue_filter_choices(*, user: User) -> dict[str, Any]:
    """Teams, agents, tags and the user's saved views for the queue filters (four queries)."""
    team_list = team_list_for_user(user=user)
    agents = (
        User.objects.filter(is_active=True, teams__in=team_list).distinct().order_by("full_name")
    )
    return {
        "teams": team_list,
        "agents": list(agents),
        "tags": tag_list(),
        "saved_views": list(SavedView.objects.filter(user=user).order_by("name")),
    }


def tag_list(*, include_archived: bool = False) -> list[Tag]:
    tags = Tag.objects.order_by("name")
    if not include_archived:
        tags = tags.filter(archived_at__isnull=True)
    return list(tags)


def tag_list_with_counts() -> list[Tag]:
    """Every tag (archived last) with how many conversations carry it (1 query)."""
    return list(
        Tag.objects.annotate(conversation_count=Count("conversations")).order_by(
            "archived_at", "name"
        )
    )


def tag_get(*, pk: Any) -> Tag:
    try:
        return Tag.objects.get(pk=int(pk))
    except (Tag.DoesNotExist, ValueError, TypeError) as exc:
        raise Http404("No such tag.") from exc


def conversations_for_bulk(*, user: User, ids: list[int]) -> list[Conversation]:
    """The selected conversations the user may open (others are silently not there: no
    oracle), in the order selected (1 query)."""
    found = {
        c.pk: c
        for c in Conversation.objects.filter(
            visible_conversations_q(user), pk__in=ids
        ).select_related("customer", "team", "assignee")
    }
    return [found[pk] for pk in ids if pk in found]


def saved_reply_get(*, pk: Any) -> SavedReply:
    try:
        return SavedReply.objects.get(pk=int(pk), is_active=True)
    except (SavedReply.DoesNotExist, ValueError, TypeError) as exc:
        raise Http404("No such saved reply.") from exc
