"""A database outage answers 503 with ``Retry-After``, never a 500 traceback page or a hang.

PostgreSQL restarting (a failover, an upgrade, ``pg_ctl restart``) makes queries raise
``OperationalError``/``InterfaceError``. Providers that post webhooks retry on 5xx, and clients
are told when to come back. The connection is dropped by Django after such a request
(``close_if_unusable_or_obsolete``) and ``CONN_HEALTH_CHECKS`` re-checks a reused one, so the
next request after the database is back simply works: no restart of the web server.
"""

from __future__ import annotations

import logging
from collections.abc import Callable

from django.db import InterfaceError, OperationalError
from django.http import HttpRequest, HttpResponse, JsonResponse

logger = logging.getLogger(__name__)

RETRY_AFTER_SECONDS = 5
DETAIL = "The database is unavailable for a moment. Nothing was stored; retry shortly."
_HTML = (
    "<!doctype html><html lang=en><meta charset=utf-8><title>Back in a moment</title>"
    "<h1>Back in a moment</h1><p>The desk cannot reach its database right now. Nothing was "
    "saved; try again in a few seconds.</p></html>"
)


def is_database_outage(exc: BaseException | None) -> bool:
    return isinstance(exc, OperationalError | InterfaceError)


def database_unavailable_response(request: HttpRequest) -> HttpResponse:
    """503 for a request that failed because the database is down (JSON for API callers)."""
    wants_json = request.path.startswith(("/api/", "/anymail/")) or "json" in request.headers.get(
        "Accept", ""
    )
    if wants_json:
        response: HttpResponse = JsonResponse({"detail": DETAIL}, status=503)
    else:
        response = HttpResponse(_HTML, status=503, content_type="text/html; charset=utf-8")
    response["Retry-After"] = str(RETRY_AFTER_SECONDS)
    response["Cache-Control"] = "no-store"
    return response


class DatabaseOutageMiddleware:
    """Turns a database error raised by a view into the 503 above (also with ``DEBUG=1``)."""

    def __init__(self, get_response: Callable[[HttpRequest], HttpResponse]) -> None:
        self.get_response = get_response

    def __call__(self, request: HttpRequest) -> HttpResponse:
        return self.get_response(request)

    def process_exception(self, request: HttpRequest, exception: Exception) -> HttpResponse | None:
        if not is_database_outage(exception):
            return None
        logger.warning(
            "database unavailable for %s %s: %s", request.method, request.path, exception
        )
        return database_unavailable_response(request)
