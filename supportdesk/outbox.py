"""The transactional outbox: tasks recorded in the transaction of the change that causes them,
handed to the broker after it commits.

``outbox_enqueue`` writes a row in the caller's transaction; after the commit the row is claimed
and published (one claim for all the rows of an ``outbox_batch``); rows bound for one queue go
out as one bundle message (``outbox_bundle_task``). Beat's ``outbox_relay_pending`` publishes
whatever missed its hand-over (broker down, process died): at least once, and every task claims
its own work (docs/security/faults-and-concurrency.md).
"""

from __future__ import annotations

import importlib
import json
import logging
import threading
import time
from collections.abc import Iterable, Iterator, Sequence
from contextlib import contextmanager
from datetime import timedelta
from typing import Any

from celery import current_app
from django.conf import settings
from django.db import connection, transaction
from django.db.models import F
from django.utils import timezone

from supportdesk.models import OutboxItem

logger = logging.getLogger(__name__)

# A claimed row: its id, task name and keyword arguments.
Claimed = tuple[int, str, dict[str, Any]]


def outbox_enqueue(*, task_name: str, kwargs: dict[str, Any]) -> OutboxItem:
    """Record a task to run once the surrounding transaction commits.

    Must be called inside the transaction of the change that causes the task: if that change
    rolls back, so does the task. After commit the row is handed to the broker at once; if the
    broker is unreachable the request still succeeds and beat relays the row later.
    """
    item = OutboxItem.objects.create(task_name=task_name, kwargs=kwargs)
    _relay_after_commit([item.pk])
    return item


def outbox_enqueue_each(*, task_names: Sequence[str], kwargs: dict[str, Any]) -> list[OutboxItem]:
    """``outbox_enqueue`` for several tasks taking the same arguments (an event's subscribers):
    one INSERT for all, relayed in that order after commit."""
    items = OutboxItem.objects.bulk_create(
        [OutboxItem(task_name=name, kwargs=kwargs) for name in task_names]
    )
    _relay_after_commit([item.pk for item in items])
    return items


# Inside ``outbox_batch``: the rows this thread records, relayed together after the commit.
_batching = threading.local()

# After a failed publish, this process skips publishing for a moment; beat relays the rows.
BROKER_RETRY_AFTER_SECONDS = 10.0
_broker_down_until = 0.0


@contextmanager
def outbox_batch() -> Iterator[None]:
    """Rows recorded inside the block are relayed together after the commit (one claim for all)
    instead of each change's own: for a loop that records many changes in one transaction (a
    mailbox import's group of messages). Use it inside that transaction. Rows of a savepoint that
    rolled back are in the batch too; the claim finds nothing of them. A block inside another
    joins the outer one."""
    outer: list[int] | None = getattr(_batching, "ids", None)
    ids: list[int] = [] if outer is None else outer
    _batching.ids = ids
    try:
        yield
    finally:
        _batching.ids = outer
    if outer is None and ids:
        transaction.on_commit(lambda: _relay_committed(ids))


def _relay_after_commit(item_ids: list[int]) -> None:
    batch: list[int] | None = getattr(_batching, "ids", None)
    if batch is not None:
        batch.extend(item_ids)
    else:
        transaction.on_commit(lambda: _relay_committed(item_ids))


def _relay_committed(item_ids: list[int]) -> None:
    if time.monotonic() < _broker_down_until:
        return  # the broker failed moments ago: answer fast and leave the rows to beat
    outbox_relay(item_ids=item_ids)


def outbox_relay(*, item_ids: Iterable[int]) -> int:
    """Hand outbox rows to the broker, in the order they were recorded; returns how many were
    handed over.

    The rows are claimed with one conditional ``UPDATE … RETURNING`` in a transaction that
    stays open while they are published and commits after: a concurrent relayer (the web
    process and beat racing) waits for it and then finds them taken, a failed publish releases
    its row, and a relayer that dies midway releases every row, which beat publishes again
    (at least once: every task claims its own work, docs/security/faults-and-concurrency.md).
    """
    ids = sorted(set(item_ids))
    if not ids:
        return 0
    if current_app.conf.task_always_eager:
        # Eager tasks run inside ``apply_async``: never inside the claim's transaction.
        return sum(_relay_one(item_id) for item_id in ids)
    with transaction.atomic():
        return _publish(_claim(ids))


def _claim(item_ids: list[int]) -> list[Claimed]:
    """Claim the unrelayed rows among ``item_ids`` (one query), in id order."""
    table = connection.ops.quote_name(OutboxItem._meta.db_table)
    with connection.cursor() as cursor:
        cursor.execute(
            f"UPDATE {table} SET relayed_at = %s WHERE id = ANY(%s) AND relayed_at IS NULL"
            " RETURNING id, task_name, kwargs",
            [timezone.now(), item_ids],
        )
        rows = cursor.fetchall()
    return sorted(
        (item_id, task_name, kwargs if isinstance(kwargs, dict) else json.loads(kwargs))
        for item_id, task_name, kwargs in rows
    )


def _relay_one(item_id: int) -> int:
    """One row claimed and published on its own (eager mode: the task runs right here)."""
    claimed = _claim([item_id])
    return _publish(claimed) if claimed else 0


