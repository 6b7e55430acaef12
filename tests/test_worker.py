"""A real Celery worker, a real Redis and the outbox between them.

Most tests run tasks eagerly. These prove the production path: the web process writes an outbox
row in the request's transaction and publishes it to Redis after commit; a separate
``celery worker`` process consumes it and writes the effect to PostgreSQL. When Redis is down
the request still succeeds and beat's relay sends the mail later, exactly once.

The worker is another process, so the data must be committed (``transaction=True``) and the
database must be PostgreSQL; without one, these tests skip (or fail when REQUIRE_SERVICES=1).
"""

from __future__ import annotations

import base64
import json
import re
import time
from datetime import timedelta
from typing import Any

import pytest
import redis
from django.db import OperationalError, connection, transaction
from django.test.utils import CaptureQueriesContext

from supportdesk.celery import app as celery_app
from supportdesk.models import Notification, OutboxItem
from supportdesk.outbox import outbox_batch, outbox_bundle_run, outbox_enqueue, outbox_relay_pending
from supportdesk.tasks import outbox_prune_task, outbox_relay_task
from tests.factories import send_chat, send_email
from tests.services import (
    broker_url_for_tests,
    celery_publishing_to,
    celery_worker,
    queue_prefix_for,
    redis_delete_queue,
    redis_server,
    require_postgres,
    require_redis,
    unique_queue_name,
    wait_for,
)
from tickets.models import Conversation, Event, Message
from tickets.services import conversation_assign, conversation_reply
from tickets.tasks import message_email_send_task

pytestmark = pytest.mark.services

SEND_TASK = "tickets.tasks.message_email_send_task"
BUNDLE = "supportdesk.tasks.outbox_bundle_task"
# Publishing to a broker that refuses connections gives up after CELERY_BROKER_CONNECTION_TIMEOUT
# (2 s); the rest of the request is milliseconds.
REQUEST_BUDGET_SECONDS = 3.0
WORKER_EFFECT_TIMEOUT = 30.0


def _conversation_from_inbound_email(channel) -> Conversation:
    inbound = send_email(
        channel, sender="Jane Doe <jane@example.com>", subject="Where is my order?"
    )
    return Conversation.objects.get(pk=inbound.conversation_id)


def _sent(message_id: int) -> Message | None:
    return Message.objects.filter(pk=message_id, delivery_state=Message.Delivery.SENT).first()


def _header_count(mail_text: str, message: Message) -> int:
    return mail_text.count(f"Message-ID: <{message.message_id}>")


@pytest.mark.django_db(transaction=True)
def test_worker_process_consumes_reply_from_redis_and_sends_it(channels, agent_a):
    require_postgres()
    broker_url = broker_url_for_tests()
    require_redis(broker_url)
    queue = unique_queue_name()
    # Given a conversation started by an inbound email, and a worker on its own queue
    conversation = _conversation_from_inbound_email(channels["email"])
    try:
        with (
            celery_worker(broker_url, {"CELERY_TASK_DEFAULT_QUEUE": queue}) as worker,
            celery_publishing_to(broker_url, queue=queue),
        ):
            # When an agent replies: this process only stores the reply and publishes the task
            message = conversation_reply(
                conversation=conversation, author=agent_a, body="It ships tomorrow."
            )

            # Then the worker process sent the email and recorded it in the database
            sent = wait_for(
                lambda: _sent(message.pk),
                timeout=WORKER_EFFECT_TIMEOUT,
                what="the worker to mark the reply sent",
            )
            assert sent.delivered_at is not None
            assert sent.delivery_attempts == 1
            item = OutboxItem.objects.get(task_name=SEND_TASK, kwargs={"message_id": message.pk})
            assert item.relayed_at is not None
            assert item.attempts == 0
            files = [path for path in worker.mail_files() if sent.message_id in path.read_text()]
            assert len(files) == 1
            assert _header_count(worker.mail_text(), sent) == 1
            assert "To: jane@example.com" in files[0].read_text()
    finally:
        redis_delete_queue(broker_url, queue)


