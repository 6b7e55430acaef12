"""Header decoding: encoded words, charsets, addresses, message ids and dates."""

from __future__ import annotations

import base64
import codecs
import re
from collections.abc import Iterable
from datetime import UTC, datetime
from email.message import Message
from email.utils import getaddresses, parsedate_to_datetime

from tickets.emails.types import DECODE_ERRORS

# --------------------------------------------------------------------------------------------
# Header decoding
# --------------------------------------------------------------------------------------------

_ENCODED_WORD = re.compile(r"=\?([^?\s]+)\?([bBqQ])\?([^?]*)\?=")
_SURROGATES = re.compile("[\ud800-\udfff]")
CONTROL_CHARS = re.compile(r"[\x00-\x08\x0b-\x1f\x7f]")
_FOLD = re.compile(r"\r?\n(?=[ \t])")
_NEWLINES = re.compile(r"[\r\n]+")

# Labels that mailers use for a narrower charset than the bytes they actually send. The same
# mapping browsers apply (WHATWG Encoding): decoding with the superset is never worse.
_CHARSET_SUPERSETS = {
    "ascii": "utf-8",
    "iso8859-1": "cp1252",
    "gb2312": "gb18030",
    "gbk": "gb18030",
    "shift_jis": "cp932",
    "euc_kr": "cp949",
}
# Python text codecs that are not character sets; a hostile label must not select them.
_NOT_CHARSETS = frozenset({"unicode-escape", "raw-unicode-escape", "punycode", "idna", "undefined"})


def _resolve_charset(charset: str | None) -> str | None:
    if not charset:
        return None
    label = charset.strip().strip("\"'").split("*", 1)[0]
    try:
        name = codecs.lookup(label).name
    except (LookupError, ValueError, TypeError):
        return None
    if name in _NOT_CHARSETS or name.replace("_", "-") in _NOT_CHARSETS:
        return None
    return _CHARSET_SUPERSETS.get(name, name)


def decode_bytes(data: bytes, charset: str | None) -> str:
    """Decode bytes in the declared charset, never raising: unknown labels fall back to UTF-8."""
    resolved = _resolve_charset(charset)
    text = None
    if resolved is not None:
        try:
            text = data.decode(resolved, errors="replace")
        except DECODE_ERRORS:
            text = None
    if text is None:
        text = data.decode("utf-8", errors="replace")
    # No stdlib codec should emit a lone surrogate, but PostgreSQL would reject one if it did.
    return _SURROGATES.sub("\ufffd", text)


def repair_surrogates(value: str) -> str:
    """Turn the surrogate-escaped 8-bit bytes the parser leaves in headers into real text.

    Raw 8-bit headers are in practice UTF-8 or, from older Windows clients, cp1252.
    """
    if not _SURROGATES.search(value):
        return value
    try:
        data = value.encode("utf-8", errors="surrogateescape")
    except UnicodeEncodeError:
        return _SURROGATES.sub("\ufffd", value)
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError:
        return data.decode("cp1252", errors="replace")


def _decode_word(encoding: str, text: str) -> bytes:
    data = text.encode("utf-8", errors="replace")
    if encoding in "bB":
        data = re.sub(rb"[^A-Za-z0-9+/]", b"", data)
        if len(data) % 4 == 1:  # a truncated word: drop the byte that cannot be decoded
            data = data[:-1]
        return base64.b64decode(data + b"=" * (-len(data) % 4))
    data = data.replace(b"_", b" ")
    return re.sub(rb"=([0-9A-Fa-f]{2})", lambda m: bytes([int(m.group(1), 16)]), data)


