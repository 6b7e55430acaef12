"""Parsing an inbound email into ParsedEmail: limits, the entry points, automated-mail detection."""

from __future__ import annotations

import hashlib
import re
from collections.abc import Iterable
from email.parser import BytesParser
from email.policy import compat32

from anymail.inbound import AnymailInboundMessage

from tickets.emails.headers import (
    QUOTED_MESSAGE_ID,
    decode_header_value,
    dedupe,
    header_addresses,
    header_all,
    header_first,
    header_items,
    one_line,
    parse_header_date,
    parse_message_id,
    parse_message_ids,
)
from tickets.emails.mime import collect_body, dsn_failed_recipients, flatten_message
from tickets.emails.sanitize import html_to_text, sanitize_html
from tickets.emails.types import (
    DECODE_ERRORS,
    MAX_BODY_CHARS,
    MAX_MIME_CONTAINERS,
    MAX_MIME_PARTS,
    MAX_SCANNED_CHARS,
    MAX_SUBJECT_LENGTH,
    EmailParseError,
    ParsedEmail,
)

# --------------------------------------------------------------------------------------------
# Entry points
# --------------------------------------------------------------------------------------------


def parse_raw_email(raw: bytes, *, own_addresses: Iterable[str] = ()) -> ParsedEmail:
    """Parse raw RFC 5322 bytes (IMAP fetch, raw-MIME webhook, .eml file).

    Parsing goes through anymail's `AnymailInboundMessage` so that raw bytes and ESP webhook
    payloads take exactly the same path through `parse_inbound_message`.
    """
    if _structure_exceeds_caps(raw):
        # limits: too many MIME parts or levels to parse; the headers, and the body as text.
        message = BytesParser(AnymailInboundMessage, policy=compat32).parsebytes(
            raw, headersonly=True
        )
        return parse_inbound_message(message, raw=raw, own_addresses=own_addresses)
    try:
        message = AnymailInboundMessage.parse_raw_mime_bytes(raw)
    except DECODE_ERRORS:
        # The modern email policy parses structured headers eagerly and has had crash bugs on
        # hostile input; compat32 keeps headers as raw strings and does not fail that way. If
        # even that fails (absurd MIME nesting), keep the headers and treat the body as text.
        parser = BytesParser(AnymailInboundMessage, policy=compat32)
        try:
            message = parser.parsebytes(raw)
        except DECODE_ERRORS:
            message = parser.parsebytes(raw, headersonly=True)
    return parse_inbound_message(message, raw=raw, own_addresses=own_addresses)


def _structure_exceeds_caps(raw: bytes) -> bool:
    """A cheap look at the raw bytes before the (superlinear) MIME parser sees them."""
    return (
        raw.count(b"\n--") > MAX_MIME_PARTS
        or raw.lower().count(b"multipart/") > MAX_MIME_CONTAINERS
    )


def _cap_body(value: str) -> str:
    if len(value) <= MAX_BODY_CHARS:
        return value
    return (
        value[:MAX_BODY_CHARS]
        + f"\n\n[Cut at {MAX_BODY_CHARS} characters of {len(value)}; the original is kept.]"
    )


def parse_inbound_message(
    message: AnymailInboundMessage,
    *,
    raw: bytes | None = None,
    own_addresses: Iterable[str] = (),
) -> ParsedEmail:
    """Extract everything the ticket services need from a parsed inbound message.

    `raw` is only used to derive a stable synthetic Message-ID when the header is missing; when
    it is not given (ESP webhooks that post parsed fields) the message is flattened instead.
    Raises `EmailParseError` when the input has no header fields or no sender address.
    """
    headers = header_items(message)
    if not headers:
        raise EmailParseError("not an email: no header fields found")
    senders = header_addresses(header_all(headers, "from"))
    if not senders:
        raise EmailParseError("no sender address")
    from_name, from_email = senders[0]

    message_id_value = header_first(headers, "message-id")
    message_id = parse_message_id(message_id_value)
    has_message_id = bool(message_id)
    if not has_message_id:
        digest = hashlib.sha256(raw if raw is not None else flatten_message(message)).hexdigest()
        message_id = f"sha256-{digest}@missing-message-id.invalid"

    body = collect_body(message)
    body.html = body.html[:MAX_BODY_CHARS]
    text = body.text
    if not text.strip() and body.html:
        text = html_to_text(body.html)
    text = _cap_body(text)

    automated = is_automated(
        headers,
        from_email=from_email,
        own_addresses=own_addresses,
        has_delivery_status=bool(body.delivery_status_blocks),
    )
    bounce_recipients: tuple[str, ...] = ()
    bounce_ids: tuple[str, ...] = ()
    if automated == "bounce":
        bounce_recipients = dsn_failed_recipients(body.delivery_status_blocks)
        bounce_ids = dedupe(body.original_message_ids)
        if not bounce_ids:
            # Non-DSN bounces (qmail, old Exim) quote the original headers in the body text.
            bounce_ids = dedupe(
                mid
                for match in QUOTED_MESSAGE_ID.finditer(text[:MAX_SCANNED_CHARS])
                for mid in parse_message_ids(match.group(1))
            )

    recipients = [
        address
        for name in ("to", "cc", "delivered-to", "x-original-to", "envelope-to")
        for _, address in header_addresses(header_all(headers, name))
    ]
    envelope_recipient = getattr(message, "envelope_recipient", None)
    if envelope_recipient:
        # ESP webhooks report the envelope recipient separately; it is the only trace of a Bcc.
        recipients.extend(address for _, address in header_addresses([str(envelope_recipient)]))

    return ParsedEmail(
        message_id=message_id,
        has_message_id=has_message_id,
        in_reply_to=dedupe(parse_message_ids(" ".join(header_all(headers, "in-reply-to")))),
        references=dedupe(parse_message_ids(" ".join(header_all(headers, "references")))),
        from_email=from_email,
        from_name=from_name,
        reply_to=dedupe(
            address for _, address in header_addresses(header_all(headers, "reply-to"))
        ),
        recipients=dedupe(recipients),
        subject=one_line(decode_header_value(header_first(headers, "subject")))[
            :MAX_SUBJECT_LENGTH
        ],
        text=text,
        html=sanitize_html(body.html).strip() if body.html else "",
        date=parse_header_date(header_first(headers, "date")),
        automated=automated,
        bounce_recipients=bounce_recipients,
        bounce_original_message_ids=bounce_ids,
        attachments=tuple(body.attachments),
        copied=tuple(
            (one_line(name)[:200], address)
            for field in ("to", "cc")
            for name, address in header_addresses(header_all(headers, field))
        )[:100],
        language=content_language(header_first(headers, "content-language")),
    )