@pytest.mark.django_db(transaction=True)
def test_reply_while_redis_is_down_succeeds_and_is_sent_once_when_redis_is_back(channels, agent_a):
    require_postgres()
    queue = unique_queue_name()
    conversation = _conversation_from_inbound_email(channels["email"])
    with redis_server() as redis_srv, celery_publishing_to(redis_srv.url(), queue=queue):
        # Given this process was connected to Redis, and Redis went down
        outbox_prune_task.delay()  # lost with the restart below: Redis keeps nothing on disk
        redis_srv.stop()

        # When an agent replies
        started = time.monotonic()
        message = conversation_reply(
            conversation=conversation, author=agent_a, body="It ships tomorrow."
        )
        elapsed = time.monotonic() - started

        # Then the request succeeded quickly; the mail waits in the outbox, not lost
        assert elapsed < REQUEST_BUDGET_SECONDS
        message.refresh_from_db()
        assert message.delivery_state == Message.Delivery.QUEUED
        assert message.delivery_attempts == 0
        item = OutboxItem.objects.get(task_name=SEND_TASK, kwargs={"message_id": message.pk})
        assert item.relayed_at is None
        assert item.attempts == 1
        assert item.last_error != ""

        # When Redis is back, a worker runs and beat's relay hands the outbox over
        redis_srv.start()
        with celery_worker(redis_srv.url(), {"CELERY_TASK_DEFAULT_QUEUE": queue}) as worker:
            assert outbox_relay_pending(older_than_seconds=0) >= 1

            # Then the mail goes out
            sent = wait_for(
                lambda: _sent(message.pk),
                timeout=WORKER_EFFECT_TIMEOUT,
                what="the worker to mark the reply sent",
            )
            item.refresh_from_db()
            assert item.relayed_at is not None
            assert _header_count(worker.mail_text(), sent) == 1

            # When the relay runs again and the broker delivers the task a second time
            assert outbox_relay_pending(older_than_seconds=0) == 0
            duplicate = message_email_send_task.apply_async(kwargs={"message_id": message.pk})
            worker.wait_for_log(f"[{duplicate.id}] succeeded", timeout=WORKER_EFFECT_TIMEOUT)

            # Then it was still sent exactly once
            assert len(worker.mail_files()) == 1
            assert _header_count(worker.mail_text(), sent) == 1
            sent.refresh_from_db()
            assert sent.delivery_state == Message.Delivery.SENT
            assert sent.delivery_attempts == 1


@pytest.mark.django_db
def test_relay_stops_at_the_first_broker_error():
    # Needs no worker and no PostgreSQL: only a Redis that this test can stop.
    # Given three rows waiting in the outbox (the test transaction never commits, so their
    # on-commit hand-over does not run): two for the housekeeping queue (one bundle message),
    # then a mail; and a Redis that went down
    items = [
        outbox_enqueue(task_name="supportdesk.tasks.outbox_prune_task", kwargs={}),
        outbox_enqueue(task_name="supportdesk.tasks.outbox_prune_task", kwargs={}),
        outbox_enqueue(task_name=SEND_TASK, kwargs={"message_id": 1}),
    ]
    with (
        redis_server() as redis_srv,
        celery_publishing_to(redis_srv.url(), queue=unique_queue_name()),
    ):
        outbox_prune_task.delay()
        redis_srv.stop()

        # When beat's relay runs
        started = time.monotonic()
        relayed = outbox_relay_pending(older_than_seconds=0)
        elapsed = time.monotonic() - started

    # Then it tried the first message only (the bundle of the two oldest rows): each other
    # message would wait out the connect timeout too
    assert relayed == 0
    assert elapsed < REQUEST_BUDGET_SECONDS
    rows = list(OutboxItem.objects.filter(pk__in=[i.pk for i in items]).order_by("pk"))
    assert [(row.relayed_at, row.attempts) for row in rows] == [(None, 1), (None, 1), (None, 0)]


def _record_then_roll_back(task: str) -> None:
    with transaction.atomic():
        outbox_enqueue(task_name=task, kwargs={})
        raise RuntimeError("rolled back")


@pytest.mark.django_db
def test_a_batch_is_claimed_once_and_published_after_its_commit(django_capture_on_commit_callbacks):
    # Given a transaction that records three rows inside one outbox batch, the second in a
    # savepoint that rolls back (a message a mailbox import quarantined, say)
    task = "supportdesk.tasks.outbox_prune_task"
    queue = unique_queue_name()
    with (
        redis_server() as redis_srv,
        celery_publishing_to(redis_srv.url(), queue=queue),
    ):
        with django_capture_on_commit_callbacks() as callbacks, transaction.atomic():
            with outbox_batch():
                first = outbox_enqueue(task_name=task, kwargs={})
                with pytest.raises(RuntimeError):
                    _record_then_roll_back(task)
                third = outbox_enqueue(task_name=task, kwargs={})
            # Then nothing is handed over before the commit
            assert OutboxItem.objects.filter(relayed_at__isnull=False).count() == 0

        # And the commit runs one hook, which claims both rows with one UPDATE
        assert len(callbacks) == 1
        with CaptureQueriesContext(connection) as queries:
            callbacks[0]()
        updates = [q["sql"] for q in queries.captured_queries if q["sql"].startswith("UPDATE")]
        assert len(updates) == 1
        assert "ANY" in updates[0]

        # And both are published, in the order they were recorded, as one bundle message on
        # their task's queue; the rolled-back one is gone
        rows = list(OutboxItem.objects.filter(task_name=task).order_by("pk"))
        assert [row.pk for row in rows] == [first.pk, third.pk]
        assert all(row.relayed_at is not None and row.attempts == 0 for row in rows)
        published = _published(redis_srv.url(), queue)
    assert [(key, name) for key, name, _ in published] == [
        (f"{queue_prefix_for(queue)}housekeeping", "supportdesk.tasks.outbox_bundle_task")
    ]
    assert published[0][2] == {"items": [[task, {}], [task, {}]]}


