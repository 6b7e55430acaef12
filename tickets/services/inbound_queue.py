"""The asynchronous ingestion mode: accept durably now, ingest in batches on the ingest workers.

Accept (``inbound_queue_accept_*``): the call is checked as far as that is cheap (the JSON
channels run their whole check, an email needs a body), then stored with ONE insert of the
payload, and answered 202 with the row's id (``GET /api/v1/inbound/queue/<id>/`` polls it). The
same external id accepted twice is the same row. A kick is published to the ingest queue after
the insert commits; beat kicks every ``INBOUND_QUEUE_KICK_SECONDS`` too, so a lost kick only
delays a row.

Ingest (``inbound_queue_process``): rows are split into ``INBOUND_QUEUE_SHARDS`` shards by the
sender's handle. One worker at a time drains a shard (a PostgreSQL advisory lock), in id order,
so one sender's messages are stored in the order they arrived. Each row is stored by the same
``ingest`` path the synchronous calls use (contact counting unchanged), in one transaction with
the row's status change, so a row is stored exactly once: a crash rolls both back and the row
is taken again. A row whose payload turns out bad is marked ``failed`` with the reason and
nothing of it is stored (unparseable mail is kept in quarantine, as in the synchronous mode).
"""

from __future__ import annotations

import json
import logging
import time
import zlib
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from email.parser import BytesParser
from email.policy import compat32
from email.utils import parseaddr
from typing import Any

from django.conf import settings
from django.db import connection, transaction
from django.shortcuts import get_object_or_404
from django.utils import timezone
from django.utils.dateparse import parse_datetime

from supportdesk.errors import ApplicationError
from supportdesk.outbox import outbox_batch
from tickets.models import Channel, InboundQueueItem, IngestMode, QuarantinedMessage
from tickets.services.inbound_channels import (
    chat_inbound,
    inbound_chat,
    inbound_phone,
    inbound_social,
    phone_inbound,
    social_inbound,
)
from tickets.services.inbound_email import (
    channel_for_recipients,
    inbound_email_from_anymail,
    inbound_email_raw,
)
from tickets.services.ingest import Inbound, InboundResult, QuarantineInput

logger = logging.getLogger(__name__)

Kind = InboundQueueItem.Kind
Status = InboundQueueItem.Status

# Advisory lock keys of the shards: a constant high part, the shard number low.
_LOCK_BASE = 0x5D_1A_0000
INGEST_TASK = "tickets.tasks.inbound_queue_ingest_task"

_JSON_BUILDERS: dict[str, Callable[..., Inbound]] = {
    Kind.CHAT: chat_inbound,
    Kind.SOCIAL: social_inbound,
    Kind.PHONE: phone_inbound,
}
_JSON_SERVICES: dict[str, Callable[..., InboundResult]] = {
    Kind.CHAT: inbound_chat,
    Kind.SOCIAL: inbound_social,
    Kind.PHONE: inbound_phone,
}
# The time field of each JSON call (filled in at accept time, so a late ingest keeps it).
_TIME_FIELD = {Kind.CHAT: "sent_at", Kind.SOCIAL: "sent_at", Kind.PHONE: "started_at"}


@dataclass(frozen=True)
class Accepted:
    item: InboundQueueItem
    created: bool


def shard_of(order_key: str) -> int:
    return zlib.crc32(order_key.encode()) % settings.INBOUND_QUEUE_SHARDS


def _json_default(value: Any) -> str:
    if isinstance(value, datetime):
        return value.isoformat()
    raise TypeError(f"{type(value).__name__} is not JSON")


_INSERT_SQL = " ".join(
    f"""
    INSERT INTO {InboundQueueItem._meta.db_table}
        (channel_id, kind, payload, source, external_id, order_key, shard, status, error,
         received_at, attempts)
    VALUES (%s, %s, %s, %s, %s, %s, %s, %s, '', %s, 0)
    ON CONFLICT (channel_id, external_id) WHERE external_id <> '' DO NOTHING
    RETURNING id
""".split()
)


