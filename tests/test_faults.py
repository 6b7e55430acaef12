"""Faults on real servers the tests start and stop themselves (docs/security/faults-and-concurrency.md).

- Redis stopped while mail arrives and agents reply: every request succeeds, and each mail goes
  out exactly once after Redis is back (the outbox; beat's relay).
- The worker SIGKILLed in the middle of a reply email, a chat webhook and a recompute: the broker
  delivers the task again (``acks_late``), and its effect happens once.
- SMTP refusing connections: the reply is stored at once, the page and the API say "not
  delivered yet, retrying" with the reason, and it is delivered once when SMTP is back.
- PostgreSQL restarted under load (a private cluster, gunicorn and a worker against it): the app
  answers 503 + Retry-After during the outage, recovers by itself, and stores every message once.

Each test starts its own Redis, SMTP sink, PostgreSQL or worker on free ports; the machine's
shared PostgreSQL and Redis are never stopped. They need committed data (``transaction=True``).
"""

from __future__ import annotations

import json
import os
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
import urllib.error
import urllib.request
from datetime import timedelta
from pathlib import Path

import psycopg
import pytest
from django.db import connection, transaction
from django.test import Client
from django.utils import timezone

from metrics.models import DailyFact, RecomputeJob
from metrics.services import facts_compute, recompute_job_create
from supportdesk.models import Notification, OutboxItem
from supportdesk.outbox import outbox_relay_pending
from supportdesk.tasks import notification_email_task, outbox_prune_task
from surveys.models import Survey
from surveys.services import survey_token, surveys_send_due
from surveys.tasks import survey_schedule_task, surveys_send_due_task
from tests.conftest import client_for
from tests.factories import email_bytes, send_chat, send_email
from tests.helpers import web
from tests.services import (
    BASE_DIR,
    broker_url_for_tests,
    celery_publishing_to,
    celery_worker,
    free_port,
    postgres_cluster,
    redis_delete_queue,
    redis_server,
    require_postgres,
    require_redis,
    smtp_sink,
    unique_queue_name,
    wait_for,
    webhook_receiver,
)
from tickets.models import Conversation, Message
from tickets.services import channel_set_webhook, conversation_solve
from tickets.tasks import message_email_send_task

pytestmark = [pytest.mark.services, pytest.mark.django_db(transaction=True)]

EFFECT_TIMEOUT = 90.0
# A task whose worker died is delivered again after this many seconds (production: an hour).
FAST_REDELIVERY = {"CELERY_BROKER_VISIBILITY_TIMEOUT": "3"}
# The delivery lease: a reply stuck in "sending" is taken over once it is this old.
SENDING_LEASE = timedelta(minutes=15)


def _conversation(channel, sender: str = "Jane Doe <jane@example.com>") -> Conversation:
    result = send_email(channel, sender=sender, subject="Where is my order?")
    return Conversation.objects.get(pk=result.conversation_id)


def _message_state(message_id: int) -> tuple[str, int, str]:
    message = Message.objects.get(pk=message_id)
    return message.delivery_state, message.delivery_attempts, message.delivery_error


def _kill(worker) -> None:
    worker.process.send_signal(signal.SIGKILL)
    worker.process.wait(timeout=10)


# --- SMTP refusing connections ------------------------------------------------------------------------


