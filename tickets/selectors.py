"""Reads of the tickets app, scoped to what the caller may open."""

from __future__ import annotations

import contextlib
import re
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from django.core.exceptions import ValidationError
from django.db.models import Count, Prefetch, Q, QuerySet
from django.http import Http404
from django.utils import timezone

from supportdesk.errors import ApplicationError
from supportdesk.models import Team, User
from supportdesk.sealing import digests_match, secret_digest
from tickets.identities import normalise_email, normalise_phone, normalise_social
from tickets.models import (
    Attachment,
    Channel,
    ChannelKind,
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
)


def visible_conversations_q(user: User, prefix: str = "") -> Q:
    """What a member of staff may open (docs/security/authz.md, "Who sees a conversation").

    Admins: everything. Everyone else: the conversations of their teams. An *unrouted*
    conversation (no team: its channel has none) is a triage pool: managers see it (they route
    it), agents who belong to no team see it (a desk without teams is one shared queue), and the
    agent it is assigned to sees it. An agent of a team never sees another team's pool.
    """
    if user.is_admin:
        return Q()
    team_ids = list(user.teams.values_list("pk", flat=True))
    unrouted = Q(**{f"{prefix}team__isnull": True})
    if not (user.is_manager or not team_ids):
        unrouted &= Q(**{f"{prefix}assignee": user})
    return Q(**{f"{prefix}team__in": team_ids}) | unrouted


def conversation_list_for_user(
    *,
    user: User,
    status: str | None = None,
    assignee: str | None = None,
    team: int | None = None,
    customer: int | None = None,
    channel: str | None = None,
) -> QuerySet[Conversation]:
    """The queue: newest activity first, with the joins the list needs."""
    qs = (
        Conversation.objects.filter(visible_conversations_q(user))
        .select_related("customer", "team", "assignee")
        .order_by("-last_activity_at", "-id")
    )
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
        "customer", "team", "assignee"
    )
    if for_detail:
        qs = qs.prefetch_related(
            Prefetch(
                "messages",
                queryset=Message.objects.select_related(
                    "author", "identity", "contact", "participant"
                )
                .prefetch_related(
                    Prefetch("attachments", queryset=Attachment.objects.order_by("id"))
                )
                .order_by("sent_at", "id"),
            )
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
    """A customer the user may open: one with a conversation they can see (admins: any)."""
    try:
        customer = Customer.objects.get(pk=int(pk))
    except (Customer.DoesNotExist, ValueError, TypeError) as exc:
        raise Http404("No such customer.") from exc
    if user.is_admin:
        return customer
    visible = Conversation.objects.filter(visible_conversations_q(user), customer=customer).exists()
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


def channel_get_by_secret(*, secret: str) -> Channel | None:
    """The active channel whose secret this is: found by digest, compared in constant time."""
    if not secret:
        return None
    channel = (
        Channel.objects.select_related("team")
        .filter(secret_digest=secret_digest(secret), is_active=True)
        .first()
    )
    if channel is None or not digests_match(channel.secret_digest, secret):
        return None
    return channel


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
    conversations: list[Conversation]
    counts: dict[str, int]
    next_cursor: str | None


def _view_q(key: str, user: User) -> Q:
    active = list(Conversation.ACTIVE_STATUSES)
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
    """Subject, customer name, an identity (email, handle, phone in any format) or #id."""
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
    return matches


def queue_cursor(conversation: Conversation) -> str:
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
) -> QueuePage:
    """One page of a queue view, newest activity first (keyset), and the count of every view.

    Three queries whatever the page holds: the page (with its joins), one aggregate for the
    open views' counts and one count of the recently solved. Filters and search apply to the
    counts too, so the numbers match what a click shows.
    """
    base = Conversation.objects.filter(visible_conversations_q(user))
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
    # The open views count active conversations only (a partial index: thousands of rows, not
    # the team's whole history); "recently solved" counts a week of solves by its own index.
    active = base.filter(status__in=Conversation.ACTIVE_STATUSES).aggregate(
        **{
            v.key: Count("pk", filter=_view_q(v.key, user))
            for v in QUEUE_VIEWS
            if v.key != "solved"
        }
    )
    solved = base.filter(_view_q("solved", user)).count()
    counts = {v.key: solved if v.key == "solved" else active[v.key] for v in QUEUE_VIEWS}
    page = (
        base.filter(_view_q(view, user))
        .select_related("customer", "team", "assignee")
        .order_by("-last_activity_at", "-id")
    )
    if cursor:
        at, pk = _parse_cursor(cursor)
        page = page.filter(Q(last_activity_at__lt=at) | Q(last_activity_at=at, pk__lt=pk))
    rows = list(page[: QUEUE_PAGE_SIZE + 1])
    next_cursor = queue_cursor(rows[QUEUE_PAGE_SIZE - 1]) if len(rows) > QUEUE_PAGE_SIZE else None
    return QueuePage(conversations=rows[:QUEUE_PAGE_SIZE], counts=counts, next_cursor=next_cursor)


