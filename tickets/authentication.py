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
    """ScopedRateThrottle keyed by channel rather than by client IP (providers share IPs), and
    counted in fixed windows: one small counter a channel and window in the cache (an ``add``,
    then an ``incr``), where DRF's own keeps a list of every call's time and reads and writes it
    whole on every call (at the default 6,000 a minute, a list of 6,000 floats per request)."""

    window_ends_at: float = 0.0

    def get_cache_key(self, request: Request, view: Any) -> str | None:
        if not isinstance(request.auth, Channel):
            return super().get_cache_key(request, view)
        return self.cache_format % {"scope": self.scope, "ident": f"channel-{request.auth.pk}"}

    def allow_request(self, request: Request, view: Any) -> bool:
        self.scope = getattr(view, self.scope_attr, None)
        if not self.scope:
            return True
        self.rate = self.get_rate()
        self.num_requests, self.duration = self.parse_rate(self.rate)
        key = self.get_cache_key(request, view)
        if key is None or self.num_requests is None or self.duration is None:
            return True
        now = self.timer()
        window = int(now // self.duration)
        self.window_ends_at = (window + 1) * self.duration
        key = f"{key}:{window}"
        if self.cache.add(key, 1, self.duration + 1):
            return True
        try:
            count = self.cache.incr(key)
        except ValueError:  # the window's counter expired between add and incr
            self.cache.add(key, 1, self.duration + 1)
            count = 1
        return count <= self.num_requests

    def wait(self) -> float:
        return max(self.window_ends_at - self.timer(), 0.0)


# drf-spectacular's OpenApiAuthenticationExtension.__init_subclass__ carries no annotations.
class ChannelTokenScheme(OpenApiAuthenticationExtension):  # type: ignore[no-untyped-call]
    """Documents the header in /api/schema/ (drf-spectacular finds it by ``target_class``)."""

    target_class = "tickets.authentication.ChannelTokenAuthentication"
    name = "channelToken"

    def get_security_definition(self, auto_schema: Any) -> dict[str, str]:
        return {"type": "apiKey", "in": "header", "name": HEADER}
