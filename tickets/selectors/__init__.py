"""Reads of the tickets app, scoped to what the caller may open; import from here
(``tickets.selectors``).

This module holds the conversation reads (visibility, the queue, one conversation, tags and
macros); its submodules hold the rest and are re-exported below:

- ``search``: full-text search of message text and its highlighted fragments
- ``channels``: channels and mailboxes (webhook secrets, settings pages, where to write first)
- ``customers``: the customer directory, the customer page, lookups by handle, phone or email
"""

from __future__ import annotations

import contextlib
import hashlib
import re
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from django.conf import settings
from django.core.cache import cache
from django.core.exceptions import ValidationError
from django.db.models import (
    BooleanField,
    Case,
    Count,
    Exists,
    OuterRef,
    Prefetch,
    Q,
    QuerySet,
    Subquery,
    Value,
    When,
)
from django.db.models.functions import Substr
from django.http import Http404
from django.utils import timezone
from django.utils.safestring import SafeString

from supportdesk.errors import ApplicationError
from supportdesk.models import Team, User
from tickets.identities import normalise_phone
from tickets.models import (
    Attachment,
    Channel,
    Contact,
    Conversation,
    ConversationParticipant,
    ConversationViewer,
    Customer,
    CustomerMerge,
    Event,
    Identity,
    Message,
    SavedReply,
    SavedView,
    Tag,
)


def visible_conversations_q(user: User, prefix: str = "") -> Q:
    """What a member of staff may open (docs/security/authz.md, "Who sees a conversation").

    Admins: everything. Everyone else: the conversations of their teams. An *unrouted*
    conversation (no team: its channel has none) is a triage pool: managers see it (they route
    it), agents who belong to no team see it (a desk without teams is one shared queue), and the
    agent it is assigned to sees it. An agent of a team never sees another team's pool.

    The user's teams are a subquery of the same statement, not a query of their own: a page
    that checks visibility twice (the conversation, the customer panel) asks for them in SQL only.
    """
    if user.is_admin:
        return Q()
    memberships = User.teams.through.objects.filter(user_id=user.pk)
    unrouted = Q(**{f"{prefix}team__isnull": True})
    if not user.is_manager:
        unrouted &= Q(**{f"{prefix}assignee": user}) | Q(~Exists(memberships))
    return Q(**{f"{prefix}team__in": memberships.values("team_id")}) | unrouted


def conversation_list_for_user(
    *,
    user: User,
    status: str | None = None,
    assignee: str | None = None,
    team: int | None = None,
    customer: int | None = None,
    channel: str | None = None,
    tag: str | None = None,
    priority: str | None = None,
    q: str | None = None,
    spam: bool = False,
) -> QuerySet[Conversation]:
    """The queue: newest activity first, with the joins the list needs (tags prefetched).

    Spam is left out unless ``spam`` asks for it (then only spam). ``tag``: a tag name (any
    case); ``q``: the queue search, message text included (``queue_search_q``).
    """
    qs = (
        Conversation.objects.filter(visible_conversations_q(user), spam_at__isnull=not spam)
        .select_related("customer", "team", "assignee")
        .prefetch_related(Prefetch("tags", queryset=Tag.objects.order_by("name")))
        .order_by("-last_activity_at", "-id")
    )
    if tag:
        qs = qs.filter(tags__in=Tag.objects.filter(name__iexact=tag.strip()))
    if priority:
        qs = qs.filter(priority__in=priority.split(","))
    if q:
        qs = qs.filter(queue_search_q(q))
    if status:
        qs = qs.filter(status__in=status.split(","))
    if assignee == "none":
        qs = qs.filter(assignee__isnull=True)
    elif assignee == "me":
        qs = qs.filter(assignee=user)
    elif assignee:
        qs = qs.filter(
            Q(assignee__email=assignee.lower()) if "@" in assignee else Q(assignee_id=assignee)
        )
    if team is not None:
        qs = qs.filter(team_id=team)
    if customer is not None:
        qs = qs.filter(customer_id=customer)
    if channel:
        qs = (
            qs.filter(channels__contains=[channel])
            if _json_contains_supported()
            else qs.filter(channels__icontains=f'"{channel}"')
        )
    return qs


