"""Test set-up goes through the services, like production code does."""

from __future__ import annotations

import itertools
from datetime import datetime
from email.utils import format_datetime, make_msgid

from django.utils import timezone

from supportdesk.models import User
from supportdesk.services import staff_create_or_update
from tickets.models import Channel
from tickets.services import (
    InboundResult,
    inbound_chat,
    inbound_email_raw,
    inbound_phone,
    inbound_social,
)

_seq = itertools.count(1)
TEST_PASSWORD = "correct horse battery"


def make_staff(
    email: str, *, role: str = "agent", teams: list[str] | None = None, full_name: str | None = None
) -> User:
    user, _ = staff_create_or_update(
        email=email,
        role=role,
        team_names=teams or [],
        password=TEST_PASSWORD,
        full_name=full_name,
    )
    return user


def email_bytes(
    *,
    sender: str = "Jane Doe <jane@example.com>",
    to: str = "support@desk.example",
    subject: str = "My order has not arrived",
    body: str = "Hello, my order #1234 has not arrived yet.",
    message_id: str | None = None,
    in_reply_to: str | None = None,
    references: str | None = None,
    extra_headers: dict[str, str] | None = None,
) -> bytes:
    message_id = message_id or make_msgid(domain="mail.example.com")
    headers = {
        "From": sender,
        "To": to,
        "Subject": subject,
        "Date": format_datetime(timezone.now()),
        "Message-ID": message_id,
        "MIME-Version": "1.0",
        "Content-Type": 'text/plain; charset="utf-8"',
    }
    if in_reply_to:
        headers["In-Reply-To"] = in_reply_to
    if references:
        headers["References"] = references
    headers.update(extra_headers or {})
    head = "\r\n".join(f"{key}: {value}" for key, value in headers.items())
    return f"{head}\r\n\r\n{body}\r\n".encode()


def send_email(channel: Channel, **kwargs) -> InboundResult:
    result = inbound_email_raw(channel=channel, raw=email_bytes(**kwargs))
    assert isinstance(result, InboundResult), result
    return result


def send_chat(
    channel: Channel,
    *,
    body: str = "Hi, I need help",
    session_id: str = "s-1",
    visitor_id: str = "v-1",
    email: str = "",
    name: str = "",
    sent_at: datetime | None = None,
    external_id: str | None = None,
) -> InboundResult:
    return inbound_chat(
        channel=channel,
        external_id=external_id or f"chat-{next(_seq)}",
        session_id=session_id,
        visitor_id=visitor_id,
        email=email,
        name=name,
        body=body,
        sent_at=sent_at,
    )


def send_social(
    channel: Channel,
    *,
    handle: str = "@jane",
    network: str = "x",
    body: str = "@acme my parcel is late",
    thread_id: str = "",
    sent_at: datetime | None = None,
    external_id: str | None = None,
) -> InboundResult:
    return inbound_social(
        channel=channel,
        external_id=external_id or f"social-{next(_seq)}",
        network=network,
        handle=handle,
        body=body,
        thread_id=thread_id,
        sent_at=sent_at,
    )


def send_call(
    channel: Channel,
    *,
    from_number: str = "+1 415 555 0100",
    talk_seconds: int = 120,
    ended_by: str = "customer",
    started_at: datetime | None = None,
    external_id: str | None = None,
    agent_email: str = "",
    notes: str = "",
) -> InboundResult:
    return inbound_phone(
        channel=channel,
        external_id=external_id or f"call-{next(_seq)}",
        from_number=from_number,
        started_at=started_at,
        wait_seconds=30,
        talk_seconds=talk_seconds,
        hold_seconds=10,
        wrap_seconds=45,
        ended_by=ended_by,
        agent_email=agent_email,
        notes=notes,
    )
