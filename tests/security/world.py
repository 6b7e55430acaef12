"""A small desk with one of every object for Team A and for Team B, built through the services.

The authorisation matrix fills path parameters from it, and the leak tests look for the marker
strings written into Team B's objects. Every free text of Team B carries ``MARK_B`` (and Team A's
``MARK_A``) so that a single substring search finds it in any page, JSON or CSV.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import timedelta
from email.message import EmailMessage
from email.utils import format_datetime, make_msgid
from typing import Any

import time_machine
from django.utils import timezone

from supportdesk.models import Team, User
from tests.factories import make_staff, send_chat

MARK_A = "zqalpha"
MARK_B = "zqbravo"


def marks(mark: str) -> list[str]:
    """The texts of one team's objects that carry its marker (lower case)."""
    return [
        f"{what} {mark}"
        for what in (
            "customer",
            "subject",
            "body",
            "html",
            "attachment",
            "other",
            "solved",
            "chat",
            "comment",
            "idea",
            "quote",
            "note",
        )
    ] + [f"{mark}@example.com", f"{mark}.other@example.com", f"{mark}.solved@example.com"]


@dataclass
class Side:
    """One team's objects; attributes are the path parameters of the routes."""

    team: Team
    channels: dict[str, Any]
    conversation: Any = None  # open, with a customer message carrying HTML and an attachment
    solved: Any = None  # solved, surveyed, answered "not resolved" with a low CSAT
    unrouted: Any = None
    customer: Any = None
    message: Any = None
    attachment: Any = None
    merge: Any = None
    survey: Any = None
    token: str = ""
    follow_up: Any = None
    review: Any = None
    calibration: Any = None
    idea: Any = None
    checkin: Any = None
    job: Any = None
    tag: Any = None
    saved_reply: Any = None
    webhook_host: Any = None
    agent: Any = None
    notification: Any = None  # one of the side's agent's notifications
    mailbox: Any = None  # on the side's email channel; its server (port 1) never answers
    inbound_item: Any = None  # a payload the side's chat channel accepted asynchronously
    extra: dict[str, Any] = field(default_factory=dict)


@dataclass
class World:
    a: Side
    b: Side
    users: dict[str, User]
    checkin_rule: Any = None
    routing_rule: Any = None
    unrouted: Any = None

    def side(self, team: str) -> Side:
        return self.a if team == "A" else self.b


def _email(*, sender: str, subject: str, text: str, html: str, attachment: bytes) -> bytes:
    message = EmailMessage()
    message["From"] = sender
    message["To"] = "support@desk.example"
    message["Subject"] = subject
    message["Date"] = format_datetime(timezone.now())
    message["Message-ID"] = make_msgid(domain="mail.example.com")
    message.set_content(text)
    message.add_alternative(html, subtype="html")
    message.add_attachment(attachment, maintype="text", subtype="plain", filename="notes.txt")
    return message.as_bytes()


def _side(mark: str, team: Team, channels: dict[str, Any], agent: User, manager: User) -> Side:
    from quality.models import CancellationReason
    from quality.services import cancellation_record, idea_create
    from surveys.models import Survey
    from surveys.services import Answer, survey_answer, survey_token, surveys_send_due
    from tickets.models import Conversation, Customer
    from tickets.services import (
        conversation_solve,
        customer_merge,
        inbound_email_raw,
    )

    side = Side(team=team, channels=channels, agent=agent)
    raw = _email(
        sender=f"Customer {mark.title()} <{mark}@example.com>",
        subject=f"Subject {mark} refund",
        text=f"Body {mark}: please refund order {mark}-1.",
        html=f"<p>Html {mark} body</p>",
        attachment=f"attachment {mark}".encode(),
    )
    result = inbound_email_raw(channel=channels["email"], raw=raw)
    side.conversation = Conversation.objects.get(pk=result.conversation_id)
    side.customer = Customer.objects.get(pk=result.customer_id)
    side.message = side.conversation.messages.get(pk=result.message_id)
    side.attachment = side.message.attachments.get()
    from tickets.models import InboundQueueItem

    # A row only (already done): accepting through the service would kick the eager worker,
    # which would store one more conversation than the world's counts expect.
    side.inbound_item = InboundQueueItem.objects.create(
        channel=channels["chat"],
        kind="chat",
        payload=b"{}",
        external_id=f"queued-{mark}",
        order_key=f"chat:v-queued-{mark}",
        status="done",
    )

    # A second customer of the team, merged into the first: the merge to undo.
    other = send_chat(
        channels["chat"],
        email=f"{mark}.other@example.com",
        name=f"Other {mark}",
        body=mark,
        session_id=f"other-{mark}",
        visitor_id=f"v-other-{mark}",
    )
    side.merge = customer_merge(
        target=side.customer, other=Customer.objects.get(pk=other.customer_id), actor=agent
    )

    # A solved conversation whose survey went out and came back "not resolved", CSAT 1: a survey
    # response, a follow-up and (after the rule's days) a check-in.
    solved = send_chat(
        channels["chat"],
        email=f"{mark}.solved@example.com",
        name=f"Solved {mark}",
        body=f"Chat {mark} about invoices",
        session_id=f"solved-{mark}",
        visitor_id=f"v-{mark}",
    )
    side.solved = Conversation.objects.get(pk=solved.conversation_id)
    with _after_commit():
        conversation_solve(conversation=side.solved, actor=agent)
    side.survey = Survey.objects.get(conversation=side.solved)
    with time_machine.travel(side.survey.due_at + timedelta(seconds=1), tick=False):
        with _after_commit():
            surveys_send_due()
        side.survey.refresh_from_db()
        assert side.survey.status == Survey.Status.SENT, side.survey.skip_reason
    with (
        time_machine.travel(side.survey.due_at + timedelta(minutes=1), tick=False),
        _after_commit(),
    ):
        survey_answer(
            survey=side.survey,
            answer=Answer(resolved="no", csat=1, nps=0, comment=f"Comment {mark} awful"),
        )
    side.token = survey_token(side.survey)
    side.idea = idea_create(
        message=side.message, actor=agent, title=f"Idea {mark}", quote=f"Quote {mark}"
    )
    reason = CancellationReason.objects.order_by("pk").first() or CancellationReason.objects.create(
        name="Too expensive"
    )
    cancellation_record(
        conversation=side.conversation, actor=agent, reason=reason, note=f"Note {mark}"
    )
    from supportdesk.services import notification_create

    side.notification = notification_create(
        recipient=agent,
        kind="conversation.mentioned",
        title=f"Mentioned on {mark}",
        url=f"/conversations/{side.conversation.pk}/",
    )
    from tickets.services import tag_create

    side.tag = tag_create(name=f"Tag {mark}", actor=manager)
    from supportdesk.models import WebhookAllowedHost
    from tickets.services import saved_reply_create_or_update

    # Saved replies and allowed hosts belong to no team: named without the team's marker.
    side.saved_reply = saved_reply_create_or_update(title=f"Reply of {team.name}", body="Hello")
    suffix = team.name.split()[-1].lower()
    side.webhook_host = WebhookAllowedHost.objects.create(host=f"hooks-{suffix}.internal")
    return side


