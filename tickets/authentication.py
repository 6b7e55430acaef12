"""How inbound channels prove who they are: the ``X-Channel-Token`` header.

A channel is not a member of staff. Inbound views accept *only* this authentication, and staff
views never list it, so a staff token cannot post customer messages and a channel secret cannot
read the queue.
"""

from __future__ import annotations

from typing import Any

from django.contrib.auth.models import AnonymousUser
from drf_spectacular.extensions import OpenApiAuthenticationExtension
from rest_framework import exceptions
from rest_framework.authentication import BaseAuthentication
from rest_framework.permissions import BasePermission
from rest_framework.request import Request
from rest_framework.throttling import ScopedRateThrottle

from tickets.models import Channel
from tickets.selectors import channel_get_by_secret

HEADER = "X-Channel-Token"
_META_KEY = "HTTP_X_CHANNEL_TOKEN"


class ChannelTokenAuthentication(BaseAuthentication):
    """``request.auth`` becomes the active Channel whose secret the header carries."""

    def authenticate(self, request: Request) -> tuple[AnonymousUser, Channel] | None:
        secret = request.META.get(_META_KEY, "").strip()
        if not secret:
            return None  # -> 401 "Authentication credentials were not provided."
        channel = channel_get_by_secret(secret=secret)
        if channel is None:
            raise exceptions.AuthenticationFailed("Invalid or inactive channel token.")
        return AnonymousUser(), channel

    def authenticate_header(self, request: Request) -> str:
        # Having a header to name makes DRF answer 401 rather than 403 when it is missing.
        return HEADER


class IsChannel(BasePermission):
    message = f"A channel token ({HEADER}) is required."

    def has_permission(self, request: Request, view: Any) -> bool:
        return isinstance(request.auth, Channel)


def request_channel(request: Request) -> Channel:
    """The channel an inbound request authenticated as (``IsChannel`` has already let it in)."""
    channel = request.auth
    if not isinstance(channel, Channel):
        raise exceptions.NotAuthenticated()
    return channel


class InboundThrottle(ScopedRateThrottle):
    """ScopedRateThrottle keyed by channel rather than by client IP (providers share IPs)."""

    def get_cache_key(self, request: Request, view: Any) -> str | None:
        if not isinstance(request.auth, Channel):
            return super().get_cache_key(request, view)
        return self.cache_format % {"scope": self.scope, "ident": f"channel-{request.auth.pk}"}


# drf-spectacular's OpenApiAuthenticationExtension.__init_subclass__ carries no annotations.
class ChannelTokenScheme(OpenApiAuthenticationExtension):  # type: ignore[no-untyped-call]
    """Documents the header in /api/schema/ (drf-spectacular finds it by ``target_class``)."""

    target_class = "tickets.authentication.ChannelTokenAuthentication"
    name = "channelToken"

    def get_security_definition(self, auto_schema: Any) -> dict[str, str]:
        return {"type": "apiKey", "in": "header", "name": HEADER}
