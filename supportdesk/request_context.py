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
