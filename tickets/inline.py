"""Inline frames in the customer's chat transcript, provided by higher apps.

A higher app that sends an automated message on a chat channel (surveys: the survey link) may
register a provider for its ``automated`` kind: given the message, it returns the URL of a page
the chat shows inline under it (the survey's questions), or None. tickets never imports them.
"""

from __future__ import annotations

from collections.abc import Callable

from tickets.models import Message

InlineProvider = Callable[[Message], str | None]

_PROVIDERS: dict[str, InlineProvider] = {}


def inline_frame_register(automated: str, provider: InlineProvider) -> None:
    _PROVIDERS[automated] = provider


def inline_frame_url(message: Message) -> str | None:
    provider = _PROVIDERS.get(message.automated) if message.automated else None
    return provider(message) if provider is not None else None
