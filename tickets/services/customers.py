"""Customers and their identities: finding, linking, merging and undoing merges."""

from __future__ import annotations

import re
from collections.abc import Iterable, Sequence
from typing import Any, Final

from django.core.exceptions import ValidationError
from django.db import IntegrityError, transaction
from django.db.models import Q
from django.utils import timezone

from supportdesk.errors import ApplicationError, Conflict
from supportdesk.languages import supported_language, supported_languages
from supportdesk.models import AuditEntry, User
from supportdesk.services import audit_record
from tickets.identities import normalise_identity
from tickets.models import Conversation, Customer, CustomerMerge, Event, Identity, Organisation
from tickets.services.events import event_record


def customer_for_handles(
    handles: Sequence[tuple[str, str, str]], *, name: str = "", verified_kind: str = ""
) -> tuple[Customer, dict[str, Identity]]:
    """Find the customer by an exact identity match, or create one.

    ``handles`` are ``(kind, normalised value, display)`` in order of strength: the first that
    already exists decides the customer; the others are attached to that customer if nobody
    holds them yet (never taken from another customer: that takes a merge). A handle of
    ``verified_kind`` that is created here is created verified (the message came from it).

    For ingestion only, inside its retrying savepoint: a handle another transaction created
    since the lookup fails the insert with an ``IntegrityError``, which rolls the ingestion
    back whole; its retry then finds that handle (see ``tickets.services.ingest.ingest``).
    """
    existing = {
        (identity.kind, identity.value): identity
        for identity in Identity.objects.select_related("customer").filter(_handles_q(handles))
    }
    customer: Customer | None = None
    for kind, value, _display in handles:
        identity = existing.get((kind, value))
        if identity is not None:
            customer = _live_customer(identity.customer)
            break
    if customer is None:
        customer = Customer.objects.create(
            name=name[:200], organisation=organisation_for_handles(handles)
        )
    elif name and not customer.name:
        customer.name = name[:200]
        customer.save(update_fields=["name", "updated_at"])
    identities: dict[str, Identity] = {}
    for kind, value, display in handles:
        # Not found by the lookup above: created without a second look. A concurrent first
        # message from the same handle makes this insert fail (the unique constraint); the
        # ingestion rolls back whole and its retry finds the winner's customer, so the person
        # is never split in two.
        identities[kind] = existing.get((kind, value)) or Identity.objects.create(
            kind=kind,
            value=value,
            customer=customer,
            display_value=display or value,
            verified=kind == verified_kind,
        )
    return customer, identities


def _handles_q(handles: Sequence[tuple[str, str, str]]) -> Q:
    query = Q(pk__in=[])
    for kind, value, _ in handles:
        query |= Q(kind=kind, value=value)
    return query


def live_customer(customer: Customer) -> Customer:
    """The customer a handle's customer was merged into (itself when never merged)."""
    return _live_customer(customer)


def _live_customer(customer: Customer) -> Customer:
    """Follow merges: a handle still pointing at a merged-away customer means its target."""
    seen = set()
    while customer.merged_into_id is not None and customer.pk not in seen:
        seen.add(customer.pk)
        customer = Customer.objects.get(pk=customer.merged_into_id)
    return customer


class HandleTaken(Conflict):
    """The handle belongs to another customer. The holder's id stays on the exception for a
    caller that checks the viewer may see that customer; it is never part of the answer."""

    def __init__(self, *, holder_id: int) -> None:
        super().__init__("This handle belongs to another customer; merge the customers instead.")
        self.holder_id = holder_id


@transaction.atomic
def identity_link(*, customer: Customer, kind: str, value: str, actor: User | None) -> Identity:
    """Link a handle to ``customer`` (unverified). Raises HandleTaken when another customer
    holds it, with the same answer whether or not the actor may see that customer."""
    _refuse_erased(customer)
    try:
        normalised = normalise_identity(kind, value)
    except ValidationError as exc:
        raise ApplicationError(exc.messages[0]) from exc
    existing = (
        Identity.objects.select_related("customer").filter(kind=kind, value=normalised).first()
    )
    if existing is not None:
        if existing.customer_id == customer.pk:
            return existing
        raise HandleTaken(holder_id=existing.customer_id)
    try:
        with transaction.atomic():
            identity = Identity.objects.create(
                customer=customer,
                kind=kind,
                value=normalised,
                display_value=value.strip(),
                # An agent typing a handle proves nothing: it is verified when the customer
                # writes from it.
                verified=False,
            )
    except IntegrityError as exc:
        # Linked by someone else between our check and the insert (the unique constraint).
        raise Conflict("This handle was just linked to a customer; reload and try again.") from exc
    event_record(
        kind=Event.Kind.IDENTITY_LINKED,
        customer=customer,
        actor=actor,
        data={"identity": identity.pk, "kind": kind, "value": normalised},
    )
    if customer.organisation_id is None and kind == Identity.Kind.EMAIL:
        organisation = organisation_for_handles([(kind, normalised, value)])
        if organisation is not None:
            _organisation_link(customer, organisation, actor=actor, by="domain")
    return identity


