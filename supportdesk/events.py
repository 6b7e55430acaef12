"""Who reacts to which domain event.

Lower apps (``tickets``) record what happened as an ``Event`` row in the same transaction as the
change. Higher apps (``surveys``, ``metrics``) subscribe here from their ``AppConfig.ready()`` with
the dotted name of a Celery task taking ``event_id``; the event recorder writes one outbox row per
subscriber, so a lower app never imports a higher one.
"""

from collections import defaultdict

_subscribers: dict[str, list[str]] = defaultdict(list)


def subscribe(kind: str, task_name: str) -> None:
    """Call ``task_name(event_id=...)`` after every committed event of ``kind`` ("*": all)."""
    if task_name not in _subscribers[kind]:
        _subscribers[kind].append(task_name)


def subscribers_for(kind: str) -> list[str]:
    return [*_subscribers.get(kind, []), *_subscribers.get("*", [])]
