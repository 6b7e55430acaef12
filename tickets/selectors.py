"""Reads of the tickets app, scoped to what the caller may open."""

from __future__ import annotations

from typing import Any

from django.db.models import Prefetch, Q, QuerySet
from django.http import Http404

from supportdesk.models import Team, User
from tickets.models import (
    Attachment,
    Channel,
    Conversation,
    Customer,
    CustomerMerge,
    Identity,
    Message,
)


def visible_conversations_q(user: User, prefix: str = "") -> Q:
    """Admins see everything; others see their teams' conversations and unrouted ones."""
    if user.is_admin:
        return Q()
    team_ids = list(user.teams.values_list("pk", flat=True))
    return Q(**{f"{prefix}team__in": team_ids}) | Q(**{f"{prefix}team__isnull": True})


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
                queryset=Message.objects.select_related("author", "identity", "contact")
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
    if not secret:
        return None
    return Channel.objects.select_related("team").filter(secret=secret, is_active=True).first()


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
