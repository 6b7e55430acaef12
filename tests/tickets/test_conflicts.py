"""Concurrency: no lost update (versions), "take next" never hands one conversation out twice,
and an ``Idempotency-Key`` retry creates one reply.

The racing tests use real threads, each with its own PostgreSQL connection, so they need
committed data (``transaction=True``) and PostgreSQL.
"""

from __future__ import annotations

import threading
import uuid
from collections.abc import Callable
from datetime import timedelta
from typing import Any

import pytest
import time_machine
from django.db import connections
from django.test import Client
from django.utils import timezone

from supportdesk.models import IdempotencyKey
from supportdesk.services import idempotency_keys_prune
from supportdesk.tasks import idempotency_keys_prune_task
from tests.conftest import client_for
from tests.factories import make_staff, send_email
from tests.services import require_postgres
from tickets.models import Conversation, Event, Message
from tickets.services import conversation_assign, conversation_solve


def _conversation(channel, n: int = 1) -> Conversation:
    result = send_email(channel, sender=f"Customer {n} <c{n}@example.com>", subject=f"Issue {n}")
    return Conversation.objects.get(pk=result.conversation_id)


def _together(count: int, call: Callable[[int], Any]) -> list[Any]:
    """Run ``call(i)`` in ``count`` threads released at once; returns their results in order."""
    barrier = threading.Barrier(count)
    results: list[Any] = [None] * count
    errors: list[BaseException] = []

    def run(i: int) -> None:
        try:
            barrier.wait(timeout=30)
            results[i] = call(i)
        except BaseException as exc:  # reported in the test's thread
            errors.append(exc)
        finally:
            connections.close_all()

    threads = [threading.Thread(target=run, args=(i,)) for i in range(count)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=120)
    assert errors == []
    return results


@pytest.fixture
def colleague(team_a):
    return make_staff("carl@desk.example", teams=["Team A"], full_name="Carl Colleague")


# --- No lost update -----------------------------------------------------------------------------------


def test_api_detail_carries_the_version_as_etag(channels, api_a):
    conversation = _conversation(channels["email"])
    response = api_a.get(f"/api/v1/conversations/{conversation.pk}/")
    assert response.status_code == 200
    assert response["ETag"] == f'"{conversation.version}"'
    assert response.json()["version"] == conversation.version


def test_api_stale_if_match_is_a_409_and_changes_nothing(channels, api_a, agent_a, colleague):
    # Given two agents who read the same conversation
    conversation = _conversation(channels["email"])
    etag = api_a.get(f"/api/v1/conversations/{conversation.pk}/")["ETag"]
    api_c = client_for(colleague)
    assert api_c.get(f"/api/v1/conversations/{conversation.pk}/")["ETag"] == etag

    # When Carl takes it first, with the version he read
    first = api_c.post(
        f"/api/v1/conversations/{conversation.pk}/assign/",
        {"agent": colleague.email},
        headers={"If-Match": etag},
    )
    assert first.status_code == 200
    assert first["ETag"] == f'"{conversation.version + 1}"'
    events_before = Event.objects.filter(conversation=conversation).count()

    # And Alice solves it with the version she read
    stale = api_a.post(
        f"/api/v1/conversations/{conversation.pk}/solve/", headers={"If-Match": etag}
    )

    # Then she gets a clear conflict, and nothing of her write was applied
    assert stale.status_code == 409
    assert stale.json() == {
        "detail": "Carl Colleague changed this conversation meanwhile: it is now new, assigned "
        "to Carl Colleague. Nothing was changed; reload it and try again.",
        "version": conversation.version + 1,
        "status": "new",
    }
    conversation.refresh_from_db()
    assert (conversation.status, conversation.assignee_id) == ("new", colleague.pk)
    assert Event.objects.filter(conversation=conversation).count() == events_before

    # And with the current ETag it goes through
    fresh = api_a.get(f"/api/v1/conversations/{conversation.pk}/")["ETag"]
    solved = api_a.post(
        f"/api/v1/conversations/{conversation.pk}/solve/", headers={"If-Match": fresh}
    )
    assert solved.status_code == 200
    assert solved.json()["status"] == "solved"


