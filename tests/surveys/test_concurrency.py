"""Exactly-once under pressure: concurrent answers, and a worker killed in the middle of a send.

These need committed data (``transaction=True``) and PostgreSQL; the worker test also needs Redis
and starts real ``celery worker`` processes (tests/services.py).
"""

from __future__ import annotations

import socket
import threading
from datetime import timedelta

import pytest
import time_machine
from django.db import connection
from django.db.models import F
from django.test import Client
from django.utils import timezone

from supportdesk.models import Notification
from surveys.models import Survey, SurveyResponse
from surveys.services import SEND_LEASE, survey_token
from surveys.tasks import surveys_send_due_task
from tests.factories import send_email
from tests.services import (
    SmtpSink,
    broker_url_for_tests,
    celery_publishing_to,
    celery_worker,
    free_port,
    redis_delete_queue,
    require_postgres,
    require_redis,
    unique_queue_name,
    wait_for,
)
from tickets.models import Conversation, Event
from tickets.services import conversation_solve

WORKER_EFFECT_TIMEOUT = 60.0


@pytest.mark.django_db(transaction=True)
def test_twenty_concurrent_submissions_leave_one_response(sent, agent_a):
    require_postgres()
    survey = sent()
    url = f"/s/{survey_token(survey)}/"
    answers = ["no" if i % 2 else "yes" for i in range(20)]
    start = threading.Barrier(len(answers))
    codes: list[int] = []
    errors: list[BaseException] = []

    def submit(resolved: str) -> None:
        try:
            client = Client()
            start.wait(timeout=30)
            codes.append(client.post(url, {"resolved": resolved, "csat": "3"}).status_code)
        except BaseException as exc:  # reported below, in the test's thread
            errors.append(exc)
        finally:
            connection.close()

    with time_machine.travel(survey.sent_at + timedelta(hours=1), tick=False):
        threads = [threading.Thread(target=submit, args=(a,)) for a in answers]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(timeout=120)

    assert errors == []
    assert codes == [302] * 20
    response = SurveyResponse.objects.get()
    assert response.survey_id == survey.pk
    assert response.times_answered == 20
    assert response.resolved in {"yes", "no"}
    # However the answers interleaved, the "not resolved" effects happened once at most.
    reopens = Event.objects.filter(kind="conversation.reopened").count()
    assert reopens == 1
    assert Notification.objects.filter(kind="survey.not_resolved").count() == 1


def _survey_mails(sink: SmtpSink, survey: Survey) -> int:
    return sum(f"X-Supportdesk-Survey: {survey.pk}" in message for message in sink.delivered)


@pytest.mark.services
@pytest.mark.django_db(transaction=True)
def test_killing_the_worker_during_a_send_gives_exactly_one_email(channels, agent_a):
    require_postgres()
    broker_url = broker_url_for_tests()
    require_redis(broker_url)
    queue = unique_queue_name()
    # Given a survey that fell due an hour ago (a real worker runs on the real clock)
    solved_at = timezone.now() - timedelta(hours=2)
    result = send_email(channels["email"], sender="Jane Doe <jane@example.com>")
    conversation = Conversation.objects.get(pk=result.conversation_id)
    event = conversation_solve(conversation=conversation, actor=agent_a, at=solved_at)
    survey = Survey.objects.get(event=event)
    assert survey.status == Survey.Status.SCHEDULED
    # And an SMTP server that accepts the message but never confirms it
    port = free_port()
    sink = SmtpSink(port)
    server = threading.Thread(target=sink.serve_forever, daemon=True)
    server.start()
    sink.hold.set()
    env = {"CELERY_TASK_DEFAULT_QUEUE": queue, "EMAIL_URL": f"smtp://127.0.0.1:{port}"}
    try:
        with celery_publishing_to(broker_url, queue=queue):
            # When beat's task runs and the worker is killed (SIGKILL) in the middle of the send
            with celery_worker(broker_url, env) as first:
                surveys_send_due_task.delay()
                assert sink.holding.wait(timeout=WORKER_EFFECT_TIMEOUT), first.log()
                first.process.kill()
                first.process.wait(timeout=10)
            # Then nothing was delivered, and the dead worker's lease keeps others off it
            survey.refresh_from_db()
            assert sink.delivered == []
            assert survey.status == Survey.Status.SCHEDULED
            assert survey.send_claimed_at is not None
            assert survey.send_attempts == 1

            sink.hold.clear()
            with celery_worker(broker_url, env) as second:
                # While the lease holds, another beat run sends nothing
                surveys_send_due_task.delay()
                second.wait_for_log("succeeded", timeout=WORKER_EFFECT_TIMEOUT)
                assert sink.delivered == []
                # Once the lease has expired (time passes), the next beat run sends it
                Survey.objects.filter(pk=survey.pk).update(
                    send_claimed_at=F("send_claimed_at") - SEND_LEASE
                )
                surveys_send_due_task.delay()
                wait_for(
                    lambda: _survey_mails(sink, survey) == 1,
                    timeout=WORKER_EFFECT_TIMEOUT,
                    what="the survey email",
                )
                # And later runs send nothing more
                surveys_send_due_task.delay()
                wait_for(
                    lambda: second.log().count("succeeded") >= 3,
                    timeout=WORKER_EFFECT_TIMEOUT,
                    what="the third beat run",
                )
        survey.refresh_from_db()
        assert survey.status == Survey.Status.SENT
        assert survey.send_attempts == 2
        assert _survey_mails(sink, survey) == 1
        assert len(sink.delivered) == 1
        assert "To: jane@example.com" in sink.delivered[0]
    finally:
        sink.shutdown()
        sink.server_close()
        redis_delete_queue(broker_url, queue)


def test_the_smtp_sink_counts_only_confirmed_messages():
    """The sink the worker test relies on: a message whose final 250 never came is not counted."""
    port = free_port()
    sink = SmtpSink(port)
    threading.Thread(target=sink.serve_forever, daemon=True).start()
    try:
        import smtplib

        with smtplib.SMTP("127.0.0.1", port, timeout=5) as client:
            client.sendmail("a@example.com", ["b@example.com"], "Subject: one\r\n\r\nhello\r\n")
        assert len(sink.delivered) == 1
        sink.hold.set()
        raw = socket.create_connection(("127.0.0.1", port), timeout=5)
        raw.recv(100)
        for line in (
            b"EHLO x\r\n",
            b"MAIL FROM:<a@example.com>\r\n",
            b"RCPT TO:<b@example.com>\r\n",
        ):
            raw.sendall(line)
            raw.recv(100)
        raw.sendall(b"DATA\r\n")
        raw.recv(100)
        raw.sendall(b"Subject: two\r\n\r\nbody\r\n.\r\n")
        assert sink.holding.wait(timeout=5)
        raw.close()
        assert len(sink.delivered) == 1
    finally:
        sink.shutdown()
        sink.server_close()
