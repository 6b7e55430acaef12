"""Round-robin and least-loaded routing under 8 concurrent ingesting clients (PostgreSQL).

Each client posts chats through the inbound API on its own database connection; every
assignment takes the team's ``TeamRouting`` row lock, so no agent goes over the cap and
round-robin's turn never skips or repeats an agent.
"""

from __future__ import annotations

import threading
from collections import Counter

import pytest
from django.db import connections
from rest_framework.test import APIClient

from routing.models import RoutingMode
from routing.services import availability_set, team_routing_save
from tests.factories import make_staff
from tests.tickets.test_api_concurrency import require_postgres
from tickets.models import Conversation, Event
from tickets.services import channel_create_or_update

CLIENTS = 8
MESSAGES = 100


def _desk(mode: str, cap: int):
    manager = make_staff("mia@desk.example", role="manager", teams=["Team A"])
    agents = [
        make_staff(f"agent{i}@desk.example", role="agent", teams=["Team A"]) for i in range(4)
    ]
    channel = channel_create_or_update(kind="chat", name="Chat A", team_name="Team A")
    team_routing_save(team=channel.team, mode=mode, cap=cap, return_when_away=False, actor=manager)
    # The fourth agent is away: never given a conversation. The manager, a member of the team,
    # is not routed to (routing gives work to agents; managers take it by hand).
    availability_set(user=agents[3], status="away", actor=agents[3])
    return agents, channel


def _ingest_concurrently(secret: str) -> None:
    barrier = threading.Barrier(CLIENTS)
    errors: list[BaseException] = []

    def client(n: int) -> None:
        api = APIClient()
        try:
            barrier.wait(timeout=10)
            for i in range(n, MESSAGES, CLIENTS):
                response = api.post(
                    "/api/v1/inbound/chat/",
                    {
                        "external_id": f"m-{i}",
                        "session_id": f"s-{i}",
                        "visitor_id": f"v-{i}",
                        "body": f"Question {i}",
                    },
                    format="json",
                    HTTP_X_CHANNEL_TOKEN=secret,
                )
                assert response.status_code == 201, response.content
        except BaseException as exc:  # surfaced below
            errors.append(exc)
        finally:
            connections.close_all()

    threads = [threading.Thread(target=client, args=(n,)) for n in range(CLIENTS)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=300)
    assert not errors, errors


@pytest.mark.django_db(transaction=True)
def test_round_robin_spreads_100_conversations_evenly_among_available_agents():
    require_postgres()
    agents, channel = _desk(RoutingMode.ROUND_ROBIN, cap=40)

    _ingest_concurrently(channel.secret)

    assert Conversation.objects.count() == MESSAGES
    loads = Counter(Conversation.objects.values_list("assignee_id", flat=True))
    # 100 among the three available agents, in turn: 34, 33, 33; none to the away agent,
    # none left in the pool, none over the cap.
    assert sorted(loads.values()) == [33, 33, 34]
    assert set(loads) == {a.pk for a in agents[:3]}
    # In turn means in turn: in the order of assignment, the agents cycle without a skip.
    order = list(
        Event.objects.filter(kind=Event.Kind.ASSIGNED, data__by="round_robin")
        .order_by("id")
        .values_list("agent_id", flat=True)
    )
    assert len(order) == MESSAGES
    cycle = order[:3]
    assert sorted(cycle) == sorted(a.pk for a in agents[:3])
    assert order == [cycle[i % 3] for i in range(MESSAGES)]


@pytest.mark.django_db(transaction=True)
def test_least_loaded_fills_agents_evenly_up_to_the_cap_and_leaves_the_rest_in_the_pool():
    require_postgres()
    agents, channel = _desk(RoutingMode.LEAST_LOADED, cap=30)

    _ingest_concurrently(channel.secret)

    loads = Counter(Conversation.objects.values_list("assignee_id", flat=True))
    # Three available agents under a cap of 30: 90 assigned, 30 each; 10 wait in the pool.
    assert loads[None] == 10
    assert sorted(loads[a.pk] for a in agents[:3]) == [30, 30, 30]
    assert loads[agents[3].pk] == 0
    # Least-loaded: at every assignment the chosen agent had the fewest open conversations.
    seen: Counter[int] = Counter()
    for agent_id in (
        Event.objects.filter(kind=Event.Kind.ASSIGNED, data__by="least_loaded")
        .order_by("id")
        .values_list("agent_id", flat=True)
    ):
        assert seen[agent_id] == min(seen[a.pk] for a in agents[:3])
        seen[agent_id] += 1
    # When an agent comes back from away, the pool goes to them, up to the cap.
    availability_set(user=agents[3], status="available", actor=agents[3])
    assert Conversation.objects.filter(assignee=agents[3]).count() == 10
    assert Conversation.objects.filter(assignee__isnull=True).count() == 0
