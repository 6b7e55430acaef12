"""Privacy: erase a customer, export what we hold about one, and the retention policy's nightly run.

Erasure keeps the conversations as anonymous shells: every row a figure reads (conversations'
statuses and dates, contacts, events, messages' direction and times, survey scores, QA scores)
stays, and only personal text goes (names, handles, subjects, bodies, raw mail, files, comments).
Identities are deleted, so nobody is found by a former handle and new mail from it starts a new
customer. Higher apps remove their own text through ``supportdesk.extensions.register_eraser``,
inside the same transaction: an erasure is whole or not at all.
"""

from __future__ import annotations

import io
import json
import logging
import re
import time
import zipfile
from collections.abc import Iterable, Mapping, Sequence
from datetime import timedelta
from typing import Any

from django.core.files.storage import default_storage
from django.core.serializers.json import DjangoJSONEncoder
from django.db import transaction
from django.db.models import Q
from django.db.models.functions import Length
from django.utils import timezone

from supportdesk import extensions
from supportdesk.errors import ApplicationError, Conflict
from supportdesk.extensions import PrivacyScope
from supportdesk.models import AuditEntry, User
from supportdesk.privacy import (
    json_scrub,
    mail_sink_scrub,
    needles_clean,
    notifications_about_conversations_scrub,
    personal_text_scrub,
)
from supportdesk.services import audit_record
from tickets.models import (
    Attachment,
    Conversation,
    ConversationParticipant,
    Customer,
    CustomerMerge,
    Event,
    Identity,
    Message,
    QuarantinedMessage,
    RetentionPolicy,
    RetentionRun,
)
from tickets.services.events import event_record

logger = logging.getLogger(__name__)

# Keys of event data that hold what a person typed or is called: replaced whole on erasure.
EVENT_PERSONAL_KEYS = frozenset(
    {"handles", "value", "name", "notes", "reason", "email", "address", "subject", "body"}
)
# Of those, the keys that name the person (former names, handles): searched for everywhere. A
# reason ("Survey: the customer answered...") is not theirs alone, and is only blanked in place.
_EVENT_HANDLE_KEYS = frozenset({"handles", "value", "name", "email", "address"})
# Lines of a message this long are searched for on their own (a notification or audit entry may
# quote one line of it).
_QUOTED_LINE_MIN = 20


def _customer_ids(customer: Customer) -> list[int]:
    """The customer and every customer merged into it (at any depth)."""
    ids = [customer.pk]
    frontier = [customer.pk]
    while frontier:
        frontier = list(
            Customer.objects.filter(merged_into_id__in=frontier).values_list("pk", flat=True)
        )
        ids.extend(pk for pk in frontier if pk not in ids)
    return ids


def _text_needles(messages: Iterable[Mapping[str, Any]]) -> list[str]:
    found: list[str] = []
    for row in messages:
        for field in ("subject", "body_text", "claimed_email", "delivery_error"):
            text = row.get(field) or ""
            found.append(text)
            if field == "body_text":
                found.extend(
                    line for line in text.splitlines() if len(line.strip()) >= _QUOTED_LINE_MIN
                )
        for field in ("cc", "bcc"):
            found.extend(str(v) for v in row.get(field) or [])
    return found


def _event_strings(customer_ids: Sequence[int]) -> list[str]:
    """What the customer's events remember of them: former names, handles once linked."""
    found: list[str] = []

    def walk(item: Any, personal: bool) -> None:
        if isinstance(item, dict):
            for key, value in item.items():
                walk(value, personal or key in _EVENT_HANDLE_KEYS)
        elif isinstance(item, list):
            for value in item:
                walk(value, personal)
        elif isinstance(item, str) and personal:
            found.append(item)

    for data in (
        Event.objects.filter(customer_id__in=customer_ids).exclude(data={}).values_list("data")
    ):
        walk(data[0], False)
    return found


