"""MIME structure: walking parts within limits, bodies, attachments and delivery reports."""

from __future__ import annotations

import re
import unicodedata
from collections.abc import Iterator
from dataclasses import dataclass, field
from email.message import Message
from email.parser import HeaderParser
from email.policy import compat32
from email.utils import collapse_rfc2231_value

from tickets.emails.headers import (
    CONTROL_CHARS,
    decode_bytes,
    decode_header_value,
    dedupe,
    header_all,
    header_first,
    header_items,
    parse_message_id,
    repair_surrogates,
)
from tickets.emails.types import (
    DECODE_ERRORS,
    MAX_FILENAME_LENGTH,
    MAX_MIME_DEPTH,
    MAX_MIME_PARTS,
    MAX_SCANNED_CHARS,
    ParsedAttachment,
)

# --------------------------------------------------------------------------------------------
# MIME structure
# --------------------------------------------------------------------------------------------

_DSN_TYPES = frozenset({"message/delivery-status", "message/global-delivery-status"})
_HEADERS_TYPES = frozenset({"text/rfc822-headers", "message/global-headers"})
_MESSAGE_TYPES = frozenset({"message/rfc822", "message/global"})


@dataclass
class _Body:
    text: str = ""
    html: str = ""
    attachments: list[ParsedAttachment] = field(default_factory=list)
    delivery_status_blocks: list[list[tuple[str, str]]] = field(default_factory=list)
    original_message_ids: list[str] = field(default_factory=list)


@dataclass(frozen=True)
class _Leaf:
    part: Message
    parent_subtype: str
    headers: list[tuple[str, str]]
    view: Message


def _mime_view(part: Message, headers: list[tuple[str, str]]) -> Message:
    """A compat32 copy of the part's MIME headers.

    compat32 parses Content-Type/Disposition parameters (RFC 2231 included) from the raw text
    and tolerates garbage, whereas the modern policy builds structured header objects that can
    fail on hostile input.
    """
    view = Message()
    view.set_default_type(part.get_default_type())
    for name, value in headers:
        if name in ("content-type", "content-disposition"):
            view[name] = value
    return view


def _leaves(root: Message) -> Iterator[_Leaf]:
    """Yield the leaf parts in document order, with the subtype of their multipart parent.

    message/* parts count as leaves: a quoted or bounced original is an attachment, not part of
    this message's body. Iterative, so absurd nesting cannot hit the recursion limit.
    """
    stack: list[tuple[Message, str, int]] = [(root, "", 0)]
    leaves = 0
    while stack and leaves < MAX_MIME_PARTS:
        part, parent, depth = stack.pop()
        headers = header_items(part)
        view = _mime_view(part, headers)
        children = _children(part)
        if children is not None and view.get_content_maintype() != "message":
            if depth < MAX_MIME_DEPTH:  # limits: deeper levels are not walked
                subtype = view.get_content_subtype()
                stack.extend((child, subtype, depth + 1) for child in reversed(children))
        else:
            leaves += 1
            yield _Leaf(part=part, parent_subtype=parent, headers=headers, view=view)


def _children(part: Message) -> list[Message] | None:
    """Sub-parts of a container, None for a leaf.

    Uses is_multipart() rather than get_payload(): without decode=True, get_payload() of an
    8-bit part decodes it with the declared charset and raises on labels such as "idna".
    """
    if not part.is_multipart():
        return None
    return [child for child in part.get_payload() if isinstance(child, Message)]


def _payload_bytes(part: Message) -> bytes:
    """The transfer-decoded payload of a leaf part."""
    try:
        data = part.get_payload(decode=True)
    except DECODE_ERRORS:
        data = None
    return data if isinstance(data, bytes) else b""


def flatten_message(message: Message) -> bytes:
    """The message as bytes, for embedded originals and synthetic ids; best effort."""
    try:
        return message.as_bytes(policy=compat32)
    except DECODE_ERRORS:
        lines = [f"{name}: {value}" for name, value in header_items(message)]
        return "\n".join(lines).encode("utf-8", errors="replace")


def _part_text(part: Message, view: Message) -> str:
    text = decode_bytes(_payload_bytes(part), view.get_content_charset())
    text = text.replace("\r\n", "\n").replace("\r", "\n").replace("\x00", "")
    if view.get_content_type() == "text/plain" and _param(view, "format") == "flowed":
        text = _unflow(text, delete_space=_param(view, "delsp") == "yes")
    return text


def _param(view: Message, name: str) -> str:
    """A lower-cased Content-Type parameter; RFC 2231 values come back as tuples."""
    value = view.get_param(name, "")
    return collapse_rfc2231_value(value).strip().lower() if value else ""


def _unflow(text: str, *, delete_space: bool) -> str:
    """Join RFC 3676 format=flowed soft line breaks so paragraphs reflow in the agent UI."""
    out: list[str] = []
    paragraph: str | None = None
    paragraph_depth = 0

    def quoted(depth: int, content: str) -> str:
        return ">" * depth + (" " if depth and content else "") + content

    for line in text.split("\n"):
        depth = len(line) - len(line.lstrip(">"))
        content = line[depth:]
        if content.startswith(" "):  # space-stuffing
            content = content[1:]
        soft = content.endswith(" ") and content != "-- "
        if soft and delete_space:
            content = content[:-1]
        if paragraph is not None and depth == paragraph_depth:
            paragraph += content
        else:
            if paragraph is not None:
                out.append(quoted(paragraph_depth, paragraph))
            paragraph, paragraph_depth = content, depth
        if not soft:
            out.append(quoted(paragraph_depth, paragraph))
            paragraph = None
    if paragraph is not None:
        out.append(quoted(paragraph_depth, paragraph))
    return "\n".join(out)