def test_smtp_down_reply_stored_at_once_shown_retrying_then_sent_once(channels, agent_a):
    require_postgres()
    broker_url = broker_url_for_tests()
    require_redis(broker_url)
    queue = unique_queue_name()
    conversation = _conversation(channels["email"])
    smtp_port = free_port()  # nothing listens here yet: connections are refused
    env = {
        "CELERY_TASK_DEFAULT_QUEUE": queue,
        "EMAIL_URL": f"smtp://127.0.0.1:{smtp_port}",
        "DELIVERY_RETRY_SECONDS": "1",
    }
    agent_web = web(agent_a)
    try:
        with celery_publishing_to(broker_url, queue=queue), celery_worker(broker_url, env):
            # When an agent replies while SMTP refuses connections
            response = agent_web.post(
                f"/conversations/{conversation.pk}/reply/",
                {"body": "It ships tomorrow.", "channel": "email"},
            )

            # Then the reply is stored at once
            assert response.status_code == 302
            message = Message.objects.get(conversation=conversation, direction="outbound")
            assert message.body_text == "It ships tomorrow."

            # And after failed attempts the page and the API say it is not delivered yet, and why
            state = wait_for(
                lambda: (s := _message_state(message.pk))[0] == "queued" and s[1] >= 2 and s,
                timeout=EFFECT_TIMEOUT,
                what="two failed delivery attempts",
            )
            assert "Connection refused" in state[2]
            page = agent_web.get(f"/conversations/{conversation.pk}/").content.decode()
            shown = re.search(
                r'class="delivery delivery-retrying"[^>]*>Not delivered yet, retrying '
                r"\((\d+) attempts failed: ([^)]*)\)",
                page,
            )
            assert shown is not None, page
            assert int(shown.group(1)) >= 2
            assert "Connection refused" in shown.group(2)
            api = client_for(agent_a).get(f"/api/v1/conversations/{conversation.pk}/").json()
            reply = next(m for m in api["messages"] if m["id"] == message.pk)
            assert reply["delivery_state"] in {"queued", "sending"}
            assert "Connection refused" in reply["delivery_error"]
            assert reply["delivery_attempts"] >= 2

            # When SMTP comes back on its port
            with smtp_sink(smtp_port) as sink:
                # Then the next retry delivers it, once, and the state turns "sent"
                wait_for(
                    lambda: _message_state(message.pk)[0] == "sent",
                    timeout=EFFECT_TIMEOUT,
                    what="the reply to be sent",
                )
                message.refresh_from_db()
                header = f"Message-ID: <{message.message_id}>"
                assert sum(header in mail for mail in sink.delivered) == 1
                assert message.delivery_error == ""
                page = agent_web.get(f"/conversations/{conversation.pk}/").content.decode()
                assert (
                    f'class="delivery delivery-sent" title="">Sent '
                    f"({message.delivery_attempts} attempts)</span>"
                ) in page
                assert "Not delivered yet" not in page
    finally:
        redis_delete_queue(broker_url, queue)


# --- The worker killed mid-task ---------------------------------------------------------------------


def test_worker_killed_while_sending_a_reply_email_sends_it_once(channels, agent_a):
    require_postgres()
    broker_url = broker_url_for_tests()
    require_redis(broker_url)
    queue = unique_queue_name()
    conversation = _conversation(channels["email"])
    try:
        with (
            smtp_sink() as sink,
            celery_publishing_to(broker_url, queue=queue),
        ):
            env = {
                "CELERY_TASK_DEFAULT_QUEUE": queue,
                "EMAIL_URL": f"smtp://127.0.0.1:{sink.server_address[1]}",
                **FAST_REDELIVERY,
            }
            sink.hold.set()  # the server takes the message but never confirms it
            with celery_worker(broker_url, env) as first:
                # When an agent replies and the worker dies (SIGKILL) in the middle of the send
                response = client_for(agent_a).post(
                    f"/api/v1/conversations/{conversation.pk}/replies/",
                    {"body": "It ships tomorrow."},
                    format="json",
                )
                assert response.status_code == 201
                message_id = response.json()["id"]
                assert sink.holding.wait(timeout=EFFECT_TIMEOUT), first.log()
                _kill(first)

            # Then nothing was delivered, and the reply is marked as being sent
            assert sink.delivered == []
            assert _message_state(message_id)[:2] == ("sending", 1)

            # When the lease of the dead send has run out and a worker runs again
            Message.objects.filter(pk=message_id).update(
                created_at=timezone.now() - SENDING_LEASE, claimed_at=timezone.now() - SENDING_LEASE
            )
            sink.hold.clear()
            with celery_worker(broker_url, env) as second:
                # Then the broker redelivers the task and the mail goes out once
                wait_for(
                    lambda: _message_state(message_id)[0] == "sent",
                    timeout=EFFECT_TIMEOUT,
                    what="the redelivered task to send the reply",
                )
                assert "message_email_send_task" in second.log()
        message = Message.objects.get(pk=message_id)
        assert message.delivery_attempts == 2
        assert [f"Message-ID: <{message.message_id}>" in m for m in sink.delivered] == [True]
    finally:
        redis_delete_queue(broker_url, queue)


