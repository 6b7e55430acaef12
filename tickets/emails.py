"""Turn an inbound email into plain, safe data that the ticket services can act on.

This module is deliberately pure: no database, no Django settings, no models. Everything it needs
(the raw bytes, our own addresses) is passed in, so the inbound webhook, the IMAP poller, the
management command and the tests all share one parser and it can be fuzzed without a database.

Inbound mail is hostile and broken far more often than it is valid, so the rule throughout is:
decode what can be decoded, replace what cannot, and raise `EmailParseError` only when the input
cannot be attributed to a sender at all. Every string that leaves this module is free of lone
surrogates and NUL characters, because PostgreSQL rejects both.
"""

from __future__ import annotations

import base64
import binascii
import codecs
import hashlib
import html as html_module
import re
import unicodedata
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime
from email.message import Message
from email.parser import BytesParser, HeaderParser
from email.policy import compat32
from email.utils import collapse_rfc2231_value, getaddresses, parsedate_to_datetime
from html.parser import HTMLParser

import nh3
from anymail.inbound import AnymailInboundMessage

__all__ = [
    "EmailParseError",
    "ParsedAttachment",
    "ParsedEmail",
    "html_to_text",
    "is_automated",
    "parse_inbound_message",
    "parse_raw_email",
    "sanitize_html",
]

MAX_SUBJECT_LENGTH = 998  # RFC 5322 line limit; also bounds the Ticket.subject column.
MAX_FILENAME_LENGTH = 200
# limits: structure and size caps. Real mail has a handful of parts a few levels deep; hostile mail
# has thousands, and the stdlib parser is superlinear in nesting depth (1,000 levels: minutes).
# Beyond the caps only the headers are parsed and the body is kept as text (the raw message is
# stored as always). Stored text and HTML are cut at MAX_BODY_CHARS with a note.
MAX_MIME_PARTS = 1000  # boundary lines ("--...") in a raw message; leaves walked in any message
MAX_MIME_CONTAINERS = 100  # "multipart/" declarations in a raw message (bounds nesting depth)
MAX_MIME_DEPTH = 50  # levels walked in an already parsed message (provider webhooks)
MAX_BODY_CHARS = 1_000_000
# Text a pattern searches for structure (quoted headers of a bounce, DSN field groups) is cut here
# first: every pattern in this module is linear in its input (tests/tickets/test_regex_linear.py),
# and the cut bounds the constant as well.
MAX_SCANNED_CHARS = 200_000

# Exceptions the stdlib email and codec machinery raise on hostile input. We catch these (and not
# Exception) so that genuine programming errors in this module still surface in tests.
_DECODE_ERRORS = (
    LookupError,
    UnicodeError,
    ValueError,
    TypeError,
    IndexError,
    KeyError,
    AttributeError,
    AssertionError,
    binascii.Error,
    # The stdlib parser and generator recurse once per MIME level; hostile nesting exhausts them.
    RecursionError,
)


class EmailParseError(Exception):
    """The input is not an email we can attribute to a sender; the message says why."""


@dataclass(frozen=True)
class ParsedAttachment:
    filename: str
    content_type: str
    content: bytes
    inline: bool
    content_id: str