_MIME_TYPE = re.compile(r"[a-z0-9][a-z0-9!#$&^_.+-]*/[a-z0-9][a-z0-9!#$&^_.+-]*")


def _safe_content_type(content_type: str) -> str:
    """The type we will later send back in a download's Content-Type header, so it must be a
    plain token pair; anything else is served as opaque bytes."""
    content_type = content_type.strip().lower()
    if _MIME_TYPE.fullmatch(content_type) and len(content_type) <= 100:
        return content_type
    return "application/octet-stream"


def _safe_filename(name: str, *, default: str) -> str:
    """A display name that cannot traverse paths, hide an extension or break a header."""
    name = decode_header_value(repair_surrogates(name)) if "=?" in name else name
    name = name.replace("\\", "/").rsplit("/", 1)[-1]
    name = "".join(ch for ch in name if unicodedata.category(ch) not in ("Cc", "Cf", "Cs"))
    name = " ".join(name.split()).strip(". ")
    if len(name) > MAX_FILENAME_LENGTH:
        stem, dot, extension = name.rpartition(".")
        if dot and stem and len(extension) <= 16:
            name = stem[: MAX_FILENAME_LENGTH - len(extension) - 1] + "." + extension
        else:
            name = name[:MAX_FILENAME_LENGTH]
    return name or default


def collect_body(message: Message) -> _Body:
    body = _Body()
    texts: list[str] = []
    htmls: list[str] = []

    for leaf in _leaves(message):
        part, view = leaf.part, leaf.view
        content_type = _safe_content_type(view.get_content_type())
        disposition = (view.get_content_disposition() or "").lower()
        try:
            filename = view.get_filename() or ""
        except DECODE_ERRORS:
            filename = ""
        content_id = parse_message_id(header_first(leaf.headers, "content-id"))

        if content_type in _DSN_TYPES:
            body.delivery_status_blocks.extend(_dsn_blocks(part, view))
            continue
        if content_type in _HEADERS_TYPES:
            original = HeaderParser(policy=compat32).parsestr(_part_text(part, view))
            body.original_message_ids.extend(
                parse_message_id(value)
                for value in header_all(header_items(original), "message-id")
            )
            continue
        if content_type in _MESSAGE_TYPES:
            children = _children(part)
            if children:
                embedded = children[0]
                content = flatten_message(embedded)
                body.original_message_ids.extend(
                    parse_message_id(value)
                    for value in header_all(header_items(embedded), "message-id")
                )
            else:
                content = _payload_bytes(part)
            body.attachments.append(
                ParsedAttachment(
                    filename=_safe_filename(filename, default="original-message.eml"),
                    content_type=content_type,
                    content=content,
                    inline=False,
                    content_id=content_id,
                )
            )
            continue

        is_file = disposition == "attachment" or bool(filename)
        is_body = content_type in ("text/plain", "text/html") and not is_file
        # A multipart leaf is a multipart whose boundary is missing: its text is all we have.
        if is_body or view.get_content_maintype() == "multipart":
            collected = htmls if content_type == "text/html" else texts
            # Alternatives say the same thing twice; only parts outside one add to the body
            # (Apple Mail splits the text around inline images, list servers append footers).
            if not collected or leaf.parent_subtype != "alternative":
                collected.append(_part_text(part, view))
            continue

        body.attachments.append(
            ParsedAttachment(
                filename=_safe_filename(filename, default="attachment"),
                content_type=content_type,
                content=_payload_bytes(part),
                inline=bool(content_id) and disposition != "attachment",
                content_id=content_id,
            )
        )

    body.text = "\n\n".join(text.strip("\n") for text in texts if text.strip()).strip()
    body.html = "\n".join(htmls)
    return body


def _dsn_blocks(part: Message, view: Message) -> list[list[tuple[str, str]]]:
    """The field groups of a delivery-status part (one per-message group, one per recipient)."""
    blocks = _children(part)
    if blocks is not None:
        # The stdlib parser already splits message/delivery-status into header blocks.
        return [header_items(block) for block in blocks]
    text = _part_text(part, view)
    return [
        header_items(HeaderParser(policy=compat32).parsestr(chunk))
        for chunk in _BLANK_LINE.split(text[:MAX_SCANNED_CHARS])
    ]


_BLANK_LINE = re.compile(r"\n(?:[ \t\r]*+\n)++")
_NOT_FAILED = frozenset({"delayed", "delivered", "relayed", "expanded"})


def dsn_failed_recipients(blocks: list[list[tuple[str, str]]]) -> tuple[str, ...]:
    """Final-/Original-Recipient addresses of recipients that failed.

    A "delayed" DSN is only a warning; marking that address undeliverable would be wrong.
    """
    recipients: list[str] = []
    for block in blocks:
        action = header_first(block, "action").strip().lower()
        if action in _NOT_FAILED:
            continue
        for name in ("final-recipient", "original-recipient"):
            for value in header_all(block, name):
                # "rfc822; user@example.com" (or "utf-8; ..." per RFC 6533)
                address = value.rpartition(";")[2] if ";" in value else value
                address = CONTROL_CHARS.sub("", "".join(address.split())).strip("<>").lower()
                if "@" in address:
                    recipients.append(address)
    return dedupe(recipients)
