"""Team scoping: lists, search, counters, exports and dashboards never show another team's.

Team B's objects carry the marker ``MARK_B`` in every free text (customer names and addresses,
subjects, bodies, HTML, attachments, survey comments, idea titles and quotes, cancellation
notes). Nothing a Team A agent or manager can fetch may contain it; Team A's marker shows where
the page lists Team A's objects, so the check is not vacuous. Filters naming Team B's objects
give exactly what the caller could see anyway (nothing of B), and unknown or ordering parameters
are ignored with exactly the unfiltered result.
"""

from __future__ import annotations

from datetime import timedelta
from typing import Any
from urllib.parse import unquote

import pytest
from django.test import Client
from django.utils import timezone

from tests.conftest import client_for
from tests.security.world import MARK_A, MARK_B, World, build_world, marks

pytestmark = pytest.mark.django_db


@pytest.fixture
def world(settings) -> World:
    from metrics.services import facts_compute

    settings.RATELIMIT_ENABLE = False
    world = build_world()
    today = timezone.localdate()
    facts_compute(day_from=today - timedelta(days=7), day_to=today + timedelta(days=2))
    return world


def _page(user: Any) -> Client:
    client = Client()
    client.force_login(user)
    return client


def _body(response: Any) -> str:
    if hasattr(response, "streaming_content"):
        return b"".join(response.streaming_content).decode()
    return response.content.decode()


def _staff_urls(world: World) -> list[str]:
    a, b = world.a, world.b
    today = timezone.localdate()
    period = f"from={today - timedelta(days=7)}&to={today + timedelta(days=2)}"
    urls = [
        "/notifications/",
        "/surveys/responses/",
        f"/surveys/responses/?team={b.team.pk}",
        f"/surveys/responses/?agent={b.agent.pk}",
        "/surveys/me/",
        "/qa/",
        "/qa/calibrations/",
        "/ideas/",
        f"/ideas/?q={MARK_B}",
        "/ideas/?q=quote",
        f"/ideas/log/{a.message.pk}/",
        f"/ideas/log/{a.message.pk}/?q={MARK_B}",
        "/checkins/",
        "/checkins/?state=sent",
        "/pulse/",
        f"/conversations/{a.conversation.pk}/",
        f"/conversations/{a.solved.pk}/",
        f"/conversations/{a.conversation.pk}/cancellation/",
        f"/customers/{a.customer.pk}/merge/?conversation={a.conversation.pk}"
        f"&handle={MARK_B}@example.com",
        f"/dashboard/agents/{a.agent.pk}/?period=custom&{period}",
        f"/api/v1/customers/{a.customer.pk}/",
        f"/api/v1/conversations/{a.conversation.pk}/",
        f"/api/v1/scorecards/?{period}&group_by=agent",
    ]
    for view in ("open", "mine", "unassigned", "pending", "reopened", "solved"):
        urls.append(f"/?view={view}")
    for query in (
        f"q={MARK_B}",
        f"q={MARK_B}@example.com",
        f"q=%23{b.conversation.pk}",
        f"team={b.team.pk}",
        f"assignee={b.agent.pk}",
    ):
        urls.append(f"/?{query}")
    for query in (
        "",
        f"team={b.team.pk}",
        f"customer={b.customer.pk}",
        f"assignee={b.agent.email}",
        f"assignee={b.agent.pk}",
        "ordering=assignee__password",
        f"customer__identities__value={MARK_B}@example.com",
        f"search={MARK_B}",
    ):
        urls.append("/api/v1/conversations/" + (f"?{query}" if query else ""))
    for query in ("", f"team={b.team.pk}", f"conversation={b.solved.pk}", f"agent={b.agent.pk}"):
        urls.append("/api/v1/surveys/responses/" + (f"?{query}" if query else ""))
    return urls


def _manager_urls(world: World) -> list[str]:
    today = timezone.localdate()
    period = f"period=custom&from={today - timedelta(days=7)}&to={today + timedelta(days=2)}"
    urls = [
        "/surveys/follow-ups/",
        "/surveys/follow-ups/?status=done",
        f"/dashboard/?{period}",
        f"/dashboard/integrity/?{period}",
        "/qa/disagreements/",
        "/cancellations/",
        f"/api/v1/scorecards/?{period.removeprefix('period=custom&')}&group_by=team",
        f"/api/v1/scorecards/?{period.removeprefix('period=custom&')}&group_by=desk",
    ]
    for group_by in ("desk", "team", "agent", "channel"):
        urls.append(f"/dashboard/export.csv?{period}&group_by={group_by}")
    for metric in ("resolution_rate", "reopen_rate", "csat", "survey_response_rate"):
        urls.append(f"/dashboard/drill/?{period}&metric={metric}&all=1")
        urls.append(f"/dashboard/drill.csv?{period}&metric={metric}&all=1")
    return urls