def test_worker_killed_while_posting_a_chat_webhook_delivers_it_once(channels, agent_a):
    require_postgres()
    broker_url = broker_url_for_tests()
    require_redis(broker_url)
    queue = unique_queue_name()
    env = {"CELERY_TASK_DEFAULT_QUEUE": queue, **FAST_REDELIVERY}
    result = send_chat(channels["chat"], body="Is anyone there?", email="sam@example.com")
    conversation = Conversation.objects.get(pk=result.conversation_id)
    try:
        with webhook_receiver() as receiver, celery_publishing_to(broker_url, queue=queue):
            channel_set_webhook(channel=channels["chat"], webhook_url=receiver.url)
            receiver.hold.set()  # the receiver reads the POST but never answers
            with celery_worker(broker_url, env) as first:
                response = client_for(agent_a).post(
                    f"/api/v1/conversations/{conversation.pk}/replies/",
                    {"body": "Yes, how can I help?", "channel": "chat"},
                    format="json",
                )
                assert response.status_code == 201
                message_id = response.json()["id"]
                assert receiver.holding.wait(timeout=EFFECT_TIMEOUT), first.log()
                _kill(first)

            assert receiver.accepted == []
            assert _message_state(message_id)[:2] == ("sending", 1)

            Message.objects.filter(pk=message_id).update(
                created_at=timezone.now() - SENDING_LEASE, claimed_at=timezone.now() - SENDING_LEASE
            )
            receiver.hold.clear()
            with celery_worker(broker_url, env) as second:
                wait_for(
                    lambda: _message_state(message_id)[0] == "sent",
                    timeout=EFFECT_TIMEOUT,
                    what="the redelivered task to post the webhook",
                )
                assert "message_webhook_send_task" in second.log()
        # The receiver confirmed one delivery; the unconfirmed first attempt carried the same
        # message id, so a receiver that saw both can drop the repeat.
        assert len(receiver.accepted) == 1
        assert [json.loads(body)["message_id"] for body in receiver.received] == [message_id] * 2
        assert json.loads(receiver.accepted[0])["body"] == "Yes, how can I help?"
        assert _message_state(message_id)[:2] == ("sent", 2)
    finally:
        redis_delete_queue(broker_url, queue)


def _waiting_on_a_lock() -> bool:
    with connection.cursor() as cursor:
        # Polled inside the transaction that holds the lock: PostgreSQL keeps one snapshot of
        # pg_stat_activity per transaction, so drop it, or a first poll made before the worker
        # blocked would be the answer to every later one.
        cursor.execute("SELECT pg_stat_clear_snapshot()")
        cursor.execute(
            "SELECT count(*) FROM pg_stat_activity WHERE datname = current_database() "
            "AND wait_event_type = 'Lock' AND pid <> pg_backend_pid()"
        )
        return cursor.fetchone()[0] > 0


def _facts() -> list[tuple]:
    return sorted(DailyFact.objects.values_list(*[f.attname for f in DailyFact._meta.fields][1:]))