@dataclass(frozen=True)
class ParsedEmail:
    message_id: str
    has_message_id: bool
    in_reply_to: tuple[str, ...]
    references: tuple[str, ...]
    from_email: str
    from_name: str
    reply_to: tuple[str, ...]
    recipients: tuple[str, ...]
    subject: str
    text: str
    html: str
    date: datetime | None
    automated: str
    bounce_recipients: tuple[str, ...]
    bounce_original_message_ids: tuple[str, ...]
    attachments: tuple[ParsedAttachment, ...]


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
    except _DECODE_ERRORS:
        # The modern email policy parses structured headers eagerly and has had crash bugs on
        # hostile input; compat32 keeps headers as raw strings and does not fail that way. If
        # even that fails (absurd MIME nesting), keep the headers and treat the body as text.
        parser = BytesParser(AnymailInboundMessage, policy=compat32)
        try:
            message = parser.parsebytes(raw)
        except _DECODE_ERRORS:
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
    headers = _header_items(message)
    if not headers:
        raise EmailParseError("not an email: no header fields found")
    senders = _addresses(_all(headers, "from"))
    if not senders:
        raise EmailParseError("no sender address")
    from_name, from_email = senders[0]

    message_id_value = _first(headers, "message-id")
    message_id = _message_id(message_id_value)
    has_message_id = bool(message_id)
    if not has_message_id:
        digest = hashlib.sha256(raw if raw is not None else _flatten(message)).hexdigest()
        message_id = f"sha256-{digest}@missing-message-id.invalid"

    body = _collect_body(message)
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
        bounce_recipients = _dsn_failed_recipients(body.delivery_status_blocks)
        bounce_ids = _dedupe(body.original_message_ids)
        if not bounce_ids:
            # Non-DSN bounces (qmail, old Exim) quote the original headers in the body text.
            bounce_ids = _dedupe(
                mid
                for match in _QUOTED_MESSAGE_ID.finditer(text[:MAX_SCANNED_CHARS])
                for mid in _message_ids(match.group(1))
            )

    recipients = [
        address
        for name in ("to", "cc", "delivered-to", "x-original-to", "envelope-to")
        for _, address in _addresses(_all(headers, name))
    ]
    envelope_recipient = getattr(message, "envelope_recipient", None)
    if envelope_recipient:
        # ESP webhooks report the envelope recipient separately; it is the only trace of a Bcc.
        recipients.extend(address for _, address in _addresses([str(envelope_recipient)]))

    return ParsedEmail(
        message_id=message_id,
        has_message_id=has_message_id,
        in_reply_to=_dedupe(_message_ids(" ".join(_all(headers, "in-reply-to")))),
        references=_dedupe(_message_ids(" ".join(_all(headers, "references")))),
        from_email=from_email,
        from_name=from_name,
        reply_to=_dedupe(address for _, address in _addresses(_all(headers, "reply-to"))),
        recipients=_dedupe(recipients),
        subject=_one_line(_decode_header_value(_first(headers, "subject")))[:MAX_SUBJECT_LENGTH],
        text=text,
        html=sanitize_html(body.html).strip() if body.html else "",
        date=_parse_date(_first(headers, "date")),
        automated=automated,
        bounce_recipients=bounce_recipients,
        bounce_original_message_ids=bounce_ids,
        attachments=tuple(body.attachments),
    )


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


# --------------------------------------------------------------------------------------------
# HTML
# --------------------------------------------------------------------------------------------

_ALLOWED_TAGS = frozenset(
    [
        "p",
        "br",
        "div",
        "span",
        "b",
        "i",
        "strong",
        "em",
        "u",
        "ul",
        "ol",
        "li",
        "blockquote",
        "pre",
        "code",
        "table",
        "thead",
        "tbody",
        "tr",
        "td",
        "th",
        "h1",
        "h2",
        "h3",
        "h4",
        "h5",
        "h6",
        "a",
        "hr",
    ]
)
# Tags whose *content* must go too: code, CSS and embedded documents. Any other tag that is not
# allowed is unwrapped, so the text inside layout or unknown tags stays readable.
_CLEAN_CONTENT_TAGS = frozenset(
    [
        "script",
        "style",
        "title",
        "template",
        "iframe",
        "frame",
        "frameset",
        "object",
        "embed",
        "applet",
        "noembed",
        "noframes",
        "svg",
        "math",
    ]
)
_HTML_CLEANER = nh3.Cleaner(
    tags=set(_ALLOWED_TAGS),
    clean_content_tags=set(_CLEAN_CONTENT_TAGS),
    attributes={
        "a": {"href", "title"},
        "td": {"colspan", "rowspan"},
        "th": {"colspan", "rowspan"},
    },
    url_schemes={"http", "https", "mailto"},
    # Relative links in an email point into *our* app when rendered in the agent UI.
    url_relative="deny",
    link_rel="noopener noreferrer nofollow",
    strip_comments=True,
)


MAX_HTML_DEPTH = 1000
_TAG_OPEN_OR_CLOSE = re.compile(r"<(/?)([a-zA-Z][^\s/>]*)")
# Void elements never nest; the others close implicitly, so they never build deep trees either.
_NON_NESTING_TAGS = frozenset(
    [
        "area",
        "base",
        "br",
        "col",
        "embed",
        "hr",
        "img",
        "input",
        "link",
        "meta",
        "param",
        "source",
        "track",
        "wbr",
        "p",
        "li",
        "dt",
        "dd",
        "tr",
        "td",
        "th",
        "option",
        "optgroup",
        "thead",
        "tbody",
        "tfoot",
        "colgroup",
        "rb",
        "rt",
        "rp",
    ]
)


def _nesting_exceeds(html: str, limit: int) -> bool:
    depth = 0
    for match in _TAG_OPEN_OR_CLOSE.finditer(html):
        if match.group(2).lower() in _NON_NESTING_TAGS:
            continue
        if match.group(1):
            depth = max(0, depth - 1)
        else:
            depth += 1
            if depth > limit:
                return True
    return False


