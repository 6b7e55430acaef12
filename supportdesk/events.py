"""Who reacts to which domain event.

Lower apps (``tickets``) record what happened as an ``Event`` row in the same transaction as the
change. Higher apps (``surveys``, ``metrics``) subscribe here from their ``AppConfig.ready()`` with
the dotted name of a Celery task taking ``event_id``; the event recorder writes one outbox row per
subscriber, so a lower app never imports a higher one.
"""

from collections import defaultdict
from typing import TypedDict

from django.db import InterfaceError, OperationalError


# How every reaction task (a subscriber below) is declared: its outbox row is marked relayed once
# the broker has the message, so the task itself must not give up while the database is away.
# It is acknowledged only after it ran (acks_late) and retries with backoff, without a limit,
# on the errors of an unreachable database; reactions are idempotent, so a retry is harmless.
class ReactionTaskOptions(TypedDict):
    ignore_result: bool
    acks_late: bool
    autoretry_for: tuple[type[BaseException], ...]
    retry_backoff: int
    retry_backoff_max: int
    retry_jitter: bool
    max_retries: int | None


REACTION_TASK_OPTIONS: ReactionTaskOptions = {
    "ignore_result": True,
    "acks_late": True,
    "autoretry_for": (OperationalError, InterfaceError),
    "retry_backoff": 2,
    "retry_backoff_max": 120,
    "retry_jitter": False,
    "max_retries": None,
}

_subscribers: dict[str, list[str]] = defaultdict(list)


def subscribe(kind: str, task_name: str) -> None:
    """Call ``task_name(event_id=...)`` after every committed event of ``kind`` ("*": all)."""
    if task_name not in _subscribers[kind]:
        _subscribers[kind].append(task_name)


def subscribers_for(kind: str) -> list[str]:
    return [*_subscribers.get(kind, []), *_subscribers.get("*", [])]
