"""Scheduling and sending: the delay, cancel-on-reply, skip rules, throttle, reminder, NPS cadence.

Time is frozen with time-machine at each step; boundaries are checked one second either side.
"""

from __future__ import annotations

import re
from datetime import timedelta
from pathlib import Path

import pytest
import time_machine
from django.core import mail

from supportdesk.models import OutboxItem
from surveys.models import Survey, SurveyUnsubscribe
from surveys.services import (
    survey_schedule,
    survey_send,
    survey_settings_update,
    survey_unsubscribe,
    surveys_remind_due,
    surveys_send_due,
)
from tests.factories import send_call, send_chat, send_email
from tests.surveys.conftest import SOLVED_AT, survey_mails
from tickets.models import Conversation, Identity, Message
from tickets.services import (
    conversation_reopen,
    conversation_reply,
    conversation_solve,
    inbound_email_raw,
)

EMAILS = Path(__file__).resolve().parent.parent / "tickets" / "emails"

pytestmark = pytest.mark.django_db

SECOND = timedelta(seconds=1)


def _send_due_at(at):
    with time_machine.travel(at, tick=False):
        return surveys_send_due()


def test_a_solve_schedules_one_survey_due_after_the_delay(solve, agent_a, team_a):
    survey = solve()

    assert survey.status == Survey.Status.SCHEDULED
    assert survey.due_at == SOLVED_AT + timedelta(minutes=60)
    assert survey.solved_at == SOLVED_AT
    assert survey.agent == agent_a
    assert survey.team == team_a
    assert survey.channel_kind == "email"
    assert survey.contacts_counted == 1
    assert survey.sent_at is None
    # The handler running again (a redelivered task) changes nothing.
    assert survey_schedule(event=survey.event, now=SOLVED_AT) == survey
    assert Survey.objects.count() == 1


def test_nothing_goes_out_before_the_delay_and_exactly_one_email_at_it(solve, mailoutbox):
    survey = solve()

    assert _send_due_at(survey.due_at - SECOND) == 0
    assert survey_mails() == []
    assert _send_due_at(survey.due_at) == 1
    assert _send_due_at(survey.due_at + timedelta(minutes=5)) == 0
    with time_machine.travel(survey.due_at, tick=False):
        assert survey_send(survey_id=survey.pk) is False  # a second delivery of the task
    assert len(survey_mails()) == 1
    survey.refresh_from_db()
    assert survey.status == Survey.Status.SENT
    assert survey.sent_at == survey.due_at
    assert survey.expires_at == survey.due_at + timedelta(days=7)
    assert survey.email == "jane@example.com"


def test_the_email_is_neutral_has_both_parts_one_link_per_answer_and_unsubscribe(sent, mailoutbox):
    survey = sent()

    (email,) = survey_mails()
    assert email.to == ["jane@example.com"]
    assert email.extra_headers["Auto-Submitted"] == "auto-generated"
    assert email.extra_headers["List-Unsubscribe"].startswith("<http://")
    assert email.extra_headers["List-Unsubscribe"].endswith("/unsubscribe/>")
    assert email.extra_headers["List-Unsubscribe-Post"] == "List-Unsubscribe=One-Click"
    html, mimetype = email.alternatives[0]
    assert mimetype == "text/html"
    for part in (email.body, html):
        for answer in ("yes", "partly", "no"):
            assert part.count(f"/?resolved={answer}") == 1
        assert "/unsubscribe/" in part
        # Neutral wording: no score is mentioned, let alone asked for.
        words = re.sub(r"<[^>]*>|https?://\S+", " ", part).lower()
        assert not re.search(r"\b(10|[0-9] ?stars?|five|rate us|score|excellent)\b", words)
    assert "Alice marked your request" in email.body
    assert survey.message_id
    assert email.extra_headers["Message-ID"] == f"<{survey.message_id}>"


