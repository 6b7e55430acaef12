"""A short bounded load run through the code of ``bench/load``: a real gunicorn (two
workers, DEBUG off) and a real Celery worker on the test database, a few agents replying and
solving while inbound email and chat stream in. It asserts correctness only, never timing: no
HTTP error, every acknowledged inbound message stored exactly once, every email reply written to
the mail sink exactly once.
"""

from __future__ import annotations

import pytest

from bench.loadrun import run_load
from bench.stack import Stack, free_port, manage, stack_env
from tests.factories import TEST_PASSWORD, make_staff, send_email
from tests.services import (
    broker_url_for_tests,
    redis_delete_queue,
    require_postgres,
    require_redis,
    unique_queue_name,
    worker_database_url,
)

pytestmark = pytest.mark.services

RATE = 5
SECONDS = 20


@pytest.mark.django_db(transaction=True)
def test_short_load_run_has_no_errors_and_loses_nothing(channels, tmp_path):
    require_postgres()
    broker = broker_url_for_tests()
    require_redis(broker)
    agents = [make_staff(f"load{i}@desk.example", role="agent", teams=["Team A"]) for i in range(3)]
    for i in range(12):  # open conversations of customers with an address, to reply to
        send_email(
            channels["email"],
            sender=f"Customer {i} <customer{i}@example.com>",
            subject=f"Question {i}",
        )
    queue = unique_queue_name()
    port = free_port()
    env = stack_env(
        database_url=worker_database_url(),
        broker_url=broker,
        queue=queue,
        workdir=tmp_path,
        port=port,
    )
    manage(env, "collectstatic", "--noinput", quiet=True)
    stack = Stack(env, port, tmp_path, beat=False, worker_concurrency=1)
    try:
        stack.start()
        result = run_load(
            base_url=stack.base_url,
            dsn=worker_database_url(),
            mail_dir=stack.mail_dir,
            email_secret=channels["email"].secret,
            chat_secret=channels["chat"].secret,
            agent_emails=[agent.email for agent in agents],
            password=TEST_PASSWORD,
            rate=RATE,
            seconds=SECONDS,
            think=0.5,
        )
    finally:
        stack.stop()
        redis_delete_queue(broker, queue)

    assert result.problems() == []
    assert result.errors == []
    assert result.inbound.errors == []
    assert result.inbound_sent == RATE * SECONDS
    assert result.inbound_stored == RATE * SECONDS
    assert result.inbound_distinct == RATE * SECONDS
    assert result.replies_email, "the agents sent no email reply"
    assert result.replies_stored == len(result.replies_email)
    assert all(result.replies_delivered[m] == 1 for m in result.replies_email)
    assert result.solves > 0
