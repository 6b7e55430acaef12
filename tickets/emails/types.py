"""What the email parser hands out (ParsedEmail), what it raises, and the limits it keeps."""

from __future__ import annotations

import binascii
from dataclasses import dataclass
from datetime import datetime

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
DECODE_ERRORS = (
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
    # (name, address) of the people in To and Cc, in header order: the sender's colleagues
    # copied on the mail, and our own addresses (the caller drops those).
    copied: tuple[tuple[str, str], ...] = ()
    # The first language tag of the top-level Content-Language header ("pt-br"), lower case;
    # "" when absent or not a tag (RFC 3282 / BCP 47 shape, at most 35 characters).
    language: str = ""
