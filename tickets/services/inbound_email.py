"""Inbound email: raw RFC 822 and provider webhooks enter the one ingestion path here."""

from __future__ import annotations

import dataclasses
from collections.abc import Iterable
from datetime import datetime
from typing import Any

from django.conf import settings
from django.core.exceptions import ValidationError

from supportdesk.errors import ApplicationError
from tickets.emails import EmailParseError, ParsedEmail, parse_inbound_message, parse_raw_email
from tickets.identities import normalise_email
from tickets.models import Channel, ChannelKind, QuarantinedMessage
from tickets.services.ingest import (
    Inbound,
    InboundResult,
    QuarantineInput,
    attachment_sizes_check,
    clamp_sent_at,
    ingest,
    quarantine_store,
)
from tickets.services.outbound_mail import MAX_COPIES


def _email_inbound(
    parsed: ParsedEmail,
    *,
    channel: Channel,
    raw: bytes,
    own_addresses: list[str],
    received_at: datetime | None = None,
) -> InboundResult:
    attachment_sizes_check(parsed.attachments)
    handles: list[tuple[str, str, str]] = []
    if parsed.from_email and parsed.automated not in {"bounce", "own_address"}:
        try:
            handles.append(("email", normalise_email(parsed.from_email), parsed.from_email))
        except ValidationError:
            handles = []
    if not handles and not parsed.automated:
        raise QuarantineInput(f"no usable sender address: {parsed.from_email!r}")
    return ingest(
        Inbound(
            channel=channel,
            external_id=parsed.message_id[:998],
            handles=handles,
            name=parsed.from_name,
            subject=parsed.subject,
            body_text=parsed.text,
            body_html=parsed.html,
            # The receipt time orders the timeline: senders' Date headers are often wrong.
            sent_at=clamp_sent_at(received_at),
            raw=raw,
            message_id=parsed.message_id[:998],
            in_reply_to=parsed.in_reply_to,
            references=parsed.references,
            recipients=parsed.recipients,
            automated=parsed.automated,
            attachments=parsed.attachments,
            bounce_recipients=parsed.bounce_recipients,
            bounce_original_ids=parsed.bounce_original_message_ids,
            copied=_copied_people(parsed, handles, own_addresses),
            language=parsed.language,
        )
    )


def _copied_people(
    parsed: ParsedEmail, handles: list[tuple[str, str, str]], own_addresses: list[str]
) -> tuple[tuple[str, str], ...]:
    """The people besides the sender and the desk in To and Cc, normalised, first name kept."""
    if parsed.automated:
        return ()
    skip = {value for kind, value, _ in handles if kind == "email"}
    skip.update(address.lower() for address in own_addresses)
    people: list[tuple[str, str]] = []
    for name, address in parsed.copied:
        try:
            value = normalise_email(address)
        except ValidationError:
            continue
        if value in skip or _is_reply_address(value):
            continue
        skip.add(value)
        people.append((name, value))
    return tuple(people[:MAX_COPIES])


def _is_reply_address(value: str) -> bool:
    """One of the desk's tokenised reply addresses (``support+c…@domain``), valid or not."""
    local, _, domain = settings.SUPPORT_EMAIL.lower().partition("@")
    return value.endswith(f"@{domain}") and value.startswith(f"{local}+")


def desk_own_addresses() -> list[str]:
    """The desk's own addresses: the support address and every email channel's."""
    addresses = [settings.SUPPORT_EMAIL]
    addresses += list(
        Channel.objects.filter(kind=ChannelKind.EMAIL)
        .exclude(address="")
        .values_list("address", flat=True)
    )
    return addresses


def inbound_email_raw(
    *,
    channel: Channel,
    raw: bytes,
    source: str = "api",
    received_at: datetime | None = None,
    own_addresses: list[str] | None = None,
) -> InboundResult | QuarantinedMessage:
    """Ingest a raw RFC 822 message. Unparseable input is quarantined, never dropped.

    ``received_at`` (default now) is for importers and the demo seed, which replay history.
    ``own_addresses``: the desk's addresses (``desk_own_addresses``), read once by a caller that
    stores many messages in a row.
    """
    if channel.kind != ChannelKind.EMAIL:
        raise ApplicationError("This channel does not take email.")
    own = own_addresses if own_addresses is not None else desk_own_addresses()
    try:
        parsed = parse_raw_email(raw, own_addresses=own)
    except EmailParseError as exc:
        return quarantine_store(channel=channel, source=source, raw=raw, error=str(exc))
    try:
        return _email_inbound(
            parsed, channel=channel, raw=raw, own_addresses=own, received_at=received_at
        )
    except QuarantineInput as exc:
        return quarantine_store(channel=channel, source=source, raw=raw, error=str(exc))


def inbound_email_from_anymail(
    *, message: Any, esp_name: str
) -> InboundResult | QuarantinedMessage:
    """Ingest a provider webhook's message (anymail's normalised AnymailInboundMessage)."""
    raw = message.as_bytes()
    parsed: ParsedEmail | None = None
    error = ""
    own = desk_own_addresses()
    try:
        parsed = parse_inbound_message(message, raw=raw, own_addresses=own)
    except EmailParseError as exc:
        error = str(exc)
    channel = channel_for_recipients(parsed.recipients if parsed else ())
    if parsed is None or channel is None:
        return quarantine_store(
            channel=channel,
            source=f"anymail:{esp_name}",
            raw=raw,
            error=error or "no active email channel to receive this message",
        )
    try:
        return _email_inbound(
            _without_oversized_attachments(parsed), channel=channel, raw=raw, own_addresses=own
        )
    except QuarantineInput as exc:
        return quarantine_store(
            channel=channel, source=f"anymail:{esp_name}", raw=raw, error=str(exc)
        )


def _without_oversized_attachments(parsed: ParsedEmail) -> ParsedEmail:
    """Provider webhooks: keep the message, drop attachments over ATTACHMENT_MAX_BYTES with a note.

    A provider cannot act on a 413 (it retries, then drops the mail), so the customer's words are
    kept and the agent sees which file did not come through. The raw API answers 413 instead: the
    sender's own MTA can bounce the message to the customer.
    """
    limit = settings.ATTACHMENT_MAX_BYTES
    kept = tuple(a for a in parsed.attachments if len(a.content) <= limit)
    if len(kept) == len(parsed.attachments):
        return parsed
    notes = [
        f"[Attachment {a.filename!r} ({len(a.content)} bytes) was not kept: "
        f"the limit is {limit} bytes.]"
        for a in parsed.attachments
        if len(a.content) > limit
    ]
    text = "\n\n".join([parsed.text.rstrip(), *notes]) if parsed.text.strip() else "\n".join(notes)
    return dataclasses.replace(parsed, attachments=kept, text=text)


def channel_for_recipients(recipients: Iterable[str]) -> Channel | None:
    channels = list(Channel.objects.filter(kind=ChannelKind.EMAIL, is_active=True).order_by("pk"))
    recipients = {r.lower() for r in recipients}
    for channel in channels:
        if channel.address and channel.address.lower() in recipients:
            return channel
    return channels[0] if channels else None
