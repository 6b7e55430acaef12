"""Availability, the pool, the queue's due times and the acknowledgement's promise."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
import time_machine
from django.db import connection
from django.test.utils import CaptureQueriesContext

from routing.models import Availability
from routing.services import (
    availability_set,
    business_hours_save,
    promise_set,
    routing_sweep,
    team_routing_save,
)
from tests.conftest import client_for
from tests.factories import make_staff, send_chat
from tickets.models import Conversation, Event, Message
from tickets.services import acknowledgement_variables

pytestmark = pytest.mark.django_db

WEEKDAYS = {day: [["09:00", "17:00"]] for day in ("mon", "tue", "wed", "thu", "fri")}


@pytest.fixture
def two_agents(agent_a, manager_a, channels):
    sam = make_staff("sam@desk.example", role="agent", teams=["Team A"], full_name="Sam")
    team_routing_save(
        team=channels["chat"].team,
        mode="round_robin",
        cap=0,
        return_when_away=True,
        actor=manager_a,
    )
    return agent_a, sam


def test_an_agent_who_goes_away_hands_their_conversations_to_the_pool(two_agents, channels):
    alice, sam = two_agents
    ids = [send_chat(channels["chat"], session_id=f"s{i}", visitor_id=f"v{i}").conversation_id
           for i in range(4)]  # fmt: skip
    assert sorted(Conversation.objects.values_list("assignee_id", flat=True)) == sorted(
        [alice.pk, alice.pk, sam.pk, sam.pk]
    )
    availability_set(user=alice, status="away", actor=alice)
    # Alice's two went back to the pool and on to Sam, the one available agent.
    assert set(Conversation.objects.filter(pk__in=ids).values_list("assignee_id", flat=True)) == {
        sam.pk
    }
    assert Event.objects.filter(kind="conversation.assigned", data__by="away").count() == 2
    # Busy: keeps what they have, gets nothing new.
    availability_set(user=sam, status="busy", actor=sam)
    new = send_chat(channels["chat"], session_id="n", visitor_id="n").conversation_id
    assert Conversation.objects.get(pk=new).assignee_id is None
    # Back: the pool comes to them.
    availability_set(user=alice, status="available", actor=alice)
    assert Conversation.objects.get(pk=new).assignee_id == alice.pk


def test_outside_their_hours_an_agent_is_away_and_the_sweep_returns_their_work(
    two_agents, channels, admin_user
):
    alice, sam = two_agents
    business_hours_save(team=None, time_zone="UTC", week=WEEKDAYS, actor=admin_user)
    availability_set(user=sam, status="available", follows_hours=False, actor=sam)
    friday = datetime(2026, 11, 6, 16, 0, tzinfo=UTC)
    with time_machine.travel(friday, tick=False):
        first = send_chat(channels["chat"], session_id="a", visitor_id="a").conversation_id
        second = send_chat(channels["chat"], session_id="b", visitor_id="b").conversation_id
    assert {Conversation.objects.get(pk=c).assignee_id for c in (first, second)} == {
        alice.pk,
        sam.pk,
    }
    with time_machine.travel(friday + timedelta(hours=2), tick=False):  # 18:00, closed
        assert routing_sweep() == {"returned": 1, "routed": 0}
        # Alice's went back to the pool and on to Sam, who works whatever the hours.
        assert set(Conversation.objects.values_list("assignee_id", flat=True)) == {sam.pk}


def test_a_manager_sees_who_is_available_and_an_agent_sets_only_their_own(
    two_agents, manager_a, client
):
    alice, sam = two_agents
    response = client_for(alice).post(
        "/api/v1/availability/", {"status": "away", "user": sam.pk}, format="json"
    )
    assert response.status_code == 400
    assert not Availability.objects.filter(user=sam).exists()
    assert client_for(sam).post("/api/v1/availability/", {"status": "busy"}).status_code == 200
    teams = client_for(manager_a).get("/api/v1/availability/").json()
    agents = {a["email"]: a for a in teams[0]["agents"]}
    assert (agents["sam@desk.example"]["status"], agents["sam@desk.example"]["effective"]) == (
        "busy",
        "busy",
    )
    assert agents["alice@desk.example"]["status"] == "available"
    client.force_login(manager_a)
    page = client.get("/availability/")
    assert page.status_code == 200
    assert b"Sam" in page.content
    client.force_login(alice)
    assert client.get("/availability/").status_code == 403


def test_the_queue_sorts_by_due_time_and_counts_what_is_due_soon_in_constant_queries(
    agent_a, channels, admin_user, client
):
    promise_set(channel_kind="chat", priority="", reply_seconds=3600, actor=admin_user)
    promise_set(channel_kind="chat", priority="urgent", reply_seconds=600, actor=admin_user)
    client.force_login(agent_a)
    now = datetime.now(UTC)

    def queue() -> tuple[list[int], int, int]:
        with CaptureQueriesContext(connection) as queries:
            response = client.get("/?view=open&sort=due")
        assert response.status_code == 200
        page = response.context["page"]
        return [c.pk for c in page.conversations], page.due_soon, len(queries)

    old = send_chat(
        channels["chat"], session_id="o", visitor_id="o", sent_at=now - timedelta(minutes=50)
    ).conversation_id
    _, _, queries_one = queue()
    newer = send_chat(channels["chat"], session_id="n", visitor_id="n").conversation_id
    urgent_id = send_chat(channels["chat"], session_id="u", visitor_id="u").conversation_id
    urgent = Conversation.objects.get(pk=urgent_id)
    from tickets.services import conversation_triage

    conversation_triage(conversation=urgent, actor=agent_a, priority="urgent")
    # Made urgent while the customer waits: due under the urgent promise, from their message.
    assert Conversation.objects.get(pk=urgent_id).due_at == Message.objects.get(
        conversation_id=urgent_id
    ).sent_at + timedelta(minutes=10)
    ordered, due_soon, queries_three = queue()
    # old: 50 minutes ago + 1 hour; urgent: just now + 10 minutes (a moment later); newer: + 1 hour
    assert ordered == [old, urgent_id, newer]
    assert due_soon == 3
    assert queries_three == queries_one


def test_the_acknowledgement_can_state_the_promised_time(channels, admin_user, team_a):
    business_hours_save(team=team_a, time_zone="Europe/Berlin", week=WEEKDAYS, actor=admin_user)
    promise_set(channel_kind="chat", priority="", reply_seconds=7200, actor=admin_user)
    friday_evening = datetime(2026, 11, 6, 19, 0, tzinfo=UTC)
    result = send_chat(channels["chat"], sent_at=friday_evening)
    message = Message.objects.get(pk=result.message_id)
    assert acknowledgement_variables(message=message)["conversation.due"] == (
        "Monday 9 November 2026, 11:00 (Europe/Berlin)"
    )
