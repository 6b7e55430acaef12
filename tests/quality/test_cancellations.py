"""Cancellation reasons: a managed list, one record per conversation, a report by reason and channel."""

from datetime import UTC, date, datetime

import pytest
import time_machine

from quality.models import Cancellation, CancellationReason
from quality.selectors import cancellation_report
from quality.services import (
    cancellation_reason_save,
    cancellation_reasons_ensure_default,
    cancellation_record,
)
from supportdesk.errors import ApplicationError, Conflict
from tests.factories import send_chat, send_email
from tickets.models import Conversation

pytestmark = pytest.mark.django_db


@pytest.fixture
def reasons(db):
    cancellation_reasons_ensure_default()
    return {r.name: r for r in CancellationReason.objects.all()}


def _conv(result):
    return Conversation.objects.get(pk=result.conversation_id)


def test_record_and_update_the_outcome(channels, agent_a, reasons):
    conversation = _conv(send_email(channels["email"]))

    record = cancellation_record(
        conversation=conversation,
        actor=agent_a,
        reason=reasons["Too expensive"],
        note="Price up 20%",
    )
    assert (record.outcome, record.outcome_at, record.channel_kind) == ("pending", None, "email")

    with time_machine.travel(datetime(2026, 11, 5, 12, 0, tzinfo=UTC), tick=False):
        record = cancellation_record(
            conversation=conversation,
            actor=agent_a,
            reason=reasons["Too expensive"],
            outcome="saved",
        )

    assert Cancellation.objects.count() == 1
    assert (record.outcome, record.outcome_at, record.outcome_by) == (
        "saved",
        datetime(2026, 11, 5, 12, 0, tzinfo=UTC),
        agent_a,
    )


def test_bad_outcome_or_retired_reason_is_refused(channels, agent_a, manager_a, reasons):
    conversation = _conv(send_email(channels["email"]))
    retired = cancellation_reason_save(
        actor=manager_a, pk=reasons["Other"].pk, name="Other", is_active=False
    )

    with pytest.raises(ApplicationError):
        cancellation_record(conversation=conversation, actor=agent_a, reason=retired)
    with pytest.raises(ApplicationError):
        cancellation_record(
            conversation=conversation,
            actor=agent_a,
            reason=reasons["Too expensive"],
            outcome="maybe",
        )

    assert Cancellation.objects.count() == 0


def test_only_managers_edit_the_list(agent_a, manager_a, reasons):
    with pytest.raises(ApplicationError):
        cancellation_reason_save(actor=agent_a, name="Moved abroad")
    with pytest.raises(Conflict):
        cancellation_reason_save(actor=manager_a, name="Too expensive")

    cancellation_reason_save(actor=manager_a, name="Moved abroad", position=9)

    assert CancellationReason.objects.count() == len(reasons) + 1


def test_report_by_reason_channel_and_month(channels, agent_a, reasons, django_assert_num_queries):
    with time_machine.travel(datetime(2026, 10, 10, 9, 0, tzinfo=UTC), tick=False):
        a = _conv(send_email(channels["email"], sender="a@example.com"))
        cancellation_record(
            conversation=a, actor=agent_a, reason=reasons["Too expensive"], outcome="saved"
        )
    with time_machine.travel(datetime(2026, 11, 3, 9, 0, tzinfo=UTC), tick=False):
        b = _conv(send_chat(channels["chat"], visitor_id="v-b", session_id="s-b"))
        cancellation_record(
            conversation=b, actor=agent_a, reason=reasons["Too expensive"], outcome="cancelled"
        )
        c = _conv(send_email(channels["email"], sender="c@example.com"))
        cancellation_record(conversation=c, actor=agent_a, reason=reasons["Missing a feature"])

    with django_assert_num_queries(1):
        report = cancellation_report(start=date(2026, 10, 1), end=date(2026, 12, 1))

    assert report["channels"] == ["chat", "email"]
    assert report["by_reason"] == [
        {
            "reason": "Too expensive",
            "email": 1,
            "chat": 1,
            "total": 2,
            "saved": 1,
            "cancelled": 1,
            "cells": [1, 1],
        },
        {
            "reason": "Missing a feature",
            "email": 1,
            "total": 1,
            "saved": 0,
            "cancelled": 0,
            "cells": [0, 1],
        },
    ]
    assert [
        (r["period"].date(), r["reason__name"], r["channel_kind"], r["total"])
        for r in report["rows"]
    ] == [
        (date(2026, 10, 1), "Too expensive", "email", 1),
        (date(2026, 11, 1), "Missing a feature", "email", 1),
        (date(2026, 11, 1), "Too expensive", "chat", 1),
    ]


def test_a_note_over_the_cap_is_a_400_and_nothing_is_stored(channels, agent_a, reasons):
    from django.test import Client

    conversation = _conv(send_email(channels["email"]))
    client = Client()
    client.force_login(agent_a)
    reason = reasons["Too expensive"]

    too_long = client.post(
        f"/conversations/{conversation.pk}/cancellation/",
        {"reason": reason.pk, "outcome": "pending", "note": "x" * 5001},
    )
    with pytest.raises(ApplicationError, match=r"The note is too long: at most 5,000 characters\."):
        cancellation_record(
            conversation=conversation, actor=agent_a, reason=reason, note="y" * 5001
        )

    assert too_long.status_code == 400
    assert "The note is too long: at most 5,000 characters." in too_long.content.decode()
    assert Cancellation.objects.count() == 0
    cancellation_record(conversation=conversation, actor=agent_a, reason=reason, note="z" * 5000)
    assert Cancellation.objects.get().note == "z" * 5000
