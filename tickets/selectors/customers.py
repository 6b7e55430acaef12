"""Customers: the directory, the customer page, and finding one by handle, phone or email
(screen pop)."""

from __future__ import annotations

import contextlib
import re
from collections.abc import Sequence
from dataclasses import dataclass

from django.core.exceptions import ValidationError
from django.db.models import (
    Case,
    Count,
    Exists,
    IntegerField,
    OuterRef,
    Prefetch,
    Q,
    QuerySet,
    Subquery,
    Value,
    When,
)
from django.db.models.functions import Coalesce

from supportdesk.models import User
from tickets.identities import normalise_email, normalise_phone, normalise_social
from tickets.models import (
    Conversation,
    Customer,
    CustomerMerge,
    Identity,
    Organisation,
)
from tickets.selectors import CUSTOMER_PAGE_CONVERSATIONS, visible_conversations_q, visible_flag


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


def customers_visible_q(user: User) -> Q:
    """The customers ``user`` may open (``customer_get_for_user``'s rule as a filter): one of
    their conversations is visible, or they have none yet. Merged-away customers are left out."""
    live = Q(merged_into__isnull=True)
    if user.is_admin:
        return live
    has_visible = Exists(
        Conversation.objects.filter(visible_conversations_q(user), customer_id=OuterRef("pk"))
    )
    has_any = Exists(Conversation.objects.filter(customer_id=OuterRef("pk")))
    return live & (has_visible | ~has_any)


def identity_search_q(query: str) -> Q:
    """The identities a search string names: any containing it (email, handle), the phone number
    it is in any format, or, for 4 digits or more, any phone number containing them."""
    identity_q = Q(value__icontains=query.lower())
    with contextlib.suppress(ValidationError):
        identity_q |= Q(kind=Identity.Kind.PHONE, value=normalise_phone(query))
    digits = re.sub(r"\D", "", query)
    if len(digits) >= 4 and not re.search(r"[a-zA-Z@]", query):
        # A partial number ("555 0100") matches inside the stored E.164 value.
        # (icontains on digits is contains, and the trigram index serves it on PostgreSQL.)
        identity_q |= Q(kind=Identity.Kind.PHONE, value__icontains=digits)
    return identity_q


def customer_search_q(query: str) -> Q:
    """Name, organisation, or any identity (email, handle, a phone number in any format)."""
    query = query.strip()
    if not query:
        return Q()
    identity_q = identity_search_q(query)
    matches = (
        Q(name__icontains=query)
        | Q(organisation__name__icontains=query)
        | Q(pk__in=Identity.objects.filter(identity_q).values("customer_id"))
    )
    if query.lstrip("#").isdigit() and len(query.lstrip("#")) < 12:
        matches |= Q(pk=int(query.lstrip("#")))
    return matches


def customer_list_for_user(*, user: User, query: str = "") -> QuerySet[Customer]:
    """The customer directory: customers the user may open matching ``query``, by name.

    Each row carries its identities (prefetched), its organisation and how many conversations it
    has (``conversation_count``) and how many are active (``open_count``): three queries a page.
    """
    return (
        Customer.objects.filter(customers_visible_q(user))
        .filter(customer_search_q(query))
        .select_related("organisation")
        .prefetch_related(
            Prefetch("identities", queryset=Identity.objects.order_by("kind", "value"))
        )
        .annotate(
            # Correlated counts, not a GROUP BY over every customer's conversations: PostgreSQL
            # evaluates them for the page's rows only, after the sort and the limit (served by
            # the tickets_conv_customer index).
            conversation_count=_count_of(Conversation.objects.all()),
            open_count=_count_of(
                Conversation.objects.filter(status__in=Conversation.ACTIVE_STATUSES)
            ),
        )
        .order_by("name", "id")
    )


def _count_of(conversations: QuerySet[Conversation]) -> Coalesce:
    counted = (
        conversations.filter(customer_id=OuterRef("pk"))
        .order_by()
        .values("customer_id")
        .annotate(n=Count("pk"))
        .values("n")[:1]
    )
    return Coalesce(Subquery(counted, output_field=IntegerField()), Value(0))


@dataclass
class CustomerPage:
    customer: Customer
    identities: list[Identity]
    # Every conversation of the customer, open ones first, each with ``visible`` (may the user
    # open it). Those not visible are shown without their messages.
    conversations: Sequence[Conversation]
    conversation_total: int
    merges: list[CustomerMerge]


def customer_page_data(*, user: User, customer: Customer) -> CustomerPage:
    """What the customer page reads, in five queries whatever the customer has: identities, the
    user's teams, conversations (open first; up to ``CUSTOMER_PAGE_CONVERSATIONS``), their count
    and the merges into the customer."""
    identities = list(Identity.objects.filter(customer=customer).order_by("kind", "value"))
    active_first = Case(
        When(status__in=Conversation.ACTIVE_STATUSES, then=Value(0)),
        default=Value(1),
    )
    conversations = list(
        Conversation.objects.filter(customer=customer)
        .select_related("team", "assignee")
        .annotate(visible=visible_flag(user), active_rank=active_first)
        .order_by("active_rank", "-last_activity_at", "-id")[:CUSTOMER_PAGE_CONVERSATIONS]
    )
    total = (
        len(conversations)
        if len(conversations) < CUSTOMER_PAGE_CONVERSATIONS
        else Conversation.objects.filter(customer=customer).count()
    )
    merges = list(
        CustomerMerge.objects.filter(target=customer, undone_at__isnull=True)
        .select_related("merged")
        .order_by("-created_at")
    )
    return CustomerPage(
        customer=customer,
        identities=identities,
        conversations=conversations,
        conversation_total=total,
        merges=merges,
    )


def customer_conversations_elsewhere(*, user: User, customer: Customer) -> list[Conversation]:
    """The customer's conversations in teams ``user`` is not in, newest first: that they exist,
    for the customer API (two queries: the user's teams, the conversations)."""
    if user.is_admin:
        return []
    return list(
        Conversation.objects.filter(customer=customer)
        .exclude(visible_conversations_q(user))
        .select_related("team")
        .order_by("-last_activity_at", "-id")[:CUSTOMER_PAGE_CONVERSATIONS]
    )


def customer_by_lookup(*, phone: str = "", email: str = "") -> Customer | None:
    """The (live) customer holding this phone number (any format) or email address; None when
    nobody does or the value is not a number or an address. The caller checks visibility."""
    candidates: list[tuple[str, str]] = []
    if phone:
        with contextlib.suppress(ValidationError):
            candidates.append(("phone", normalise_phone(phone)))
    if email:
        with contextlib.suppress(ValidationError):
            candidates.append(("email", normalise_email(email)))
    for kind, value in candidates:
        identity = (
            Identity.objects.select_related("customer").filter(kind=kind, value=value).first()
        )
        if identity is not None:
            customer = identity.customer
            seen: set[int] = set()
            while customer.merged_into_id is not None and customer.pk not in seen:
                seen.add(customer.pk)
                customer = Customer.objects.get(pk=customer.merged_into_id)
            return customer
    return None


def organisation_list() -> list[Organisation]:
    """Every organisation by name (the customer page's picker; desk-wide by design)."""
    return list(Organisation.objects.order_by("name"))