# A claimed group's rows for one queue go out as one bundle message of at most this many.
BUNDLE_MAX = 50
BUNDLE_TASK = "supportdesk.tasks.outbox_bundle_task"


def _publish(claimed: list[Claimed]) -> int:
    """Publish claimed rows in order; a failed one is released (and with a broker that is down,
    every one after it: each would wait out the connect timeout too).

    Rows bound for the same queue are published as one message (``outbox_bundle_task``, up to
    ``BUNDLE_MAX`` rows): a worker pays its fixed cost a task (fetch, hand to a pool process,
    acknowledge, log) once for all of them, which for the reactions to one stored message costs
    more than running them. A single row goes out as its own task, as before.
    """
    global _broker_down_until
    relayed = 0
    bundles = _bundles(claimed)
    for position, (rows, queue) in enumerate(bundles):
        ids = [row[0] for row in rows]
        try:
            if len(rows) == 1:
                _, task_name, kwargs = rows[0]
                _task(task_name).apply_async(kwargs=kwargs, retry=False)
            else:
                _task(BUNDLE_TASK).apply_async(
                    kwargs={"items": [[task_name, kwargs] for _, task_name, kwargs in rows]},
                    queue=queue,
                    retry=False,
                )
        except Exception as exc:  # the broker is down or the task is unknown: keep the rows
            logger.warning("outbox items %s not relayed: %s", ids, exc)
            OutboxItem.objects.filter(pk__in=ids).update(
                relayed_at=None, attempts=F("attempts") + 1, last_error=str(exc)[:2000]
            )
            if not _is_broker_error(exc):
                if current_app.conf.task_always_eager:
                    raise
                continue
            # The broker is down: the rest stay for the next relay, and this process does not
            # try again for a few seconds (a small circuit breaker).
            rest = [row[0] for later, _ in bundles[position + 1 :] for row in later]
            if rest:
                OutboxItem.objects.filter(pk__in=rest).update(relayed_at=None)
            _broker_down_until = time.monotonic() + BROKER_RETRY_AFTER_SECONDS
            break
        relayed += len(rows)
    return relayed


def _bundles(
    claimed: list[Claimed],
) -> list[tuple[list[Claimed], str]]:
    """The claimed rows grouped by the queue their task is routed to, in order (a row whose task
    is unknown stays alone: its publish fails and releases only it)."""
    groups: dict[str, list[Claimed]] = {}
    alone: list[tuple[list[Claimed], str]] = []
    for row in claimed:
        try:
            _task(row[1])
        except (KeyError, ImportError):
            alone.append(([row], ""))
            continue
        queue = str(current_app.amqp.router.route({}, row[1])["queue"].name)
        groups.setdefault(queue, []).append(row)
    bundles = [
        (rows[start : start + BUNDLE_MAX], queue)
        for queue, rows in groups.items()
        for start in range(0, len(rows), BUNDLE_MAX)
    ]
    return bundles + alone


def outbox_bundle_run(*, items: list[list[Any]]) -> list[list[Any]]:
    """Run a bundle's tasks one after the other in this worker process, each as its task would
    run. One that fails is published again on its own, so its own retry policy takes over (every
    task claims its own work: running one twice does nothing twice). Returns the items that
    could not even be published again (the broker is down): the bundle task retries them."""
    left: list[list[Any]] = []
    for task_name, kwargs in items:
        task = _task(task_name)
        try:
            task(**kwargs)
        except Exception as exc:
            logger.warning("%s%s failed in a bundle, sent on its own: %s", task_name, kwargs, exc)
            try:
                task.apply_async(kwargs=kwargs, retry=False)
            except Exception as publish_error:
                logger.warning("%s not sent again: %s", task_name, publish_error)
                left.append([task_name, kwargs])
    return left


def _task(name: str) -> Any:
    """The registered task; its module is imported first (web processes skip autodiscovery)."""
    if name not in current_app.tasks:
        importlib.import_module(name.rsplit(".", 1)[0])
    return current_app.tasks[name]


def _is_broker_error(exc: Exception) -> bool:
    from kombu.exceptions import OperationalError as KombuOperationalError

    return isinstance(exc, KombuOperationalError | ConnectionError | OSError)


def outbox_relay_pending(*, older_than_seconds: int | None = None, limit: int = 500) -> int:
    """Relay rows that missed their on-commit hand-over (broker down, process died)."""
    if older_than_seconds is None:
        older_than_seconds = settings.OUTBOX_RELAY_AFTER_SECONDS
    cutoff = timezone.now() - timedelta(seconds=older_than_seconds)
    ids = list(
        OutboxItem.objects.filter(relayed_at__isnull=True, created_at__lte=cutoff)
        .order_by("created_at")
        .values_list("pk", flat=True)[:limit]
    )
    return outbox_relay(item_ids=ids)


def outbox_prune(*, older_than_days: int = 14) -> int:
    cutoff = timezone.now() - timedelta(days=older_than_days)
    deleted, _ = OutboxItem.objects.filter(relayed_at__lt=cutoff).delete()
    return deleted