def _messages_scrub(conversation_ids: Sequence[int]) -> tuple[int, int]:
    """Blank every message of these conversations and delete their files; (messages, files)."""
    messages = Message.objects.filter(conversation_id__in=conversation_ids)
    files = _attachments_delete(Attachment.objects.filter(message__in=messages))
    changed = messages.update(
        subject="",
        body_text="",
        body_html="",
        raw=b"",
        message_id="",
        in_reply_to="",
        references="",
        external_id=None,
        claimed_email="",
        cc=[],
        bcc=[],
        delivery_error="",
        participant=None,
        identity=None,
    )
    ConversationParticipant.objects.filter(conversation_id__in=conversation_ids).delete()
    return changed, files


def _attachments_delete(attachments: Any) -> int:
    """Delete attachment rows now and their stored files once the transaction commits."""
    names = [name for name in attachments.values_list("file", flat=True) if name]
    deleted: int = attachments.delete()[0]

    def remove_files() -> None:
        for name in names:
            try:
                default_storage.delete(name)
            except OSError:  # pragma: no cover - a full disk or a permission problem
                logger.exception("privacy: could not delete stored file %s", name)

    transaction.on_commit(remove_files)
    return deleted


def _events_scrub(
    customer_ids: Sequence[int], conversation_ids: Sequence[int], needles: Sequence[str]
) -> int:
    changed = 0
    where = Q(customer_id__in=customer_ids) | Q(conversation_id__in=conversation_ids)
    for event in Event.objects.filter(where).exclude(data={}).only("pk", "data"):
        data = json_scrub(event.data, needles, keys=EVENT_PERSONAL_KEYS)
        if data != event.data:
            Event.objects.filter(pk=event.pk).update(data=data)
            changed += 1
    return changed


