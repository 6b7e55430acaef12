"""Simultaneous inbound deliveries through HTTP: each thread has its own database connection.

Providers retry and deliver in parallel; ingestion must store a message once and a new sender
as one customer. SQLite serialises writers with a file lock, so this needs PostgreSQL.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from typing import Any

import pytest
from django.conf import settings
from django.db import connection, connections

from tests.factories import email_bytes
from tests.helpers import post_email
from tickets.models import Conversation, Customer, Identity, Message
from tickets.services import channel_create_or_update

THREADS = 5


def require_postgres() -> None:
    if connection.vendor != "postgresql":
        if settings.REQUIRE_SERVICES:
            pytest.fail("needs PostgreSQL: set DATABASE_URL")
        pytest.skip("needs PostgreSQL (set DATABASE_URL=postgres://...)")


def run_together(post: Callable[[int], Any]) -> list[tuple[int, dict[str, Any]]]:
    """Call ``post(i)`` in THREADS threads released at once; returns (status, json) per thread."""
    barrier = threading.Barrier(THREADS)
    results: list[tuple[int, dict[str, Any]] | None] = [None] * THREADS
    errors: list[BaseException] = []

    def worker(i: int) -> None:
        try:
            barrier.wait(timeout=10)
            response = post(i)
            results[i] = (response.status_code, response.json())
        except BaseException as exc:  # surfaced in the main thread below
            errors.append(exc)
        finally:
            connections.close_all()

    threads = [threading.Thread(target=worker, args=(i,)) for i in range(THREADS)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=60)
    assert not errors, errors
    assert all(result is not None for result in results), results
    return results  # type: ignore[return-value]


@pytest.mark.django_db(transaction=True)
def test_five_simultaneous_deliveries_of_one_email_store_it_once():
    require_postgres()
    # given one email, delivered five times at once (a provider retrying in parallel)
    channel = channel_create_or_update(kind="email", name="Mailbox", team_name="Team A")
    raw = email_bytes(message_id="<race-1@mail.example.com>")

    # when the five requests run together
    results = run_together(lambda i: post_email(channel.secret, raw))

    # then it is stored once, one answer is 201, the others 200, all with the same ids
    assert sorted(status for status, _ in results) == [200, 200, 200, 200, 201]
    assert Message.objects.count() == 1
    assert Customer.objects.count() == 1
    assert Conversation.objects.count() == 1
    message = Message.objects.get()
    expected = {
        "customer": Customer.objects.get().pk,
        "conversation": message.conversation_id,
        "message": message.pk,
    }
    assert [{k: body[k] for k in expected} for _, body in results] == [expected] * THREADS
    assert sorted(body["new_contact"] for _, body in results) == [False, False, False, False, True]


@pytest.mark.django_db(transaction=True)
def test_five_simultaneous_emails_from_one_new_sender_make_one_customer():
    require_postgres()
    # given five different emails from a sender we have never seen
    channel = channel_create_or_update(kind="email", name="Mailbox", team_name="Team A")
    raws = [
        email_bytes(message_id=f"<new-sender-{i}@mail.example.com>", subject=f"Question {i}")
        for i in range(THREADS)
    ]

    # when they arrive at the same moment
    results = run_together(lambda i: post_email(channel.secret, raws[i]))

    # then every message is stored, all under one customer holding the one identity
    assert [status for status, _ in results] == [201] * THREADS
    assert Message.objects.count() == THREADS
    customer = Customer.objects.get()
    assert {body["customer"] for _, body in results} == {customer.pk}
    assert list(Identity.objects.values_list("customer_id", "value")) == [
        (customer.pk, "jane@example.com")
    ]
    assert set(Conversation.objects.values_list("customer_id", flat=True)) == {customer.pk}
