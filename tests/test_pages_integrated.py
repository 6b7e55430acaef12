"""The staff pages with every app plugged in: their query counts do not grow with the data.

Each app tests its own queries exactly (a lower app with ``without_higher_apps``); here the queue
and the conversation page run with the surveys and metrics panels and annotations of a customer
who has a history: solved conversations with survey answers, ideas and a QA-relevant solve.
"""

from __future__ import annotations

from datetime import timedelta

import pytest
from django.db import connection
from django.http import HttpRequest
from django.test import Client
from django.test.utils import CaptureQueriesContext
from django.utils import timezone

from quality.services import idea_attach, idea_create
from surveys.services import Answer, survey_record_past
from tests.factories import TEST_PASSWORD, send_chat, send_email
from tickets.models import Conversation, Event, Message
from tickets.services import conversation_reply, conversation_solve

pytestmark = pytest.mark.django_db


def _history(channels, agent, *, n: int, tag: str) -> Conversation:
    """``n`` solved, answered conversations of one customer, then a current open one."""
    now = timezone.now()
    idea = None
    for i in range(n):
        result = send_email(
            channels["email"], sender=f"Jane <jane-{tag}@example.com>", subject=f"Issue {i}"
        )
        conversation = Conversation.objects.get(pk=result.conversation_id)
        conversation_reply(conversation=conversation, author=agent, body="Done, anything else?")
        conversation_solve(conversation=conversation, actor=agent)
        event = Event.objects.filter(conversation=conversation, kind=Event.Kind.SOLVED).last()
        survey_record_past(
            event=event,
            sent_at=now - timedelta(minutes=5),
            answer=Answer(resolved="yes" if i % 2 else "no", csat=4, comment=f"Comment {i}"),
            answered_at=now - timedelta(minutes=1),
        )
        message = Message.objects.filter(conversation=conversation).first()
        if idea is None:
            idea = idea_create(message=message, actor=agent, title=f"Dark mode {tag}")
        else:
            idea_attach(idea=idea, message=message, actor=agent)
    current = send_email(
        channels["email"], sender=f"Jane <jane-{tag}@example.com>", subject="Still stuck"
    )
    for i in range(n):
        send_chat(channels["chat"], visitor_id=f"v-{tag}", body=f"chat {i}", session_id=f"{tag}{i}")
    return Conversation.objects.get(pk=current.conversation_id)


def _count(client: Client, url: str) -> int:
    with CaptureQueriesContext(connection) as queries:
        response = client.get(url)
    assert response.status_code == 200, url
    return len(queries)


@pytest.mark.parametrize("role", ["agent", "manager"])
def test_queue_and_conversation_page_queries_do_not_grow_with_history(
    role, channels, agent_a, manager_a
):
    user = agent_a if role == "agent" else manager_a
    client = Client()
    assert client.login(request=HttpRequest(), username=user.email, password=TEST_PASSWORD)
    small = _history(channels, agent_a, n=2, tag="small")
    small_counts = (_count(client, "/"), _count(client, f"/conversations/{small.pk}/"))

    large = _history(channels, agent_a, n=9, tag="large")
    large_counts = (_count(client, "/"), _count(client, f"/conversations/{large.pk}/"))

    assert large_counts == small_counts


def test_conversation_page_with_every_app_runs_an_exact_number_of_queries(
    channels, agent_a, django_assert_num_queries
):
    # Given: a customer with answered surveys and ideas, and their open conversation
    client = Client()
    assert client.login(request=HttpRequest(), username=agent_a.email, password=TEST_PASSWORD)
    current = _history(channels, agent_a, n=3, tag="exact")
    client.get(f"/conversations/{current.pk}/")  # fills the fragments
    # When/Then: the page's own 20 (tests/tickets/test_workspace.py lists them), the other
    # conversations' outcomes (their surveys with answers joined: 1), the surveys sidebar (this
    # conversation's latest survey: 1 here, none yet; the customer's latest answer: 1), the QA
    # sidebar (reviews, ideas, cancellation, reasons: 4); routing's due time is not set here
    with django_assert_num_queries(27):
        response = client.get(f"/conversations/{current.pk}/")
    assert response.status_code == 200