def test_nothing_of_team_b_reaches_team_a(world):
    users = world.users
    fetched: dict[str, dict[str, tuple[int, str]]] = {}
    for role in ("agent_a", "manager_a"):
        client = _page(users[role])
        api = client_for(users[role])
        urls = _staff_urls(world) + (_manager_urls(world) if role == "manager_a" else [])
        fetched[role] = {}
        for url in urls:
            c = api if url.startswith("/api/") else client
            response = c.get(url, follow=url.startswith("/customers/"))
            fetched[role][url] = (response.status_code, _body(response))

    # A search for Team B's marker echoes the query back; the texts of B's objects must not show.
    leaks = [
        f"{role} {url} ({status}): {text!r}"
        for role, pages in fetched.items()
        for url, (status, body) in pages.items()
        for text in marks(MARK_B)
        if text in body.lower() and text not in unquote(url).lower()
    ]
    errors = [
        f"{role} {url} ({status})"
        for role, pages in fetched.items()
        for url, (status, _body_) in pages.items()
        if status != 200
    ]
    assert (leaks, errors) == ([], [])
    # The check is not vacuous: Team A's own content is on the pages that list it.
    for role in ("agent_a", "manager_a"):
        for url in ("/?view=open", "/surveys/responses/", "/ideas/", "/api/v1/conversations/"):
            assert MARK_A in fetched[role][url][1].lower(), (role, url)
    for url in ("/cancellations/", "/surveys/follow-ups/"):
        assert MARK_A in fetched["manager_a"][url][1].lower() or url == "/cancellations/"


def _api_ids(response: Any) -> list[int]:
    assert response.status_code == 200, response.content
    return [row["id"] for row in response.json()["results"]]


def test_filters_naming_team_b_give_exactly_team_a_results(world):
    a, b = world.a, world.b
    api = client_for(world.users["agent_a"])
    mine = _api_ids(api.get("/api/v1/conversations/"))
    # Exactly Team A's conversations (the open one, the merged-in chat, the solved one).
    from tickets.models import Conversation

    assert sorted(mine) == sorted(
        Conversation.objects.filter(team=a.team).values_list("pk", flat=True)
    )
    assert len(mine) == 3
    assert _api_ids(api.get(f"/api/v1/conversations/?team={b.team.pk}")) == []
    assert _api_ids(api.get(f"/api/v1/conversations/?customer={b.customer.pk}")) == []
    assert _api_ids(api.get(f"/api/v1/conversations/?assignee={b.agent.pk}")) == []
    # Parameters outside the allow list are ignored: exactly the unfiltered list.
    for ignored in (
        "ordering=assignee__password",
        "ordering=-customer__identities__value",
        f"customer__identities__value={MARK_B}@example.com",
        "team__name=Team B",
        f"search={MARK_B}",
        "fields=assignee__password",
    ):
        assert _api_ids(api.get(f"/api/v1/conversations/?{ignored}")) == mine, ignored
    responses = _api_ids(api.get("/api/v1/surveys/responses/"))
    assert responses == [a.survey.responses.get().pk]
    assert _api_ids(api.get(f"/api/v1/surveys/responses/?team={b.team.pk}")) == []
    assert _api_ids(api.get(f"/api/v1/surveys/responses/?conversation={b.solved.pk}")) == []
    assert _api_ids(api.get("/api/v1/surveys/responses/?ordering=-customer__name")) == responses


def test_queue_counters_are_team_a_numbers_exactly(world):
    from tickets.models import Conversation
    from tickets.selectors import queue_page_for_user

    a, b = world.a, world.b
    admin = world.users["admin"]
    team_a_only = queue_page_for_user(user=admin, team=a.team.pk).counts
    unrouted = queue_page_for_user(user=admin, search="Unrouted zqnone").counts
    assert team_a_only["open"] == 3

    def counts(role: str, query: str = "") -> dict[str, int]:
        response = _page(world.users[role]).get(f"/?{query}")
        assert response.status_code == 200
        return {view.key: n for view, n in response.context["views"]}

    def mine(role: str) -> int:
        user = world.users[role]
        return Conversation.objects.filter(
            assignee=user, status__in=Conversation.ACTIVE_STATUSES
        ).count()

    # "Mine" is the caller's own; every other view is a count of the team's conversations.
    assert counts("agent_a") == {**team_a_only, "mine": mine("agent_a")}
    # Managers also see the unrouted pool (docs/security/authz.md), nothing of Team B.
    assert counts("manager_a") == {
        **{k: team_a_only[k] + unrouted[k] for k in team_a_only},
        "mine": mine("manager_a"),
    }
    zero = dict.fromkeys(team_a_only, 0)
    assert counts("agent_a", f"team={b.team.pk}") == zero
    assert counts("agent_a", f"assignee={b.agent.pk}") == zero
    assert counts("agent_a", f"q={MARK_B}") == zero
    assert counts("agent_a", f"q=%23{b.conversation.pk}") == zero


def test_unrouted_conversations_follow_the_triage_rule(world):
    """No team: managers and admins see it; an agent of a team does not, unless it is assigned
    to them; an agent in no team (a desk without teams) does."""
    from tests.factories import make_staff
    from tickets.services import conversation_assign

    url = f"/api/v1/conversations/{world.unrouted.pk}/"
    loner = make_staff("lee@desk.example", role="agent", teams=[])
    status = {
        who: client_for(user).get(url).status_code
        for who, user in {**world.users, "loner": loner}.items()
    }
    assert status == {
        "agent_a": 404,
        "agent_b": 404,
        "manager_a": 200,
        "manager_b": 200,
        "admin": 200,
        "loner": 200,
    }

    conversation_assign(
        conversation=world.unrouted, actor=world.users["admin"], agent=world.users["agent_a"]
    )

    assert client_for(world.users["agent_a"]).get(url).status_code == 200
    assert client_for(world.users["agent_b"]).get(url).status_code == 404