def sanitize_html(html: str) -> str:
    """Return `html` reduced to formatting safe to render inside the agent UI.

    No images (remote images are tracking pixels and leak that an agent opened the ticket), no
    style attributes (they can overlay our UI), no active content, and links limited to
    http, https and mailto with `rel="noopener noreferrer nofollow"`.

    The HTML5 tree builder is quadratic in nesting depth (100,000 unclosed <div>s take minutes),
    so absurdly deep documents are shown as their escaped text instead of being parsed.
    """
    html = html.replace("\x00", "")
    if _nesting_exceeds(html, MAX_HTML_DEPTH):
        paragraphs = html_to_text(html).split("\n\n")
        return "".join(
            "<p>" + html_module.escape(paragraph).replace("\n", "<br>") + "</p>"
            for paragraph in paragraphs
            if paragraph
        )
    return _HTML_CLEANER.clean(html)


_HTML_SPACE = re.compile(r"[ \t\n\r\f]+")
# What the sanitiser drops with its content is not visible text either. Void elements are left
# out: they have no end tag, so skipping "until the end tag" would swallow the rest of the body.
_SKIPPED_TAGS = _CLEAN_CONTENT_TAGS - {"embed", "frame"}
_PARAGRAPH_TAGS = frozenset(
    {"p", "h1", "h2", "h3", "h4", "h5", "h6", "blockquote", "pre", "table", "hr", "address"}
)
_LINE_TAGS = frozenset(
    [
        "div",
        "li",
        "tr",
        "ul",
        "ol",
        "dl",
        "dt",
        "dd",
        "section",
        "article",
        "header",
        "footer",
        "center",
        "caption",
        "form",
        "figure",
        "body",
    ]
)


class _TextExtractor(HTMLParser):
    """Collect the visible text of an HTML document with line breaks where a browser puts them."""

    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.chunks: list[str] = []
        self._trailing_newlines = 0
        self._skip_depth = 0
        self._pre_depth = 0
        self._lists: list[list[int]] = []  # [is_ordered, counter] per open list
        self._links: list[tuple[str, int]] = []  # (href, index of first chunk of link text)

    def _emit(self, text: str) -> None:
        if not text:
            return
        self.chunks.append(text)
        stripped = text.rstrip("\n")
        if stripped:
            self._trailing_newlines = len(text) - len(stripped)
        else:
            self._trailing_newlines += len(text)

    def _break(self, count: int) -> None:
        if self.chunks and self._trailing_newlines < count:
            self._emit("\n" * (count - self._trailing_newlines))

    def _at_space(self) -> bool:
        return not self.chunks or self.chunks[-1][-1] in " \n"

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        if tag == "body":
            self._skip_depth = 0  # an unclosed <title> or <style> in <head> must not eat the body
        if tag in _SKIPPED_TAGS:
            self._skip_depth += 1
            return
        if self._skip_depth:
            return
        if tag == "br":
            self._emit("\n")
        elif tag in _PARAGRAPH_TAGS:
            self._break(2)
        elif tag in _LINE_TAGS:
            self._break(1)
        if tag == "pre":
            self._pre_depth += 1
        elif tag in ("ul", "ol"):
            self._lists.append([tag == "ol", 0])
        elif tag == "li":
            if self._lists and self._lists[-1][0]:
                self._lists[-1][1] += 1
                self._emit(f"{self._lists[-1][1]}. ")
            else:
                self._emit("- ")
        elif tag in ("td", "th") and not self._at_space():
            self._emit(" ")
        elif tag == "a":
            self._links.append((dict(attrs).get("href") or "", len(self.chunks)))

    def handle_endtag(self, tag: str) -> None:
        if tag in _SKIPPED_TAGS:
            self._skip_depth = max(0, self._skip_depth - 1)
            return
        if self._skip_depth:
            return
        if tag in _PARAGRAPH_TAGS:
            self._break(2)
        elif tag in _LINE_TAGS:
            self._break(1)
        if tag == "pre":
            self._pre_depth = max(0, self._pre_depth - 1)
        elif tag in ("ul", "ol") and self._lists:
            self._lists.pop()
        elif tag == "a" and self._links:
            href, start = self._links.pop()
            label = "".join(self.chunks[start : start + 50]).strip()  # bounded: links can nest
            target = href.strip()
            # Keep the destination of "click here" links: agents need it, and the HTML is gone.
            if (
                label
                and re.match(r"(?i)(https?|mailto):", target)
                and target.lower().removeprefix("mailto:") != label.lower()
            ):
                self._emit(f" ({target})")

    def handle_data(self, data: str) -> None:
        if self._skip_depth:
            return
        if self._pre_depth:
            self._emit(data)
            return
        text = _HTML_SPACE.sub(" ", data)
        if self._at_space():
            text = text.lstrip(" ")
        self._emit(text)


