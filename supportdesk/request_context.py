"""The current request's id and client address, for audit entries and error pages.

``RequestContextMiddleware`` sets them for the duration of a request (a context variable, so
threads and async tasks each see their own) and answers with ``X-Request-ID``. Code outside a
request (commands, Celery tasks) sees an empty context.
"""

from __future__ import annotations

import re
import uuid
from collections.abc import Callable
from contextvars import ContextVar
from dataclasses import dataclass

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


def client_ip(request: HttpRequest) -> str | None:
    """REMOTE_ADDR: behind a proxy, the proxy (or gunicorn's forwarded-allow-ips) sets it."""
    value = (request.META.get("REMOTE_ADDR") or "").strip()
    return value or None


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
