"""Property: the contact count at ingestion equals a full recount from the stored history.

``tickets.services.contacts.contact_reason`` decides both live (one message at a time, against the live status) and in
``conversation_recount_contacts`` (replaying messages against the event log after a move). If
the two ever disagreed, moving a message back and forth would change a conversation's count.
"""

from __future__ import annotations

import itertools
from datetime import timedelta

import pytest
import time_machine
from django.utils import timezone
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tests.factories import email_bytes, send_call, send_chat, send_social
from tickets import tokens
from tickets.models import Contact, Conversation
from tickets.services import (
    conversation_recount_contacts,
    conversation_reply,
    conversation_set_pending,
    conversation_solve,
    identity_link,
    inbound_email_raw,
)

_run = itertools.count()

step = st.one_of(
    st.tuples(st.just("email"), st.integers(1, 600)),
    st.tuples(st.just("chat"), st.integers(1, 600), st.sampled_from(["s1", "s2", "s3"])),
    st.tuples(st.just("social"), st.integers(1, 600)),
    st.tuples(st.just("call"), st.integers(1, 600), st.sampled_from([0, 90])),
    st.tuples(st.just("reply"), st.integers(1, 600)),
    st.tuples(st.just("solve"), st.integers(1, 600)),
    st.tuples(st.just("pending"), st.integers(1, 600)),
)


@pytest.mark.django_db
@settings(
    max_examples=40,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(steps=st.lists(step, min_size=1, max_size=12))
def test_live_count_equals_recount(channels, agent_a, steps):
    run = next(_run)
    start = timezone.now() - timedelta(days=3)
    at = start
    email = f"person{run}@example.com"
    phone = f"+1415555{run % 10000:04d}"

    # The first message creates the conversation; everything else must land in it.
    first = inbound_email_raw(
        channel=channels["email"],
        raw=email_bytes(sender=email, subject=f"run {run}"),
        received_at=at,
    )
    conversation = Conversation.objects.get(pk=first.conversation_id)
    identity_link(customer=conversation.customer, kind="phone", value=phone, actor=agent_a)
    chat_sessions_used: set[str] = set()

    for kind, gap, *extra in steps:
        at = at + timedelta(minutes=gap)
        conversation.refresh_from_db()
        active = conversation.status in Conversation.ACTIVE_STATUSES
        if kind == "email":
            raw = email_bytes(sender=email, to=tokens.reply_address(conversation.pk))
            inbound_email_raw(channel=channels["email"], raw=raw, received_at=at)
        elif kind == "chat":
            session = f"{run}-{extra[0]}"
            if session not in chat_sessions_used and not active:
                continue  # a new session would open another conversation (attach rule)
            chat_sessions_used.add(session)
            send_chat(
                channels["chat"], session_id=session, visitor_id=f"v{run}", email=email, sent_at=at
            )
        elif kind == "social":
            send_social(channels["social"], handle=f"h{run}", thread_id=f"t{run}", sent_at=at)
        elif kind == "call":
            if not active:
                continue
            send_call(channels["phone"], from_number=phone, talk_seconds=extra[0], started_at=at)
        elif kind == "reply":
            conversation_reply(
                conversation=conversation, author=agent_a, body="ok", internal=False, at=at
            )
        elif kind == "solve" and active:
            conversation_solve(conversation=conversation, actor=agent_a, at=at)
        elif kind == "pending" and conversation.status in ("new", "open"):
            # set_pending stamps "now"; keep the history ordered by freezing the clock at ``at``.
            with time_machine.travel(at, tick=False):
                conversation_set_pending(conversation=conversation, actor=agent_a)

    conversation.refresh_from_db()
    live = conversation.contacts_counted
    live_reasons = list(
        Contact.objects.filter(conversation=conversation).values_list("reason", flat=True)
    )
    assert Conversation.objects.filter(customer=conversation.customer).count() == 1

    recounted = conversation_recount_contacts(conversation=conversation)

    assert recounted == live
    assert (
        list(Contact.objects.filter(conversation=conversation).values_list("reason", flat=True))
        == live_reasons
    )