@transaction.atomic
def customer_erase(*, customer: Customer, actor: User | None) -> dict[str, int]:
    """Erase ``customer``'s personal data everywhere; the conversations stay as anonymous shells.

    Covers the customers merged into it. Deletes identities, participants, attachments (and their
    files) and mail log rows; blanks names, notes, subjects, bodies, raw MIME and addresses; scrubs
    event data, audit entries, notifications and the outbox; higher apps erase their own text.
    Records ``customer.erased`` and an audit entry that say how much went, never what.
    """
    customer = Customer.objects.select_for_update().get(pk=customer.pk)
    if customer.merged_into_id is not None:
        raise Conflict(
            f"This customer was merged into customer #{customer.merged_into_id}; erase that one."
        )
    if customer.erased_at is not None:
        raise Conflict("This customer was already erased.")
    customer_ids = _customer_ids(customer)
    list(Customer.objects.select_for_update().filter(pk__in=customer_ids).values_list("pk"))
    conversation_ids = list(
        Conversation.objects.filter(customer_id__in=customer_ids)
        .order_by("pk")
        .values_list("pk", flat=True)
    )
    identities = list(Identity.objects.filter(customer_id__in=customer_ids))
    addresses = [i.value for i in identities if i.kind == Identity.Kind.EMAIL]
    participants = list(
        ConversationParticipant.objects.filter(conversation_id__in=conversation_ids).values_list(
            "email", "name"
        )
    )
    addresses += [email for email, _ in participants]
    message_rows = Message.objects.filter(conversation_id__in=conversation_ids).values(
        "subject", "body_text", "claimed_email", "delivery_error", "cc", "bcc"
    )
    needles = needles_clean(
        [
            *Customer.objects.filter(pk__in=customer_ids).values_list("name", flat=True),
            *Customer.objects.filter(pk__in=customer_ids).values_list("notes", flat=True),
            *CustomerMerge.objects.filter(merged_id__in=customer_ids).values_list(
                "merged_name", flat=True
            ),
            *(i.value for i in identities),
            *(i.display_value for i in identities),
            # A social handle is stored "network:handle": the handle alone too.
            *(i.value.partition(":")[2] for i in identities if i.kind == Identity.Kind.SOCIAL),
            *(name for _, name in participants),
            *_event_strings(customer_ids),
            *addresses,
            *Conversation.objects.filter(pk__in=conversation_ids).values_list("subject", flat=True),
            *_text_needles(message_rows),
        ]
    )
    scope = PrivacyScope(
        customer_ids=tuple(customer_ids),
        conversation_ids=tuple(conversation_ids),
        needles=needles,
    )
    # Higher apps first: their erasers may read the rows this function is about to blank.
    counts: dict[str, int] = {}
    for name, eraser in extensions.erasers():
        counts[name] = eraser(scope)
    messages, files = _messages_scrub(conversation_ids)
    counts["messages"] = messages
    counts["attachments"] = files
    counts["identities"] = Identity.objects.filter(customer_id__in=customer_ids).delete()[0]
    now = timezone.now()
    Conversation.objects.filter(pk__in=conversation_ids).update(subject="", anonymised_at=now)
    Customer.objects.filter(pk__in=customer_ids).update(
        name="", notes="", organisation=None, erased_at=now, updated_at=now
    )
    CustomerMerge.objects.filter(
        Q(merged_id__in=customer_ids) | Q(target_id__in=customer_ids)
    ).update(merged_name="")
    counts["events"] = _events_scrub(customer_ids, conversation_ids, needles)
    counts["quarantined"] = _quarantine_forget(addresses)
    counts["notifications"] = notifications_about_conversations_scrub(
        conversation_ids=conversation_ids
    )
    counts["other"] = personal_text_scrub(needles=needles, addresses=addresses)
    mail_sink_scrub(needles=addresses)
    details = {
        "customers": len(customer_ids),
        "conversations": len(conversation_ids),
        **{key: value for key, value in counts.items() if key != "other"},
    }
    event_record(kind=Event.Kind.CUSTOMER_ERASED, customer=customer, actor=actor, data=details)
    audit_record(
        action=AuditEntry.Action.CUSTOMER_ERASED,
        target=customer,
        actor=actor,
        summary=f"Customer #{customer.pk} erased ({len(conversation_ids)} conversations kept "
        "as anonymous shells)",
        details=details,
    )
    return details


def _quarantine_forget(addresses: Sequence[str]) -> int:
    """Delete quarantined input that came from or names these addresses (read once, in chunks)."""
    needles = [a.lower().encode() for a in {a for a in addresses if a}]
    if not needles:
        return 0
    ids = [
        pk
        for pk, raw in QuarantinedMessage.objects.values_list("pk", "raw").iterator(chunk_size=200)
        if any(n in bytes(raw).lower() for n in needles)
    ]
    return QuarantinedMessage.objects.filter(pk__in=ids).delete()[0] if ids else 0


# --- Export (subject-access request) ------------------------------------------------------------


def _attachment_name(attachment: Attachment) -> str:
    safe = re.sub(r"[^A-Za-z0-9._-]+", "_", attachment.filename).strip("._") or "file"
    return f"attachments/{attachment.message_id}-{attachment.pk}-{safe[:100]}"


