"""Reads from PostgreSQL streaming replicas: dashboards, reports and exports, nothing else.

When ``DATABASE_REPLICA_URLS`` lists replicas, the settings add them as ``replica_0``,
``replica_1``, … and install ``ReplicaRouter``. Reads go to a replica only where a view says so
(``@replica_reads``: the metrics dashboards, the scorecard API, the CSV exports, the survey
report), and never when they must see the caller's own write:

- a request that writes (any ``db_for_write``, e.g. a view that saves and then reads) is pinned
  to the primary for the rest of the request, as is anything inside a transaction on it;
- an unsafe request (POST, PUT, PATCH, DELETE) reads from the primary throughout;
- after a request that wrote, the client gets a short-lived cookie (``REPLICA_PIN_SECONDS``) and
  its next requests read from the primary too, so "save, then look at the dashboard" shows the
  save even while a replica lags.

Writes always go to the primary; migrations run on the primary only (the replicas follow it).
Without replicas none of this is installed and every query goes to ``default`` as before.
"""

from __future__ import annotations

import random
from collections.abc import Callable, Iterable, Iterator
from contextlib import contextmanager
from contextvars import ContextVar
from functools import wraps
from typing import Any, ParamSpec, TypeVar, cast

from django.conf import settings
from django.db import connections
from django.http import HttpRequest, HttpResponse, StreamingHttpResponse

PRIMARY = "default"
REPLICA_PREFIX = "replica_"
PIN_COOKIE = "sd_primary"
UNSAFE_METHODS = frozenset({"POST", "PUT", "PATCH", "DELETE"})

P = ParamSpec("P")
R = TypeVar("R")

# The replica chosen for the current read path (None: read from the primary).
_replica: ContextVar[str | None] = ContextVar("sd_replica", default=None)
# Reads of the current request stay on the primary (unsafe method, or the client wrote lately).
_pinned: ContextVar[bool] = ContextVar("sd_primary_pinned", default=False)
# Set once the current request (or task) wrote: from then on it reads from the primary.
_wrote: ContextVar[bool] = ContextVar("sd_primary_wrote", default=False)


def replica_aliases() -> list[str]:
    return [alias for alias in settings.DATABASES if alias.startswith(REPLICA_PREFIX)]


def current_read_alias() -> str:
    """Where a read issued now goes: a replica only on a marked path that has not written."""
    alias = _replica.get()
    if alias is None or _pinned.get() or _wrote.get() or connections[PRIMARY].in_atomic_block:
        return PRIMARY
    return alias


@contextmanager
def reading_from_replica() -> Iterator[None]:
    """Reads inside the block go to one replica (chosen at random), unless pinned."""
    aliases = replica_aliases()
    token = _replica.set(random.choice(aliases) if aliases else None)
    try:
        yield
    finally:
        _replica.reset(token)


def _streamed_from_replica(chunks: Iterable[Any]) -> Iterator[Any]:
    """A streamed export produces its rows after the view returned: keep them on the replica."""
    iterator = iter(chunks)
    while True:
        with reading_from_replica():
            try:
                chunk = next(iterator)
            except StopIteration:
                return
        yield chunk


def replica_reads(view: Callable[P, R]) -> Callable[P, R]:
    """Mark a read-only view (dashboard, report, export): its reads may come from a replica."""

    @wraps(view)
    def wrapper(*args: P.args, **kwargs: P.kwargs) -> R:
        with reading_from_replica():
            response = view(*args, **kwargs)
        if isinstance(response, StreamingHttpResponse) and not response.is_async:
            response.streaming_content = _streamed_from_replica(
                cast(Iterable[bytes], response.streaming_content)
            )
        return response

    return wrapper


class ReplicaRouter:
    """Django database router: marked reads to a replica, everything else to the primary."""

    def db_for_read(self, model: type[Any], **hints: Any) -> str:
        return current_read_alias()

    def db_for_write(self, model: type[Any], **hints: Any) -> str:
        _wrote.set(True)
        return PRIMARY

    def allow_relation(self, obj1: Any, obj2: Any, **hints: Any) -> bool:
        return True  # the replicas hold the same rows as the primary

    def allow_migrate(self, db: str, app_label: str, **hints: Any) -> bool:
        return db == PRIMARY


def replica_pin_middleware(
    get_response: Callable[[HttpRequest], HttpResponse],
) -> Callable[[HttpRequest], HttpResponse]:
    """Start each request unpinned (or pinned: unsafe method, recent write), and after a request
    that wrote, pin the client's next ``REPLICA_PIN_SECONDS`` to the primary."""

    def middleware(request: HttpRequest) -> HttpResponse:
        pinned = request.method in UNSAFE_METHODS or PIN_COOKIE in request.COOKIES
        pinned_token = _pinned.set(pinned)
        wrote_token = _wrote.set(False)
        try:
            response = get_response(request)
            if _wrote.get():
                response.set_cookie(
                    PIN_COOKIE,
                    "1",
                    max_age=settings.REPLICA_PIN_SECONDS,
                    httponly=True,
                    samesite="Lax",
                    secure=request.is_secure(),
                )
            return response
        finally:
            _wrote.reset(wrote_token)
            _pinned.reset(pinned_token)

    return middleware