def _insert(
    *, channel: Channel, kind: str, payload: bytes, source: str, external_id: str, order_key: str
) -> Accepted:
    """The one insert of an accept; the same external id again returns the stored row.

    One statement, in autocommit: the unique (channel, external id) index decides whether the
    row is new (``ON CONFLICT DO NOTHING``: a concurrent accept of the same id waits for the
    first and then inserts nothing), so there is no lookup before it and no transaction around
    it. Only a repeated id reads the stored row.
    """
    external_id = external_id[:255]
    shard = shard_of(order_key)
    received_at = timezone.now()
    source = source[:60]
    order_key = order_key[:320]
    with connection.cursor() as cursor:
        cursor.execute(
            _INSERT_SQL,
            [
                channel.pk,
                kind,
                payload,
                source,
                external_id,
                order_key,
                shard,
                Status.PENDING,
                connection.ops.adapt_datetimefield_value(received_at),
            ],
        )
        row = cursor.fetchone()
    if row is None:  # the same external id was accepted before
        return Accepted(
            InboundQueueItem.objects.get(channel=channel, external_id=external_id), created=False
        )
    item = InboundQueueItem(
        pk=row[0],
        channel=channel,
        kind=kind,
        payload=payload,
        source=source,
        external_id=external_id,
        order_key=order_key,
        shard=shard,
        received_at=received_at,
    )
    transaction.on_commit(lambda: inbound_queue_kick(shard))
    return Accepted(item, created=True)


def inbound_queue_accept_json(
    *, channel: Channel, kind: str, fields: dict[str, Any], raw: bytes = b""
) -> Accepted:
    """A chat, social or phone call (its serializer's validated data), checked in full now;
    ``raw`` is the call as received, kept on the message as in the synchronous mode."""
    builder = _JSON_BUILDERS[Kind(kind)]
    inbound: Inbound = builder(channel=channel, **fields)  # ApplicationError: 400 now
    stored = {**fields, _TIME_FIELD[Kind(kind)]: inbound.sent_at}
    kind_value, value, _display = inbound.handles[0]
    return _insert(
        channel=channel,
        kind=kind,
        payload=json.dumps(
            {"fields": stored, "raw": raw.decode("utf-8", "replace")}, default=_json_default
        ).encode(),
        source="api",
        external_id=inbound.external_id,
        order_key=f"{kind_value}:{value}",
    )


def _email_keys(raw: bytes) -> tuple[str, str]:
    """Message-ID and sender of a raw email, from its header only (no body parsing)."""
    headers = BytesParser(policy=compat32).parsebytes(raw, headersonly=True)
    message_id = str(headers.get("Message-ID") or "").strip()
    sender = parseaddr(str(headers.get("From") or ""))[1].strip().lower()
    return message_id, f"email:{sender}"


def inbound_queue_accept_email(*, channel: Channel, raw: bytes, source: str = "api") -> Accepted:
    """A raw RFC 822 message (API or mailbox import). The full parse happens on the worker."""
    if not raw.strip():
        raise ApplicationError(
            "Send the raw RFC 822 message as the request body (Content-Type: message/rfc822)."
        )
    if channel.kind != "email":
        raise ApplicationError("This channel does not take email.")
    message_id, order_key = _email_keys(raw)
    kind = Kind.IMAP if source == "imap" else Kind.EMAIL
    return _insert(
        channel=channel,
        kind=kind,
        payload=raw,
        source=source,
        external_id=message_id,
        order_key=order_key,
    )


def inbound_queue_accept_anymail(*, channel: Channel, message: Any, esp_name: str) -> Accepted:
    """A provider webhook's message (django-anymail's ``AnymailInboundMessage``)."""
    raw = message.as_bytes()
    message_id, order_key = _email_keys(raw)
    return _insert(
        channel=channel,
        kind=Kind.ANYMAIL,
        payload=raw,
        source=f"anymail:{esp_name}"[:60],
        external_id=message_id,
        order_key=order_key,
    )


