"""Helpers for the quality tests: solved conversations set up through the tickets services."""

from __future__ import annotations

import itertools
from datetime import UTC, date, datetime, timedelta

import pytest

from tests.factories import make_staff, send_call, send_chat, send_email
from tickets.models import Conversation
from tickets.services import conversation_solve

WEEK = date(2026, 11, 2)  # a Monday
_n = itertools.count(1)


def solve_one(
    channels, agent, *, kind: str = "email", at: datetime | None = None, sender: str | None = None
):
    """A new conversation on ``kind`` from a new customer, solved by ``agent`` at ``at``."""
    n = next(_n)
    at = at or datetime(2026, 11, 3, 10, 0, tzinfo=UTC)
    if kind == "email":
        result = send_email(
            channels["email"],
            sender=sender or f"Customer {n} <c{n}@example.com>",
            subject=f"Question {n}",
            body=f"Hello, question number {n}.",
        )
    elif kind == "chat":
        result = send_chat(
            channels["chat"], session_id=f"s-{n}", visitor_id=f"v-{n}", body=f"chat {n}"
        )
    else:
        result = send_call(channels["phone"], from_number=f"+1 415 555 {n % 10000:04d}")
    conversation = Conversation.objects.get(pk=result.conversation_id)
    conversation_solve(conversation=conversation, actor=agent, at=at)
    return conversation


@pytest.fixture
def peer_a(team_a):
    return make_staff("pia@desk.example", role="agent", teams=["Team A"], full_name="Pia Peer")


@pytest.fixture
def week_solves(channels, agent_a, peer_a, manager_a):
    """Agent A solves 6 email + 3 chat conversations in WEEK; Pia solves 2 emails."""
    base = datetime(2026, 11, 3, 9, 0, tzinfo=UTC)
    convs = {"alice_email": [], "alice_chat": [], "pia": []}
    for i in range(6):
        convs["alice_email"].append(
            solve_one(channels, agent_a, kind="email", at=base + timedelta(hours=i))
        )
    for i in range(3):
        convs["alice_chat"].append(
            solve_one(channels, agent_a, kind="chat", at=base + timedelta(hours=10 + i))
        )
    for i in range(2):
        convs["pia"].append(
            solve_one(channels, peer_a, kind="email", at=base + timedelta(days=1, hours=i))
        )
    return convs


def full_marks(review) -> dict[int, int]:
    return {c.pk: c.bounds[1] for c in review.rubric.criteria.all()}


def marks(review, **by_position) -> dict[int, int | None]:
    """Values by criterion position: marks(review, c0=1, c1=None, ...); others get full marks."""
    values = full_marks(review)
    for c in review.rubric.criteria.all():
        key = f"c{c.position}"
        if key in by_position:
            values[c.pk] = by_position[key]
    return values


def answer_survey(conversation, resolved: str, *, answered_at: datetime):
    """The customer answers the resolution survey of the conversation's latest solve."""
    from surveys.services import Answer, survey_record_past
    from tickets.models import Event, Identity
    from tickets.services import identity_link

    customer = conversation.customer
    if not Identity.objects.filter(customer=customer, kind="email").exists():
        # a chat customer: surveys go by email, so they gave their address
        identity_link(
            customer=customer, kind="email", value=f"c{customer.pk}@example.org", actor=None
        )

    event = Event.objects.filter(kind="conversation.solved", conversation=conversation).latest(
        "occurred_at"
    )
    return survey_record_past(
        event=event,
        sent_at=event.occurred_at + timedelta(hours=1),
        answer=Answer(resolved=resolved),
        answered_at=answered_at,
    )
