"""A small desk built by hand, whose every metric is worked out on paper in test_hand_desk.py.

All times are UTC (the desk's TIME_ZONE), in the week of Monday 2026-11-02. Built through the
services, like production; time is frozen after the last event so nothing is clamped.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime

from supportdesk.models import User
from tests.factories import email_bytes, send_call, send_chat, send_social
from tickets.models import Channel, Conversation, Event
from tickets.services import (
    conversation_reopen,
    conversation_reply,
    conversation_solve,
    identity_link,
    inbound_email_raw,
)

WEEK_FROM = "2026-11-02"
WEEK_TO = "2026-11-09"
NOW = datetime(2026, 11, 20, 12, 0, tzinfo=UTC)


def at(day: int, hour: int, minute: int = 0) -> datetime:
    return datetime(2026, 11, day, hour, minute, tzinfo=UTC)


@dataclass
class Desk:
    alice: User
    bob: User
    conversations: dict[str, Conversation]
    solves: dict[str, Event]


def _email(channel: Channel, *, sender: str, subject: str, body: str, when: datetime) -> int:
    result = inbound_email_raw(
        channel=channel,
        raw=email_bytes(sender=sender, subject=subject, body=body),
        received_at=when,
    )
    return result.conversation_id


def build_desk(*, channels: dict[str, Channel], channels_b: dict[str, Channel]) -> Desk:
    alice = User.objects.get(email="alice@desk.example")
    bob = User.objects.get(email="bob@desk.example")
    conv: dict[str, Conversation] = {}
    solves: dict[str, Event] = {}

    def c(pk: int) -> Conversation:
        return Conversation.objects.get(pk=pk)

    # C1, email, Team A. Jane writes Mon 09:00; Alice answers 09:30 (and asks for a score);
    # Alice solves 10:00. 1 contact, 2 public messages.
    conv["c1"] = c(
        _email(
            channels["email"],
            sender="Jane Doe <jane@example.com>",
            subject="Parcel late",
            body="My parcel is late.",
            when=at(2, 9),
        )
    )
    conversation_reply(
        conversation=conv["c1"],
        author=alice,
        body="It arrives tomorrow. Glad I could help, please rate us 10 in the survey!",
        at=at(2, 9, 30),
        deliver=False,
    )
    solves["s1"] = conversation_solve(conversation=conv["c1"], actor=alice, at=at(2, 10))

    # C2, chat, Team A. One session: visitor 11:00, Alice 11:02, visitor 11:05, Alice 11:10;
    # solved 11:15. 1 contact, 4 public messages, session length 600 s.
    conv["c2"] = c(
        send_chat(
            channels["chat"],
            session_id="s-2",
            visitor_id="v-2",
            email="vic@example.com",
            body="Hi",
            sent_at=at(2, 11),
        ).conversation_id
    )
    conversation_reply(conversation=conv["c2"], author=alice, body="Hello!", at=at(2, 11, 2))
    send_chat(
        channels["chat"], session_id="s-2", visitor_id="v-2", body="Where?", sent_at=at(2, 11, 5)
    )
    conversation_reply(conversation=conv["c2"], author=alice, body="Here.", at=at(2, 11, 10))
    solves["s2"] = conversation_solve(conversation=conv["c2"], actor=alice, at=at(2, 11, 15))

    # C3, email then phone, Team A. Sam emails Tue 09:00, nobody writes back; Sam calls 15:00
    # (talk 300 s, Alice); Alice solves 15:10 (2 contacts). Alice reopens Thu 10:00, emails
    # 10:30, solves again 11:00 (still 2 contacts).
    conv["c3"] = c(
        _email(
            channels["email"],
            sender="Sam Smith <sam@example.com>",
            subject="Refund",
            body="Where is my refund?",
            when=at(3, 9),
        )
    )
    identity_link(customer=conv["c3"].customer, kind="phone", value="+1 415 555 0111", actor=alice)
    send_call(
        channels["phone"],
        from_number="+1 415 555 0111",
        talk_seconds=300,
        ended_by="agent",
        started_at=at(3, 15),
        agent_email="alice@desk.example",
    )
    solves["s3a"] = conversation_solve(conversation=c(conv["c3"].pk), actor=alice, at=at(3, 15, 10))
    conversation_reopen(conversation=c(conv["c3"].pk), actor=alice, at=at(5, 10))
    conversation_reply(
        conversation=c(conv["c3"].pk),
        author=alice,
        body="Here is the refund confirmation.",
        channel_kind="email",
        at=at(5, 10, 30),
        deliver=False,
    )
    solves["s3b"] = conversation_solve(conversation=c(conv["c3"].pk), actor=alice, at=at(5, 11))

    # C4, social, Team A. Pat posts Wed 08:00; Alice solves 09:00 without answering (dropped).
    conv["c4"] = c(
        send_social(
            channels["social"], handle="@pat", body="Broken", sent_at=at(4, 8)
        ).conversation_id
    )
    identity_link(customer=conv["c4"].customer, kind="email", value="pat@example.com", actor=alice)
    solves["s4"] = conversation_solve(conversation=conv["c4"], actor=alice, at=at(4, 9))

    # C5, social, Team A. Pat comes back Fri 08:00 (a new conversation: repeat contact for S4);
    # Alice answers 08:20 and solves 09:00.
    conv["c5"] = c(
        send_social(
            channels["social"], handle="@pat", body="Still broken", sent_at=at(6, 8)
        ).conversation_id
    )
    conversation_reply(conversation=conv["c5"], author=alice, body="Fixed now.", at=at(6, 8, 20))
    solves["s5"] = conversation_solve(conversation=conv["c5"], actor=alice, at=at(6, 9))

    # C6, phone, Team B. Wed 12:00 a call the system drops (talk 0); 12:05 the customer calls
    # again (talk 200); both Bob's. Bob solves 12:20 (2 contacts).
    conv["c6"] = c(
        send_call(
            channels_b["phone"],
            from_number="+1 415 555 0200",
            talk_seconds=0,
            ended_by="system",
            started_at=at(4, 12),
            agent_email="bob@desk.example",
        ).conversation_id
    )
    send_call(
        channels_b["phone"],
        from_number="+1 415 555 0200",
        talk_seconds=200,
        ended_by="customer",
        started_at=at(4, 12, 5),
        agent_email="bob@desk.example",
    )
    identity_link(customer=conv["c6"].customer, kind="email", value="lee@example.com", actor=bob)
    solves["s6"] = conversation_solve(conversation=c(conv["c6"].pk), actor=bob, at=at(4, 12, 20))
    return Desk(alice=alice, bob=bob, conversations=conv, solves=solves)


def record_survey(
    solve: Event,
    *,
    sent_at: datetime | None = None,
    skip_reason: str = "",
    answered_at: datetime | None = None,
    **answer: object,
) -> None:
    """The survey of a solve, sent at ``sent_at`` (or skipped), and the customer's answer.

    Through the surveys app's ``survey_record_past``, which records history without the
    scheduling rules (delay, throttle) getting in the way of a desk worked out on paper.
    """
    from surveys.services import Answer, survey_record_past

    survey_record_past(
        event=solve,
        sent_at=sent_at or solve.occurred_at,
        answer=Answer(**answer) if answer else None,  # type: ignore[arg-type]
        answered_at=answered_at,
        skip_reason=skip_reason,
    )


def answer_surveys(desk: Desk) -> None:
    """The customers' answers, as worked out in test_hand_desk.py (every customer has an email
    address; S3b's survey was skipped: Sam had one a day before)."""
    s = desk.solves
    record_survey(
        s["s1"],
        sent_at=at(2, 11),
        answered_at=at(2, 12),
        resolved="yes",
        contacts_declared=1,
        csat=5,
        nps=10,
        comment="Quick and kind, thank you Alice",
        shout_out=True,
    )
    record_survey(
        s["s2"],
        sent_at=at(2, 12),
        answered_at=at(2, 13),
        resolved="yes",
        contacts_declared=2,
        csat=4,
    )
    record_survey(
        s["s3a"],
        sent_at=at(3, 16, 10),
        answered_at=at(3, 18),
        resolved="no",
        contacts_declared=3,
        csat=2,
        nps=3,
        comment="I had to call",
    )
    record_survey(s["s3b"], skip_reason="throttled")
    record_survey(s["s4"], sent_at=at(4, 10))
    record_survey(s["s5"], sent_at=at(6, 10), answered_at=at(6, 11), resolved="partly", csat=4)
    record_survey(
        s["s6"],
        sent_at=at(4, 13),
        answered_at=at(4, 14),
        resolved="yes",
        csat=3,
        nps=8,
        comment="ok",
    )