def test_a_reply_from_the_customer_before_the_send_cancels_it(
    solve, channels, mailoutbox, django_capture_on_commit_callbacks
):
    survey = solve()
    inbound = survey.conversation.messages.get()

    with (
        time_machine.travel(survey.due_at - timedelta(minutes=10), tick=False),
        django_capture_on_commit_callbacks(execute=True),
    ):
        send_email(
            channels["email"],
            subject="Re: My order has not arrived",
            body="Actually it is still missing.",
            in_reply_to=f"<{inbound.message_id}>",
        )

    survey.refresh_from_db()
    assert survey.status == Survey.Status.CANCELLED
    assert _send_due_at(survey.due_at + timedelta(hours=1)) == 0
    assert survey_mails() == []


def test_an_auto_reply_before_the_send_does_not_cancel(
    solve, channels, mailoutbox, django_capture_on_commit_callbacks
):
    survey = solve()
    inbound = survey.conversation.messages.get()

    with (
        time_machine.travel(survey.due_at - timedelta(minutes=10), tick=False),
        django_capture_on_commit_callbacks(execute=True) as callbacks,
    ):
        send_email(
            channels["email"],
            subject="Out of office",
            body="I am away until Monday.",
            in_reply_to=f"<{inbound.message_id}>",
            extra_headers={"Auto-Submitted": "auto-replied"},
        )

    # the surveys reaction to message.inbound did run
    assert any(
        item.task_name == "surveys.tasks.survey_cancel_for_inbound_task"
        for item in OutboxItem.objects.filter(relayed_at__isnull=False)
    ), callbacks
    survey.refresh_from_db()
    assert survey.status == Survey.Status.SCHEDULED
    assert _send_due_at(survey.due_at) == 1


def test_an_agent_reopen_before_the_send_skips_it(solve, agent_a, mailoutbox):
    survey = solve()
    conversation_reopen(
        conversation=survey.conversation, actor=agent_a, at=survey.due_at - timedelta(minutes=1)
    )

    assert _send_due_at(survey.due_at) == 0
    survey.refresh_from_db()
    assert (survey.status, survey.skip_reason) == ("skipped", "reopened")


@pytest.mark.parametrize(
    ("gap", "expected"),
    [
        (timedelta(days=7) - SECOND, ("skipped", "throttled")),
        (timedelta(days=7), ("sent", "")),
    ],
)
def test_throttle_holds_at_its_boundary(sent, solve, mailoutbox, gap, expected):
    first = sent()
    # The same customer (same address) writes about something else and is solved later.
    second = solve(at=first.sent_at + gap - timedelta(hours=1), subject="Another question")

    assert second.customer_id == first.customer_id
    assert second.due_at == first.sent_at + gap
    _send_due_at(second.due_at)
    second.refresh_from_db()
    assert (second.status, second.skip_reason) == expected
    assert len(survey_mails()) == (2 if expected[0] == "sent" else 1)


def test_the_admin_can_change_the_delay_throttle_and_channels(solve, sent, mailoutbox):
    survey_settings_update(delay_minutes=5, min_days_between=1, channels=["email", "chat"])
    first = sent()
    assert first.due_at == SOLVED_AT + timedelta(minutes=5)
    second = solve(at=first.sent_at + timedelta(days=1) - timedelta(minutes=5), subject="Other")
    _send_due_at(second.due_at)
    second.refresh_from_db()
    assert second.status == Survey.Status.SENT

    survey_settings_update(channels=["chat"])
    third = solve(at=SOLVED_AT + timedelta(days=30), subject="Third")
    assert (third.status, third.skip_reason) == ("skipped", "channel")


def test_sampling_rate_zero_surveys_nobody(solve):
    survey_settings_update(sampling_rate=0.0)
    survey = solve()
    assert (survey.status, survey.skip_reason) == ("skipped", "sampled_out")


def test_unsubscribed_customer_is_skipped(sent, solve, mailoutbox):
    first = sent()
    survey_unsubscribe(survey=first)
    assert SurveyUnsubscribe.objects.get().email == "jane@example.com"

    second = solve(at=SOLVED_AT + timedelta(days=30), subject="Another")
    _send_due_at(second.due_at)
    second.refresh_from_db()
    assert (second.status, second.skip_reason) == ("skipped", "unsubscribed")