def build_world() -> World:
    """Team A (Alice, agent; Mia, manager), Team B (Bob, agent; Max, manager), Ada (admin).

    After-commit reactions (the survey a solve schedules...) run as in production.
    """
    with _after_commit():
        return _build_world()


def _after_commit() -> Any:
    from django.test import TestCase

    return TestCase.captureOnCommitCallbacks(execute=True)


def _build_world() -> World:
    from metrics.services import recompute_job_create
    from quality.models import CheckIn, CheckInRule, QAReview
    from quality.services import (
        calibration_create,
        checkin_rules_ensure_default,
        checkins_create_due,
        qa_sample_draw,
    )
    from surveys.models import FollowUp
    from tickets.models import Conversation
    from tickets.services import channel_create_or_update

    team_a = Team.objects.get_or_create(name="Team A")[0]
    team_b = Team.objects.get_or_create(name="Team B")[0]
    users = {
        "agent_a": make_staff(
            "alice@desk.example", role="agent", teams=["Team A"], full_name="Alice Archer"
        ),
        "agent_b": make_staff(
            "bob@desk.example", role="agent", teams=["Team B"], full_name="Bob Baker"
        ),
        "manager_a": make_staff(
            "mia@desk.example", role="manager", teams=["Team A"], full_name="Mia Manager"
        ),
        "manager_b": make_staff(
            "max@desk.example", role="manager", teams=["Team B"], full_name="Max Minder"
        ),
        "admin": make_staff("root@desk.example", role="admin", teams=[], full_name="Ada Admin"),
    }
    channels = {
        team: {
            kind: channel_create_or_update(
                kind=kind, name=f"{kind} {team}", team_name=f"Team {team}"
            )
            for kind in ("email", "chat", "social", "phone")
        }
        for team in ("A", "B")
    }
    a = _side(MARK_A, team_a, channels["A"], users["agent_a"], users["manager_a"])
    b = _side(MARK_B, team_b, channels["B"], users["agent_b"], users["manager_b"])
    world = World(a=a, b=b, users=users)

    # QA: this week's sample (a pending review of each team's solve) and a calibration per team.
    today = timezone.localdate()
    qa_sample_draw(week_start=today - timedelta(days=today.weekday()), size_per_agent=1)
    for side, manager in ((a, users["manager_a"]), (b, users["manager_b"])):
        side.review = QAReview.objects.filter(conversation=side.solved, calibration=None).first()
        side.calibration = calibration_create(
            conversation=side.solved, actor=manager, reviewers=[manager, users["admin"]]
        )
        side.job = recompute_job_create(
            day_from=today - timedelta(days=2), day_to=today, requested_by=side.agent
        )
        side.follow_up = FollowUp.objects.filter(survey=side.survey).first()

    from tickets.services import mailbox_save

    for side in (a, b):
        side.mailbox = mailbox_save(
            channel=side.channels["email"],
            values={
                "imap_host": "127.0.0.1",
                "imap_port": 1,
                "imap_security": "none",
                "username": "support@example.com",
            },
            credentials={"password": "mailbox-password"},
        )

    checkin_rules_ensure_default()
    checkins_create_due(now=timezone.now() + timedelta(days=5))
    for side in (a, b):
        side.checkin = CheckIn.objects.filter(conversation=side.solved).first()
    world.checkin_rule = CheckInRule.objects.order_by("pk").first()
    from routing.rules import rule_save

    world.routing_rule = rule_save(
        actor=users["admin"],
        data={
            "name": "Urgent words",
            "conditions": {"words": ["urgent"]},
            "actions": {"priority": "high"},
        },
    )

    # An unrouted conversation (its channel has no team).
    unrouted = channel_create_or_update(kind="social", name="social unrouted", team_name=None)
    from tests.factories import send_social

    world.unrouted = Conversation.objects.get(
        pk=send_social(unrouted, handle="@nobody", body="Unrouted zqnone").conversation_id
    )
    return world
