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

A replica that cannot be reached is not a failure of the page: it is left out for
``REPLICA_RETRY_SECONDS`` (a warning is logged) and the reads go to another replica or the
primary. A marked view whose replica fails during the view is run again on the primary (marked
views only read).
"""

from __future__ import annotations

import logging
import random
import time
from collections.abc import Callable, Iterable, Iterator
from contextlib import contextmanager, suppress
from contextvars import ContextVar
from functools import wraps
from typing import Any, ParamSpec, TypeVar, cast

from django.conf import settings
from django.db import DatabaseError, InterfaceError, OperationalError, connections
from django.http import HttpRequest, HttpResponse, StreamingHttpResponse

PRIMARY = "default"
REPLICA_PREFIX = "replica_"
PIN_COOKIE = "sd_primary"
UNSAFE_METHODS = frozenset({"POST", "PUT", "PATCH", "DELETE"})

logger = logging.getLogger(__name__)

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


# Replicas that failed, and until when (time.monotonic()) they are left out, in this process.
_down_until: dict[str, float] = {}


def replica_mark_down(alias: str, error: BaseException | None = None) -> None:
    """Leave ``alias`` out for ``REPLICA_RETRY_SECONDS``; its broken connection is dropped."""
    _down_until[alias] = time.monotonic() + settings.REPLICA_RETRY_SECONDS
    logger.warning(
        "database replica %s unavailable, reading from %s for %ss: %s",
        alias,
        "the other replicas or the primary",
        settings.REPLICA_RETRY_SECONDS,
        error,
    )
    with suppress(DatabaseError):  # already broken: nothing to close cleanly
        connections[alias].close()


def replica_usable(alias: str) -> bool:
    """Whether ``alias`` answers now: a connection is opened (or a kept one health-checked)."""
    if _down_until.get(alias, 0.0) > time.monotonic():
        return False
    connection = connections[alias]
    try:
        connection.close_if_health_check_failed()
        connection.ensure_connection()
    except DatabaseError as exc:
        replica_mark_down(alias, exc)
        return False
    _down_until.pop(alias, None)
    return True


def _choose_replica() -> str | None:
    aliases = replica_aliases()
    random.shuffle(aliases)
    return next((alias for alias in aliases if replica_usable(alias)), None)


@contextmanager
def reading_from_replica() -> Iterator[str | None]:
    """Reads inside the block go to one replica that answers (chosen at random), unless pinned;
    yields the replica's alias, or None when they all failed (then the primary serves)."""
    alias = None if _pinned.get() else _choose_replica()
    token = _replica.set(alias)
    try:
        yield alias
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
        with reading_from_replica() as alias:
            try:
                response = view(*args, **kwargs)
            except (OperationalError, InterfaceError) as exc:
                # A lost connection, or a query the replica cancelled (a conflict with
                # recovery): not the page's fault.
                if alias is None:
                    raise
                if _connection_broken(alias):
                    replica_mark_down(alias, exc)
                failed = True
            else:
                failed = False
        if failed:
            # The replica went away during the view: the view only reads, so it runs again on
            # the primary rather than failing the page.
            token = _replica.set(None)
            try:
                response = view(*args, **kwargs)
            finally:
                _replica.reset(token)
        if isinstance(response, StreamingHttpResponse) and not response.is_async:
            response.streaming_content = _streamed_from_replica(
                cast(Iterable[bytes], response.streaming_content)
            )
        return response

    return wrapper


def _connection_broken(alias: str) -> bool:
    connection = connections[alias]
    if connection.connection is None:
        return True
    try:
        return not connection.is_usable()
    except DatabaseError:
        return True


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