def test_api_without_if_match_keeps_last_write_wins(channels, api_a, colleague):
    # docs/api.md's contract: the version check is optional for clients that send no If-Match.
    conversation = _conversation(channels["email"])
    conversation_assign(conversation=conversation, actor=colleague, agent=colleague)
    response = api_a.post(f"/api/v1/conversations/{conversation.pk}/pending/")
    assert response.status_code == 200
    assert response.json()["status"] == "pending"
    response = api_a.post(
        f"/api/v1/conversations/{conversation.pk}/reopen/", headers={"If-Match": "*"}
    )
    assert response.status_code == 409  # not solved: a state conflict, not a version one
    assert response.json()["detail"].startswith("Only solved or closed")


def test_api_malformed_if_match_is_a_400(channels, api_a):
    conversation = _conversation(channels["email"])
    response = api_a.post(
        f"/api/v1/conversations/{conversation.pk}/solve/", headers={"If-Match": "yesterday"}
    )
    assert response.status_code == 400
    assert response.json() == {
        "detail": 'If-Match must be the conversation\'s ETag, e.g. "7" (its "version").'
    }
    conversation.refresh_from_db()
    assert conversation.status == "new"


def test_workspace_stale_form_is_refused_with_who_changed_it(channels, agent_a, colleague):
    # Given Alice and Carl have the conversation page open
    conversation = _conversation(channels["email"])
    alice, carl = Client(), Client()
    alice.force_login(agent_a)
    carl.force_login(colleague)
    page = alice.get(f"/conversations/{conversation.pk}/").content.decode()
    hidden = f'<input type="hidden" name="version" value="{conversation.version}">'
    # take, assign, spam, pending, solve, tags and priority, macro: every action form sends it
    assert page.count(hidden) == 7
    carl.get(f"/conversations/{conversation.pk}/")

    # When Carl solves it from his page
    response = carl.post(
        f"/conversations/{conversation.pk}/solve/", {"version": conversation.version}
    )
    assert response.status_code == 302

    # And Alice, from her page rendered before, assigns it to herself
    response = alice.post(
        f"/conversations/{conversation.pk}/assign/",
        {
            "agent": str(agent_a.pk),
            "team": str(conversation.team_id),
            "version": conversation.version,
        },
    )

    # Then her page comes back with the conflict and the current state; nothing was applied
    assert response.status_code == 409
    body = response.content.decode()
    assert (
        "Carl Colleague changed this conversation meanwhile: it is now solved, assigned to Carl "
        "Colleague. Nothing was changed; reload it and try again."
    ) in body
    assert f'<input type="hidden" name="version" value="{conversation.version + 1}">' in body
    conversation.refresh_from_db()
    assert (conversation.status, conversation.assignee_id) == ("solved", colleague.pk)
    assert not Event.objects.filter(
        conversation=conversation, kind="conversation.assigned"
    ).exists()


@pytest.mark.django_db(transaction=True)
def test_concurrent_writes_with_one_version_apply_exactly_one(channels, agent_a, colleague):
    require_postgres()
    # Given one conversation read by eight clients at the same version
    conversation = _conversation(channels["email"])
    version = conversation.version
    clients = [client_for(agent_a if i % 2 else colleague) for i in range(8)]
    actions = ["solve", "pending"] * 4

    # When they all write at once, each with the version it read
    def write(i: int) -> int:
        return (
            clients[i]
            .post(
                f"/api/v1/conversations/{conversation.pk}/{actions[i]}/",
                headers={"If-Match": f'"{version}"'},
            )
            .status_code
        )

    codes = _together(8, write)

    # Then exactly one write won; every other got 409 and left no trace
    assert sorted(codes) == [200] + [409] * 7
    conversation.refresh_from_db()
    assert conversation.version == version + 1
    winner = actions[codes.index(200)]
    assert conversation.status == {"solve": "solved", "pending": "pending"}[winner]
    kinds = list(
        Event.objects.filter(conversation=conversation)
        .exclude(kind__in=["conversation.created", "message.inbound"])
        .values_list("kind", flat=True)
    )
    assert kinds == [
        {"solve": "conversation.solved", "pending": "conversation.status_changed"}[winner]
    ]


# --- Take next --------------------------------------------------------------------------------------


