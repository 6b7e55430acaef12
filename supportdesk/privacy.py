"""Removing a person's text from supportdesk's own tables (audit log, notifications, the outbox,
idempotent replies, the sent-mail log, the file mail sink).

Called inside the transaction of an erasure (``tickets.services.privacy.customer_erase``) or an
anonymisation, by the tickets app and by higher apps for the text they hold. ``needles`` are the
strings to remove (names, addresses, phone numbers, subjects, message text); each is replaced by
``ERASED`` wherever it appears, in any case, and structured values (JSON) keep their shape.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Sequence
from functools import reduce
from operator import or_
from pathlib import Path
from typing import Any

from django.conf import settings
from django.db import transaction
from django.db.models import Model, Q

from supportdesk.models import AuditEntry, IdempotencyKey, Notification, OutboxItem, SentMail

ERASED = "[erased]"
# Shorter strings ("Al", "12") would match other people's text: they are not searched for alone.
NEEDLE_MIN_LENGTH = 4
# How many needles one query ORs together.
_NEEDLES_PER_QUERY = 40


def needles_clean(values: Iterable[str]) -> tuple[str, ...]:
    """The distinct, stripped strings worth searching for, longest first (so that a name inside
    a longer text is replaced after the text itself)."""
    found = {v.strip() for v in values if v and len(v.strip()) >= NEEDLE_MIN_LENGTH}
    return tuple(sorted(found, key=lambda v: (-len(v), v)))


def _pattern(needles: Sequence[str]) -> re.Pattern[str] | None:
    if not needles:
        return None
    return re.compile("|".join(re.escape(n) for n in needles), re.IGNORECASE)


def text_scrub(value: str, needles: Sequence[str]) -> str:
    pattern = _pattern(needles)
    return pattern.sub(ERASED, value) if pattern and value else value


def json_scrub(value: Any, needles: Sequence[str], *, keys: frozenset[str] = frozenset()) -> Any:
    """``value`` with every needle in its strings replaced, and the values under ``keys`` (at
    any depth) replaced whole: lists and dicts keep their shape, numbers and booleans stay."""
    pattern = _pattern(needles)

    def walk(item: Any, blank: bool) -> Any:
        if isinstance(item, dict):
            return {k: walk(v, blank or k in keys) for k, v in item.items()}
        if isinstance(item, list):
            return [walk(v, blank) for v in item]
        if isinstance(item, str):
            if blank and item:
                return ERASED
            return pattern.sub(ERASED, item) if pattern else item
        return item

    return walk(value, False)


def _matching(model: type[Model], fields: Sequence[str], needles: Sequence[str]) -> set[int]:
    """Ids of ``model``'s rows where one of ``fields`` contains one of ``needles`` (any case)."""
    ids: set[int] = set()
    for start in range(0, len(needles), _NEEDLES_PER_QUERY):
        chunk = needles[start : start + _NEEDLES_PER_QUERY]
        where = reduce(or_, (Q(**{f"{f}__icontains": n}) for f in fields for n in chunk))
        ids.update(model._default_manager.filter(where).values_list("pk", flat=True))
    return ids


def personal_text_scrub(*, needles: Sequence[str], addresses: Iterable[str] = ()) -> int:
    """Remove ``needles`` from the audit log, notifications, the outbox and stored idempotent
    replies; forget the mail sent to ``addresses``. Returns the rows changed or deleted.

    An audit entry keeps who did what and when; only the erased words in it change.
    """
    needles = needles_clean(needles)
    changed = 0
    if needles:
        for entry in AuditEntry.objects.filter(
            pk__in=_matching(AuditEntry, ["summary", "details"], needles)
        ):
            entry.summary = text_scrub(entry.summary, needles)[:500]
            entry.details = json_scrub(entry.details, needles)
            entry.save(update_fields=["summary", "details"])
            changed += 1
        for notification in Notification.objects.filter(
            pk__in=_matching(Notification, ["title", "body"], needles)
        ):
            notification.title = text_scrub(notification.title, needles)[:200]
            notification.body = text_scrub(notification.body, needles)
            notification.save(update_fields=["title", "body"])
            changed += 1
        for item in OutboxItem.objects.filter(
            pk__in=_matching(OutboxItem, ["kwargs", "last_error"], needles)
        ):
            item.kwargs = json_scrub(item.kwargs, needles)
            item.last_error = text_scrub(item.last_error, needles)
            item.save(update_fields=["kwargs", "last_error"])
            changed += 1
        # A replayed answer must not bring the text back: the key is forgotten instead (a retry
        # after this runs again, against the erased data).
        changed += IdempotencyKey.objects.filter(
            pk__in=_matching(IdempotencyKey, ["response_body"], needles)
        ).delete()[0]
    lowered = sorted({a.lower() for a in addresses if a})
    if lowered:
        changed += SentMail.objects.filter(address__in=lowered).delete()[0]
    return changed


def notifications_about_conversations_scrub(*, conversation_ids: Sequence[int]) -> int:
    """Blank the text of notifications about these conversations (their excerpts quote the
    customer); the title keeps the conversation's number only."""
    changed = 0
    for start in range(0, len(conversation_ids), 200):
        chunk = conversation_ids[start : start + 200]
        numbers = "|".join(str(int(pk)) for pk in chunk)
        where = Q(title__regex=rf"#({numbers})([^0-9]|$)") | reduce(
            or_, (Q(url__contains=f"/conversations/{pk}/") for pk in chunk)
        )
        for notification in Notification.objects.filter(where):
            match = re.search(rf"#({numbers})([^0-9]|$)", notification.title)
            number = match.group(1) if match else ""
            notification.title = (
                f"About conversation #{number}" if number else "About a conversation"
            )
            notification.body = ""
            notification.save(update_fields=["title", "body"])
            changed += 1
    return changed


def mail_sink_scrub(*, needles: Sequence[str]) -> None:
    """With the file mail backend (no EMAIL_URL), delete the written mails that name the person,
    after the transaction commits (a rollback keeps them)."""
    folder = getattr(settings, "EMAIL_FILE_PATH", None)
    if not folder or not needles or "filebased" not in settings.EMAIL_BACKEND:
        return
    lowered = [n.lower() for n in needles_clean(needles)]

    def scrub() -> None:
        for path in Path(folder).glob("*"):
            if not path.is_file():
                continue
            try:
                text = path.read_text(errors="replace").lower()
            except OSError:
                continue
            if any(n in text for n in lowered):
                path.unlink(missing_ok=True)

    transaction.on_commit(scrub)