def _published(broker_url: str, queue: str) -> list[tuple[str, str, dict[str, Any]]]:
    """The task messages waiting in the test's queues: (queue, task name, kwargs), in order."""
    client = redis.Redis.from_url(broker_url)
    try:
        found = []
        for key in sorted(client.keys(f"{queue}*")):
            if client.type(key) != b"list":
                continue
            # kombu pushes to the head and pops from the tail: the oldest message is last.
            for payload in reversed(client.lrange(key, 0, -1)):
                message = json.loads(payload)
                _args, kwargs, _embed = json.loads(base64.b64decode(message["body"]))
                found.append((key.decode(), message["headers"]["task"], kwargs))
        return found
    finally:
        client.close()


@pytest.mark.django_db
def test_rows_for_two_queues_go_out_as_one_bundle_each_and_a_lone_row_as_its_own_task(
    django_capture_on_commit_callbacks,
):
    # Given one transaction recording two reactions (housekeeping), two mails (mail) and one
    # webhook (webhooks) in one outbox batch
    queue = unique_queue_name()
    prune = "supportdesk.tasks.outbox_prune_task"
    send = SEND_TASK
    hook = "tickets.tasks.message_webhook_send_task"
    with redis_server() as redis_srv, celery_publishing_to(redis_srv.url(), queue=queue):
        with (
            django_capture_on_commit_callbacks() as callbacks,
            transaction.atomic(),
            outbox_batch(),
        ):
            outbox_enqueue(task_name=prune, kwargs={})
            outbox_enqueue(task_name=send, kwargs={"message_id": 1})
            outbox_enqueue(task_name=hook, kwargs={"message_id": 1})
            outbox_enqueue(task_name=send, kwargs={"message_id": 2})
            outbox_enqueue(task_name=prune, kwargs={})
        # When the commit's relay runs
        callbacks[0]()
        published = _published(redis_srv.url(), queue)

    # Then each queue got one message: a bundle of its rows in order, or the lone row's task
    prefix = queue_prefix_for(queue)
    assert published == [
        (f"{prefix}housekeeping", BUNDLE, {"items": [[prune, {}], [prune, {}]]}),
        (
            f"{prefix}mail",
            BUNDLE,
            {"items": [[send, {"message_id": 1}], [send, {"message_id": 2}]]},
        ),
        (f"{prefix}webhooks", hook, {"message_id": 1}),
    ]
    assert OutboxItem.objects.filter(relayed_at__isnull=True).count() == 0


@pytest.mark.django_db
def test_a_bundle_runs_its_tasks_and_sends_one_that_fails_again_on_its_own(monkeypatch):
    # Given a bundle of three tasks whose second fails (the database went away for it)
    calls: list[str] = []

    def prune() -> int:
        calls.append("prune")
        return 0

    def relay() -> int:
        calls.append("relay")
        raise OperationalError("server closed the connection")

    monkeypatch.setattr("supportdesk.tasks.outbox_prune", prune)
    monkeypatch.setattr("supportdesk.tasks.outbox_relay_pending", relay)
    items = [
        ["supportdesk.tasks.outbox_prune_task", {}],
        ["supportdesk.tasks.outbox_relay_task", {}],
        ["supportdesk.tasks.outbox_prune_task", {}],
    ]
    queue = unique_queue_name()
    with redis_server() as redis_srv, celery_publishing_to(redis_srv.url(), queue=queue):
        # When the bundle runs
        left = outbox_bundle_run(items=items)
        published = _published(redis_srv.url(), queue)

    # Then every task ran once, in order, and the failed one was published again alone
    assert calls == ["prune", "relay", "prune"]
    assert left == []
    assert published == [
        (f"{queue_prefix_for(queue)}housekeeping", "supportdesk.tasks.outbox_relay_task", {})
    ]


