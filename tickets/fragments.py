"""Rendered fragments of the workspace's pages, cached under what they show.

The queue and the conversation page spend most of their time rendering templates, not in SQL.
The parts that repeat (a timeline message, a queue row, the customer's past conversations) are
rendered once and kept in the cache (``settings.CACHES``: Redis in production, per-process
memory in tests and ``bin/dev``), read in one ``get_many`` per page.

Why a fragment is never stale: its key is a digest of **every value its template reads**, taken
from the rows the page loads anyway (the queries do not change), plus the active language and
time zone and the template's source (a deploy that changes the markup starts afresh). No writer
has to remember to bump anything: a privacy erasure blanks the message's text and deletes its
files (different text, no attachments: another key), a delivery attempt changes the delivery
state, error and attempt count, a renamed customer or agent changes the name shown, a moved
message loses or gains its contact boundary. ``conversation.version`` alone would not do:
delivery updates, erasure, retention and renames do not bump it (they write with ``update()``).
Whatever is per viewer or per moment stays outside the fragments: CSRF tokens, forms that list
other conversations (move targets), the extension panels (``message.actions``), "3 min ago"
times. The fragments' templates render without a request (no context processors), so they
cannot reach the viewer.

A template of a fragment and its ``*_parts`` function below change together: the parts list
exactly the values the template reads (tests/tickets/test_fragments.py renders each after every
change it can see).
"""

from __future__ import annotations

import functools
import hashlib
import logging
from collections.abc import Sequence
from typing import Any

from django.conf import settings
from django.core.cache import cache
from django.template.loader import get_template, render_to_string
from django.utils import timezone, translation
from django.utils.safestring import SafeString, mark_safe

logger = logging.getLogger(__name__)


@functools.cache
def template_digest(name: str) -> str:
    """A digest of the template's source, once a process: a deploy that changes a fragment's
    markup never serves what the old markup rendered (the cache outlives the web workers)."""
    source = get_template(name).template.source  # type: ignore[attr-defined]
    return hashlib.blake2b(source.encode(), digest_size=8).hexdigest()


def fragment_key(template: str, parts: Sequence[Any]) -> str:
    """``frag:<digest>``: of the template's source, the parts, the language and the time zone."""
    digest = hashlib.blake2b(
        repr(
            (
                template,
                template_digest(template),
                translation.get_language(),
                timezone.get_current_timezone_name(),
                tuple(parts),
            )
        ).encode(),
        digest_size=16,
    ).hexdigest()
    return f"frag:{digest}"


def render_fragments(
    template: str, items: Sequence[tuple[Sequence[Any], dict[str, Any]]]
) -> list[SafeString]:
    """Each item's ``template`` rendered with its context, read from the cache where its parts
    were rendered before (one ``get_many``; one ``set_many`` for those that were not). A context
    is a plain dict of the objects the page loaded: building it costs nothing, rendering does."""
    keys = [fragment_key(template, parts) for parts, _ in items]
    found: dict[str, str] = _cache_read(keys) if keys else {}
    missing: dict[str, str] = {}
    html: list[SafeString] = []
    for key, (_, context) in zip(keys, items, strict=True):
        text = found.get(key)
        if text is None:
            text = missing.get(key)
        if text is None:
            text = render_to_string(template, context)
            missing[key] = text
        html.append(mark_safe(text))  # our own (escaping) template rendered it
    if missing:
        _cache_write(missing)
    return html


# A cache outage (Redis down) costs the page its speed, never the page: it renders everything.
def _cache_read(keys: list[str]) -> dict[str, str]:
    try:
        found: dict[str, str] = cache.get_many(keys)
    except Exception:
        logger.warning("fragments: cache unavailable, rendering everything", exc_info=True)
        return {}
    return found


def _cache_write(values: dict[str, str]) -> None:
    try:
        cache.set_many(values, settings.FRAGMENT_CACHE_SECONDS)
    except Exception:
        logger.warning("fragments: cache unavailable, nothing kept", exc_info=True)


def _name(obj: Any) -> str:
    return "" if obj is None else str(obj)


def message_parts(message: Any, *, contact_number: int | None, customer: Any) -> tuple[Any, ...]:
    """Every value ``tickets/_message.html`` reads."""
    identity, participant, contact, call = (
        message.identity,
        message.participant,
        message.contact,
        getattr(message, "call_log", None),
    )
    return (
        message.pk,
        message.direction,
        message.channel_kind,
        message.automated,
        message.sent_at,
        message.subject,
        message.body_text,
        bool(message.body_html),
        message.cc,
        message.bcc,
        message.claimed_email,
        message.delivery_state,
        message.delivery_error,
        message.delivery_attempts,
        _name(message.author),
        _name(customer),
        identity and (identity.pk, identity.display_value, identity.value),
        participant and (participant.pk, participant.name, participant.email),
        bool(contact_number),
        contact
        and (
            contact.pk,
            contact.wait_seconds,
            contact.talk_seconds,
            contact.hold_seconds,
            contact.ended_by,
        ),
        call
        and (
            call.pk,
            call.direction,
            call.ended_by,
            call.wait_seconds,
            call.talk_seconds,
            call.hold_seconds,
            _name(call.logged_by),
        ),
        tuple((a.pk, a.filename, a.size) for a in message.attachment_list),
    )


def past_conversation_parts(others: Sequence[Any], elsewhere: Sequence[Any]) -> tuple[Any, ...]:
    """Every value ``tickets/_past_conversations.html`` reads."""

    def row(c: Any) -> tuple[Any, ...]:
        return (c.pk, c.subject, c.status, c.outcome, c.outcome_label, c.last_activity_at,
                tuple(c.channels), _name(c.team))  # fmt: skip

    return (tuple(row(c) for c in others), tuple(row(c) for c in elsewhere))


def queue_row_parts(conversation: Any, highlight: Any) -> tuple[Any, ...]:
    """Every value ``tickets/_queue_row.html`` reads (not the times: "3 min ago" stays live)."""
    return (
        conversation.pk,
        conversation.priority,
        conversation.subject,
        tuple(tag.name for tag in conversation.tags.all()),
        "" if highlight is None else str(highlight),
        conversation.preview,
        _name(conversation.customer),
        tuple(conversation.channels),
        conversation.contacts_counted,
        conversation.status,
        conversation.spam_at is not None,
        _name(conversation.assignee),
        _name(conversation.team),
    )