def _strip_tags(html: str) -> str:
    """A crude tag strip in one pass: script and style elements dropped, every other tag a space.

    The fallback when html.parser gives up; a scan with str.find, so no input makes it slower
    than linear (an unclosed "<" or "<script" ends the text instead of being searched again).
    """
    out: list[str] = []
    lower = html.lower()
    position = 0
    while True:
        start = html.find("<", position)
        if start < 0:
            out.append(html[position:])
            break
        out.append(html[position:start])
        out.append(" ")
        for element in ("script", "style"):
            if lower.startswith(element, start + 1):
                after = start + 1 + len(element)
                if after < len(lower) and (lower[after].isalnum() or lower[after] in "-_:"):
                    continue  # "<scripted>" is another tag
                close = lower.find("</" + element, after)
                end = lower.find(">", close) if close >= 0 else -1
                position = end + 1 if end >= 0 else len(html)
                break
        else:
            end = html.find(">", start + 1)
            position = end + 1 if end >= 0 else len(html)
        if position >= len(html):
            break
    return "".join(out)


def html_to_text(html: str) -> str:
    """Derive readable plain text from an HTML body (for HTML-only mail, previews and search).

    Scripts and styles are dropped, entities unescaped, whitespace collapsed as a browser would,
    and paragraphs, line breaks, list items and link targets kept.
    """
    html = html.replace("\x00", "")
    extractor = _TextExtractor()
    try:
        extractor.feed(html)
        extractor.close()
        text = "".join(extractor.chunks)
    except _DECODE_ERRORS:
        # html.parser raises AssertionError on some malformed declarations; a crude strip beats
        # losing the message.
        text = html_module.unescape(_strip_tags(html))
    text = text.replace("\xa0", " ").replace("\r", "")
    lines = [line.rstrip() for line in text.split("\n")]
    return re.sub(r"\n{3,}", "\n\n", "\n".join(lines)).strip()


# --------------------------------------------------------------------------------------------
# Header decoding
# --------------------------------------------------------------------------------------------

_ENCODED_WORD = re.compile(r"=\?([^?\s]+)\?([bBqQ])\?([^?]*)\?=")
_SURROGATES = re.compile("[\ud800-\udfff]")
_CONTROL_CHARS = re.compile(r"[\x00-\x08\x0b-\x1f\x7f]")
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


def _decode_bytes(data: bytes, charset: str | None) -> str:
    """Decode bytes in the declared charset, never raising: unknown labels fall back to UTF-8."""
    resolved = _resolve_charset(charset)
    text = None
    if resolved is not None:
        try:
            text = data.decode(resolved, errors="replace")
        except _DECODE_ERRORS:
            text = None
    if text is None:
        text = data.decode("utf-8", errors="replace")
    # No stdlib codec should emit a lone surrogate, but PostgreSQL would reject one if it did.
    return _SURROGATES.sub("\ufffd", text)


def _repair_surrogates(value: str) -> str:
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


def _decode_header_value(value: str) -> str:
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
            out.append(_decode_bytes(b"".join(pending), pending_charset))
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


def _one_line(value: str) -> str:
    return " ".join(_CONTROL_CHARS.sub(" ", value).split())


def _header_items(part: Message) -> list[tuple[str, str]]:
    """(lower-cased name, unfolded text) for every header, repeats kept and in order."""
    items = []
    for name, value in part.raw_items():
        text = _NEWLINES.sub(" ", _FOLD.sub("", _repair_surrogates(str(value))))
        items.append((_repair_surrogates(str(name)).strip().lower(), text))
    return items


def _all(headers: list[tuple[str, str]], name: str) -> list[str]:
    return [value for key, value in headers if key == name]


def _first(headers: list[tuple[str, str]], name: str) -> str:
    values = _all(headers, name)
    return values[0] if values else ""


def _addresses(values: list[str]) -> list[tuple[str, str]]:
    """(display name, lower-cased address) pairs; anything without a usable address is dropped.

    Addresses are split *before* RFC 2047 decoding, otherwise an encoded comma in a display name
    ("=?utf-8?q?Doe=2C_John?=") would split one person into two.
    """
    try:
        pairs = getaddresses([value for value in values if value.strip()])
    except _DECODE_ERRORS:
        return []
    result = []
    for name, address in pairs:
        address = _one_line(address).strip("<>").strip().lower()
        local, at, domain = address.rpartition("@")
        if not (local and at and domain) or " " in address:
            continue
        result.append((_one_line(_decode_header_value(name)).strip("\"'"), address))
    return result


