"""A real SMTP server for tests (aiosmtpd on a free loopback port) that keeps what it receives.

The ``smtp_sink`` fixture (tests/conftest.py) points Django's SMTP backend at it, so outbound
mail goes through smtplib, a real SMTP conversation and the envelope, as in production: a Bcc
shows only in the envelope, never in the message the others receive.
"""

from __future__ import annotations

import email
import email.policy
import socket
import threading
from dataclasses import dataclass, field
from email.message import EmailMessage
from typing import Any

from aiosmtpd.controller import Controller


@dataclass
class Received:
    """One SMTP transaction: the envelope and the message exactly as delivered."""

    mail_from: str
    rcpt_tos: list[str]
    raw: bytes

    @property
    def message(self) -> EmailMessage:
        parsed = email.message_from_bytes(self.raw, policy=email.policy.default)
        assert isinstance(parsed, EmailMessage)
        return parsed


@dataclass
class _Handler:
    received: list[Received] = field(default_factory=list)
    lock: threading.Lock = field(default_factory=threading.Lock)

    async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:
        with self.lock:
            self.received.append(
                Received(
                    mail_from=envelope.mail_from,
                    rcpt_tos=[r.lower() for r in envelope.rcpt_tos],
                    raw=bytes(envelope.original_content or envelope.content),
                )
            )
        return "250 Message accepted"


class SmtpSink:
    def __init__(self) -> None:
        with socket.socket() as probe:
            probe.bind(("127.0.0.1", 0))
            self.port = probe.getsockname()[1]
        self._handler = _Handler()
        self._controller = Controller(self._handler, hostname="127.0.0.1", port=self.port)

    def start(self) -> None:
        self._controller.start()

    def stop(self) -> None:
        self._controller.stop()

    @property
    def received(self) -> list[Received]:
        with self._handler.lock:
            return list(self._handler.received)

    def to(self, address: str) -> list[Received]:
        """The transactions whose envelope delivered to ``address``."""
        return [r for r in self.received if address.lower() in r.rcpt_tos]

    def clear(self) -> None:
        with self._handler.lock:
            self._handler.received.clear()
