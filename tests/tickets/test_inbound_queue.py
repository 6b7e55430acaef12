"""The asynchronous ingestion mode: one insert and 202 at accept time, batches on the worker.

The worker is run in-process (``inbound_queue_process``, what the task calls) in most tests; the
last test accepts payloads concurrently over HTTP and lets a real Celery worker on the ingest
queue store them, then compares the result with the synchronous path's, count for count.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from django.conf import settings
from django.db import connection, connections
from django.test.utils import CaptureQueriesContext
from rest_framework.test import APIClient

from tests.factories import email_bytes
from tests.helpers import post_email
from tests.services import (
    broker_url_for_tests,
    celery_publishing_to,
    celery_worker,
    redis_delete_queue,
    require_postgres,
    require_redis,
    unique_queue_name,
    wait_for,
)
from tickets.models import (
    Channel,
    Contact,
    Conversation,
    Customer,
    InboundQueueItem,
    Message,
    QuarantinedMessage,
)
from tickets.services import channel_create_or_update
from tickets.services.inbound_queue import inbound_queue_process

CHAT = "/api/v1/inbound/chat/"
SOCIAL = "/api/v1/inbound/social/"
PHONE = "/api/v1/inbound/phone/"
T0 = datetime(2026, 11, 2, 9, 0, tzinfo=UTC)


def _async(channel: Channel) -> Channel:
    return channel_create_or_update(kind=channel.kind, name=channel.name, ingest_mode="async")


def _post(channel: Channel, path: str, body: dict[str, Any]) -> Any:
    return APIClient().post(path, body, format="json", headers={"X-Channel-Token": channel.secret})


def _poll(channel: Channel, item_id: int) -> Any:
    return APIClient().get(
        f"/api/v1/inbound/queue/{item_id}/", headers={"X-Channel-Token": channel.secret}
    )


def _chat(n: int, visitor: str, session: str, minutes: int) -> dict[str, Any]:
    return {
        "external_id": f"{visitor}-m{n}",
        "session_id": session,
        "visitor_id": visitor,
        "body": f"Message {n} from {visitor}",
        "sent_at": (T0 + timedelta(minutes=minutes)).isoformat(),
    }


@pytest.mark.django_db
def test_an_async_channel_accepts_with_one_insert_and_202_and_stores_nothing_yet(channels):
    chat = _async(channels["chat"])
    with CaptureQueriesContext(connection) as queries:
        response = _post(chat, CHAT, _chat(1, "v1", "s1", 0))
    assert response.status_code == 202
    body = response.json()
    item = InboundQueueItem.objects.get()
    assert body["id"] == item.pk
    assert body["status"] == "pending"
    assert body["poll"] == f"/api/v1/inbound/queue/{item.pk}/"
    assert body["message"] is None
    assert body["conversation"] is None
    # The channel by its secret, then the one insert (no lookup before it, no transaction).
    sqls = [q["sql"] for q in queries.captured_queries]
    assert len(sqls) == 2
    assert sqls[1].startswith("INSERT INTO tickets_inboundqueueitem")
    assert Message.objects.count() == 0
    assert Customer.objects.count() == 0
    assert item.order_key == "chat:v1"
    assert (item.kind, item.status, item.external_id) == ("chat", "pending", "v1-m1")


@pytest.mark.django_db
def test_the_same_external_id_accepted_twice_is_one_row_with_the_same_id(channels):
    chat = _async(channels["chat"])
    first = _post(chat, CHAT, _chat(1, "v1", "s1", 0))
    again = _post(chat, CHAT, _chat(1, "v1", "s1", 0))
    assert (first.status_code, again.status_code) == (202, 200)
    assert first.json()["id"] == again.json()["id"]
    assert InboundQueueItem.objects.count() == 1


@pytest.mark.django_db
@pytest.mark.parametrize(
    ("path", "kind", "body", "detail"),
    [
        (CHAT, "chat", {"external_id": "x", "session_id": "s", "visitor_id": "v"}, "body"),
        (CHAT, "chat", {**_chat(1, "v", "s", 0), "email": "not-an-address"}, "email"),
        (
            SOCIAL,
            "social",
            {
                "external_id": "x",
                "network": "twitter",
                "handle": "@a",
                "body": "hi",
                "sent_at": "1990-01-01T00:00:00Z",
            },
            "check the clock",
        ),
        (
            PHONE,
            "phone",
            {
                "external_id": "x",
                "from_number": "not a number",
                "wait_seconds": 1,
                "talk_seconds": 1,
                "hold_seconds": 0,
                "wrap_seconds": 0,
                "ended_by": "customer",
            },
            "",
        ),
    ],
)
def test_a_bad_payload_is_refused_at_accept_time_and_nothing_is_kept(
    channels, path, kind, body, detail
):
    channel = _async(channels[kind])
    response = _post(channel, path, body)
    assert response.status_code == 400
    assert detail in str(response.json())
    assert InboundQueueItem.objects.count() == 0
    assert Message.objects.count() == 0


@pytest.mark.django_db
def test_an_empty_email_is_refused_at_accept_time(channels):
    email = _async(channels["email"])
    response = post_email(email, b"   ")
    assert response.status_code == 400
    assert "RFC 822" in response.json()["detail"]
    assert InboundQueueItem.objects.count() == 0


@pytest.mark.django_db
def test_the_worker_stores_accepted_rows_and_the_poll_shows_done_with_the_ids(channels):
    chat = _async(channels["chat"])
    accepted = _post(chat, CHAT, _chat(1, "v1", "s1", 0)).json()
    assert _poll(chat, accepted["id"]).json()["status"] == "pending"

    assert inbound_queue_process() == 1

    polled = _poll(chat, accepted["id"])
    assert polled.status_code == 200
    body = polled.json()
    message = Message.objects.get()
    assert body["status"] == "done"
    assert body["message"] == message.pk
    assert body["conversation"] == message.conversation_id
    assert body["customer"] == message.conversation.customer_id
    assert body["new_contact"] is True
    assert body["error"] == ""
    assert message.sent_at == T0  # the time of the call, not of the ingest
    assert b"Message 1 from v1" in bytes(message.raw)  # the call as received is kept
    # Done rows are not taken again: exactly once.
    assert inbound_queue_process() == 0
    assert Message.objects.count() == 1


@pytest.mark.django_db
def test_another_channel_cannot_poll_a_row(channels):
    chat = _async(channels["chat"])
    accepted = _post(chat, CHAT, _chat(1, "v1", "s1", 0)).json()
    assert _poll(channels["social"], accepted["id"]).status_code == 404
    assert _poll(chat, accepted["id"] + 1000).status_code == 404


@pytest.mark.django_db
def test_a_payload_bad_at_ingest_time_fails_with_its_reason_and_nothing_half_stored(channels):
    chat = _async(channels["chat"])
    accepted = _post(chat, CHAT, _chat(1, "v1", "s1", 0)).json()
    # The channel changed its kind before the worker got to the row.
    Channel.objects.filter(pk=chat.pk).update(kind="social")

    assert inbound_queue_process() == 1

    body = _poll(chat, accepted["id"]).json()
    assert body["status"] == "failed"
    assert body["error"] == "This channel is a social channel, not chat."
    assert (Message.objects.count(), Customer.objects.count(), Contact.objects.count()) == (0, 0, 0)


@pytest.mark.django_db
def test_an_unparseable_email_fails_and_is_kept_in_quarantine(channels):
    email = _async(channels["email"])
    accepted = post_email(email, b"\x00\x01 this is not an email").json()

    inbound_queue_process()

    body = _poll(email, accepted["id"]).json()
    assert body["status"] == "failed"
    quarantined = QuarantinedMessage.objects.get()
    assert body["quarantined"] == quarantined.pk
    assert body["error"].startswith("Kept in quarantine for review")
    assert Message.objects.count() == 0


@pytest.mark.django_db
def test_an_email_is_stored_by_the_worker_like_the_synchronous_call_stores_it(channels):
    email = _async(channels["email"])
    raw = email_bytes(sender="Jane Doe <jane@example.com>", subject="Where is my order?")
    accepted = post_email(email, raw)
    assert accepted.status_code == 202
    item = InboundQueueItem.objects.get()
    assert item.order_key == "email:jane@example.com"
    assert item.external_id.startswith("<")

    inbound_queue_process()

    message = Message.objects.get()
    assert _poll(email, accepted.json()["id"]).json()["message"] == message.pk
    assert message.conversation.subject == "Where is my order?"
    # The same email again: the same row, still one message.
    assert post_email(email, raw).status_code == 200
    inbound_queue_process()
    assert Message.objects.count() == 1


@pytest.mark.django_db
def test_a_bad_row_in_a_group_fails_alone_and_the_group_commits_once(
    channels, django_capture_on_commit_callbacks
):
    # Given an email channel's queue holding a good email, an unparseable one and a good one,
    # all in one shard (one sender's order key would do; these are three senders)
    email = _async(channels["email"])
    raws = [
        email_bytes(sender="Jane <jane@example.com>", subject="First"),
        b"\x00\x01 this is not an email",
        email_bytes(sender="Omar <omar@example.com>", subject="Third"),
    ]
    ids = [post_email(email, raw).json()["id"] for raw in raws]
    InboundQueueItem.objects.update(shard=0)

    # When the worker drains the shard
    with django_capture_on_commit_callbacks() as callbacks:
        assert inbound_queue_process(shard=0) == 3

    # Then the two emails are stored and the bad one failed alone, into quarantine
    rows = {row.pk: row for row in InboundQueueItem.objects.all()}
    assert [rows[pk].status for pk in ids] == ["done", "failed", "done"]
    assert rows[ids[1]].quarantined_id == QuarantinedMessage.objects.get().pk
    stored = list(Message.objects.order_by("pk").values_list("subject", flat=True))
    assert stored == ["First", "Third"]
    assert [rows[pk].message_id_result for pk in (ids[0], ids[2])] == list(
        Message.objects.order_by("pk").values_list("pk", flat=True)
    )
    # And the group was one transaction: one on-commit hook relays every reaction of it
    assert len(callbacks) == 1


@pytest.mark.django_db
def test_one_senders_messages_are_stored_in_arrival_order(channels):
    chat = _async(channels["chat"])
    for n in range(5):
        body = _chat(n, "v1", "s1", 0)
        del body["sent_at"]  # the time of receipt, taken at accept
        assert _post(chat, CHAT, body).status_code == 202
    inbound_queue_process()
    stored = list(Message.objects.order_by("pk").values_list("external_id", flat=True))
    assert stored == [f"v1-m{n}" for n in range(5)]
    times = list(Message.objects.order_by("pk").values_list("sent_at", flat=True))
    assert times == sorted(times)


@pytest.mark.django_db
def test_the_worker_stores_a_continuing_chat_with_a_constant_number_of_queries(channels):
    # Given a chat session the worker already stored a first message of
    chat = _async(channels["chat"])
    assert _post(chat, CHAT, _chat(0, "v1", "s1", 0)).status_code == 202
    inbound_queue_process()
    # and five more messages of that session accepted
    for n in range(1, 6):
        assert _post(chat, CHAT, _chat(n, "v1", "s1", n)).status_code == 202

    # When the worker drains them
    with CaptureQueriesContext(connection) as queries:
        assert inbound_queue_process() == 5

    # Then each message costs the same 11 queries: the duplicate check, ingestion's savepoint,
    # the sender's identity, the session's conversation (found and locked in one query), the
    # previous message with whether it was answered, the message, the conversation, the event,
    # the reactions, the routing check, the savepoint's release. The group costs 4 (its
    # savepoint in the test's transaction, the rows locked, their outcomes in one UPDATE, the
    # release); every shard 3 (its lock tried, its pending ids, its unlock), the drained one a
    # second look for more.
    per_shard = 3 * settings.INBOUND_QUEUE_SHARDS + 1
    assert len(queries.captured_queries) == 5 * 11 + 4 + per_shard
    rows = InboundQueueItem.objects.filter(status="done").count()
    assert rows == 6
    assert Message.objects.count() == 6
    assert Contact.objects.count() == 1


@pytest.mark.django_db
def test_a_synchronous_channel_keeps_answering_201(channels):
    response = _post(channels["chat"], CHAT, _chat(1, "v1", "s1", 0))
    assert response.status_code == 201
    assert InboundQueueItem.objects.count() == 0
    assert Message.objects.count() == 1


# --- Concurrent accepts, a real worker, the same counts as the synchronous path ----------------------

VISITORS = 6
PER_VISITOR = 5


def _workload(prefix: str) -> list[dict[str, Any]]:
    """Each visitor: two sessions (two contacts), a third message a day later on a new session."""
    calls = []
    for v in range(VISITORS):
        visitor = f"{prefix}-visitor-{v}"
        for n in range(PER_VISITOR):
            session = f"{visitor}-s{0 if n < 2 else 1 if n < 4 else 2}"
            minutes = n * 3 + (1440 * 3 if n == 4 else 0)
            calls.append(_chat(n, visitor, session, minutes))
    return calls


def _shape(prefix: str) -> list[tuple[str, int, int, int]]:
    """Per visitor: conversations, contacts, messages."""
    rows = []
    for v in range(VISITORS):
        customer = Customer.objects.get(identities__value=f"{prefix}-visitor-{v}")
        rows.append(
            (
                f"visitor-{v}",
                Conversation.objects.filter(customer=customer).count(),
                Contact.objects.filter(conversation__customer=customer).count(),
                Message.objects.filter(conversation__customer=customer).count(),
            )
        )
    return rows


def _run_together(sequences: list[list[Callable[[], Any]]]) -> list[int]:
    """One client per sequence, all released at once: customers write concurrently, each
    customer's own messages go out one after the other (as a chat or a mailbox sends them)."""
    statuses: list[int] = []
    errors: list[BaseException] = []
    lock = threading.Lock()
    barrier = threading.Barrier(len(sequences))

    def work(calls: list[Callable[[], Any]]) -> None:
        try:
            barrier.wait(timeout=10)
            for call in calls:
                status = call().status_code
                with lock:
                    statuses.append(status)
        except BaseException as exc:
            errors.append(exc)
        finally:
            connections.close_all()

    workers = [threading.Thread(target=work, args=(calls,)) for calls in sequences]
    for thread in workers:
        thread.start()
    for thread in workers:
        thread.join(timeout=120)
    assert not errors, errors
    return statuses


