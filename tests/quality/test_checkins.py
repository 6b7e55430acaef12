"""Check-in rules create tasks; a check-in is a real outbound message, tracked."""

from datetime import UTC, datetime, timedelta

import pytest
from django.core import mail

from quality.models import CheckIn, CheckInRule
from quality.services import (
    cancellation_reasons_ensure_default,
    cancellation_record,
    checkin_dismiss,
    checkin_send,
    checkins_create_due,
)
from quality.tasks import checkins_create_due_task
from supportdesk.errors import ApplicationError, Conflict
from tests.factories import send_chat, send_email
from tests.quality.conftest import answer_survey, solve_one
from tickets.models import Conversation, Message
from tickets.services import conversation_solve

pytestmark = pytest.mark.django_db

SOLVED_AT = datetime(2026, 11, 3, 10, 0, tzinfo=UTC)
ANSWERED_AT = SOLVED_AT + timedelta(hours=5)


def test_not_or_partly_resolved_creates_a_checkin_n_days_after_the_answer(channels, agent_a):
    no = solve_one(channels, agent_a, at=SOLVED_AT)
    partly = solve_one(channels, agent_a, at=SOLVED_AT)
    yes = solve_one(channels, agent_a, at=SOLVED_AT)
    for conversation, answer in ((no, "no"), (partly, "partly"), (yes, "yes")):
        answer_survey(conversation, answer, answered_at=ANSWERED_AT)

    assert checkins_create_due(now=ANSWERED_AT + timedelta(days=2, hours=23)) == 0
    assert checkins_create_due(now=ANSWERED_AT + timedelta(days=3)) == 2
    assert checkins_create_due(now=ANSWERED_AT + timedelta(days=4)) == 0  # once per cause

    rows = list(
        CheckIn.objects.order_by("conversation_id").values_list(
            "conversation_id", "trigger", "agent_id", "due_at", "state"
        )
    )
    due = ANSWERED_AT + timedelta(days=3)
    assert rows == [
        (no.pk, "not_resolved", agent_a.pk, due, "due"),
        (partly.pk, "not_resolved", agent_a.pk, due, "due"),
    ]
    assert agent_a.notifications.filter(kind="checkin.due").count() == 2


def test_high_effort_conversations_get_a_checkin(channels, agent_a):
    # Given a customer who wrote by email, then chat, then email again: 3 contacts
    first = send_email(
        channels["email"], sender="Jo <jo@example.com>", message_id="<jo1@example.com>"
    )
    send_chat(channels["chat"], email="jo@example.com", visitor_id="v-jo", session_id="s-jo")
    send_email(
        channels["email"],
        sender="Jo <jo@example.com>",
        subject="Re: My order has not arrived",
        in_reply_to="<jo1@example.com>",
    )
    conversation = Conversation.objects.get(pk=first.conversation_id)
    assert conversation.contacts_counted == 3
    conversation_solve(conversation=conversation, actor=agent_a, at=SOLVED_AT)
    easy = solve_one(channels, agent_a, at=SOLVED_AT)

    created = checkins_create_due(now=SOLVED_AT + timedelta(days=7, minutes=1))

    assert created == 1
    assert list(CheckIn.objects.values_list("conversation_id", "trigger")) == [
        (conversation.pk, "high_effort")
    ]
    assert easy.pk != conversation.pk


def test_saved_cancellations_get_a_checkin(channels, agent_a, time_machine):
    cancellation_reasons_ensure_default()
    from quality.models import CancellationReason

    conversation = Conversation.objects.get(pk=send_email(channels["email"]).conversation_id)
    time_machine.move_to(SOLVED_AT, tick=False)
    cancellation_record(
        conversation=conversation,
        actor=agent_a,
        reason=CancellationReason.objects.first(),
        outcome="saved",
    )

    assert checkins_create_due(now=SOLVED_AT + timedelta(days=13)) == 0
    assert checkins_create_due(now=SOLVED_AT + timedelta(days=14)) == 1
    assert CheckIn.objects.get().trigger == "saved"


