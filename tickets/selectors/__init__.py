"""Reads of the tickets app, scoped to what the caller may open; import from here
(``tickets.selectors``).

This module holds the conversation reads (visibility, one conversation); its submodules hold
the rest and are re-exported below:

- ``queue``: the agent's queue (views, filters, keyset pages, tab counts), tags, saved replies
- ``search``: full-text search of message text and its highlighted fragments
- ``channels``: channels and mailboxes (webhook secrets, settings pages, where to write first)
- ``customers``: the customer directory, the customer page, lookups by handle, phone or email
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from django.db.models import (
    BooleanField,
    Case,
    Exists,
    Prefetch,
    Q,
    QuerySet,
    Value,
    When,
)
from django.http import Http404
from django.utils import timezone

from supportdesk.models import Team, User
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
        qs = on_channel(qs, channel)
    return qs


def on_channel(qs: QuerySet[Conversation], channel: str) -> QuerySet[Conversation]:
    """The conversations of ``qs`` held on ``channel`` (a kind)."""
    if json_contains_supported():
        return qs.filter(channels__contains=[channel])
    return qs.filter(channels__icontains=f'"{channel}"')


def json_contains_supported() -> bool:
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


# What the conversation page reads of each message and of the rows joined to it (the timeline,
# tickets/_message.html and tickets.fragments.message_parts): no MIME, no threading headers, no
# timestamps of the joined rows, no password hashes of the authors.
_PAGE_MESSAGE_FIELDS = (
    "id", "conversation_id", "contact_id", "channel_kind", "direction", "author_id",
    "identity_id", "participant_id", "subject", "body_text", "body_html", "automated", "sent_at",
    "delivery_state", "delivery_error", "delivery_attempts", "claimed_email", "cc", "bcc",
    "author__id", "author__full_name", "author__email",
    "identity__id", "identity__value", "identity__display_value",
    "contact__id", "contact__channel_kind", "contact__reason", "contact__wait_seconds",
    "contact__talk_seconds", "contact__hold_seconds", "contact__ended_by",
    "participant__id", "participant__name", "participant__email",
    "call_log__id", "call_log__message_id", "call_log__direction", "call_log__ended_by",
    "call_log__wait_seconds", "call_log__talk_seconds", "call_log__hold_seconds",
    "call_log__logged_by_id", "call_log__logged_by__id", "call_log__logged_by__full_name",
    "call_log__logged_by__email",
)  # fmt: skip


def conversation_messages_for_page(*, conversation: Conversation) -> list[Message]:
    """The conversation page's messages in time order, each with ``attachment_list`` (its
    files by id) and the rows the page shows joined (two queries; one without messages).

    The files are grouped here rather than by ``prefetch_related``, which builds a filtered
    queryset per message (most of the ORM's cost of a 50-message page).
    """
    messages = list(
        Message.objects.filter(conversation=conversation)
        .select_related("author", "identity", "contact", "participant", "call_log__logged_by")
        .only(*_PAGE_MESSAGE_FIELDS)
        .order_by("sent_at", "id")
    )
    files: dict[int, list[Attachment]] = {}
    if messages:
        for attachment in (
            Attachment.objects.filter(message_id__in=[m.pk for m in messages])
            .only("id", "message_id", "filename", "size")
            .order_by("id")
        ):
            files.setdefault(attachment.message_id, []).append(attachment)
    for message in messages:
        message.attachment_list = files.get(message.pk, [])  # type: ignore[attr-defined]
    return messages


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


# What the timeline shows of an event: its kind, time, data and who (by name).
_TIMELINE_EVENT_FIELDS = (
    "id", "kind", "occurred_at", "data", "actor_id", "agent_id",
    "actor__id", "actor__full_name", "actor__email", "agent__id", "agent__full_name", "agent__email",
)  # fmt: skip


def conversation_timeline(
    *, conversation: Conversation, messages: Sequence[Message]
) -> list[TimelineEntry]:
    """Messages and status events in time order; the first message of each contact carries the
    contact's number (docs/metrics.md "Counting contacts"). ``messages``: the conversation's, as
    ``conversation_messages_for_page`` reads them; runs two queries (contact ids, events)."""
    contact_ids = conversation.contacts.order_by("started_at", "id").values_list("pk", flat=True)
    numbers = {pk: index for index, pk in enumerate(contact_ids, start=1)}
    entries: list[TimelineEntry] = []
    marked: set[int] = set()
    for message in messages:
        entry = TimelineEntry(at=message.sent_at, message=message)
        if message.contact_id and message.contact_id not in marked:
            marked.add(message.contact_id)
            entry.contact_number = numbers.get(message.contact_id)
            entry.contact = message.contact
        entries.append(entry)
    events = (
        Event.objects.filter(conversation=conversation, kind__in=TIMELINE_EVENT_KINDS)
        .select_related("actor", "agent")
        .only(*_TIMELINE_EVENT_FIELDS)
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


# What tickets/_past_conversations.html and the move form read of the other conversations
# (tickets.fragments.past_conversation_parts).
_PAST_CONVERSATION_FIELDS = (
    "id", "customer_id", "team_id", "subject", "status", "channels", "last_activity_at",
    "team__id", "team__name",
)  # fmt: skip


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
        .only(*_PAST_CONVERSATION_FIELDS)
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
    agents = User.objects.filter(is_active=True).only("id", "full_name", "email")  # the <option>s
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
from tickets.selectors.queue import (  # noqa: E402
    QueueView as QueueView,
    QUEUE_VIEWS as QUEUE_VIEWS,
    QUEUE_PAGE_SIZE as QUEUE_PAGE_SIZE,
    RECENTLY_SOLVED_DAYS as RECENTLY_SOLVED_DAYS,
    QueuePage as QueuePage,
    PREVIEW_CHARS as PREVIEW_CHARS,
    queue_search_q as queue_search_q,
    DUE_SOON as DUE_SOON,
    queue_cursor as queue_cursor,
    queue_page_for_user as queue_page_for_user,
    team_list_for_user as team_list_for_user,
    queue_filter_choices as queue_filter_choices,
    tag_list as tag_list,
    tag_list_with_counts as tag_list_with_counts,
    tag_get as tag_get,
    conversations_for_bulk as conversations_for_bulk,
    saved_reply_get as saved_reply_get,
)
