"""Turn an inbound email into plain, safe data that the ticket services can act on.

This package is deliberately pure: no database, no Django settings, no models. Everything it needs
(the raw bytes, our own addresses) is passed in, so the inbound webhook, the IMAP poller, the
management command and the tests all share one parser and it can be fuzzed without a database.

Inbound mail is hostile and broken far more often than it is valid, so the rule throughout is:
decode what can be decoded, replace what cannot, and raise `EmailParseError` only when the input
cannot be attributed to a sender at all. Every string that leaves this package is free of lone
surrogates and NUL characters, because PostgreSQL rejects both.

- ``parse``: limits, ``ParsedEmail``, ``parse_raw_email`` / ``parse_inbound_message``, automated mail
- ``headers``: encoded words, charsets, addresses, message ids, dates
- ``mime``: walking the parts within limits, bodies, attachments, delivery reports
- ``sanitize``: HTML for the agent's view, and HTML to text
"""

from tickets.emails.parse import (
    is_automated,
    parse_inbound_message,
    parse_raw_email,
)
from tickets.emails.sanitize import (
    html_to_text,
    sanitize_html,
)
from tickets.emails.types import (
    MAX_BODY_CHARS,
    MAX_FILENAME_LENGTH,
    MAX_MIME_CONTAINERS,
    MAX_MIME_DEPTH,
    MAX_MIME_PARTS,
    MAX_SCANNED_CHARS,
    MAX_SUBJECT_LENGTH,
    EmailParseError,
    ParsedAttachment,
    ParsedEmail,
)

__all__ = [
    "MAX_BODY_CHARS",
    "MAX_FILENAME_LENGTH",
    "MAX_MIME_CONTAINERS",
    "MAX_MIME_DEPTH",
    "MAX_MIME_PARTS",
    "MAX_SCANNED_CHARS",
    "MAX_SUBJECT_LENGTH",
    "EmailParseError",
    "ParsedAttachment",
    "ParsedEmail",
    "html_to_text",
    "is_automated",
    "parse_inbound_message",
    "parse_raw_email",
    "sanitize_html",
]