def _json_contains_supported() -> bool:
    from django.db import connection

    return connection.vendor == "postgresql"


def conversation_get_for_user(*, user: User, pk: Any, for_detail: bool = False) -> Conversation:
    """The conversation if the user may open it; Http404 otherwise (never 403: no oracle)."""
    qs = Conversation.objects.filter(visible_conversations_q(user)).select_related(
        "customer__organisation", "team", "assignee"
    )
    if for_detail:
        qs = qs.prefetch_related(
            Prefetch("tags", queryset=Tag.objects.order_by("name")),
            Prefetch(
                "messages",
                queryset=Message.objects.select_related(
                    "author", "identity", "contact", "participant", "call_log__logged_by"
                )
                # The stored MIME (up to the size limit a message) is never shown: not read.
                .defer("raw")
                .prefetch_related(
                    Prefetch("attachments", queryset=Attachment.objects.order_by("id"))
                )
                .order_by("sent_at", "id"),
            ),
        )
    try:
        return qs.get(pk=int(pk))
    except (Conversation.DoesNotExist, ValueError, TypeError) as exc:
        raise Http404("No such conversation.") from exc


def conversation_participants(*, conversation: Conversation) -> list[ConversationParticipant]:
    """The people copied on a conversation, offered for reply-all (one query)."""
    return list(
        ConversationParticipant.objects.filter(conversation=conversation).order_by(
            "created_at", "id"
        )
    )


def customer_visible_to(*, user: User, pk: int) -> bool:
    """Whether the user may open customer ``pk`` (the rule of ``customer_get_for_user``)."""
    try:
        customer_get_for_user(user=user, pk=pk)
    except Http404:
        return False
    return True


def customer_get_for_user(*, user: User, pk: Any) -> Customer:
    """A customer the user may open: one with a conversation they can see, or one with no
    conversation at all (created from a screen pop or by hand: nothing of any team's yet) (admins:
    any). docs/security/authz.md, "Who sees a customer"."""
    try:
        customer = Customer.objects.select_related("organisation").get(pk=int(pk))
    except (Customer.DoesNotExist, ValueError, TypeError, OverflowError) as exc:
        raise Http404("No such customer.") from exc
    if user.is_admin:
        return customer
    visible = Conversation.objects.filter(visible_conversations_q(user), customer=customer).exists()
    if not visible and customer.merged_into_id is None and not customer.conversations.exists():
        return customer  # nothing of any team's yet
    merged_visible = (
        customer.merged_into_id is not None
        and Conversation.objects.filter(
            visible_conversations_q(user), customer_id=customer.merged_into_id
        ).exists()
    )
    if not (visible or merged_visible):
        raise Http404("No such customer.")
    return customer


def customer_detail_data(*, user: User, customer: Customer) -> dict[str, Any]:
    identities = list(Identity.objects.filter(customer=customer).order_by("kind", "value"))
    conversations = list(
        Conversation.objects.filter(visible_conversations_q(user), customer=customer)
        .select_related("team", "assignee")
        .order_by("-last_activity_at", "-id")
    )
    merges = list(
        CustomerMerge.objects.filter(target=customer)
        .select_related("merged")
        .order_by("-created_at")
    )
    return {"identities": identities, "conversations": conversations, "merges": merges}


def message_get_for_user(*, user: User, pk: Any) -> Message:
    """A message of a conversation the user may open; Http404 otherwise."""
    message = (
        Message.objects.filter(visible_conversations_q(user, prefix="conversation__"), pk=pk)
        .select_related("conversation")
        .first()
    )
    if message is None:
        raise Http404("No such message.")
    return message


def customer_merge_get_for_user(*, user: User, pk: Any) -> CustomerMerge:
    """A merge whose target customer the user may open; Http404 otherwise."""
    merge = CustomerMerge.objects.filter(pk=pk).first()
    if merge is None:
        raise Http404("No such merge.")
    customer_get_for_user(user=user, pk=merge.target_id)
    return merge


