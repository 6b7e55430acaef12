"""The JSON channels' inbound calls: chat, social and phone, each one message through ``ingest``.

Each has a builder (``chat_inbound``, ``social_inbound``, ``phone_inbound``) that checks the call
and returns the ``Inbound`` without storing it: the asynchronous mode checks at accept time with it.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime

from django.core.exceptions import ValidationError

from supportdesk.errors import ApplicationError
from tickets.identities import (
    normalise_email,
    normalise_identity,
    normalise_phone,
    normalise_social,
)
from tickets.models import Channel, ChannelKind, Contact
from tickets.services.ingest import (
    Inbound,
    InboundResult,
    clamp_sent_at,
    ingest,
    subject_from_body,
)


def inbound_chat(
    *,
    channel: Channel,
    external_id: str,
    session_id: str,
    visitor_id: str,
    body: str,
    sent_at: datetime | None = None,
    email: str = "",
    email_verified: bool = True,
    name: str = "",
    raw: bytes = b"",
    language: str = "",
) -> InboundResult:
    """A chat message (see ``chat_inbound``)."""
    return ingest(
        chat_inbound(
            channel=channel,
            external_id=external_id,
            session_id=session_id,
            visitor_id=visitor_id,
            body=body,
            sent_at=sent_at,
            email=email,
            email_verified=email_verified,
            name=name,
            raw=raw,
            language=language,
        )
    )


def chat_inbound(
    *,
    channel: Channel,
    external_id: str,
    session_id: str,
    visitor_id: str,
    body: str,
    sent_at: datetime | None = None,
    email: str = "",
    email_verified: bool = True,
    name: str = "",
    raw: bytes = b"",
    language: str = "",
) -> Inbound:
    """A chat message, checked (ApplicationError) but not stored yet.

    An email a chat provider vouches for (``email_verified``: its visitor signed in) finds the
    customer first. An email the visitor merely typed (the built-in /chat/ page) is a hint: it is
    stored on the message for the agent to check, and never finds a customer or joins an
    existing conversation, so nobody reads or writes another person's chat by typing their
    address.
    """
    _require_kind(channel, ChannelKind.CHAT)
    handles: list[tuple[str, str, str]] = []
    claimed_email = ""
    if email and email_verified:
        handles.append(("email", _valid(normalise_email, email), email))
    elif email:
        claimed_email = _valid(normalise_email, email)
    handles.append(("chat", _valid(normalise_identity, "chat", visitor_id), visitor_id))
    return Inbound(
        channel=channel,
        external_id=external_id,
        handles=handles,
        name=name,
        body_text=body,
        sent_at=clamp_sent_at(sent_at),
        raw=raw,
        thread_key=session_id[:255],
        claimed_email=claimed_email,
        language=language,
    )


def inbound_social(
    *,
    channel: Channel,
    external_id: str,
    network: str,
    handle: str,
    body: str,
    sent_at: datetime | None = None,
    thread_id: str = "",
    raw: bytes = b"",
) -> InboundResult:
    return ingest(
        social_inbound(
            channel=channel,
            external_id=external_id,
            network=network,
            handle=handle,
            body=body,
            sent_at=sent_at,
            thread_id=thread_id,
            raw=raw,
        )
    )


def social_inbound(
    *,
    channel: Channel,
    external_id: str,
    network: str,
    handle: str,
    body: str,
    sent_at: datetime | None = None,
    thread_id: str = "",
    raw: bytes = b"",
) -> Inbound:
    """A social message, checked (ApplicationError) but not stored yet."""
    _require_kind(channel, ChannelKind.SOCIAL)
    value = _valid(normalise_social, network, handle)
    return Inbound(
        channel=channel,
        external_id=external_id,
        handles=[("social", value, f"{network}:{handle}")],
        name=handle.lstrip("@"),
        body_text=body,
        sent_at=clamp_sent_at(sent_at),
        raw=raw,
        thread_key=thread_id[:255],
    )


def inbound_phone(
    *,
    channel: Channel,
    external_id: str,
    from_number: str,
    started_at: datetime | None,
    wait_seconds: int,
    talk_seconds: int,
    hold_seconds: int,
    wrap_seconds: int,
    ended_by: str,
    agent_email: str = "",
    notes: str = "",
    raw: bytes = b"",
) -> InboundResult:
    """A call log: one call is exactly one contact, dropped calls included."""
    return ingest(
        phone_inbound(
            channel=channel,
            external_id=external_id,
            from_number=from_number,
            started_at=started_at,
            wait_seconds=wait_seconds,
            talk_seconds=talk_seconds,
            hold_seconds=hold_seconds,
            wrap_seconds=wrap_seconds,
            ended_by=ended_by,
            agent_email=agent_email,
            notes=notes,
            raw=raw,
        )
    )


def phone_inbound(
    *,
    channel: Channel,
    external_id: str,
    from_number: str,
    started_at: datetime | None,
    wait_seconds: int,
    talk_seconds: int,
    hold_seconds: int,
    wrap_seconds: int,
    ended_by: str,
    agent_email: str = "",
    notes: str = "",
    raw: bytes = b"",
) -> Inbound:
    """A call log, checked (ApplicationError) but not stored yet."""
    _require_kind(channel, ChannelKind.PHONE)
    number = _valid(normalise_phone, from_number)
    if ended_by not in Contact.EndedBy.values:
        raise ApplicationError("ended_by must be customer, agent or system.")
    minutes, seconds = divmod(talk_seconds, 60)
    summary = f"Phone call from {number}: waited {wait_seconds}s, talked {minutes}m {seconds}s, ended by {ended_by}."
    return Inbound(
        channel=channel,
        external_id=external_id,
        handles=[("phone", number, from_number)],
        name="",
        subject=subject_from_body(notes) or f"Phone call from {number}",
        body_text=f"{summary}\n\n{notes}".strip(),
        sent_at=clamp_sent_at(started_at),
        raw=raw,
        call={
            "wait_seconds": wait_seconds,
            "talk_seconds": talk_seconds,
            "hold_seconds": hold_seconds,
            "wrap_seconds": wrap_seconds,
            "ended_by": ended_by,
        },
        call_agent_email=agent_email,
    )


def _require_kind(channel: Channel, kind: str) -> None:
    if channel.kind != kind:
        raise ApplicationError(f"This channel is a {channel.kind} channel, not {kind}.")


def _valid(fn: Callable[..., str], *args: str) -> str:
    try:
        return fn(*args)
    except ValidationError as exc:
        raise ApplicationError(exc.messages[0]) from exc
