"""Full-text search of message text: which messages hold a search's words, and the
highlighted fragment the queue shows for them."""

from __future__ import annotations

import re
from typing import Any

from django.db import connection
from django.db.models import (
    Q,
    QuerySet,
)
from django.db.models.functions import Left
from django.utils.html import escape
from django.utils.safestring import SafeString, mark_safe

from tickets.models import (
    Message,
)

# The first characters of a body that are indexed and searched (the migration's expression).
FTS_BODY_CHARS = 100_000
FTS_CONFIG = "simple"  # no stemming, no stop words: customers write in every language


def search_words(query: str) -> list[str]:
    """The words of a search, as the full-text search reads them (letters and digits only)."""
    return re.findall(r"\w+", query.lower())[:8]


def _fts_vector() -> Any:
    from django.contrib.postgres.search import SearchVector

    return SearchVector(Left("body_text", FTS_BODY_CHARS), config=FTS_CONFIG)


def _fts_query(words: list[str]) -> Any:
    from django.contrib.postgres.search import SearchQuery

    # Every word, each as a prefix ("refun" finds "refund", "refunded"). Only \w characters
    # reach the raw query, so no tsquery syntax can be injected.
    return SearchQuery(
        " & ".join(f"{word}:*" for word in words), search_type="raw", config=FTS_CONFIG
    )


def messages_matching(words: list[str]) -> QuerySet[Message]:
    """Messages whose text holds every word (as a prefix on PostgreSQL). PostgreSQL: full text
    through the ``tickets_msg_body_fts`` GIN index; SQLite: a LIKE per word."""
    if not words:
        return Message.objects.none()
    if connection.vendor == "postgresql":
        return Message.objects.alias(fts=_fts_vector()).filter(fts=_fts_query(words))
    condition = Q()
    for word in words:
        condition &= Q(body_text__icontains=word)
    return Message.objects.filter(condition)


HIGHLIGHT_START, HIGHLIGHT_STOP = "\x02", "\x03"


def highlight_html(fragment: str) -> SafeString:
    """Escape the fragment, then turn the markers into ``<mark>``: the customer's text can never
    become markup (the markers are control characters no escaping touches, and a marker the
    customer typed can only ever open or close one balanced ``<mark>``)."""
    parts = re.split(f"([{HIGHLIGHT_START}{HIGHLIGHT_STOP}])", " ".join(fragment.split()))
    html, open_mark = [], False
    for part in parts:
        if part == HIGHLIGHT_START:
            if not open_mark:
                html.append("<mark>")
                open_mark = True
        elif part == HIGHLIGHT_STOP:
            if open_mark:
                html.append("</mark>")
                open_mark = False
        else:
            html.append(str(escape(part)))
    if open_mark:
        html.append("</mark>")
    # Escaped above; only our own balanced <mark> tags are added.
    return mark_safe("".join(html))


def _python_highlight(text: str, words: list[str], width: int = 160) -> str:
    """SQLite: a fragment around the first match with markers around every word."""
    lowered = text.lower()
    positions = [lowered.find(word) for word in words if lowered.find(word) >= 0]
    start = max(0, min(positions) - width // 3) if positions else 0
    fragment = text[start : start + width]
    pattern = re.compile("|".join(re.escape(w) for w in words), re.IGNORECASE)
    marked = pattern.sub(lambda m: HIGHLIGHT_START + m.group(0) + HIGHLIGHT_STOP, fragment)
    return ("…" if start else "") + marked + ("…" if start + width < len(text) else "")


def message_search_highlights(*, conversation_ids: list[int], query: str) -> dict[int, SafeString]:
    """For each conversation, the newest public or note message matching ``query``, as a short
    escaped fragment with the matched words in ``<mark>`` (1 query whatever the number)."""
    words = search_words(query)
    if not words or not conversation_ids:
        return {}
    matching = messages_matching(words).filter(conversation_id__in=conversation_ids)
    found: dict[int, SafeString] = {}
    if connection.vendor == "postgresql":
        from django.contrib.postgres.search import SearchHeadline

        rows = (
            matching.annotate(
                headline=SearchHeadline(
                    Left("body_text", FTS_BODY_CHARS),
                    _fts_query(words),
                    config=FTS_CONFIG,
                    start_sel=HIGHLIGHT_START,
                    stop_sel=HIGHLIGHT_STOP,
                    max_words=24,
                    min_words=8,
                    max_fragments=1,
                )
            )
            .order_by("conversation_id", "-sent_at", "-id")
            .distinct("conversation_id")
            .values_list("conversation_id", "headline")
        )
        for conversation_id, headline in rows:
            found[conversation_id] = highlight_html(headline or "")
        return found
    for conversation_id, body in matching.order_by("-sent_at", "-id").values_list(
        "conversation_id", "body_text"
    ):
        if conversation_id not in found:
            found[conversation_id] = highlight_html(_python_highlight(body, words))
    return found