def test_worker_killed_during_a_recompute_computes_it_once(channels, agent_a):
    require_postgres()
    broker_url = broker_url_for_tests()
    require_redis(broker_url)
    queue = unique_queue_name()
    env = {"CELERY_TASK_DEFAULT_QUEUE": queue, **FAST_REDELIVERY}
    # Given a solved conversation, and the facts an uninterrupted recompute gives
    conversation = _conversation(channels["email"])
    conversation_solve(conversation=conversation, actor=agent_a)
    today = timezone.localdate()
    facts_compute(day_from=today - timedelta(days=1), day_to=today + timedelta(days=1))
    expected = _facts()
    assert expected != []
    DailyFact.objects.all().delete()
    try:
        with celery_publishing_to(broker_url, queue=queue):
            job = recompute_job_create(
                day_from=today - timedelta(days=1),
                day_to=today + timedelta(days=1),
                requested_by=None,
            )
            # When the worker is killed while the recompute is half-way (blocked on the facts
            # table, which this test holds locked)
            with transaction.atomic():
                with connection.cursor() as cursor:
                    cursor.execute("LOCK TABLE metrics_dailyfact IN ACCESS EXCLUSIVE MODE")
                with celery_worker(broker_url, env) as first:
                    wait_for(_waiting_on_a_lock, timeout=EFFECT_TIMEOUT, what="the recompute")
                    _kill(first)
            # Then nothing of it was kept
            assert DailyFact.objects.count() == 0

            # When a worker runs again, the broker redelivers the task and it completes once
            with celery_worker(broker_url, env):
                wait_for(
                    lambda: RecomputeJob.objects.get(pk=job.pk).state == "done",
                    timeout=EFFECT_TIMEOUT,
                    what="the redelivered recompute",
                )
        job.refresh_from_db()
        assert (job.days_done, job.days_total) == (2, 2)
        assert _facts() == expected
    finally:
        redis_delete_queue(broker_url, queue)


# --- Redis stopped while mail arrives and agents reply --------------------------------------------


def _answered_survey_ready(channels, agent_a) -> Survey:
    """A solved conversation whose survey went out (in-process, before the outage)."""
    conversation = _conversation(channels["email"], sender="Omar <omar@example.net>")
    event = conversation_solve(conversation=conversation, actor=agent_a)
    survey = Survey.objects.get(event=event)
    Survey.objects.filter(pk=survey.pk).update(due_at=timezone.now() - timedelta(minutes=1))
    assert surveys_send_due() == 1
    survey.refresh_from_db()
    return survey