@pytest.mark.django_db(transaction=True)
def test_a_real_worker_runs_the_reactions_to_a_message_as_one_bundle(channels, agent_a, manager_a):
    require_postgres()
    broker_url = broker_url_for_tests()
    require_redis(broker_url)
    queue = unique_queue_name()
    # Given a chat conversation assigned to Alice (reactions run eagerly until the worker starts)
    first = send_chat(channels["chat"], body="My order is late", session_id="s-1")
    conversation = Conversation.objects.get(pk=first.conversation_id)
    conversation_assign(conversation=conversation, actor=manager_a, agent=agent_a)
    assert not Notification.objects.filter(
        recipient=agent_a, kind="conversation.customer_wrote"
    ).exists()
    try:
        with (
            celery_worker(broker_url, {"CELERY_TASK_DEFAULT_QUEUE": queue}) as worker,
            celery_publishing_to(broker_url, queue=queue),
        ):
            # When the customer writes again: two reactions (notify, cancel a pending survey)
            before = OutboxItem.objects.order_by("-pk").values_list("pk", flat=True).first()
            again = send_chat(channels["chat"], body="Any news?", session_id="s-1")
            event = Event.objects.get(message_id=again.message_id, kind=Event.Kind.INBOUND)
            rows = OutboxItem.objects.filter(pk__gt=before, kwargs={"event_id": event.pk})
            reactions = list(rows.order_by("pk").values_list("pk", "task_name"))
            assert [name for _, name in reactions] == [
                "notifications.tasks.notifications_for_event_task",
                "surveys.tasks.survey_cancel_for_inbound_task",
            ]

            # Then the worker ran them from one bundle message: Alice is told the customer wrote
            notification = wait_for(
                lambda: Notification.objects.filter(
                    recipient=agent_a, kind="conversation.customer_wrote"
                ).first(),
                timeout=WORKER_EFFECT_TIMEOUT,
                what="the worker to notify the assignee",
            )
            assert f"/conversations/{again.conversation_id}/" in notification.url
            assert "notifications.tasks.notifications_for_event_task[" not in worker.log()
            assert all(
                row.relayed_at is not None
                for row in OutboxItem.objects.filter(pk__in=[pk for pk, _ in reactions])
            )
            wait_for(
                lambda: re.search(
                    r"outbox_bundle_task\[[-0-9a-f]+\] succeeded in [0-9.]+s: 2", worker.log()
                ),
                timeout=WORKER_EFFECT_TIMEOUT,
                what="the bundle of both reactions to succeed",
            )
    finally:
        redis_delete_queue(broker_url, queue)


@pytest.mark.django_db
def test_beat_relays_the_outbox_through_a_registered_task(settings, channels, agent_a, mailoutbox):
    # Given the schedule that `celery -A supportdesk beat` runs, and the modules a worker imports
    celery_app.loader.import_default_modules()
    relay = celery_app.conf.beat_schedule["relay-outbox"]
    assert relay["task"] == "supportdesk.tasks.outbox_relay_task"
    assert relay["schedule"] <= timedelta(seconds=30)
    assert "supportdesk.tasks.outbox_relay_task" in celery_app.tasks
    assert SEND_TASK in celery_app.tasks

    # And a reply whose on-commit hand-over never ran (this test's transaction never commits)
    settings.OUTBOX_RELAY_AFTER_SECONDS = 0
    conversation = _conversation_from_inbound_email(channels["email"])
    message = conversation_reply(conversation=conversation, author=agent_a, body="On its way.")
    item = OutboxItem.objects.get(task_name=SEND_TASK, kwargs={"message_id": message.pk})
    assert item.relayed_at is None
    assert mailoutbox == []
    pending = set(OutboxItem.objects.filter(relayed_at__isnull=True).values_list("pk", flat=True))

    # When beat's task runs (eagerly here), until it finds nothing
    first = outbox_relay_task.delay().get()
    # (the tasks it ran eagerly may have enqueued reactions of their own: new rows)
    born = OutboxItem.objects.filter(relayed_at__isnull=True).exclude(pk__in=pending).count()
    second = outbox_relay_task.delay().get()
    third = outbox_relay_task.delay().get()

    # Then every pending row (the reply's, and any event reactions) was relayed once, and the
    # rows its tasks added were relayed by the next run, once
    assert (first, second, third) == (len(pending), born, 0)
    assert not OutboxItem.objects.filter(relayed_at__isnull=True).exists()
    item.refresh_from_db()
    assert item.relayed_at is not None
    message.refresh_from_db()
    assert message.delivery_state == Message.Delivery.SENT
    # The reply went out once (beside it: staff notifications the reactions emailed)
    sent = [m for m in mailoutbox if m.extra_headers.get("Message-ID") == f"<{message.message_id}>"]
    assert len(sent) == 1
    assert [m.to for m in mailoutbox if m not in sent] == [[agent_a.email]] * (len(mailoutbox) - 1)