_LANGUAGE_TAG = re.compile(r"[a-z]{1,8}(?:-[a-z0-9]{1,8}){0,3}")


def content_language(value: str) -> str:
    """The first tag of a Content-Language header value, lower case; "" when it is not one.
    Cheap on hostile input: only the first 100 characters are looked at, and the pattern is a
    full match of a bounded shape."""
    first = value[:100].split(",", 1)[0].strip().lower().replace("_", "-")
    return first if len(first) <= 35 and _LANGUAGE_TAG.fullmatch(first) else ""


# --------------------------------------------------------------------------------------------
# Automated-mail detection
# --------------------------------------------------------------------------------------------

_AUTO_PRECEDENCE = frozenset({"bulk", "junk", "auto_reply"})
_BOUNCE_SENDERS = frozenset({"mailer-daemon", "postmaster"})


def is_automated(
    headers: Iterable[tuple[str, str]],
    *,
    from_email: str,
    own_addresses: Iterable[str],
    has_delivery_status: bool = False,
) -> str:
    """Return "" for mail a human wrote, else why it is automated.

    `headers` are (name, value) pairs in any case. The reasons, in priority order:
    "bounce" (a delivery status notification; it must update the recipient, not open a ticket),
    "own_address" (our own outgoing mail looping back), "auto_reply" (RFC 3834 and the vendor
    headers that Outlook, Exchange and autoresponders use), "list" (mailing-list traffic). The
    caller must never auto-acknowledge or survey anything with a non-empty reason, which is how
    mail loops between two autoresponders are broken.
    """
    fields: dict[str, list[str]] = {}
    for name, value in headers:
        fields.setdefault(name.strip().lower(), []).append(" ".join(str(value).split()))

    def first(name: str) -> str:
        return fields.get(name, [""])[0]

    def token(name: str) -> str:
        return first(name).split(";")[0].strip().lower()

    from_email = from_email.strip().lower()
    local_part = from_email.rpartition("@")[0]
    content_type = first("content-type").lower()
    is_report = content_type.startswith("multipart/report") and bool(
        re.search(r'report-type\s*=\s*"?delivery-status', content_type)
    )
    null_return_path = any(re.fullmatch(r"<\s*>", v.strip()) for v in fields.get("return-path", []))
    if (
        is_report
        or (has_delivery_status and (local_part in _BOUNCE_SENDERS or null_return_path))
        # MAILER-DAEMON never sends human mail; qmail-style bounces have no DSN part at all.
        or local_part == "mailer-daemon"
    ):
        return "bounce"

    own = {address.strip().lower() for address in own_addresses}
    if from_email in own:
        return "own_address"

    auto_submitted = token("auto-submitted")
    precedences = {token("precedence"), token("x-precedence")}
    if (
        (auto_submitted and auto_submitted != "no")
        or token("x-autoreply") not in ("", "no")
        or token("x-autorespond") not in ("", "no")
        # Outlook/Exchange set this on OOF replies and on system notifications; "None" means
        # "suppress nothing", which is what an ordinary client would say.
        or token("x-auto-response-suppress") not in ("", "none")
        or precedences & _AUTO_PRECEDENCE
        # RFC 5321: a null reverse-path is reserved for notifications that must not be answered.
        or null_return_path
    ):
        return "auto_reply"

    if first("list-id") or first("list-unsubscribe") or "list" in precedences:
        return "list"
    return ""
