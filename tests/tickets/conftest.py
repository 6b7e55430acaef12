"""Fixtures of the tickets tests."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from tests.oauth_provider import OAuthProvider, oauth_provider_server


@pytest.fixture
def oauth_provider() -> Iterator[OAuthProvider]:
    """A local OAuth2 provider: /token hands out access-1, access-2...; /introspect checks them."""
    with oauth_provider_server() as provider:
        yield provider