def test_take_next_assigns_the_oldest_unassigned_of_my_teams(channels, channels_b, api_a, agent_a):
    # Given, oldest first: one already assigned, one of another team, two free, one solved
    taken = _conversation(channels["email"], 1)
    conversation_assign(conversation=taken, actor=agent_a, agent=agent_a)
    _conversation(channels_b["email"], 2)
    oldest_free = _conversation(channels["email"], 3)
    newer_free = _conversation(channels["email"], 4)
    solved = _conversation(channels["email"], 5)
    conversation_solve(conversation=solved, actor=agent_a)
    Conversation.objects.filter(pk=solved.pk).update(assignee=None)

    # When Alice takes next, three times
    first = api_a.post("/api/v1/conversations/take-next/")
    second = api_a.post("/api/v1/conversations/take-next/")
    third = api_a.post("/api/v1/conversations/take-next/")

    # Then she gets the two free ones of her team, oldest first, and then a clear 404
    assert first.status_code == 200
    assert first.json()["id"] == oldest_free.pk
    assert first.json()["assignee"]["id"] == agent_a.pk
    assert first["ETag"] == f'"{oldest_free.version + 1}"'
    assert second.json()["id"] == newer_free.pk
    assert third.status_code == 404
    assert third.json() == {
        "detail": "Nothing to take: no unassigned new or open conversation in your teams."
    }
    assigned = Event.objects.filter(kind="conversation.assigned", actor=agent_a)
    assert sorted(assigned.values_list("conversation_id", flat=True)) == sorted(
        [taken.pk, oldest_free.pk, newer_free.pk]
    )


def test_take_next_button_in_the_workspace_queue(channels, agent_a):
    client = Client()
    client.force_login(agent_a)
    conversation = _conversation(channels["email"])
    page = client.get("/").content.decode()
    assert 'action="/conversations/take-next/"' in page
    assert ">Take next</button>" in page

    response = client.post("/conversations/take-next/")
    assert response.status_code == 302
    assert response["Location"] == f"/conversations/{conversation.pk}/"
    conversation.refresh_from_db()
    assert conversation.assignee_id == agent_a.pk

    response = client.post("/conversations/take-next/", follow=True)
    assert response.redirect_chain == [("/", 302)]
    assert "Nothing to take: every new or open conversation has an agent." in (
        response.content.decode()
    )


@pytest.mark.django_db(transaction=True)
def test_twenty_concurrent_takers_never_get_the_same_conversation(channels, team_a):
    require_postgres()
    # Given 15 free conversations and 20 agents of the team
    free = {_conversation(channels["email"], n).pk for n in range(15)}
    agents = [
        make_staff(f"agent{i}@desk.example", teams=["Team A"], full_name=f"Agent {i}")
        for i in range(20)
    ]
    clients = [client_for(agent) for agent in agents]

    # When all 20 press "take next" at once
    def take(i: int) -> tuple[int, int | None]:
        response = clients[i].post("/api/v1/conversations/take-next/")
        return response.status_code, response.json().get("id")

    results = _together(20, take)

    # Then 15 got one conversation each, all different, and 5 were told there is nothing left
    got = [pk for code, pk in results if code == 200]
    assert sorted(code for code, _ in results) == [200] * 15 + [404] * 5
    assert len(got) == len(set(got)) == 15
    assert set(got) == free
    for i, (code, pk) in enumerate(results):
        if code == 200:
            assert Conversation.objects.get(pk=pk).assignee_id == agents[i].pk
    assert Event.objects.filter(kind="conversation.assigned").count() == 15


def test_take_next_is_in_the_openapi_schema(api_a):
    schema = api_a.get("/api/schema/", headers={"Accept": "application/json"})
    assert schema.status_code == 200
    paths = schema.json()["paths"]
    operation = paths["/api/v1/conversations/take-next/"]["post"]
    assert set(operation["responses"]) == {"200", "400", "401", "403", "404", "422"}
    reply = paths["/api/v1/conversations/{id}/replies/"]["post"]
    assert "Idempotency-Key" in [p["name"] for p in reply["parameters"]]
    solve = paths["/api/v1/conversations/{id}/solve/"]["post"]
    assert {"If-Match", "Idempotency-Key"} <= {p["name"] for p in solve["parameters"]}


# --- Idempotency-Key --------------------------------------------------------------------------------


def _reply(client, conversation: Conversation, body: str, key: str | None):
    headers = {"Idempotency-Key": key} if key else {}
    return client.post(
        f"/api/v1/conversations/{conversation.pk}/replies/",
        {"body": body},
        format="json",
        headers=headers,
    )