def test_bounced_address_is_skipped(solve, mailoutbox):
    survey = solve()
    Identity.objects.filter(value="jane@example.com").update(undeliverable_at=SOLVED_AT)
    _send_due_at(survey.due_at)
    survey.refresh_from_db()
    assert (survey.status, survey.skip_reason) == ("skipped", "bounced")
    assert survey_mails() == []


def test_a_bounce_after_the_send_marks_the_survey_bounced(
    sent, channels, mailoutbox, django_capture_on_commit_callbacks
):
    survey = sent()
    dsn = (
        (EMAILS / "dsn_bounce_postfix.eml")
        .read_bytes()
        .replace(b"j.doe@customer.example", b"jane@example.com")
        # A DSN counts only when it names the message we sent (tests/tickets/test_mail_integrity).
        .replace(b"ticket-1422.ack@desk.example", survey.message_id.encode())
    )
    with (
        time_machine.travel(survey.sent_at + timedelta(minutes=2), tick=False),
        django_capture_on_commit_callbacks(execute=True),
    ):
        inbound_email_raw(channel=channels["email"], raw=dsn)

    assert Identity.objects.get(value="jane@example.com").undeliverable_at is not None
    survey.refresh_from_db()
    assert survey.status == Survey.Status.BOUNCED
    assert survey.bounced_at == survey.sent_at + timedelta(minutes=2)


def test_a_customer_with_neither_email_nor_a_message_channel_gets_none_and_it_is_counted(
    channels, agent_a, mailoutbox, django_capture_on_commit_callbacks
):
    # A phone-only customer: no email, no chat or social channel to send the link on (a chat
    # or social customer is surveyed there: tests/surveys/test_every_channel.py).
    with time_machine.travel(SOLVED_AT - timedelta(hours=1), tick=False):
        result = send_call(channels["phone"])
    conversation = Conversation.objects.get(pk=result.conversation_id)
    with (
        time_machine.travel(SOLVED_AT, tick=False),
        django_capture_on_commit_callbacks(execute=True),
    ):
        event = conversation_solve(conversation=conversation, actor=agent_a, at=SOLVED_AT)
    survey = Survey.objects.get(event=event)
    _send_due_at(survey.due_at)
    survey.refresh_from_db()
    assert (survey.status, survey.skip_reason) == ("skipped", "no_email")
    assert Survey.objects.filter(skip_reason="no_email").count() == 1
    assert survey_mails() == []


def test_a_chat_customer_with_an_email_identity_is_surveyed_by_email(
    channels, agent_a, mailoutbox, django_capture_on_commit_callbacks
):
    with time_machine.travel(SOLVED_AT - timedelta(hours=1), tick=False):
        result = send_chat(channels["chat"], email="sam@example.org", name="Sam")
    conversation = Conversation.objects.get(pk=result.conversation_id)
    with (
        time_machine.travel(SOLVED_AT, tick=False),
        django_capture_on_commit_callbacks(execute=True),
    ):
        event = conversation_solve(conversation=conversation, actor=agent_a, at=SOLVED_AT)
    survey = Survey.objects.get(event=event)
    assert survey.channel_kind == "chat"
    assert _send_due_at(survey.due_at) == 1
    assert survey_mails()[0].to == ["sam@example.org"]


def test_last_contact_an_auto_reply_skips_the_survey(solve, channels, agent_a, mailoutbox):
    with time_machine.travel(SOLVED_AT - timedelta(hours=2), tick=False):
        result = send_email(channels["email"], subject="Invoice copy")
    conversation = Conversation.objects.get(pk=result.conversation_id)
    with time_machine.travel(SOLVED_AT - timedelta(minutes=90), tick=False):
        reply = conversation_reply(conversation=conversation, author=agent_a, body="Attached.")
    Message.objects.filter(pk=reply.pk).update(message_id="agent-reply@desk.example")
    with time_machine.travel(SOLVED_AT - timedelta(minutes=80), tick=False):
        send_email(
            channels["email"],
            subject="Automatic reply: Invoice copy",
            body="I am out of the office.",
            in_reply_to="<agent-reply@desk.example>",
            extra_headers={"Auto-Submitted": "auto-replied"},
        )
    assert conversation.messages.filter(automated="auto_reply").count() == 1
    survey = solve(conversation=conversation)

    _send_due_at(survey.due_at)
    survey.refresh_from_db()
    assert (survey.status, survey.skip_reason) == ("skipped", "auto_reply")