def customer_export_data(*, customer: Customer) -> dict[str, Any]:
    """Everything held about ``customer`` (and the customers merged into it), JSON-ready."""
    customer_ids = _customer_ids(customer)
    customers = list(Customer.objects.filter(pk__in=customer_ids).select_related("organisation"))
    conversations = list(
        Conversation.objects.filter(customer_id__in=customer_ids)
        .prefetch_related("tags")
        .order_by("created_at", "pk")
    )
    conversation_ids = [c.pk for c in conversations]
    messages = list(
        Message.objects.filter(conversation_id__in=conversation_ids)
        .select_related("author", "identity", "call_log")
        .prefetch_related("attachments")
        .order_by("sent_at", "pk")
    )
    by_conversation: dict[int, list[dict[str, Any]]] = {pk: [] for pk in conversation_ids}
    for message in messages:
        call = getattr(message, "call_log", None)
        by_conversation[message.conversation_id].append(
            {
                "id": message.pk,
                "direction": message.direction,
                "channel": message.channel_kind,
                "sent_at": message.sent_at,
                "from_or_to": message.identity.value if message.identity else None,
                "author": (message.author.full_name or "Staff") if message.author else None,
                "subject": message.subject,
                "body_text": message.body_text,
                "body_html": message.body_html,
                "cc": message.cc,
                "claimed_email": message.claimed_email,
                "call": (
                    {
                        "direction": call.direction,
                        "started_at": call.started_at,
                        "wait_seconds": call.wait_seconds,
                        "talk_seconds": call.talk_seconds,
                        "hold_seconds": call.hold_seconds,
                    }
                    if call is not None
                    else None
                ),
                "attachments": [
                    {
                        "id": a.pk,
                        "filename": a.filename,
                        "content_type": a.content_type,
                        "size": a.size,
                        "path": _attachment_name(a),
                    }
                    for a in message.attachments.all()
                ],
            }
        )
    scope = PrivacyScope(customer_ids=tuple(customer_ids), conversation_ids=tuple(conversation_ids))
    data: dict[str, Any] = {
        "exported_at": timezone.now(),
        "customer": {
            "id": customer.pk,
            "name": customer.name,
            "language": customer.language,
            "notes": customer.notes,
            "organisation": customer.organisation.name if customer.organisation else None,
            "created_at": customer.created_at,
            "erased_at": customer.erased_at,
        },
        "merged_customers": [
            {"id": c.pk, "name": c.name, "created_at": c.created_at}
            for c in customers
            if c.pk != customer.pk
        ],
        "identities": [
            {
                "kind": i.kind,
                "value": i.value,
                "display_value": i.display_value,
                "verified": i.verified,
                "created_at": i.created_at,
            }
            for i in Identity.objects.filter(customer_id__in=customer_ids).order_by("pk")
        ],
        "conversations": [
            {
                "id": c.pk,
                "subject": c.subject,
                "status": c.status,
                "channels": c.channels,
                "tags": sorted(t.name for t in c.tags.all()),
                "created_at": c.created_at,
                "solved_at": c.solved_at,
                "closed_at": c.closed_at,
                "participants": [
                    {"email": p.email, "name": p.name}
                    for p in ConversationParticipant.objects.filter(conversation=c)
                ],
                "messages": by_conversation[c.pk],
            }
            for c in conversations
        ],
    }
    for name, exporter in extensions.exporters():
        data[name] = exporter(scope)
    return data


@transaction.atomic
def customer_export(
    *, customer: Customer, actor: User | None, with_files: bool = False
) -> tuple[str, bytes]:
    """The export of ``customer`` as ``("application/json", body)``, or with ``with_files`` as
    ``("application/zip", body)`` holding ``customer.json`` and every attachment. Audited."""
    data = customer_export_data(customer=customer)
    body = json.dumps(data, cls=DjangoJSONEncoder, indent=2, ensure_ascii=False).encode()
    attachments = Attachment.objects.filter(
        message__conversation__customer_id__in=_customer_ids(customer)
    ).order_by("pk")
    audit_record(
        action=AuditEntry.Action.CUSTOMER_EXPORTED,
        target=customer,
        actor=actor,
        summary=f"Data of customer #{customer.pk} exported" + (" with files" if with_files else ""),
        details={"conversations": len(data["conversations"]), "with_files": with_files},
    )
    if not with_files:
        return "application/json", body
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", zipfile.ZIP_DEFLATED) as archive:
        archive.writestr("customer.json", body)
        for attachment in attachments:
            try:
                with attachment.file.open("rb") as handle:
                    archive.writestr(_attachment_name(attachment), handle.read())
            except OSError as exc:
                raise ApplicationError(
                    f"The file of attachment #{attachment.pk} is missing from storage."
                ) from exc
    return "application/zip", buffer.getvalue()