def _refuse_erased(customer: Customer) -> None:
    if customer.erased_at is not None:
        raise Conflict("This customer was erased; nothing can be added to it.")


@transaction.atomic
def customer_merge(*, target: Customer, other: Customer, actor: User | None) -> CustomerMerge:
    """Merge ``other`` into ``target``: identities and conversations move to ``target``.

    ``other`` is kept, marked ``merged_into``, so that ``customer_merge_undo`` can move back
    exactly what moved (recorded in the CustomerMerge row). Survey history moves by the surveys
    app's reaction to the ``customer.merged`` event. The event carries the local dates of the
    affected solves so the metrics app can recompute those periods.
    """
    if target.pk == other.pk:
        raise ApplicationError("A customer cannot be merged into itself.")
    locked = {
        c.pk: c for c in Customer.objects.select_for_update().filter(pk__in=[target.pk, other.pk])
    }
    target, other = locked[target.pk], locked[other.pk]
    _refuse_erased(target)
    _refuse_erased(other)
    if other.merged_into_id is not None:
        raise Conflict("That customer was already merged into another one.")
    if target.merged_into_id is not None:
        raise Conflict("The target customer was itself merged; merge into its successor instead.")
    identity_ids = list(other.identities.values_list("pk", flat=True))
    conversation_ids = list(other.conversations.values_list("pk", flat=True))
    affected_dates = solve_dates(conversation_ids)
    other.identities.update(customer=target)
    other.conversations.update(customer=target)
    other.merged_into = target
    other.save(update_fields=["merged_into", "updated_at"])
    if not target.name and other.name:
        target.name = other.name
        target.save(update_fields=["name", "updated_at"])
    merge = CustomerMerge.objects.create(
        target=target,
        merged=other,
        actor=actor,
        identity_ids=identity_ids,
        conversation_ids=conversation_ids,
        merged_name=other.name,
    )
    event_record(
        kind=Event.Kind.CUSTOMER_MERGED,
        customer=target,
        actor=actor,
        data={
            "merge": merge.pk,
            "target": target.pk,
            "merged": other.pk,
            "identity_ids": identity_ids,
            "conversation_ids": conversation_ids,
            "affected_dates": affected_dates,
        },
    )
    audit_record(
        action=AuditEntry.Action.CUSTOMER_MERGED,
        target=target,
        actor=actor,
        summary=f"Customer #{other.pk} merged into #{target.pk}",
        details={
            "merge": merge.pk,
            "merged": other.pk,
            "identity_ids": identity_ids,
            "conversation_ids": conversation_ids,
        },
    )
    return merge


@transaction.atomic
def customer_merge_undo(*, merge: CustomerMerge, actor: User | None) -> CustomerMerge:
    """Move back what a merge moved. Identities linked or conversations opened since stay."""
    merge = CustomerMerge.objects.select_for_update().get(pk=merge.pk)
    if merge.undone_at is not None:
        raise Conflict("This merge was already undone.")
    other = Customer.objects.select_for_update().get(pk=merge.merged_id)
    Identity.objects.filter(pk__in=merge.identity_ids, customer_id=merge.target_id).update(
        customer=other
    )
    Conversation.objects.filter(pk__in=merge.conversation_ids, customer_id=merge.target_id).update(
        customer=other
    )
    other.merged_into = None
    other.save(update_fields=["merged_into", "updated_at"])
    merge.undone_at = timezone.now()
    merge.undone_by = actor
    merge.save(update_fields=["undone_at", "undone_by"])
    event_record(
        kind=Event.Kind.CUSTOMER_MERGE_UNDONE,
        customer=merge.target,
        actor=actor,
        data={
            "merge": merge.pk,
            "target": merge.target_id,
            "merged": merge.merged_id,
            "identity_ids": merge.identity_ids,
            "conversation_ids": merge.conversation_ids,
            "affected_dates": solve_dates(merge.conversation_ids),
        },
    )
    audit_record(
        action=AuditEntry.Action.CUSTOMER_MERGE_UNDONE,
        target=("tickets.customer", merge.target_id),
        actor=actor,
        summary=f"Merge of customer #{merge.merged_id} into #{merge.target_id} undone",
        details={
            "merge": merge.pk,
            "merged": merge.merged_id,
            "identity_ids": merge.identity_ids,
            "conversation_ids": merge.conversation_ids,
        },
    )
    return merge