@pytest.mark.services
@pytest.mark.django_db(transaction=True)
def test_concurrent_accepts_then_a_real_worker_give_the_synchronous_paths_counts(channels):
    require_postgres()
    broker_url = broker_url_for_tests()
    require_redis(broker_url)
    queue = unique_queue_name()
    sync_chat = channels["chat"]
    async_chat = channel_create_or_update(
        kind="chat", name="chat async", team_name="Team A", ingest_mode="async"
    )
    # The synchronous path, one call after the other.
    for call in _workload("sync"):
        assert _post(sync_chat, CHAT, call).status_code == 201

    try:
        with celery_publishing_to(broker_url, queue=queue):
            # Given N payloads accepted at once, by six clients
            calls = _workload("async")
            statuses = _run_together(
                [
                    [
                        lambda c=c: _post(async_chat, CHAT, c)
                        for c in calls[v * PER_VISITOR : (v + 1) * PER_VISITOR]
                    ]
                    for v in range(VISITORS)
                ]
            )
            assert statuses == [202] * len(calls)
            assert InboundQueueItem.objects.filter(status="pending").count() == len(calls)
            assert Message.objects.filter(channel=async_chat).count() == 0
            # When a worker on the ingest queue takes them
            with celery_worker(broker_url, {"CELERY_TASK_DEFAULT_QUEUE": queue}) as worker:
                wait_for(
                    lambda: not InboundQueueItem.objects.filter(status="pending").exists(),
                    timeout=60,
                    what="the accepted rows to be ingested",
                )
                assert "inbound_queue_ingest_task" in worker.log()
    finally:
        redis_delete_queue(broker_url, queue)

    # Then every row is done, each stored once, and the counts equal the synchronous path's
    assert set(InboundQueueItem.objects.values_list("status", flat=True)) == {"done"}
    assert Message.objects.filter(channel=async_chat).count() == VISITORS * PER_VISITOR
    assert _shape("async") == _shape("sync")
    sync_contacts = Contact.objects.filter(channel=sync_chat).count()
    async_contacts = Contact.objects.filter(channel=async_chat).count()
    assert async_contacts == sync_contacts
    new_contacts = InboundQueueItem.objects.filter(new_contact=True).count()
    assert new_contacts == async_contacts
