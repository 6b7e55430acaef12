"""``bench_seed``: the generated desk is what the app's own services would have written."""

from __future__ import annotations

import json
from datetime import date, timedelta
from io import StringIO

import pytest
from django.core.management import call_command
from django.core.management.base import CommandError
from django.db.models import Count, Sum
from django.test import Client
from rest_framework.test import APIClient

from tests.services import require_postgres

N = 300


@pytest.fixture
def seeded(tmp_path, transactional_db):
    require_postgres()
    manifest = tmp_path / "manifest.json"
    call_command(
        "bench_seed",
        "--conversations",
        str(N),
        "--manifest",
        str(manifest),
        stdout=StringIO(),
        stderr=StringIO(),
    )
    return json.loads(manifest.read_text())


def _api(token: str) -> APIClient:
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=f"Token {token}")
    return client


def test_seeded_desk_is_consistent_and_every_page_answers(seeded):
    from metrics.models import DailyFact
    from quality.models import QAReview
    from supportdesk.models import Team, User
    from surveys.models import Survey, SurveyResponse
    from tickets.identities import normalise_identity, normalise_phone
    from tickets.models import Channel, Contact, Conversation, Event, Identity, Message
    from tickets.services import conversation_recount_contacts

    m = seeded
    # The manifest's counts are the database's.
    assert m["conversations"] == N == Conversation.objects.count()
    assert m["messages"] == Message.objects.count()
    assert m["customers"] == Conversation.objects.values("customer").distinct().count()
    assert Team.objects.filter(name__startswith="Team ").count() == 20
    assert User.objects.filter(email__startswith="agent", role="agent").count() == 200
    assert User.objects.get(pk=m["agent000_id"]).email == "agent000@bench.example"
    assert User.objects.get(pk=m["agent000_id"]).check_password("bench-pass")
    assert Team.objects.get(pk=m["team01_id"]).name == "Team 01"
    for kind in ("email", "chat", "social", "phone"):
        channel = Channel.objects.get(pk=m["channels"][kind]["id"])
        assert (channel.kind, channel.team_id, channel.secret) == (
            kind,
            m["team01_id"],
            m["channels"][kind]["secret"],
        )

    # Contact counts: the app's own recount finds the same contacts, reasons and channels.
    snapshot = {}
    for conversation in Conversation.objects.order_by("pk"):
        snapshot[conversation.pk] = (
            conversation.contacts_counted,
            conversation.channels,
            list(
                conversation.contacts.order_by("started_at", "id").values_list(
                    "reason", "started_at"
                )
            ),
        )
    for conversation in Conversation.objects.order_by("pk"):
        conversation_recount_contacts(conversation=conversation)
    for conversation in Conversation.objects.order_by("pk"):
        assert snapshot[conversation.pk] == (
            conversation.contacts_counted,
            conversation.channels,
            list(
                conversation.contacts.order_by("started_at", "id").values_list(
                    "reason", "started_at"
                )
            ),
        ), conversation.pk
    assert Contact.objects.count() == Conversation.objects.aggregate(n=Sum("contacts_counted"))["n"]

    # Denormalised times and statuses agree with the messages and events.
    for conversation in Conversation.objects.annotate(n=Count("messages")):
        inbound = conversation.messages.filter(direction="inbound").order_by("sent_at")
        assert conversation.first_inbound_at == inbound.first().sent_at
        assert conversation.last_inbound_at == inbound.last().sent_at
        assert (
            conversation.last_activity_at >= conversation.messages.order_by("-sent_at")[0].sent_at
        )
        last_status = (
            Event.objects.filter(conversation=conversation, data__has_key="status_to")
            .order_by("occurred_at", "id")
            .last()
        )
        assert last_status.data["status_to"] == conversation.status
    # One survey per solve event, with the attribution of the solve.
    solves = Event.objects.filter(kind=Event.Kind.SOLVED)
    assert Survey.objects.count() == solves.count() > N // 2
    for survey in Survey.objects.select_related("event")[:100]:
        assert (survey.agent_id, survey.team_id, survey.solved_at, survey.channel_kind) == (
            survey.event.agent_id,
            survey.event.team_id,
            survey.event.occurred_at,
            survey.event.channel_kind,
        )
        if survey.status == Survey.Status.SENT:
            assert survey.identity.value == survey.email
            assert survey.expires_at == survey.sent_at + timedelta(days=7)
    sent = Survey.objects.filter(status=Survey.Status.SENT).count()
    assert 0.15 < SurveyResponse.objects.count() / sent < 0.45
    assert QAReview.objects.filter(state="submitted").exists()

    # Identities are stored as the app normalises them.
    for identity in Identity.objects.all():
        assert normalise_identity(identity.kind, identity.value) == identity.value

    # The heavy conversation and the heavy customer.
    heavy = Conversation.objects.get(pk=m["heavy_conversation_id"])
    assert heavy.messages.count() == 50
    assert set(heavy.messages.values_list("channel_kind", flat=True)) == {"email", "chat", "phone"}
    assert (heavy.team_id, heavy.assignee_id, heavy.customer_id) == (
        m["team01_id"],
        m["agent000_id"],
        m["heavy_customer_id"],
    )
    assert Conversation.objects.filter(customer_id=m["heavy_customer_id"]).count() == 21
    # The searched phone and email belong to a Team 01 customer.
    phone = Identity.objects.get(kind="phone", value=normalise_phone(m["search_phone"]))
    email = Identity.objects.get(kind="email", value=m["search_email"])
    assert phone.customer_id == email.customer_id
    searched = Conversation.objects.filter(customer_id=phone.customer_id)
    assert set(searched.values_list("team_id", flat=True)) == {m["team01_id"]}

    # Facts of the whole period: every solve of the window counted once.
    assert (
        DailyFact.objects.filter(metric="internal_fcr").aggregate(d=Sum("denominator"))["d"]
        == solves.count()
    )

    # Every page and API answers for the manifest's users.
    web = Client()
    web.force_login(User.objects.get(email="agent000@bench.example"))
    searched_id = searched.order_by("-last_activity_at")[0].pk
    for url in ("/", "/?view=mine", "/?channel=email", f"/conversations/{heavy.pk}/"):
        assert web.get(url).status_code == 200, url
    for q in (m["search_phone"], m["search_email"]):
        response = web.get("/", {"q": q})
        assert response.status_code == 200
        assert f"/conversations/{searched_id}/" in response.content.decode()
    agent = _api(m["tokens"]["agent000"])
    response = agent.get(f"/api/v1/customers/{m['heavy_customer_id']}/")
    assert response.status_code == 200
    assert agent.get("/api/v1/conversations/").status_code == 200
    last_day = date.fromisoformat(m["last_day"])
    period = {"from": str(last_day - timedelta(days=89)), "to": str(last_day + timedelta(days=1))}
    response = _api(m["tokens"]["manager01"]).get(
        "/api/v1/scorecards/", {**period, "group_by": "agent"}
    )
    assert response.status_code == 200
    assert len(response.json()["groups"]) >= 1
    response = _api(m["tokens"]["admin"]).get("/api/v1/scorecards/", {**period, "group_by": "desk"})
    assert response.status_code == 200
    assert response.json()["groups"][0]["metrics"]["internal_fcr"]["n"] > 0
    web.force_login(User.objects.get(email="manager01@bench.example"))
    assert web.get("/dashboard/").status_code == 200

    # A second run refuses the database that now holds conversations, and changes nothing.
    with pytest.raises(CommandError, match="already holds conversations"):
        call_command("bench_seed", "--conversations", "10", stdout=StringIO(), stderr=StringIO())
    assert Conversation.objects.count() == N
    assert Message.objects.count() == m["messages"]