def inbound_email_from_anymail_or_accept(
    *, message: Any, esp_name: str
) -> InboundResult | QuarantinedMessage | Accepted:
    """A provider webhook: accepted for the worker when the email channel it is addressed to is
    in the asynchronous mode, stored now otherwise (the provider gets its 200 either way)."""
    recipients = [address.addr_spec for address in [*message.to, *message.cc]]
    channel = channel_for_recipients(recipients)
    if channel is not None and channel.ingest_mode == IngestMode.ASYNC:
        return inbound_queue_accept_anymail(channel=channel, message=message, esp_name=esp_name)
    return inbound_email_from_anymail(message=message, esp_name=esp_name)


# --- The worker side -----------------------------------------------------------------------------


_last_kick: dict[int | None, float] = {}
KICK_INTERVAL_SECONDS = 0.25


def inbound_queue_kick(shard: int | None = None, *, force: bool = False) -> None:
    """Ask an ingest worker to drain ``shard`` (all shards: None); never fails the caller.

    One kick per shard per KICK_INTERVAL_SECONDS and process is enough: the worker drains the
    whole shard, and beat kicks every shard every INBOUND_QUEUE_KICK_SECONDS anyway.
    """
    from tickets.tasks import inbound_queue_ingest_task

    now = time.monotonic()
    if not force and now - _last_kick.get(shard, -1e9) < KICK_INTERVAL_SECONDS:
        return
    _last_kick[shard] = now
    try:
        inbound_queue_ingest_task.apply_async(kwargs={"shard": shard}, retry=False)
    except Exception as exc:  # the broker is down: beat's kick drains the rows later
        logger.warning("inbound queue kick not sent: %s", exc)


def _ingest_item(item: InboundQueueItem) -> InboundResult | QuarantinedMessage:
    payload = bytes(item.payload)
    channel = item.channel
    if item.kind in _JSON_SERVICES:
        stored = json.loads(payload)
        fields = stored["fields"]
        time_field = _TIME_FIELD[Kind(item.kind)]
        fields[time_field] = parse_datetime(fields[time_field]) if fields[time_field] else None
        raw = str(stored.get("raw") or "").encode()
        return _JSON_SERVICES[Kind(item.kind)](channel=channel, raw=raw, **fields)
    if item.kind == Kind.ANYMAIL:
        from anymail.inbound import AnymailInboundMessage

        message = AnymailInboundMessage.parse_raw_mime_bytes(payload)
        return inbound_email_from_anymail(message=message, esp_name=item.source.split(":")[-1])
    return inbound_email_raw(
        channel=channel, raw=payload, source=item.source, received_at=item.received_at
    )


# Rows stored per transaction by the worker: one commit and one outbox relay for all of them.
COMMIT_EVERY = 20
_RESULT_FIELDS = [
    "status",
    "attempts",
    "processed_at",
    "error",
    "quarantined_id",
    "customer_id_result",
    "conversation_id_result",
    "message_id_result",
    "new_contact",
]


def _process_group(ids: list[int]) -> int:
    """Store pending rows in id order and mark them, in one transaction; returns how many.

    Each row's ingestion runs in a savepoint of its own (``ingest``'s: nothing is written before
    it), so a bad payload is rolled back alone and marked failed while the others are stored. An
    error of the database (or a conflict that outlived ingestion's retries) rolls the whole group
    back: nothing of it is stored or marked, and the next drain takes it again from its first row.
    """
    with transaction.atomic(), outbox_batch():
        # The rows alone (of=self): locking the joined channel too would make workers of other
        # shards and every accept of the channel wait for each other. No SKIP LOCKED: the shard
        # lock makes this worker the only one here, and skipping a row would break the order.
        items = list(
            InboundQueueItem.objects.select_for_update(of=("self",))
            .select_related("channel")
            .filter(pk__in=ids, status=Status.PENDING)
            .order_by("pk")
        )
        now = timezone.now()
        for item in items:
            _store(item, now)
        _mark(items)
    return len(items)