def test_redis_down_every_request_succeeds_and_each_mail_goes_out_once_after(channels, agent_a):
    require_postgres()
    queue = unique_queue_name()
    conversation = _conversation(channels["email"])
    survey = _answered_survey_ready(channels, agent_a)
    agent_web, api = web(agent_a), client_for(agent_a)
    statuses = []
    with redis_server() as redis_srv, celery_publishing_to(redis_srv.url(), queue=queue):
        # Given Redis went down
        outbox_prune_task.delay()
        redis_srv.stop()

        # When mail arrives through the inbound API
        inbound = Client().post(
            "/api/v1/inbound/email/",
            email_bytes(sender="Lee <lee@example.org>", subject="Refund please"),
            content_type="message/rfc822",
            headers={"X-Channel-Token": channels["email"].secret},
        )
        statuses.append(inbound.status_code)
        new_conversation = inbound.json()["conversation"]
        # And agents reply through the workspace and the API, and solve the new conversation
        statuses.append(
            agent_web.post(
                f"/conversations/{conversation.pk}/reply/",
                {"body": "From the workspace.", "channel": "email"},
            ).status_code
        )
        statuses.append(
            api.post(
                f"/api/v1/conversations/{conversation.pk}/replies/",
                {"body": "From the API."},
                format="json",
            ).status_code
        )
        statuses.append(api.post(f"/api/v1/conversations/{new_conversation}/solve/").status_code)
        # And a customer answers "not resolved" (the agent gets a notification email)
        statuses.append(
            Client().post(f"/s/{survey_token(survey)}/", {"resolved": "no"}).status_code
        )

        # Then every request succeeded; the mail waits in the outbox
        assert statuses == [201, 302, 201, 200, 302]
        replies = list(
            Message.objects.filter(conversation=conversation, direction="outbound").order_by("pk")
        )
        assert [m.body_text for m in replies] == ["From the workspace.", "From the API."]
        assert {m.delivery_state for m in replies} == {"queued"}
        assert OutboxItem.objects.filter(relayed_at__isnull=True).count() >= 4
        notification = Notification.objects.get(kind="survey.not_resolved")
        assert notification.emailed_at is None

        # When Redis is back, a worker runs and beat relays the outbox and sends due surveys
        redis_srv.start()
        env = {"CELERY_TASK_DEFAULT_QUEUE": queue, "SURVEY_DELAY_MINUTES": "0"}
        with celery_worker(redis_srv.url(), env) as worker:
            assert outbox_relay_pending(older_than_seconds=0) >= 4

            def everything_out() -> bool:
                surveys_send_due_task.delay()
                time.sleep(1)
                return (
                    Message.objects.filter(
                        pk__in=[m.pk for m in replies], delivery_state="sent"
                    ).count()
                    == 2
                    and Notification.objects.filter(
                        pk=notification.pk, emailed_at__isnull=False
                    ).exists()
                    and Survey.objects.filter(
                        conversation_id=new_conversation, status="sent"
                    ).exists()
                )

            wait_for(
                everything_out, timeout=EFFECT_TIMEOUT, what="the replies, notification, survey"
            )
            new_survey = Survey.objects.get(conversation_id=new_conversation)

            # And when the relay runs again and the broker delivers every task a second time
            assert outbox_relay_pending(older_than_seconds=0) == 0
            duplicates = [
                message_email_send_task.apply_async(kwargs={"message_id": m.pk}) for m in replies
            ]
            duplicates.append(notification_email_task.delay(notification_id=notification.pk))
            duplicates.append(surveys_send_due_task.delay())
            for task in duplicates:
                worker.wait_for_log(f"[{task.id}] succeeded", timeout=EFFECT_TIMEOUT)

            # Then each mail went out exactly once
            mail = worker.mail_text()
            for reply in replies:
                reply.refresh_from_db()
                assert mail.count(f"Message-ID: <{reply.message_id}>") == 1
                assert (reply.delivery_state, reply.delivery_attempts) == ("sent", 1)
            # The survey's notification and the workspace's own (the customer wrote on Alice's
            # conversation): each emailed exactly once.
            emailed = Notification.objects.filter(
                recipient__email="alice@desk.example", emailed_at__isnull=False
            )
            assert notification.pk in {n.pk for n in emailed}
            assert mail.count("To: alice@desk.example") == emailed.count()
            assert mail.count(f"X-Supportdesk-Survey: {new_survey.pk}") == 1
            assert "To: lee@example.org" in mail


# --- PostgreSQL restarted under load ----------------------------------------------------------------

LOAD_THREADS = 3
MESSAGES_PER_THREAD = 25


def _run(args: list[str], env: dict[str, str]) -> str:
    done = subprocess.run(
        [sys.executable, "manage.py", *args], env=env, capture_output=True, text=True, timeout=300
    )
    assert done.returncode == 0, done.stdout + done.stderr
    return done.stdout