_ID_TOKEN = re.compile(r"<([^<>]*)>|([^\s<>,;]+)")
# Horizontal whitespace only, possessive runs on either side of the one optional ">": a line of
# blanks or newlines can never be split between the runs, so the scan stays linear in the text.
_QUOTED_MESSAGE_ID = re.compile(r"(?im)^[ \t]*+>?[ \t]*+message-id:[ \t]*+(\S[^\r\n]*)")


def _message_ids(value: str) -> list[str]:
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
        candidate = _CONTROL_CHARS.sub("", candidate)
        if "@" in candidate:
            ids.append(candidate)
    return ids


def _message_id(value: str) -> str:
    ids = _message_ids(value)
    if ids:
        return ids[0]
    # Some systems send ids without a domain ("<1234.5678>"); an exact match still threads.
    return _CONTROL_CHARS.sub("", "".join(value.split())).strip("<>")


def _dedupe(values: Iterable[str]) -> tuple[str, ...]:
    return tuple(dict.fromkeys(value for value in values if value))


def _parse_date(value: str) -> datetime | None:
    if not value.strip():
        return None
    try:
        parsed = parsedate_to_datetime(value)
    except (*_DECODE_ERRORS, OverflowError):
        return None
    if parsed.tzinfo is None:
        # RFC 5322 "-0000": the time is UTC but the sender's zone is unknown.
        parsed = parsed.replace(tzinfo=UTC)
    return parsed


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
        headers = _header_items(part)
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
    except _DECODE_ERRORS:
        data = None
    return data if isinstance(data, bytes) else b""


def _flatten(message: Message) -> bytes:
    """The message as bytes, for embedded originals and synthetic ids; best effort."""
    try:
        return message.as_bytes(policy=compat32)
    except _DECODE_ERRORS:
        lines = [f"{name}: {value}" for name, value in _header_items(message)]
        return "\n".join(lines).encode("utf-8", errors="replace")


def _part_text(part: Message, view: Message) -> str:
    text = _decode_bytes(_payload_bytes(part), view.get_content_charset())
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
    name = _decode_header_value(_repair_surrogates(name)) if "=?" in name else name
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


def _collect_body(message: Message) -> _Body:
    body = _Body()
    texts: list[str] = []
    htmls: list[str] = []

    for leaf in _leaves(message):
        part, view = leaf.part, leaf.view
        content_type = _safe_content_type(view.get_content_type())
        disposition = (view.get_content_disposition() or "").lower()
        try:
            filename = view.get_filename() or ""
        except _DECODE_ERRORS:
            filename = ""
        content_id = _message_id(_first(leaf.headers, "content-id"))

        if content_type in _DSN_TYPES:
            body.delivery_status_blocks.extend(_dsn_blocks(part, view))
            continue
        if content_type in _HEADERS_TYPES:
            original = HeaderParser(policy=compat32).parsestr(_part_text(part, view))
            body.original_message_ids.extend(
                _message_id(value) for value in _all(_header_items(original), "message-id")
            )
            continue
        if content_type in _MESSAGE_TYPES:
            embedded = (_children(part) or [None])[0]
            if embedded is not None:
                content = _flatten(embedded)
                body.original_message_ids.extend(
                    _message_id(value) for value in _all(_header_items(embedded), "message-id")
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
        return [_header_items(block) for block in blocks]
    text = _part_text(part, view)
    return [
        _header_items(HeaderParser(policy=compat32).parsestr(chunk))
        for chunk in _BLANK_LINE.split(text[:MAX_SCANNED_CHARS])
    ]


_BLANK_LINE = re.compile(r"\n(?:[ \t\r]*+\n)++")
_NOT_FAILED = frozenset({"delayed", "delivered", "relayed", "expanded"})


def _dsn_failed_recipients(blocks: list[list[tuple[str, str]]]) -> tuple[str, ...]:
    """Final-/Original-Recipient addresses of recipients that failed.

    A "delayed" DSN is only a warning; marking that address undeliverable would be wrong.
    """
    recipients: list[str] = []
    for block in blocks:
        action = _first(block, "action").strip().lower()
        if action in _NOT_FAILED:
            continue
        for name in ("final-recipient", "original-recipient"):
            for value in _all(block, name):
                # "rfc822; user@example.com" (or "utf-8; ..." per RFC 6533)
                address = value.rpartition(";")[2] if ";" in value else value
                address = _CONTROL_CHARS.sub("", "".join(address.split())).strip("<>").lower()
                if "@" in address:
                    recipients.append(address)
    return _dedupe(recipients)