def staff_get_by_ref(*, ref: str) -> User | None:
    """A staff account by id or email (the API's ``agent`` field)."""
    ref = ref.strip()
    if ref.isdigit():
        return User.objects.filter(pk=int(ref)).first()
    return User.objects.filter(email=ref.lower()).first()


def team_get_by_ref(*, ref: str) -> Team | None:
    ref = ref.strip()
    return Team.objects.filter(Q(pk=int(ref)) if ref.isdigit() else Q(name=ref)).first()


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
    any format), a tag's name or #id."""
    query = query.strip()
    if not query:
        return Q()
    identity_q = Q(value__icontains=query.lower())
    with contextlib.suppress(ValidationError):
        identity_q |= Q(kind=Identity.Kind.PHONE, value=normalise_phone(query))
    digits = re.sub(r"\D", "", query)
    if len(digits) >= 4 and not re.search(r"[a-zA-Z@]", query):
        # A partial number ("555 0100") matches inside the stored E.164 value.
        # (icontains on digits is contains, and the trigram index serves it on PostgreSQL.)
        identity_q |= Q(kind=Identity.Kind.PHONE, value__icontains=digits)
    matches = (
        Q(subject__icontains=query)
        | Q(customer_id__in=Customer.objects.filter(name__icontains=query).values("pk"))
        # Uncorrelated: the matching identities are found once (trigram index on PostgreSQL).
        | Q(customer_id__in=Identity.objects.filter(identity_q).values("customer_id"))
    )
    if query.lstrip("#").isdigit() and len(query.lstrip("#")) < 10:
        matches |= Q(pk=int(query.lstrip("#")))
    # A tag's name finds the conversations that carry it.
    matches |= Q(
        pk__in=Conversation.tags.through.objects.filter(tag__name__iexact=query).values(
            "conversation_id"
        )
    )
    words = search_words(query)
    if words:
        # Uncorrelated: the matching messages are found once (the GIN index on PostgreSQL).
        matches |= Q(pk__in=messages_matching(words).values("conversation_id"))
    return matches


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

    Four queries whatever the page holds (five with a search): the page (with its joins and,
    per row, the customer's last message: when, and its first characters), its tags, one
    aggregate for the open views' counts and one count of the recently solved; a search adds
    the highlighted fragments. Filters and search apply to the counts too, so the numbers match
    what a click shows. Spam shows only in its own view (``spam``), never in a count.
    """
    base = Conversation.objects.filter(visible_conversations_q(user))
    if tag:
        base = base.filter(tags__in=Tag.objects.filter(name__iexact=tag))
    if priority:
        base = base.filter(priority=priority)
    if channel:
        base = (
            base.filter(channels__contains=[channel])
            if _json_contains_supported()
            else base.filter(channels__icontains=f'"{channel}"')
        )
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


# --- The agent workspace: one conversation ---------------------------------------------------


@dataclass
class TimelineEntry:
    at: datetime
    message: Message | None = None
    event: Event | None = None
    contact_number: int | None = None
    contact: Contact | None = None
    # The rendered message (tickets.fragments), set by the conversation page.
    html: str = ""


TIMELINE_EVENT_KINDS = (
    Event.Kind.SOLVED,
    Event.Kind.REOPENED,
    Event.Kind.ASSIGNED,
    Event.Kind.CLOSED,
    Event.Kind.MESSAGE_MOVED,
    Event.Kind.STATUS_CHANGED,
    Event.Kind.TAGS_CHANGED,
    Event.Kind.PRIORITY_CHANGED,
    Event.Kind.SPAM_MARKED,
    Event.Kind.SPAM_UNMARKED,
)


def conversation_timeline(*, conversation: Conversation) -> list[TimelineEntry]:
    """Messages and status events in time order; the first message of each contact carries the
    contact's number (docs/metrics.md "Counting contacts"). Needs ``conversation_get_for_user(...,
    for_detail=True)``; runs two queries (contacts, events)."""
    contacts = list(conversation.contacts.select_related("agent").order_by("started_at", "id"))
    numbers = {contact.pk: index for index, contact in enumerate(contacts, start=1)}
    entries: list[TimelineEntry] = []
    marked: set[int] = set()
    for message in conversation.messages.all():
        entry = TimelineEntry(at=message.sent_at, message=message)
        if message.contact_id and message.contact_id not in marked:
            marked.add(message.contact_id)
            entry.contact_number = numbers.get(message.contact_id)
            entry.contact = message.contact
        entries.append(entry)
    events = (
        Event.objects.filter(conversation=conversation, kind__in=TIMELINE_EVENT_KINDS)
        .select_related("actor", "agent")
        .order_by("occurred_at", "id")
    )
    for event in events:
        if event.kind == Event.Kind.STATUS_CHANGED and event.data.get("status_to") == "open":
            continue  # "new -> open" by the first reply says nothing the reply does not
        entries.append(TimelineEntry(at=event.occurred_at, event=event))
    entries.sort(key=lambda e: (e.at, 0 if e.message else 1))
    return entries


def visible_flag(user: User) -> Case | Value:
    """An annotation: whether ``user`` may open the conversation (the rule of
    ``visible_conversations_q``, as a column; the user's teams are a subquery)."""
    if user.is_admin:
        return Value(True, output_field=BooleanField())
    return Case(
        When(visible_conversations_q(user), then=Value(True)),
        default=Value(False),
        output_field=BooleanField(),
    )


# How many of a customer's other conversations the panel and the customer page show.
OTHER_CONVERSATIONS_SHOWN = 20
CUSTOMER_PAGE_CONVERSATIONS = 100


def customer_panel_data(*, user: User, conversation: Conversation) -> dict[str, Any]:
    """The customer panel: identities, other conversations, active merges (four queries).

    Other conversations the user may open are listed with a link; those of other teams only say
    that they exist and how they stand (``other_elsewhere``, no id, no link): never "first
    conversation" when it is not, and never a name of a page the user cannot open.
    """
    customer = conversation.customer
    identities = list(Identity.objects.filter(customer=customer).order_by("kind", "value"))
    everything = list(
        Conversation.objects.filter(customer=customer)
        .exclude(pk=conversation.pk)
        .select_related("team")
        .annotate(visible=visible_flag(user))
        .order_by("-last_activity_at", "-id")[: OTHER_CONVERSATIONS_SHOWN * 2]
    )
    others = [c for c in everything if c.visible][:OTHER_CONVERSATIONS_SHOWN]
    elsewhere = [c for c in everything if not c.visible][:OTHER_CONVERSATIONS_SHOWN]
    merges = list(
        CustomerMerge.objects.filter(target=customer, undone_at__isnull=True)
        .select_related("merged")
        .order_by("-created_at")
    )
    return {
        "identities": identities,
        "other_conversations": others,
        "other_elsewhere": elsewhere,
        "merges": merges,
    }


def conversation_viewers(*, conversation: Conversation, exclude: User) -> list[Any]:
    """Other agents who have this conversation open now (and who of them is writing)."""
    from tickets.services import PRESENCE_TTL_SECONDS

    since = timezone.now() - timedelta(seconds=PRESENCE_TTL_SECONDS)
    viewers = list(
        ConversationViewer.objects.filter(conversation=conversation, last_seen_at__gte=since)
        .exclude(user=exclude)
        .select_related("user")
        .order_by("user__full_name", "user_id")
    )
    for viewer in viewers:
        viewer.is_replying = viewer.replying_at is not None and viewer.replying_at >= since
    return viewers


def conversation_assignable_agents(*, conversation: Conversation) -> list[User]:
    """Active staff in the conversation's team (everyone active when it has no team)."""
    agents = User.objects.filter(is_active=True)
    if conversation.team_id is not None:
        agents = agents.filter(teams=conversation.team_id)
    return list(agents.order_by("full_name", "email"))


def conversation_staff_who_can_see(
    *, conversation: Conversation, search: str = "", limit: int | None = None
) -> QuerySet[User]:
    """Active staff who may open ``conversation``: ``visible_conversations_q`` read the other way.

    Admins; the members of its team; for an unrouted conversation (no team) managers, agents in
    no team and its assignee. ``search`` narrows by name or email (the @-mention autocomplete).
    One query.
    """
    q = Q(role=User.Role.ADMIN)
    if conversation.team_id is not None:
        q |= Q(teams=conversation.team_id)
    else:
        q |= Q(role=User.Role.MANAGER) | Q(teams__isnull=True)
        if conversation.assignee_id is not None:
            q |= Q(pk=conversation.assignee_id)
    staff = User.objects.filter(q, is_active=True)
    search = search.strip()
    if search:
        staff = staff.filter(Q(full_name__icontains=search) | Q(email__istartswith=search))
    staff = staff.distinct().order_by("full_name", "email")
    return staff[:limit] if limit is not None else staff


def saved_reply_list() -> list[SavedReply]:
    """Active macros with the tags they add (2 queries)."""
    return list(
        SavedReply.objects.filter(is_active=True)
        .prefetch_related(Prefetch("add_tags", queryset=Tag.objects.order_by("name")))
        .order_by("title")
    )


def message_get_for_user_detail(*, user: User, pk: Any) -> Message:
    """A message with its conversation, for the HTML frame and actions; Http404 otherwise."""
    try:
        pk = int(pk)
    except (TypeError, ValueError) as exc:
        raise Http404("No such message.") from exc
    return message_get_for_user(user=user, pk=pk)


def chat_transcript(*, channel: Channel, session_id: str) -> list[Message]:
    """What the visitor of one chat session may read: what was written in that session only.

    The visitor's messages carry the session as their thread key, and so do the agents' chat
    replies to it (``conversation_reply`` stamps them), so nothing written before the session,
    in another session of the same conversation, or after a message was moved elsewhere shows.
    """
    return list(
        Message.objects.filter(
            channel=channel,
            thread_key=session_id,
            channel_kind="chat",
            direction__in=["inbound", "outbound"],
        )
        .select_related("author")
        .order_by("sent_at", "id")
    )


def attachment_get_for_user(*, user: User, pk: Any) -> Attachment:
    """An attachment of a message in a conversation the user may open; Http404 otherwise."""
    attachment = (
        Attachment.objects.filter(
            visible_conversations_q(user, prefix="message__conversation__"), pk=pk
        )
        .select_related("message")
        .first()
    )
    if attachment is None:
        raise Http404("No such attachment.")
    return attachment


def conversation_inbound_count_after(*, conversation: Conversation, message_id: int) -> int:
    """How many customer messages arrived after ``message_id`` (the collision check)."""
    return Message.objects.filter(
        conversation=conversation, direction=Message.Direction.INBOUND, pk__gt=message_id
    ).count()


# The submodules, re-exported (``x as x``) so that ``from tickets.selectors import
# customer_page_data`` keeps working. Imported last: the customer reads build on the visibility
# rules above (``visible_conversations_q``, ``visible_flag``), and the queue calls the search.
from tickets.selectors.customers import (  # noqa: E402, I001
    CustomerPage as CustomerPage,
    customer_by_lookup as customer_by_lookup,
    customer_conversations_elsewhere as customer_conversations_elsewhere,
    customer_id_by_handle as customer_id_by_handle,
    customer_list_for_user as customer_list_for_user,
    customer_page_data as customer_page_data,
    customer_search_q as customer_search_q,
    customers_visible_q as customers_visible_q,
    organisation_list as organisation_list,
)
from tickets.selectors.channels import (  # noqa: E402
    channel_get_by_secret as channel_get_by_secret,
    channel_list as channel_list,
    channel_list_for_settings as channel_list_for_settings,
    channels_to_start_on as channels_to_start_on,
    chat_channel_by_widget_key as chat_channel_by_widget_key,
    chat_channel_for_page as chat_channel_for_page,
    email_channel_list as email_channel_list,
    email_channels_without_mailbox as email_channels_without_mailbox,
    mailbox_get as mailbox_get,
    mailbox_list as mailbox_list,
)
from tickets.selectors.search import (  # noqa: E402
    FTS_BODY_CHARS as FTS_BODY_CHARS,
    FTS_CONFIG as FTS_CONFIG,
    HIGHLIGHT_START as HIGHLIGHT_START,
    HIGHLIGHT_STOP as HIGHLIGHT_STOP,
    highlight_html as highlight_html,
    message_search_highlights as message_search_highlights,
    messages_matching as messages_matching,
    search_words as search_words,
)