def test_postgres_restart_under_load_answers_503_recovers_and_stores_each_message_once():
    require_postgres()  # the test's own database is unused; the app runs on a private cluster
    queue = unique_queue_name()
    with postgres_cluster() as cluster, redis_server() as redis_srv:
        with psycopg.connect(cluster.url(), autocommit=True) as admin:
            admin.execute("CREATE DATABASE sd")
        workdir = Path(tempfile.mkdtemp(prefix="sd-web-"))
        env = {
            **{k: v for k, v in os.environ.items() if not k.startswith("CELERY_")},
            "DATABASE_URL": cluster.url("sd"),
            "CELERY_BROKER_URL": redis_srv.url(),
            "CELERY_TASK_DEFAULT_QUEUE": queue,
            "DATA_DIR": str(workdir),
            "DEBUG": "0",
            "DB_CONN_MAX_AGE": "60",
            "PYTHONUNBUFFERED": "1",
        }
        _run(["migrate", "--no-input", "-v", "0"], env)
        secret = _run(["create_channel", "email", "Mailbox", "--team", "Support"], env)
        secret = secret.strip().splitlines()[-1]
        port = free_port()
        log = open(workdir / "gunicorn.log", "wb")  # noqa: SIM115 (the child owns it)
        web = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "gunicorn",
                "supportdesk.wsgi",
                "-b",
                f"127.0.0.1:{port}",
                "-w",
                "2",
                "--timeout",
                "60",
                "--graceful-timeout",
                "5",
            ],
            cwd=BASE_DIR,
            env=env,
            stdout=log,
            stderr=subprocess.STDOUT,
        )
        log.close()
        base = f"http://127.0.0.1:{port}"

        def get(path: str) -> int:
            try:
                with urllib.request.urlopen(base + path, timeout=10) as response:
                    return response.status
            except urllib.error.HTTPError as exc:
                return exc.code
            except OSError:
                return 0

        try:
            wait_for(lambda: get("/healthz") == 200, timeout=60, what="gunicorn")
            with celery_worker(redis_srv.url(), env, database_url=cluster.url("sd")) as worker:
                outcomes: list[tuple[int, str, str]] = []  # (status, retry-after, body) of 5xx
                acknowledged: list[str] = []
                errors: list[BaseException] = []
                lock = threading.Lock()

                def post(message_id: str) -> None:
                    """A provider: post until a 2xx, retrying on 5xx and dropped connections."""
                    raw = email_bytes(
                        sender="Load <load@example.com>",
                        subject=f"Load {message_id}",
                        message_id=f"<{message_id}@load.example>",
                    )
                    deadline = time.monotonic() + 180
                    while time.monotonic() < deadline:
                        request = urllib.request.Request(
                            base + "/api/v1/inbound/email/",
                            data=raw,
                            method="POST",
                            headers={"Content-Type": "message/rfc822", "X-Channel-Token": secret},
                        )
                        try:
                            with urllib.request.urlopen(request, timeout=30) as response:
                                assert response.status in (200, 201)
                                with lock:
                                    acknowledged.append(message_id)
                                return
                        except urllib.error.HTTPError as exc:
                            with lock:
                                outcomes.append(
                                    (
                                        exc.code,
                                        exc.headers.get("Retry-After", ""),
                                        exc.read().decode(),
                                    )
                                )
                        except OSError:
                            pass  # connection dropped: retry like a provider
                        time.sleep(0.2)
                    raise AssertionError(f"{message_id} was never acknowledged")

                def provider(n: int) -> None:
                    try:
                        for i in range(MESSAGES_PER_THREAD):
                            post(f"load-{n}-{i}")
                    except BaseException as exc:
                        errors.append(exc)

                threads = [
                    threading.Thread(target=provider, args=(n,)) for n in range(LOAD_THREADS)
                ]
                for thread in threads:
                    thread.start()
                # When PostgreSQL goes down mid-load and comes back a few seconds later
                wait_for(lambda: len(acknowledged) >= 10, timeout=120, what="the load to start")
                cluster.stop()
                time.sleep(3)
                cluster.start()
                for thread in threads:
                    thread.join(timeout=300)
                assert errors == []

                # Then during the outage the app answered 503 with a JSON detail and Retry-After
                assert outcomes, "the load never met the outage"
                assert {status for status, _, _ in outcomes} == {503}
                assert {retry for _, retry, _ in outcomes} == {"5"}
                assert {json.loads(body)["detail"] for _, _, body in outcomes} == {
                    "The database is unavailable for a moment. Nothing was stored; retry shortly."
                }
                # And it recovered without a restart of gunicorn or the worker
                assert web.poll() is None
                assert get("/healthz") == 200
                with celery_publishing_to(redis_srv.url(), queue=queue):
                    task = outbox_prune_task.delay()
                worker.wait_for_log(f"[{task.id}] succeeded", timeout=EFFECT_TIMEOUT)
                assert worker.process.poll() is None

            # And every message was stored exactly once: none lost, no duplicate
            total = LOAD_THREADS * MESSAGES_PER_THREAD
            assert len(acknowledged) == total
            with psycopg.connect(cluster.url("sd")) as db:
                rows = db.execute(
                    "SELECT count(*), count(DISTINCT external_id) FROM tickets_message "
                    "WHERE direction = 'inbound'"
                ).fetchone()
            assert rows == (total, total)
        except BaseException:
            print((workdir / "gunicorn.log").read_text(errors="replace"))
            raise
        finally:
            web.send_signal(signal.SIGTERM)
            try:
                web.wait(timeout=20)
            except subprocess.TimeoutExpired:
                web.kill()
                web.wait(timeout=10)
            shutil.rmtree(workdir, ignore_errors=True)


