"""Rules: each condition and action, their order, a rule that fails, the triggers and the dry run."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
import time_machine

from routing.models import Rule
from routing.rules import rule_dry_run, rule_move, rule_save, rules_no_reply_run
from supportdesk.errors import ApplicationError
from supportdesk.models import AuditEntry
from tests.conftest import client_for
from tests.factories import email_bytes, send_chat, send_social
from tickets.models import Conversation, Customer, Event, Identity, Message, Organisation
from tickets.services import (
    conversation_reopen,
    conversation_reply,
    conversation_solve,
    conversation_triage,
    inbound_email_raw,
    tag_create,
)

pytestmark = pytest.mark.django_db


@pytest.fixture
def tags(manager_a):
    return {name: tag_create(name=name, actor=manager_a) for name in ("hit", "vip", "refunds")}


def make_rule(manager, name="R", *, conditions=None, actions=None, **extra):
    return rule_save(
        actor=manager,
        data={
            "name": name,
            "conditions": conditions or {},
            "actions": actions or {"add_tags": ["hit"]},
            **extra,
        },
    )


def tag_names(conversation_id: int) -> set[str]:
    return set(Conversation.objects.get(pk=conversation_id).tags.values_list("name", flat=True))


def chat(channel, i: int, body: str = "Hello", at: datetime | None = None) -> int:
    return send_chat(
        channel, session_id=f"s{i}", visitor_id=f"v{i}", body=body, sent_at=at
    ).conversation_id


def test_channel_condition(manager_a, channels, tags):
    make_rule(manager_a, conditions={"channel_kinds": ["chat"]})
    assert tag_names(chat(channels["chat"], 1)) == {"hit"}
    assert tag_names(send_social(channels["social"]).conversation_id) == set()


def test_mailbox_condition(manager_a, channels, channels_b, tags):
    make_rule(manager_a, conditions={"mailbox_ids": [channels["chat"].pk]})
    assert tag_names(chat(channels["chat"], 1)) == {"hit"}
    assert tag_names(chat(channels_b["chat"], 2)) == set()


def _known_customer(address: str, organisation: Organisation | None = None) -> Customer:
    customer = Customer.objects.create(name=address, organisation=organisation)
    Identity.objects.create(customer=customer, kind="email", value=address)
    return customer


def _email(channel, sender: str, *, subject="Help", body="Hello") -> int:
    return inbound_email_raw(
        channel=channel, raw=email_bytes(sender=sender, subject=subject, body=body)
    ).conversation_id


def test_customer_and_organisation_conditions(manager_a, channels, tags):
    acme = Organisation.objects.create(name="Acme")
    known = _known_customer("ceo@acme.example", acme)
    _known_customer("other@acme.example", acme)
    make_rule(manager_a, "customer", conditions={"customer_ids": [known.pk]})
    make_rule(
        manager_a, "org", conditions={"organisation_ids": [acme.pk]}, actions={"priority": "high"}
    )
    first = _email(channels["email"], "ceo@acme.example")
    second = _email(channels["email"], "other@acme.example")
    stranger = _email(channels["email"], "someone@else.example")
    assert (tag_names(first), Conversation.objects.get(pk=first).priority) == ({"hit"}, "high")
    assert (tag_names(second), Conversation.objects.get(pk=second).priority) == (set(), "high")
    assert (tag_names(stranger), Conversation.objects.get(pk=stranger).priority) == (
        set(),
        "normal",
    )


def test_words_condition_matches_whole_words_in_subject_or_body(manager_a, channels, tags):
    make_rule(manager_a, conditions={"words": "refund, chargeback"})
    assert tag_names(_email(channels["email"], "a@x.example", subject="Refund please")) == {"hit"}
    assert tag_names(_email(channels["email"], "b@x.example", body="a CHARGEBACK now")) == {"hit"}
    assert tag_names(_email(channels["email"], "c@x.example", body="refunded already")) == set()


def test_time_of_day_condition_across_midnight(manager_a, channels, tags):
    make_rule(manager_a, conditions={"time_from": "18:00", "time_to": "08:00"})
    night = chat(channels["chat"], 1, at=datetime(2026, 11, 2, 22, 30, tzinfo=UTC))
    early = chat(channels["chat"], 2, at=datetime(2026, 11, 3, 7, 59, tzinfo=UTC))
    noon = chat(channels["chat"], 3, at=datetime(2026, 11, 3, 12, 0, tzinfo=UTC))
    assert [tag_names(c) for c in (night, early, noon)] == [{"hit"}, {"hit"}, set()]


def test_tags_and_priority_conditions_on_a_reopened_conversation(
    manager_a, agent_a, channels, tags
):
    make_rule(
        manager_a,
        "vip back",
        trigger="reopened",
        conditions={"tags": ["vip"], "priorities": ["high"]},
        actions={"note": "A VIP came back"},
    )
    ids = []
    for i, (tagged, priority) in enumerate([(True, "high"), (True, "normal"), (False, "high")]):
        conversation_id = _email(channels["email"], f"p{i}@x.example", subject=f"Q{i}")
        conversation = Conversation.objects.get(pk=conversation_id)
        conversation_triage(
            conversation=conversation,
            actor=manager_a,
            tags=[tags["vip"]] if tagged else [],
            priority=priority,
        )
        conversation_reply(conversation=conversation, author=agent_a, body="Done", deliver=False)
        conversation_solve(conversation=conversation, actor=agent_a)
        ids.append(conversation_id)
    # The customer writes back on the first (threaded under our reply); an agent reopens
    # the other two.
    reply = Message.objects.get(conversation_id=ids[0], direction="outbound")
    raw = email_bytes(
        sender="p0@x.example",
        subject="Re: Q0",
        body="Still broken",
        in_reply_to=f"<{reply.message_id}>",
    )
    assert inbound_email_raw(channel=channels["email"], raw=raw).conversation_id == ids[0]
    for conversation_id in ids[1:]:
        conversation_reopen(
            conversation=Conversation.objects.get(pk=conversation_id), actor=agent_a
        )
    notes = [
        list(
            Message.objects.filter(conversation_id=c, direction="note").values_list(
                "body_text", flat=True
            )
        )
        for c in ids
    ]
    assert notes == [["Rule “vip back”: A VIP came back"], [], []]


def test_every_action_is_applied_and_recorded_as_one_event(
    manager_a, channels, team_b, agent_b, tags
):
    rule = make_rule(
        manager_a,
        "route to B",
        actions={
            "team_id": team_b.pk,
            "add_tags": ["vip"],
            "priority": "urgent",
            "assign_id": agent_b.pk,
            "note": "Moved by the rule",
        },
    )
    conversation = Conversation.objects.get(pk=chat(channels["chat"], 1))
    assert (conversation.team_id, conversation.assignee_id, conversation.priority) == (
        team_b.pk,
        agent_b.pk,
        "urgent",
    )
    assert tag_names(conversation.pk) == {"vip"}
    note = Message.objects.get(conversation=conversation, direction="note")
    assert note.body_text == "Rule “route to B”: Moved by the rule"
    applied = Event.objects.get(conversation=conversation, kind=Event.Kind.RULE_APPLIED)
    assert applied.data == {
        "rule": rule.pk,
        "name": "route to B",
        "trigger": "ingested",
        "did": [
            "team Team B",
            "priority urgent",
            "tags +vip",
            "assigned to bob@desk.example",
            "note",
        ],
    }
    assert Rule.objects.get(pk=rule.pk).applied_count == 1


def test_rules_apply_in_order_and_stop_after_stops(manager_a, channels, tags):
    first = make_rule(manager_a, "first", actions={"priority": "urgent"})
    # Sees the priority the first rule set.
    make_rule(manager_a, "second", conditions={"priorities": ["urgent"]}, stop_after=True)
    make_rule(manager_a, "third", actions={"add_tags": ["vip"]})
    c1 = chat(channels["chat"], 1)
    assert tag_names(c1) == {"hit"}  # third never ran: second stops
    # Moved last, "first" runs after "second": the urgent condition no longer holds.
    rule_move(rule=first, direction=1, actor=manager_a)
    rule_move(rule=first, direction=1, actor=manager_a)
    assert list(Rule.objects.values_list("name", flat=True)) == ["second", "third", "first"]
    c2 = chat(channels["chat"], 2)
    assert tag_names(c2) == {"vip"}
    assert Conversation.objects.get(pk=c2).priority == "urgent"


def test_a_failing_rule_is_rolled_back_alone_and_never_blocks_ingestion(
    manager_a, channels, agent_b, tags, api
):
    # Bob is not in Team A: the assignment fails after the tag was added; the whole rule is
    # undone, recorded, counted, and the next rule still runs.
    broken = make_rule(manager_a, "broken", actions={"add_tags": ["vip"], "assign_id": agent_b.pk})
    make_rule(manager_a, "fine")
    response = api.post(
        "/api/v1/inbound/chat/",
        {"external_id": "e1", "session_id": "s", "visitor_id": "v", "body": "Hi"},
        format="json",
        HTTP_X_CHANNEL_TOKEN=channels["chat"].secret,
    )
    assert response.status_code == 201
    conversation = Conversation.objects.get(pk=response.json()["conversation"])
    assert tag_names(conversation.pk) == {"hit"}
    assert conversation.assignee_id is None
    failed = Event.objects.get(conversation=conversation, kind=Event.Kind.RULE_FAILED)
    assert failed.data == {
        "rule": broken.pk,
        "name": "broken",
        "trigger": "ingested",
        "error": "bob@desk.example is not a member of the conversation's team",
    }
    broken.refresh_from_db()
    assert (broken.failed_count, broken.applied_count) == (1, 0)
    assert broken.last_error == "bob@desk.example is not a member of the conversation's team"
    assert not Event.objects.filter(kind=Event.Kind.TAGS_CHANGED, data__tags=["vip"]).exists()


def test_no_reply_rule_fires_once_after_n_business_hours(manager_a, channels, tags):
    make_rule(manager_a, "chase", trigger="no_reply", no_reply_hours=2)
    wrote = datetime(2026, 11, 2, 9, 0, tzinfo=UTC)
    conversation_id = chat(channels["chat"], 1, at=wrote)
    assert rules_no_reply_run(now=wrote + timedelta(hours=1, minutes=59)) == 0
    assert tag_names(conversation_id) == set()
    assert rules_no_reply_run(now=wrote + timedelta(hours=2)) == 1
    assert tag_names(conversation_id) == {"hit"}
    assert rules_no_reply_run(now=wrote + timedelta(hours=5)) == 0  # once per waiting message


def test_dry_run_lists_recent_matches_and_changes_nothing(manager_a, channels, tags):
    hits = [
        _email(channels["email"], "a@x.example", subject="Refund"),
        _email(channels["email"], "b@x.example", body="I want a refund"),
    ]
    _email(channels["email"], "c@x.example", subject="Other")
    events = Event.objects.count()
    matched = rule_dry_run(data={"conditions": {"words": ["refund"]}})
    assert [c.pk for c in matched] == sorted(hits, reverse=True)
    assert Event.objects.count() == events
    assert Rule.objects.count() == 0
    # Through the API, as a manager; conversations older than 30 days are not looked at.
    with time_machine.travel(datetime.now(UTC) + timedelta(days=31)):
        late = client_for(manager_a).post(
            "/api/v1/rules/dry-run/", {"conditions": {"words": ["refund"]}}, format="json"
        )
    assert late.json()["matched"] == []
    now = client_for(manager_a).post(
        "/api/v1/rules/dry-run/", {"conditions": {"words": ["refund"]}}, format="json"
    )
    assert [c["id"] for c in now.json()["matched"]] == sorted(hits, reverse=True)


def test_only_managers_write_rules_and_bad_rules_are_refused(agent_a, manager_a, tags):
    with pytest.raises(ApplicationError):
        make_rule(agent_a)
    denied = client_for(agent_a).post(
        "/api/v1/rules/", {"name": "x", "actions": {"add_tags": ["hit"]}}, format="json"
    )
    assert denied.status_code == 403
    for bad in (
        {"name": "x", "actions": {}},
        {"name": "x", "actions": {"add_tags": ["nope"]}},
        {"name": "x", "conditions": {"time_from": "25:00", "time_to": "08:00"}},
        {"name": "x", "trigger": "no_reply", "actions": {"note": "n"}},
        {"name": "x", "conditions": {"color": "red"}, "actions": {"note": "n"}},
    ):
        response = client_for(manager_a).post("/api/v1/rules/", bad, format="json")
        assert response.status_code == 400, bad
    assert Rule.objects.count() == 0
    created = client_for(manager_a).post(
        "/api/v1/rules/",
        {"name": "ok", "conditions": {"words": "refund"}, "actions": {"add_tags": ["hit"]}},
        format="json",
    )
    assert created.status_code == 201
    assert created.json()["conditions"] == {"words": ["refund"]}
    assert AuditEntry.objects.filter(action="rule.changed").count() == 1
