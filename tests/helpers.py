"""Helpers the tests share: a logged-in page client, inbound email posts, provider webhook auth.

Fixtures live in tests/conftest.py; data builders (staff, inbound messages) in tests/factories.py.
"""

from __future__ import annotations

import base64
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any
from unittest import mock

from django.test import Client
from rest_framework.test import APIClient

INBOUND_EMAIL = "/api/v1/inbound/email/"
# The Basic-auth secret tests give the email provider's webhooks (settings.ANYMAIL).
PROVIDER_WEBHOOK_SECRET = "provider:s3cret"


def web(user: Any) -> Client:
    """A page client logged in as ``user``."""
    client = Client()
    client.force_login(user)
    return client


def post_email(channel: Any, raw: bytes, *, token: str | None = None) -> Any:
    """POST a raw RFC 822 message to the inbound email API as ``channel`` (a Channel or its secret).

    ``token`` overrides the X-Channel-Token header (a wrong or missing secret). A fresh client per
    call, so threads may call it side by side.
    """
    secret = token if token is not None else channel if isinstance(channel, str) else channel.secret
    return APIClient().post(
        INBOUND_EMAIL, raw, content_type="message/rfc822", headers={"X-Channel-Token": secret}
    )


def provider_webhook_headers(settings: Any) -> dict[str, str]:
    """Configure the provider webhook secret and return the Authorization header that passes it."""
    settings.ANYMAIL = {"WEBHOOK_SECRET": PROVIDER_WEBHOOK_SECRET}
    token = base64.b64encode(PROVIDER_WEBHOOK_SECRET.encode()).decode()
    return {"HTTP_AUTHORIZATION": f"Basic {token}"}


@contextmanager
def outbox_held() -> Iterator[None]:
    """Nothing the tickets services write reaches the outbox: a reply stays queued, no reaction runs."""
    with (
        mock.patch("tickets.services.events.outbox_enqueue_each"),
        mock.patch("tickets.services.conversations.outbox_enqueue"),
    ):
        yield