def solve_dates(conversation_ids: Iterable[int]) -> list[str]:
    tz = timezone.get_current_timezone()
    stamps = Event.objects.filter(
        conversation_id__in=list(conversation_ids), kind=Event.Kind.SOLVED
    ).values_list("occurred_at", flat=True)
    return sorted({stamp.astimezone(tz).date().isoformat() for stamp in stamps})


# --- Customers: create, edit; organisations ---------------------------------------------------------

# The value a keyword of ``customer_update`` has when the caller leaves that field alone.
UNCHANGED: Final[Any] = object()

_LANGUAGE_RE = re.compile(r"^[a-z]{2,3}(-[a-z0-9]{2,8}){0,2}$")
_DOMAIN_RE = re.compile(r"^(?=.{1,253}$)([a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?\.)+[a-z]{2,63}$")


def _language_clean(value: str) -> str:
    language = (value or "").strip().lower().replace("_", "-")
    if language and not _LANGUAGE_RE.match(language):
        raise ApplicationError(
            f"{value!r} is not a language tag; write it like en, es, fr, de or pt-br."
        )
    return language


def organisation_for_handles(handles: Iterable[tuple[str, str, str]]) -> Organisation | None:
    """The organisation whose domain is the domain of the first email address among ``handles``
    (one query when there is an address, none otherwise)."""
    for kind, value, _display in handles:
        if kind == Identity.Kind.EMAIL and "@" in value:
            domain = value.rpartition("@")[2]
            return Organisation.objects.exclude(domain="").filter(domain=domain).first()
    return None


def _organisation_link(
    customer: Customer, organisation: Organisation | None, *, actor: User | None, by: str
) -> None:
    previous = customer.organisation_id
    customer.organisation = organisation
    customer.save(update_fields=["organisation", "updated_at"])
    event_record(
        kind=Event.Kind.CUSTOMER_UPDATED,
        customer=customer,
        actor=actor,
        data={
            "organisation": {"from": previous, "to": organisation.pk if organisation else None},
            "by": by,
        },
    )


@transaction.atomic
def customer_create(
    *,
    actor: User | None,
    name: str = "",
    handles: Sequence[tuple[str, str]] = (),
    organisation: Organisation | None = None,
    language: str = "",
    notes: str = "",
) -> Customer:
    """A new customer with its handles (``(kind, value)``, written as the agent typed them).

    The handles are normalised and linked unverified (the customer has not written from them).
    A handle that belongs to someone already raises ``HandleTaken`` and nothing is stored. With no
    ``organisation``, the domain of the first email address may link one (``Organisation.domain``).
    Records ``customer.created``.
    """
    name = (name or "").strip()
    normalised: list[tuple[str, str, str]] = []
    for kind, value in handles:
        try:
            normalised.append((kind, normalise_identity(kind, value), value.strip()))
        except ValidationError as exc:
            raise ApplicationError(exc.messages[0]) from exc
    if not name and not normalised:
        raise ApplicationError("A customer needs a name or a handle (email, phone...).")
    taken = Identity.objects.filter(_handles_q(normalised)).values_list("customer_id", flat=True)
    holder = taken.first()
    if holder is not None:
        raise HandleTaken(holder_id=holder)
    customer = Customer.objects.create(
        name=name[:200],
        notes=notes,
        language=_language_clean(language),
        organisation=organisation or organisation_for_handles(normalised),
    )
    try:
        with transaction.atomic():
            Identity.objects.bulk_create(
                Identity(
                    customer=customer, kind=kind, value=value, display_value=display, verified=False
                )
                for kind, value, display in dict.fromkeys(normalised)
            )
    except IntegrityError as exc:
        raise Conflict(
            "One of these handles was just linked to a customer; look it up again."
        ) from exc
    event_record(
        kind=Event.Kind.CUSTOMER_CREATED,
        customer=customer,
        actor=actor,
        data={
            "handles": [[kind, value] for kind, value, _ in normalised],
            "organisation": customer.organisation_id,
        },
    )
    return customer