def test_a_retry_with_the_same_key_returns_the_first_answer(
    channels, api_a, mailoutbox, django_capture_on_commit_callbacks
):
    conversation = _conversation(channels["email"])
    key = str(uuid.uuid4())

    with django_capture_on_commit_callbacks(execute=True):
        first = _reply(api_a, conversation, "It ships tomorrow.", key)
        retry = _reply(api_a, conversation, "It ships tomorrow.", key)

    assert first.status_code == retry.status_code == 201
    assert retry.json() == first.json()
    assert retry["Idempotent-Replayed"] == "true"
    assert not first.has_header("Idempotent-Replayed")
    replies = Message.objects.filter(conversation=conversation, direction="outbound")
    assert list(replies.values_list("pk", flat=True)) == [first.json()["id"]]
    assert len(mailoutbox) == 1


def test_the_same_key_with_another_body_is_a_422(channels, api_a):
    conversation = _conversation(channels["email"])
    key = str(uuid.uuid4())
    assert _reply(api_a, conversation, "It ships tomorrow.", key).status_code == 201

    other = _reply(api_a, conversation, "Actually, next week.", key)

    assert other.status_code == 422
    assert other.json() == {
        "detail": "This Idempotency-Key was already used for a different request. Use a new key "
        "for a new request, and the same key only to retry the very same one."
    }
    assert Message.objects.filter(conversation=conversation, direction="outbound").count() == 1


def test_keys_are_per_user_and_refused_requests_are_not_remembered(channels, api_a, colleague):
    conversation = _conversation(channels["email"])
    key = "retry-1"
    # A refused request (empty body) stores nothing: fixing it and retrying with the key works
    assert _reply(api_a, conversation, "", key).status_code == 400
    assert not IdempotencyKey.objects.exists()
    assert _reply(api_a, conversation, "Fixed.", key).status_code == 201
    # Another user's same key is another request
    assert _reply(client_for(colleague), conversation, "Fixed.", key).status_code == 201
    assert Message.objects.filter(conversation=conversation, direction="outbound").count() == 2
    # Other POSTs take a key too: a retried solve answers the first 200, not a 409
    solve_1 = api_a.post(
        f"/api/v1/conversations/{conversation.pk}/solve/", headers={"Idempotency-Key": "s-1"}
    )
    solve_2 = api_a.post(
        f"/api/v1/conversations/{conversation.pk}/solve/", headers={"Idempotency-Key": "s-1"}
    )
    assert (solve_1.status_code, solve_2.status_code) == (200, 200)
    assert solve_2.json() == solve_1.json()
    assert Event.objects.filter(conversation=conversation, kind="conversation.solved").count() == 1
    too_long = _reply(api_a, conversation, "Fixed.", "k" * 256)
    assert too_long.status_code == 400
    assert too_long.json()["detail"].startswith("Idempotency-Key must be 1 to 255")


def test_keys_expire_after_a_day(channels, api_a):
    conversation = _conversation(channels["email"])
    assert _reply(api_a, conversation, "First.", "daily").status_code == 201
    with time_machine.travel(timezone.now() + timedelta(hours=25)):
        # After expiry the key is new again; the hourly prune removes what is left
        assert _reply(api_a, conversation, "Second.", "daily").status_code == 201
        assert Message.objects.filter(conversation=conversation, direction="outbound").count() == 2
        assert idempotency_keys_prune() == 0  # the expired row was replaced on use
        assert _reply(api_a, conversation, "Third.", "other").status_code == 201
    with time_machine.travel(timezone.now() + timedelta(hours=50)):
        assert idempotency_keys_prune_task.delay().get() == 2
    assert not IdempotencyKey.objects.exists()


@pytest.mark.django_db(transaction=True)
def test_racing_retries_with_one_key_create_one_reply(channels, agent_a):
    require_postgres()
    conversation = _conversation(channels["email"])
    clients = [client_for(agent_a) for _ in range(8)]

    def post(i: int) -> tuple[int, dict[str, Any]]:
        response = _reply(clients[i], conversation, "It ships tomorrow.", "race-key")
        return response.status_code, response.json()

    results = _together(8, post)

    assert [code for code, _ in results] == [201] * 8
    bodies = {body["id"] for _, body in results}
    replies = Message.objects.filter(conversation=conversation, direction="outbound")
    assert list(replies.values_list("pk", flat=True)) == list(bodies)
    assert IdempotencyKey.objects.get().response_body["id"] == bodies.pop()
