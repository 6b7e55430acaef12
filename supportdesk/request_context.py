"""The current request's id and client address, for audit entries and error pages.

``RequestContextMiddleware`` sets them for the duration of a request (a context variable, so
threads and async tasks each see their own) and answers with ``X-Request-ID``. Code outside a
request (commands, Celery tasks) sees an empty context.
"""

from __future__ import annotations

import ipaddress
import re
import uuid
from collections.abc import Callable
from contextvars import ContextVar
from dataclasses import dataclass

from django.conf import settings
from django.http import HttpRequest, HttpResponse


@dataclass(frozen=True)
class RequestContext:
    request_id: str = ""
    ip: str | None = None


_EMPTY = RequestContext()
_current: ContextVar[RequestContext | None] = ContextVar("supportdesk_request", default=None)
# An id from a proxy in front is kept when it looks like one; anything else is replaced.
_INCOMING_ID = re.compile(r"^[A-Za-z0-9._-]{8,64}$")


def current() -> RequestContext:
    return _current.get() or _EMPTY


def _trusted_networks() -> tuple[ipaddress.IPv4Network | ipaddress.IPv6Network, ...]:
    return tuple(ipaddress.ip_network(p, strict=False) for p in settings.TRUSTED_PROXIES)


def _parse_ip(value: str) -> ipaddress.IPv4Address | ipaddress.IPv6Address | None:
    value = value.strip()
    if value.startswith("[") and "]" in value:  # "[2001:db8::1]:443"
        value = value[1 : value.index("]")]
    elif value.count(":") == 1:  # "203.0.113.7:51234"
        value = value.partition(":")[0]
    try:
        return ipaddress.ip_address(value)
    except ValueError:
        return None


def client_ip(request: HttpRequest) -> str | None:
    """The client's address: REMOTE_ADDR, unless that is one of ``TRUSTED_PROXIES``.

    From a trusted proxy, X-Forwarded-For is read right to left, past every trusted hop, and the
    first address that is not a trusted proxy is the client (what a client writes at the left of
    the header itself is never believed). A malformed header leaves the proxy's address.
    """
    remote = (request.META.get("REMOTE_ADDR") or "").strip()
    networks = _trusted_networks()
    peer = _parse_ip(remote)
    if not networks or peer is None or not any(peer in n for n in networks):
        return remote or None
    hops = [h for h in request.META.get("HTTP_X_FORWARDED_FOR", "").split(",") if h.strip()]
    for hop in reversed(hops):
        address = _parse_ip(hop)
        if address is None:
            return remote
        if not any(address in n for n in networks):
            return str(address)
    return str(_parse_ip(hops[0])) if hops else remote


def ratelimit_ip(request: HttpRequest) -> str:
    """``client_ip`` for django-ratelimit's ``key="ip"`` (RATELIMIT_IP_META_KEY)."""
    return client_ip(request) or "0.0.0.0"


class RequestContextMiddleware:
    def __init__(self, get_response: Callable[[HttpRequest], HttpResponse]) -> None:
        self.get_response = get_response

    def __call__(self, request: HttpRequest) -> HttpResponse:
        incoming = request.META.get("HTTP_X_REQUEST_ID", "")
        request_id = incoming if _INCOMING_ID.match(incoming) else uuid.uuid4().hex[:16]
        request.request_id = request_id  # type: ignore[attr-defined]
        token = _current.set(RequestContext(request_id=request_id, ip=client_ip(request)))
        try:
            response = self.get_response(request)
        finally:
            _current.reset(token)
        response["X-Request-ID"] = request_id
        return response


class RequestSizeLimitMiddleware:
    """413 for any request whose Content-Length exceeds DATA_UPLOAD_MAX_MEMORY_SIZE, before reading.

    Django bounds form fields and raw bodies itself but not multipart file parts, so without this
    a provider webhook or an admin form could stream gigabytes to disk. A body sent without a
    Content-Length (chunked) is not read at all by Django's WSGI request: it arrives empty.
    """

    def __init__(self, get_response: Callable[[HttpRequest], HttpResponse]) -> None:
        self.get_response = get_response

    def __call__(self, request: HttpRequest) -> HttpResponse:
        from django.conf import settings
        from django.http import JsonResponse
        from django.template.loader import render_to_string

        limit = settings.DATA_UPLOAD_MAX_MEMORY_SIZE
        try:
            length = int(request.META.get("CONTENT_LENGTH") or 0)
        except ValueError:
            length = 0
        if limit is not None and length > limit:
            text = (
                f"The request body has {length} bytes; the limit is {limit} bytes. "
                "Nothing was stored."
            )
            if request.path.startswith(("/api/", "/anymail/")):
                return JsonResponse({"detail": text}, status=413)
            html = render_to_string(
                "error.html", {"status": 413, "title": "Too large", "text": text}
            )
            return HttpResponse(html, status=413)
        return self.get_response(request)