# --- Retention ----------------------------------------------------------------------------------


def retention_policy_get() -> RetentionPolicy:
    """The policy; before an admin first saves one, the default (keep everything), unsaved."""
    return RetentionPolicy.objects.filter(pk=1).first() or RetentionPolicy(pk=1)


@transaction.atomic
def retention_policy_update(
    *,
    actor: User | None,
    raw_mime_days: int | None,
    attachment_days: int | None,
    anonymise_closed_days: int | None,
) -> RetentionPolicy:
    """Change how long raw mail and attachments are kept and when closed conversations are
    anonymised (None: for ever). Audited with the values before and after."""
    wanted = {
        "raw_mime_days": raw_mime_days,
        "attachment_days": attachment_days,
        "anonymise_closed_days": anonymise_closed_days,
    }
    for field, value in wanted.items():
        if value is not None and not 1 <= value <= 36500:
            raise ApplicationError(f"{field}: give a number of days from 1 to 36500, or none.")
    RetentionPolicy.objects.get_or_create(pk=1)
    policy = RetentionPolicy.objects.select_for_update().get(pk=1)
    changes = {
        field: {"from": getattr(policy, field), "to": value}
        for field, value in wanted.items()
        if getattr(policy, field) != value
    }
    if not changes:
        return policy
    for field, change in changes.items():
        setattr(policy, field, change["to"])
    policy.updated_at = timezone.now()
    policy.updated_by = actor
    policy.save()
    audit_record(
        action=AuditEntry.Action.RETENTION_CHANGED,
        target=policy,
        actor=actor,
        summary="Retention settings changed",
        details=changes,
    )
    return policy


def _raw_mime_due(run: RetentionRun) -> Any:
    return (
        Message.objects.annotate(raw_length=Length("raw"))
        .filter(created_at__lt=run.raw_mime_before, raw_length__gt=0)
        .order_by("pk")
    )


def _attachments_due(run: RetentionRun) -> Any:
    return Attachment.objects.filter(message__created_at__lt=run.attachments_before).order_by("pk")


def _closed_due(run: RetentionRun) -> Any:
    return Conversation.objects.filter(
        status=Conversation.Status.CLOSED,
        closed_at__lt=run.closed_before,
        anonymised_at__isnull=True,
    ).order_by("pk")


_PHASES: list[str] = [
    RetentionRun.Phase.RAW_MIME,
    RetentionRun.Phase.ATTACHMENTS,
    RetentionRun.Phase.ANONYMISE,
]


def _phase_due(run: RetentionRun) -> Any:
    if run.phase == RetentionRun.Phase.RAW_MIME:
        return _raw_mime_due(run) if run.raw_mime_before else None
    if run.phase == RetentionRun.Phase.ATTACHMENTS:
        return _attachments_due(run) if run.attachments_before else None
    return _closed_due(run) if run.closed_before else None


def _run_start() -> RetentionRun:
    policy = retention_policy_get()
    now = timezone.now()

    def before(days: int | None) -> Any:
        return now - timedelta(days=days) if days else None

    run = RetentionRun(
        raw_mime_before=before(policy.raw_mime_days),
        attachments_before=before(policy.attachment_days),
        closed_before=before(policy.anonymise_closed_days),
    )
    run.total = sum(
        due.count()
        for due in (
            _raw_mime_due(run) if run.raw_mime_before else None,
            _attachments_due(run) if run.attachments_before else None,
            _closed_due(run) if run.closed_before else None,
        )
        if due is not None
    )
    run.save()
    return run