def test_inactive_rules_create_nothing(channels, agent_a):
    no = solve_one(channels, agent_a, at=SOLVED_AT)
    answer_survey(no, "no", answered_at=SOLVED_AT)
    checkins_create_due(now=SOLVED_AT)  # creates the default rules
    CheckInRule.objects.filter(trigger="not_resolved").update(is_active=False)

    assert checkins_create_due(now=SOLVED_AT + timedelta(days=3)) == 0


def test_sending_a_checkin_is_a_real_reply_without_survey(
    channels, agent_a, django_capture_on_commit_callbacks
):
    no = solve_one(channels, agent_a, at=SOLVED_AT, sender="Ann <ann@example.com>")
    answer_survey(no, "no", answered_at=SOLVED_AT)
    checkins_create_due(now=SOLVED_AT + timedelta(days=3))
    checkin = CheckIn.objects.get()

    with django_capture_on_commit_callbacks(execute=True):
        checkin = checkin_send(checkin=checkin, actor=agent_a, body="How is it going, Ann?")

    assert checkin.state == "sent"
    message = Message.objects.get(pk=checkin.message_id)
    assert (message.direction, message.body_text, message.delivery_state) == (
        "outbound",
        "How is it going, Ann?",
        "sent",
    )
    assert [m.to for m in mail.outbox] == [["ann@example.com"]]
    assert "survey" not in mail.outbox[0].body.lower()
    with pytest.raises(Conflict):
        checkin_send(checkin=checkin, actor=agent_a, body="again")
    assert Message.objects.filter(direction="outbound").count() == 1


def test_another_agent_cannot_send_or_dismiss(channels, agent_a, agent_b):
    no = solve_one(channels, agent_a, at=SOLVED_AT)
    answer_survey(no, "no", answered_at=SOLVED_AT)
    checkins_create_due(now=SOLVED_AT + timedelta(days=3))
    checkin = CheckIn.objects.get()

    with pytest.raises(ApplicationError):
        checkin_send(checkin=checkin, actor=agent_b, body="hi")
    with pytest.raises(ApplicationError):
        checkin_dismiss(checkin=checkin, actor=agent_b)

    checkin.refresh_from_db()
    assert (checkin.state, checkin.message_id) == ("due", None)
    checkin_dismiss(checkin=checkin, actor=agent_a)
    checkin.refresh_from_db()
    assert checkin.state == "dismissed"


def test_the_daily_task_is_idempotent(channels, agent_a, time_machine):
    no = solve_one(channels, agent_a, at=SOLVED_AT)
    answer_survey(no, "partly", answered_at=SOLVED_AT)
    time_machine.move_to(SOLVED_AT + timedelta(days=5), tick=False)

    assert checkins_create_due_task() == 1
    assert checkins_create_due_task() == 0
    assert CheckIn.objects.count() == 1


def test_a_checkin_of_a_conversation_moved_to_another_team_is_neither_listed_nor_sent(
    channels, agent_a, team_b
):
    from quality.selectors import checkin_list_for_user

    # given: Alice's check-in is due, then the conversation moved to Team B
    no = solve_one(channels, agent_a, at=SOLVED_AT)
    answer_survey(no, "no", answered_at=SOLVED_AT)
    checkins_create_due(now=SOLVED_AT + timedelta(days=3))
    checkin = CheckIn.objects.get()
    assert list(checkin_list_for_user(user=agent_a)) == [checkin]
    Conversation.objects.filter(pk=no.pk).update(team=team_b)
    outbound = Message.objects.filter(direction="outbound").count()

    # when / then: not in her list, and no customer-facing reply goes out through it
    assert list(checkin_list_for_user(user=agent_a)) == []
    with pytest.raises(ApplicationError, match="moved to another team"):
        checkin_send(checkin=checkin, actor=agent_a, body="How is it going?")
    checkin.refresh_from_db()
    assert (checkin.state, checkin.message_id) == ("due", None)
    assert Message.objects.filter(direction="outbound").count() == outbound