@transaction.atomic
def customer_update(
    *,
    customer: Customer,
    actor: User | None,
    name: Any = UNCHANGED,
    language: Any = UNCHANGED,
    organisation: Any = UNCHANGED,
    notes: Any = UNCHANGED,
) -> Customer:
    """Change what agents know about a customer; a keyword left out stays as it is.

    ``organisation`` is an ``Organisation`` or None (unlinks). Records ``customer.updated`` with
    the fields that changed (from, to); nothing is recorded when nothing changed. Locks the row.
    """
    customer = Customer.objects.select_for_update().get(pk=customer.pk)
    _refuse_erased(customer)
    if customer.merged_into_id is not None:
        raise Conflict("This customer was merged into another one; edit that one instead.")
    wanted: dict[str, Any] = {}
    if name is not UNCHANGED:
        wanted["name"] = (name or "").strip()[:200]
    if language is not UNCHANGED:
        wanted["language"] = _language_clean(language or "")
    if notes is not UNCHANGED:
        wanted["notes"] = notes or ""
    if organisation is not UNCHANGED:
        wanted["organisation_id"] = organisation.pk if organisation is not None else None
    changes = {
        field: {"from": getattr(customer, field), "to": value}
        for field, value in wanted.items()
        if getattr(customer, field) != value
    }
    if not changes:
        return customer
    for field, change in changes.items():
        setattr(customer, field, change["to"])
    customer.save(update_fields=[*changes, "updated_at"])
    event_record(
        kind=Event.Kind.CUSTOMER_UPDATED,
        customer=customer,
        actor=actor,
        data={
            # Notes can be long: the event says that they changed, not what they say.
            (key.removesuffix("_id")): ({"changed": True} if key == "notes" else change)
            for key, change in changes.items()
        },
    )
    return customer


@transaction.atomic
def customer_language_set(*, customer: Customer, language: str, actor: User | None) -> Customer:
    """Set the language mail to ``customer`` is written in (a supported tag, or "" for not
    known); records ``customer.language_set``. Unchanged: nothing recorded."""
    code = supported_language(language) if language.strip() else ""
    if language.strip() and not code:
        raise ApplicationError(
            "Choose one of the languages: " + ", ".join(supported_languages()) + "."
        )
    customer = Customer.objects.select_for_update().get(pk=customer.pk)
    if customer.language == code:
        return customer
    previous = customer.language
    customer.language = code
    customer.save(update_fields=["language", "updated_at"])
    event_record(
        kind=Event.Kind.CUSTOMER_LANGUAGE_SET,
        customer=customer,
        actor=actor,
        data={"language": code, "previous": previous, "source": "staff" if actor else "detected"},
    )
    return customer


def organisation_get_or_create(*, name: str) -> Organisation:
    """The organisation of that name (any case), or a new one without a domain."""
    name = (name or "").strip()[:200]
    if not name:
        raise ApplicationError("An organisation needs a name.")
    found = Organisation.objects.filter(name__iexact=name).first()
    if found is not None:
        return found
    try:
        with transaction.atomic():
            return Organisation.objects.create(name=name)
    except IntegrityError:
        return Organisation.objects.get(name__iexact=name)


@transaction.atomic
def organisation_create_or_update(
    *,
    name: str,
    domain: str = "",
    notes: str | None = None,
    organisation: Organisation | None = None,
    actor: User | None = None,
) -> tuple[Organisation, int]:
    """Create or edit an organisation (the admin's form). Setting a ``domain`` links every
    customer without an organisation who has an email address at that domain (one
    ``customer.updated`` event each); customers already in another organisation stay there.
    Returns the organisation and how many customers were linked."""
    domain = (domain or "").strip().lower().lstrip("@")
    if domain and not _DOMAIN_RE.match(domain):
        raise ApplicationError(f"{domain!r} is not a domain name (like example.com).")
    name = (name or "").strip()[:200]
    if not name:
        raise ApplicationError("An organisation needs a name.")
    clash = Organisation.objects.filter(domain=domain).exclude(domain="")
    if organisation is not None:
        clash = clash.exclude(pk=organisation.pk)
    other = clash.first()
    if other is not None:
        raise Conflict(f"The domain {domain} already belongs to {other.name}.")
    if organisation is None:
        organisation = Organisation(name=name)
    organisation.name = name
    organisation.domain = domain
    if notes is not None:
        organisation.notes = notes
    organisation.save()
    linked = 0
    if domain:
        at_domain = Identity.objects.filter(
            kind=Identity.Kind.EMAIL, value__endswith=f"@{domain}"
        ).values("customer_id")
        candidates = Customer.objects.filter(
            organisation__isnull=True, merged_into__isnull=True, pk__in=at_domain
        ).order_by("pk")
        for customer in candidates.select_for_update():
            _organisation_link(customer, organisation, actor=actor, by="domain")
            linked += 1
    return organisation, linked


def customer_language_detected(*, customer_id: int, language: str) -> bool:
    """Store a language seen from the customer (browser, email header) when none is known yet;
    an agent's choice or an earlier detection is never overwritten. True when stored.

    One conditional UPDATE: cheap on every message and safe against a concurrent edit."""
    code = supported_language(language)
    if not code:
        return False
    with transaction.atomic():
        updated = Customer.objects.filter(pk=customer_id, language="").update(
            language=code, updated_at=timezone.now()
        )
        if updated:
            event_record(
                kind=Event.Kind.CUSTOMER_LANGUAGE_SET,
                customer=Customer(pk=customer_id),
                actor=None,
                data={"language": code, "previous": "", "source": "detected"},
            )
    return bool(updated)
