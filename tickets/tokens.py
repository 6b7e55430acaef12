"""Signed tokens that tie an email reply address to a conversation."""

from __future__ import annotations

import re

from django.conf import settings
from django.utils.crypto import constant_time_compare, salted_hmac

_SALT = "tickets.conversation-reply-address"
_TOKEN_RE = re.compile(r"\+c(?P<id>\d{1,18})\.(?P<sig>[0-9a-f]{16})@", re.IGNORECASE)
_SUBJECT_RE = re.compile(r"\[#(?P<id>\d{1,18})\]")


def _signature(conversation_id: int) -> str:
    return salted_hmac(_SALT, str(conversation_id)).hexdigest()[:16]


def reply_address(conversation_id: int) -> str:
    """``support+c<id>.<sig>@domain``: replies to it thread even without In-Reply-To."""
    local, _, domain = settings.SUPPORT_EMAIL.partition("@")
    return f"{local}+c{conversation_id}.{_signature(conversation_id)}@{domain}"


def conversation_id_from_addresses(addresses: list[str] | tuple[str, ...]) -> int | None:
    """The conversation whose valid signed token appears in one of the recipient addresses."""
    for address in addresses:
        match = _TOKEN_RE.search(address)
        if match is None:
            continue
        conversation_id = int(match["id"])
        if constant_time_compare(match["sig"].lower(), _signature(conversation_id)):
            return conversation_id
    return None


def subject_tag(conversation_id: int) -> str:
    return f"[#{conversation_id}]"


def conversation_id_from_subject(subject: str) -> int | None:
    match = _SUBJECT_RE.search(subject or "")
    return int(match["id"]) if match else None