def team_list_for_user(*, user: User) -> list[Team]:
    """The teams a user works in (admins: all), by name."""
    teams = Team.objects.order_by("name")
    if not user.is_admin:
        teams = teams.filter(members=user)
    return list(teams)


def queue_filter_choices(*, user: User) -> dict[str, Any]:
    """Teams and agents for the queue filters (two queries)."""
    team_list = team_list_for_user(user=user)
    agents = (
        User.objects.filter(is_active=True, teams__in=team_list).distinct().order_by("full_name")
    )
    return {"teams": team_list, "agents": list(agents)}


# --- The agent workspace: one conversation ---------------------------------------------------


@dataclass
class TimelineEntry:
    at: datetime
    message: Message | None = None
    event: Event | None = None
    contact_number: int | None = None
    contact: Contact | None = None


TIMELINE_EVENT_KINDS = (
    Event.Kind.SOLVED,
    Event.Kind.REOPENED,
    Event.Kind.ASSIGNED,
    Event.Kind.CLOSED,
    Event.Kind.MESSAGE_MOVED,
    Event.Kind.STATUS_CHANGED,
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


def customer_panel_data(*, user: User, conversation: Conversation) -> dict[str, Any]:
    """The customer panel: identities, other conversations, active merges (three queries)."""
    customer = conversation.customer
    identities = list(Identity.objects.filter(customer=customer).order_by("kind", "value"))
    others = list(
        Conversation.objects.filter(visible_conversations_q(user), customer=customer)
        .exclude(pk=conversation.pk)
        .order_by("-last_activity_at", "-id")[:20]
    )
    merges = list(
        CustomerMerge.objects.filter(target=customer, undone_at__isnull=True)
        .select_related("merged")
        .order_by("-created_at")
    )
    return {"identities": identities, "other_conversations": others, "merges": merges}


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


def saved_reply_list() -> list[SavedReply]:
    return list(SavedReply.objects.filter(is_active=True).order_by("title"))


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


def customer_id_by_handle(*, handle: str) -> int | None:
    """The customer holding an email, phone number (any format) or ``network:handle``; a bare
    number or ``#id`` is taken as a customer id. The caller checks it may open that customer."""
    handle = handle.strip()
    candidates: list[tuple[str, str]] = []
    for kind, normalise in (("email", normalise_email), ("phone", normalise_phone)):
        with contextlib.suppress(ValidationError):
            candidates.append((kind, normalise(handle)))
    network, sep, name = handle.partition(":")
    if sep:
        with contextlib.suppress(ValidationError):
            candidates.append(("social", normalise_social(network, name)))
    if candidates:
        query = Q(pk__in=[])
        for kind, value in candidates:
            query |= Q(kind=kind, value=value)
        found = Identity.objects.filter(query).values_list("customer_id", flat=True).first()
        if found is not None:
            return found
    if handle.lstrip("#").isdigit() and len(handle.lstrip("#")) < 12:
        return int(handle.lstrip("#"))
    return None


def chat_channel_for_page() -> Channel | None:
    """The channel the built-in /chat/ page feeds: the first active chat channel."""
    return Channel.objects.filter(kind="chat", is_active=True).order_by("pk").first()


def chat_channel_by_widget_key(*, key: str) -> Channel | None:
    """The active chat channel whose embeddable widget has this key."""
    if not key or len(key) > 64:
        return None
    return Channel.objects.filter(kind="chat", is_active=True, widget_key=key).first()


def channel_list_for_settings() -> list[Channel]:
    """Every channel for the survey and widget settings page (a handful of rows)."""
    return list(Channel.objects.select_related("team").order_by("kind", "name"))


def email_channel_list() -> list[Channel]:
    """Email channels for the sending-settings page (a handful of rows)."""
    return list(
        Channel.objects.filter(kind=ChannelKind.EMAIL).select_related("team").order_by("name")
    )