# --- A reaction task while PostgreSQL is away ------------------------------------------------------

SETUP_SOLVE = """
from tests.factories import make_staff, send_email
from tickets.models import Channel, Conversation, Event
from tickets.services import conversation_solve
agent = make_staff("ria@desk.example", role="agent", teams=["Support"])
result = send_email(Channel.objects.get(), sender="Kim <kim@example.com>")
conversation_solve(conversation=Conversation.objects.get(pk=result.conversation_id), actor=agent)
print(Event.objects.get(kind="conversation.solved").pk)
"""


def test_a_solve_keeps_its_survey_when_the_reaction_runs_while_postgres_is_down():
    require_postgres()  # the app runs on a private cluster that this test stops and starts
    queue = unique_queue_name()
    with postgres_cluster() as cluster, redis_server() as redis_srv:
        with psycopg.connect(cluster.url(), autocommit=True) as admin:
            admin.execute("CREATE DATABASE sd")
        env = {
            **{k: v for k, v in os.environ.items() if not k.startswith("CELERY_")},
            "DATABASE_URL": cluster.url("sd"),
            "CELERY_TASK_DEFAULT_QUEUE": queue,
            "DATA_DIR": tempfile.mkdtemp(prefix="sd-react-"),
            "PYTHONUNBUFFERED": "1",
        }
        _run(["migrate", "--no-input", "-v", "0"], env)
        _run(["create_channel", "email", "Mailbox", "--team", "Support"], env)
        # Given: a solve whose outbox hand-over found no broker (the row waits, nothing queued)
        offline = {**env, "CELERY_BROKER_URL": "redis://127.0.0.1:1/0"}
        event_id = int(_run(["shell", "-c", SETUP_SOLVE], offline).strip().splitlines()[-1])

        with celery_worker(redis_srv.url(), env, database_url=cluster.url("sd")) as worker:
            # When: PostgreSQL is down as the survey's reaction task runs
            cluster.stop()
            with celery_publishing_to(redis_srv.url(), queue=queue):
                task = survey_schedule_task.delay(event_id)
            worker.wait_for_log(f"[{task.id}] retry: Retry in", timeout=EFFECT_TIMEOUT)
            cluster.start()

            # Then: it waits the outage out, runs once the database is back, and the survey is there
            worker.wait_for_log(f"[{task.id}] succeeded", timeout=EFFECT_TIMEOUT)
        with psycopg.connect(cluster.url("sd")) as db:
            surveys = db.execute(
                "SELECT count(*) FROM surveys_survey s JOIN tickets_event e "
                "ON e.conversation_id = s.conversation_id WHERE e.id = %s",
                [event_id],
            ).fetchone()
        assert surveys == (1,)