@transaction.atomic
def _batch(run_id: int, batch_size: int) -> bool:
    """One batch of the run's current phase; False when the run is over."""
    run = RetentionRun.objects.select_for_update().get(pk=run_id)
    due = _phase_due(run)
    ids = (
        list(due.filter(pk__gt=run.cursor).values_list("pk", flat=True)[:batch_size]) if due else []
    )
    if not ids:
        following = _PHASES.index(run.phase) + 1 if run.phase in _PHASES else len(_PHASES)
        if following >= len(_PHASES):
            run.phase = RetentionRun.Phase.DONE
            run.state = RetentionRun.State.DONE
            run.finished_at = timezone.now()
        else:
            run.phase = _PHASES[following]
        run.cursor = 0
        run.save()
        return run.state == RetentionRun.State.RUNNING
    if run.phase == RetentionRun.Phase.RAW_MIME:
        run.raw_mime_cleared += Message.objects.filter(pk__in=ids).update(raw=b"")
    elif run.phase == RetentionRun.Phase.ATTACHMENTS:
        run.attachments_deleted += _attachments_delete(Attachment.objects.filter(pk__in=ids))
    else:
        run.conversations_anonymised += conversations_anonymise(conversation_ids=ids)
    run.cursor = ids[-1]
    run.done += len(ids)
    run.total = max(run.total, run.done)
    run.save()
    return True


def retention_run(
    *, batch_size: int = 200, max_batches: int | None = None, seconds: float | None = None
) -> RetentionRun:
    """Apply the retention policy in batches, each in its own transaction; resumes the run left
    unfinished (out of time, or a worker killed mid-way) from its last batch. Stops after
    ``max_batches`` or ``seconds``, leaving the run ``running`` to be resumed. Never changes a
    figure: only raw mail, files and text go."""
    run = RetentionRun.objects.filter(state=RetentionRun.State.RUNNING).first() or _run_start()
    deadline = time.monotonic() + seconds if seconds is not None else None
    batches = 0
    try:
        while _batch(run.pk, batch_size):
            batches += 1
            if max_batches is not None and batches >= max_batches:
                break
            if deadline is not None and time.monotonic() >= deadline:
                break
    except Exception as exc:
        RetentionRun.objects.filter(pk=run.pk).update(
            state=RetentionRun.State.FAILED, error=str(exc)[:2000], finished_at=timezone.now()
        )
        raise
    run.refresh_from_db()
    return run


def conversations_anonymise(*, conversation_ids: Sequence[int]) -> int:
    """Remove the personal text of these conversations (retention after close): subjects, bodies,
    raw mail, files, participants, and the higher apps' text about them. The customer stays."""
    ids = list(
        Conversation.objects.filter(pk__in=conversation_ids, anonymised_at__isnull=True)
        .order_by("pk")
        .values_list("pk", flat=True)
    )
    if not ids:
        return 0
    needles = needles_clean(
        [
            *Conversation.objects.filter(pk__in=ids).values_list("subject", flat=True),
            *_text_needles(
                Message.objects.filter(conversation_id__in=ids).values(
                    "subject", "body_text", "claimed_email", "delivery_error", "cc", "bcc"
                )
            ),
        ]
    )
    scope = PrivacyScope(customer_ids=(), conversation_ids=tuple(ids), needles=needles)
    for _, eraser in extensions.erasers():
        eraser(scope)
    _messages_scrub(ids)
    Conversation.objects.filter(pk__in=ids).update(subject="", anonymised_at=timezone.now())
    for event in Event.objects.filter(conversation_id__in=ids).exclude(data={}):
        data = json_scrub(event.data, needles, keys=EVENT_PERSONAL_KEYS - {"name"})
        if data != event.data:
            Event.objects.filter(pk=event.pk).update(data=data)
    notifications_about_conversations_scrub(conversation_ids=ids)
    personal_text_scrub(needles=needles)
    return len(ids)


def retention_latest_run() -> RetentionRun | None:
    return RetentionRun.objects.order_by("-started_at", "-pk").first()