_MARK_SQL = " ".join(
    f"""
    UPDATE {InboundQueueItem._meta.db_table} AS item SET
        status = row.status, attempts = row.attempts, processed_at = row.processed_at,
        error = row.error, quarantined_id = row.quarantined_id,
        customer_id_result = row.customer_id_result,
        conversation_id_result = row.conversation_id_result,
        message_id_result = row.message_id_result, new_contact = row.new_contact
    FROM unnest(
        %s::bigint[], %s::varchar[], %s::smallint[], %s::timestamptz[], %s::text[], %s::bigint[],
        %s::bigint[], %s::bigint[], %s::bigint[], %s::boolean[]
    ) AS row(id, status, attempts, processed_at, error, quarantined_id, customer_id_result,
             conversation_id_result, message_id_result, new_contact)
    WHERE item.id = row.id
""".split()
)


def _mark(items: list[InboundQueueItem]) -> None:
    """Write the rows' outcomes: one UPDATE from arrays on PostgreSQL (``bulk_update`` builds a
    CASE of every row for every field, which costs more Python than the storing of a chat
    message), ``bulk_update`` elsewhere."""
    if not items:
        return
    if connection.vendor != "postgresql":
        InboundQueueItem.objects.bulk_update(items, _RESULT_FIELDS)
        return
    columns = [[item.pk for item in items]] + [
        [getattr(item, field) for item in items] for field in _RESULT_FIELDS
    ]
    with connection.cursor() as cursor:
        cursor.execute(_MARK_SQL, columns)


def _store(item: InboundQueueItem, now: datetime) -> None:
    item.attempts += 1
    item.processed_at = now
    try:
        result = _ingest_item(item)
    except (ApplicationError, QuarantineInput, ValueError, KeyError, TypeError) as exc:
        # A payload the checks at accept time could not see is bad: nothing of it stayed.
        item.status = Status.FAILED
        item.error = str(getattr(exc, "message", "") or exc)[:2000]
        return
    if isinstance(result, QuarantinedMessage):
        item.status = Status.FAILED
        item.quarantined_id = result.pk
        item.error = f"Kept in quarantine for review, not stored as a message: {result.error}"
    else:
        item.status = Status.DONE
        item.customer_id_result = result.customer_id
        item.conversation_id_result = result.conversation_id
        item.message_id_result = result.message_id
        item.new_contact = result.new_contact


def _try_lock(shard: int) -> bool:
    if connection.vendor != "postgresql":
        return True  # SQLite (bin/dev): one writer at a time anyway
    with connection.cursor() as cursor:
        cursor.execute("SELECT pg_try_advisory_lock(%s)", [_LOCK_BASE + shard])
        return bool(cursor.fetchone()[0])


def _unlock(shard: int) -> None:
    if connection.vendor == "postgresql":
        with connection.cursor() as cursor:
            cursor.execute("SELECT pg_advisory_unlock(%s)", [_LOCK_BASE + shard])


def inbound_queue_process(*, shard: int | None = None, budget_seconds: float = 60.0) -> int:
    """Drain pending rows of ``shard`` (or of every shard), in batches; returns how many were
    handled. A shard another worker is draining is skipped (that worker takes the new rows)."""
    shards = range(settings.INBOUND_QUEUE_SHARDS) if shard is None else [shard]
    batch = settings.INBOUND_QUEUE_BATCH
    deadline = time.monotonic() + budget_seconds
    handled = 0
    for number in shards:
        if not _try_lock(number):
            continue
        try:
            while time.monotonic() < deadline:
                ids = list(
                    InboundQueueItem.objects.filter(shard=number, status=Status.PENDING)
                    .order_by("pk")
                    .values_list("pk", flat=True)[:batch]
                )
                if not ids:
                    break
                for first in range(0, len(ids), COMMIT_EVERY):
                    handled += _process_group(ids[first : first + COMMIT_EVERY])
        finally:
            _unlock(number)
    if time.monotonic() >= deadline:
        inbound_queue_kick(shard, force=True)  # more to do: a fresh task goes on, others get a turn
    return handled


def inbound_queue_item_for_channel(*, channel: Channel, pk: Any) -> InboundQueueItem:
    """A channel's accepted row (other channels' rows do not exist for it: Http404)."""
    return get_object_or_404(InboundQueueItem, pk=pk, channel=channel)