def decode_header_value(value: str) -> str:
    """Decode RFC 2047 encoded words leniently.

    Unlike `email.header.decode_header` this never raises: it accepts broken base64, unknown
    charsets and encoded words inside quotes. Adjacent words in the same charset are joined
    before decoding because mailers split multi-byte characters across words.
    """
    out: list[str] = []
    pending: list[bytes] = []
    pending_charset = ""

    def flush() -> None:
        nonlocal pending
        if pending:
            out.append(decode_bytes(b"".join(pending), pending_charset))
            pending = []

    position = 0
    for match in _ENCODED_WORD.finditer(value):
        between = value[position : match.start()]
        # RFC 2047 section 6.2: whitespace between two encoded words is not displayed.
        if between and not (pending and between.isspace()):
            flush()
            out.append(between)
        charset = match.group(1).split("*", 1)[0].lower()
        if charset != pending_charset:
            flush()
            pending_charset = charset
        pending.append(_decode_word(match.group(2), match.group(3)))
        position = match.end()
    flush()
    out.append(value[position:])
    return "".join(out).replace("\x00", "")


def one_line(value: str) -> str:
    return " ".join(CONTROL_CHARS.sub(" ", value).split())


def header_items(part: Message) -> list[tuple[str, str]]:
    """(lower-cased name, unfolded text) for every header, repeats kept and in order."""
    items = []
    for name, value in part.raw_items():
        text = _NEWLINES.sub(" ", _FOLD.sub("", repair_surrogates(str(value))))
        items.append((repair_surrogates(str(name)).strip().lower(), text))
    return items


def header_all(headers: list[tuple[str, str]], name: str) -> list[str]:
    return [value for key, value in headers if key == name]


def header_first(headers: list[tuple[str, str]], name: str) -> str:
    values = header_all(headers, name)
    return values[0] if values else ""


def header_addresses(values: list[str]) -> list[tuple[str, str]]:
    """(display name, lower-cased address) pairs; anything without a usable address is dropped.

    Addresses are split *before* RFC 2047 decoding, otherwise an encoded comma in a display name
    ("=?utf-8?q?Doe=2C_John?=") would split one person into two.
    """
    try:
        pairs = getaddresses([value for value in values if value.strip()])
    except DECODE_ERRORS:
        return []
    result = []
    for name, address in pairs:
        address = one_line(address).strip("<>").strip().lower()
        local, at, domain = address.rpartition("@")
        if not (local and at and domain) or " " in address:
            continue
        result.append((one_line(decode_header_value(name)).strip("\"'"), address))
    return result


_ID_TOKEN = re.compile(r"<([^<>]*)>|([^\s<>,;]+)")
# Horizontal whitespace only, possessive runs on either side of the one optional ">": a line of
# blanks or newlines can never be split between the runs, so the scan stays linear in the text.
QUOTED_MESSAGE_ID = re.compile(r"(?im)^[ \t]*+>?[ \t]*+message-id:[ \t]*+(\S[^\r\n]*)")


def parse_message_ids(value: str) -> list[str]:
    """Message-IDs in header order, without brackets.

    Accepts folded lists, comma separators and ids some MUAs send without brackets; drops
    comments and other tokens that cannot be ids (no "@").
    """
    ids = []
    for match in _ID_TOKEN.finditer(value):
        if match.group(1) is not None:
            candidate = "".join(match.group(1).split())
        else:
            candidate = match.group(2).strip("\"'()[]")
        candidate = CONTROL_CHARS.sub("", candidate)
        if "@" in candidate:
            ids.append(candidate)
    return ids


def parse_message_id(value: str) -> str:
    ids = parse_message_ids(value)
    if ids:
        return ids[0]
    # Some systems send ids without a domain ("<1234.5678>"); an exact match still threads.
    return CONTROL_CHARS.sub("", "".join(value.split())).strip("<>")


def dedupe(values: Iterable[str]) -> tuple[str, ...]:
    return tuple(dict.fromkeys(value for value in values if value))


def parse_header_date(value: str) -> datetime | None:
    if not value.strip():
        return None
    try:
        parsed = parsedate_to_datetime(value)
    except (*DECODE_ERRORS, OverflowError):
        return None
    if parsed.tzinfo is None:
        # RFC 5322 "-0000": the time is UTC but the sender's zone is unknown.
        parsed = parsed.replace(tzinfo=UTC)
    return parsed