def test_solve_events_older_than_the_window_get_no_survey(channels, agent_a):
    with time_machine.travel(SOLVED_AT - timedelta(hours=1), tick=False):
        result = send_email(channels["email"])
    conversation = Conversation.objects.get(pk=result.conversation_id)
    with time_machine.travel(SOLVED_AT, tick=False):
        event = conversation_solve(conversation=conversation, actor=agent_a, at=SOLVED_AT)
    assert survey_schedule(event=event, now=SOLVED_AT + timedelta(days=7)) is None
    assert survey_schedule(event=event, now=SOLVED_AT + timedelta(days=7) - SECOND) is not None


def test_one_reminder_after_the_reminder_days_if_unanswered(sent, mailoutbox):
    survey = sent()
    due = survey.sent_at + timedelta(days=3)

    with time_machine.travel(due - SECOND, tick=False):
        assert surveys_remind_due() == 0
    with time_machine.travel(due, tick=False):
        assert surveys_remind_due() == 1
    with time_machine.travel(due + timedelta(days=1), tick=False):
        assert surveys_remind_due() == 0
    mails = survey_mails()
    assert len(mails) == 2
    assert mails[1].subject.startswith("Reminder: ")
    assert "/?resolved=yes" in mails[1].body
    survey.refresh_from_db()
    assert survey.reminded_at == due


def test_an_answered_survey_gets_no_reminder(sent, mailoutbox):
    from surveys.services import Answer, survey_answer

    survey = sent()
    with time_machine.travel(survey.sent_at + timedelta(hours=1), tick=False):
        survey_answer(survey=survey, answer=Answer(resolved="yes"))
    with time_machine.travel(survey.sent_at + timedelta(days=3), tick=False):
        assert surveys_remind_due() == 0


@pytest.mark.parametrize(
    ("gap", "asks_again"), [(timedelta(days=90) - SECOND, False), (timedelta(days=90), True)]
)
def test_nps_is_asked_at_most_once_every_90_days(sent, gap, asks_again, mailoutbox):
    first = sent()
    assert first.asks_nps is True
    second = sent(at=first.sent_at + gap - timedelta(hours=1), subject="Something else")
    assert second.sent_at == first.sent_at + gap
    assert second.asks_nps is asks_again


def test_mail_is_counted_once_per_survey_even_if_beat_overlaps(solve, mailoutbox):
    survey = solve()
    with time_machine.travel(survey.due_at, tick=False):
        assert surveys_send_due() == 1
        assert surveys_send_due() == 0
    assert len(mail.outbox) == 1


def test_beat_runs_the_survey_tasks_and_every_subscriber_task_is_registered():
    from datetime import timedelta as td

    from supportdesk import events
    from supportdesk.celery import app as celery_app

    celery_app.loader.import_default_modules()
    schedule = celery_app.conf.beat_schedule
    assert schedule["send-due-surveys"]["task"] == "surveys.tasks.surveys_send_due_task"
    assert schedule["send-due-surveys"]["schedule"] <= td(minutes=1)
    assert schedule["send-survey-reminders"]["task"] == "surveys.tasks.surveys_remind_due_task"
    names = {
        *events.subscribers_for("conversation.solved"),
        *events.subscribers_for("message.inbound"),
        *events.subscribers_for("identity.undeliverable"),
        *events.subscribers_for("customer.merged"),
        *events.subscribers_for("customer.merge_undone"),
        schedule["send-due-surveys"]["task"],
        schedule["send-survey-reminders"]["task"],
    }
    surveys_tasks = {name for name in names if name.startswith("surveys.")}
    assert len(surveys_tasks) == 6  # one task handles both merge events
    assert surveys_tasks <= set(celery_app.tasks)
