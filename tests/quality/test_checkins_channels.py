"""A proactive check-in reaches a customer with no email where they wrote (chat, social)."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta

import pytest
import time_machine
from django.core import mail

from quality.models import CheckIn
from quality.services import checkin_send, checkins_create_due
from surveys.models import Survey
from surveys.services import Answer, survey_answer, surveys_send_due
from tests.factories import send_chat, send_email, send_social
from tests.services import webhook_receiver
from tickets.models import Conversation, Event, Message
from tickets.selectors import chat_transcript
from tickets.services import (
    channel_set_webhook,
    conversation_solve,
    identity_link,
    identity_mark_undeliverable,
)

pytestmark = pytest.mark.django_db

SOLVED_AT = datetime(2026, 11, 3, 10, 0, tzinfo=UTC)


def _not_resolved(conversation: Conversation, agent, capture) -> CheckIn:
    """Solved, surveyed the real way (on the customer's channel when they have no email),
    answered "not resolved"; the check-in comes due three days later."""
    with time_machine.travel(SOLVED_AT, tick=False), capture(execute=True):
        event = conversation_solve(conversation=conversation, actor=agent, at=SOLVED_AT)
    survey = Survey.objects.get(event=event)
    with time_machine.travel(survey.due_at, tick=False), capture(execute=True):
        surveys_send_due()
    survey.refresh_from_db()
    assert survey.status == "sent"
    answered_at = survey.due_at + timedelta(hours=1)
    with time_machine.travel(answered_at, tick=False), capture(execute=True):
        survey_answer(survey=survey, answer=Answer(resolved="no"))
    assert checkins_create_due(now=answered_at + timedelta(days=3)) == 1
    return CheckIn.objects.get(conversation=conversation)


def test_a_chat_customer_without_email_gets_the_checkin_in_their_chat(
    channels, agent_a, django_capture_on_commit_callbacks
):
    result = send_chat(channels["chat"], session_id="s-9", visitor_id="v-9", body="It breaks")
    conversation = Conversation.objects.get(pk=result.conversation_id)
    checkin = _not_resolved(conversation, agent_a, django_capture_on_commit_callbacks)

    checkin = checkin_send(checkin=checkin, actor=agent_a, body="Is it working now?")

    message = Message.objects.get(pk=checkin.message_id)
    assert (message.channel_id, message.channel_kind, message.thread_key) == (
        channels["chat"].pk,
        "chat",
        "s-9",
    )
    assert (message.author_id, message.delivery_state) == (agent_a.pk, "queued")
    assert chat_transcript(channel=channels["chat"], session_id="s-9")[-1].pk == message.pk
    # No mail to the customer (the agent's own notifications may go by email).
    assert [m.to for m in mail.outbox if m.to != [agent_a.email]] == []


def test_a_social_customer_gets_the_checkin_through_the_webhook(
    channels, agent_a, django_capture_on_commit_callbacks
):
    with webhook_receiver() as receiver:
        channel_set_webhook(channel=channels["social"], webhook_url=receiver.url)
        result = send_social(channels["social"], handle="@kim", body="@acme refund?")
        conversation = Conversation.objects.get(pk=result.conversation_id)
        checkin = _not_resolved(conversation, agent_a, django_capture_on_commit_callbacks)
        with django_capture_on_commit_callbacks(execute=True):
            checkin = checkin_send(checkin=checkin, actor=agent_a, body="Did the refund arrive?")
        # The survey link went the same way first; then the check-in.
        assert len(receiver.accepted) == 2
    assert "/s/" in json.loads(receiver.accepted[0])["body"]
    payload = json.loads(receiver.accepted[1])
    assert (payload["message_id"], payload["body"], payload["to"]) == (
        checkin.message_id,
        "Did the refund arrive?",
        {"kind": "social", "value": "x:kim"},
    )
    assert Message.objects.get(pk=checkin.message_id).delivery_state == "sent"


def test_a_bounced_email_customer_is_checked_in_on_the_chat_they_used(
    channels, agent_a, django_capture_on_commit_callbacks
):
    result = send_chat(channels["chat"], session_id="s-3", visitor_id="v-3", body="Hello")
    conversation = Conversation.objects.get(pk=result.conversation_id)
    identity_link(
        customer=conversation.customer, kind="email", value="lee@example.com", actor=agent_a
    )
    assert identity_mark_undeliverable(address="lee@example.com", source="dsn") == 1
    checkin = _not_resolved(conversation, agent_a, django_capture_on_commit_callbacks)

    checkin = checkin_send(checkin=checkin, actor=agent_a, body="Checking in")

    message = Message.objects.get(pk=checkin.message_id)
    assert (message.channel_kind, message.thread_key) == ("chat", "s-3")
    # No mail to the customer (the agent's own notifications may go by email).
    assert [m.to for m in mail.outbox if m.to != [agent_a.email]] == []
    assert Event.objects.filter(kind="message.replied", message=message).count() == 1


def test_an_email_customer_is_still_checked_in_by_email(
    channels, agent_a, django_capture_on_commit_callbacks
):
    result = send_email(channels["email"], sender="Ann <ann@example.com>", subject="Q")
    conversation = Conversation.objects.get(pk=result.conversation_id)
    checkin = _not_resolved(conversation, agent_a, django_capture_on_commit_callbacks)
    checkin = checkin_send(checkin=checkin, actor=agent_a, body="All good?")
    assert Message.objects.get(pk=checkin.message_id).channel_kind == "email"
