"""Customer pages and API: directory, page, edit, screen pop, visibility, query counts."""

from __future__ import annotations

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext

from tests.conftest import client_for
from tests.factories import send_call, send_chat, send_email
from tests.helpers import web
from tickets.models import Conversation, Customer, Event, Organisation
from tickets.services import (
    conversation_solve,
    customer_create,
    identity_link,
    organisation_create_or_update,
)

pytestmark = pytest.mark.django_db


def _shared_customer(channels, channels_b):
    """Jane wrote to Team A (email) and to Team B (chat, same address)."""
    mine = send_email(channels["email"], sender="Jane Doe <jane@example.com>", subject="A refund")
    theirs = send_email(channels_b["email"], sender="jane@example.com", subject="B secret invoice")
    assert mine.customer_id == theirs.customer_id
    return Customer.objects.get(pk=mine.customer_id), mine, theirs


# --- Customer page ----------------------------------------------------------------------------------


def test_the_customer_page_lists_other_teams_conversations_without_their_messages(
    channels, channels_b, agent_a
):
    customer, mine, theirs = _shared_customer(channels, channels_b)

    response = web(agent_a).get(f"/customers/{customer.pk}/")

    assert response.status_code == 200
    page = response.content.decode()
    assert f'href="/conversations/{mine.conversation_id}/"' in page
    assert "A refund" in page
    # the other team's conversation: that it exists, its subject, team and status, no link, no id
    assert "B secret invoice" in page
    assert "Team B" in page
    assert f"/conversations/{theirs.conversation_id}/" not in page
    assert "Hello, my order #1234" not in page  # no message text of any conversation
    assert "2 conversations (1 in other teams)" in " ".join(page.split())


def test_the_conversation_panel_never_claims_a_first_conversation_that_is_not(
    channels, channels_b, agent_a
):
    customer, mine, theirs = _shared_customer(channels, channels_b)

    page = web(agent_a).get(f"/conversations/{mine.conversation_id}/").content.decode()

    assert "First conversation with this customer" not in page
    assert "B secret invoice" in page
    assert f"#{theirs.conversation_id} " not in page
    assert f"/conversations/{theirs.conversation_id}/" not in page
    assert f"/customers/{customer.pk}/" in page


def test_a_customer_of_another_team_only_is_404_on_page_and_api(channels_b, agent_a):
    theirs = send_email(channels_b["email"], sender="bo@example.com")

    assert web(agent_a).get(f"/customers/{theirs.customer_id}/").status_code == 404
    assert client_for(agent_a).get(f"/api/v1/customers/{theirs.customer_id}/").status_code == 404
    patched = client_for(agent_a).patch(
        f"/api/v1/customers/{theirs.customer_id}/", {"notes": "x"}, format="json"
    )
    assert patched.status_code == 404
    assert Customer.objects.get(pk=theirs.customer_id).notes == ""


def test_edit_the_customer_and_link_an_organisation(channels, agent_a):
    jane = send_email(channels["email"], sender="jane@example.com")

    response = web(agent_a).post(
        f"/customers/{jane.customer_id}/edit/",
        {"name": "Jane Doe", "language": "pt_BR", "organisation": "Northwind", "notes": "VIP"},
    )

    assert response.status_code == 302
    customer = Customer.objects.select_related("organisation").get(pk=jane.customer_id)
    assert (customer.name, customer.language, customer.organisation.name, customer.notes) == (
        "Jane Doe",
        "pt-br",
        "Northwind",
        "VIP",
    )
    event = Event.objects.filter(kind="customer.updated", customer=customer).get()
    assert event.actor == agent_a
    assert event.data["language"] == {"from": "", "to": "pt-br"}
    assert event.data["notes"] == {"changed": True}


def test_a_bad_language_is_refused_and_nothing_changes(channels, agent_a):
    jane = send_email(channels["email"], sender="Jane <jane@example.com>")

    response = web(agent_a).post(
        f"/customers/{jane.customer_id}/edit/", {"name": "Changed", "language": "English please"}
    )

    assert response.status_code == 400
    assert "is not a language tag" in response.content.decode()
    assert Customer.objects.get(pk=jane.customer_id).name == "Jane"


def test_an_organisation_domain_links_customers_by_email(channels, agent_a):
    # given: two customers at northwind.example, one elsewhere
    a = send_email(channels["email"], sender="ann@northwind.example")
    b = send_email(channels["email"], sender="bob@northwind.example")
    c = send_email(channels["email"], sender="cy@globex.example")

    # when: the admin sets the domain
    organisation, linked = organisation_create_or_update(
        name="Northwind", domain="Northwind.example"
    )

    # then: both are linked, and a new customer at the domain is linked as they arrive
    assert linked == 2
    assert list(
        Customer.objects.filter(organisation=organisation)
        .order_by("pk")
        .values_list("pk", flat=True)
    ) == [a.customer_id, b.customer_id]
    assert Customer.objects.get(pk=c.customer_id).organisation_id is None
    d = send_email(channels["email"], sender="dee@northwind.example")
    assert Customer.objects.get(pk=d.customer_id).organisation_id == organisation.pk
    # linking an address at the domain links an organisation-less customer too
    e = send_chat(channels["chat"], visitor_id="v-9", body="hi")
    identity_link(
        customer=Customer.objects.get(pk=e.customer_id),
        kind="email",
        value="eve@northwind.example",
        actor=agent_a,
    )
    assert Customer.objects.get(pk=e.customer_id).organisation_id == organisation.pk


def test_a_domain_taken_by_another_organisation_is_refused(db):
    organisation_create_or_update(name="Northwind", domain="northwind.example")

    from supportdesk.errors import Conflict

    with pytest.raises(Conflict, match="already belongs to Northwind"):
        organisation_create_or_update(name="Other", domain="northwind.example")
    assert Organisation.objects.count() == 1


# --- Screen pop -------------------------------------------------------------------------------------


@pytest.mark.parametrize("typed", ["(415) 555-0142", "+14155550142", "415.555.0142", "4155550142"])
def test_lookup_by_phone_in_any_format_lands_on_the_customer(channels, agent_a, typed):
    call = send_call(channels["phone"], from_number="+1 415 555 0142")

    response = web(agent_a).get("/lookup/", {"phone": typed})

    assert response.status_code == 302
    assert response["Location"] == f"/customers/{call.customer_id}/"


def test_lookup_of_an_unknown_number_opens_a_prefilled_new_customer_form(channels, agent_a):
    client = web(agent_a)

    response = client.get("/lookup/", {"phone": "(415) 555-0199"})

    assert response.status_code == 302
    assert response["Location"] == "/customers/new/?phone=%28415%29+555-0199"
    form = client.get(response["Location"]).content.decode()
    assert 'value="(415) 555-0199"' in form
    created = client.post(
        "/customers/new/", {"name": "Pat Caller", "phone": "(415) 555-0199", "email": ""}
    )
    customer = Customer.objects.get(name="Pat Caller")
    assert created["Location"] == f"/customers/{customer.pk}/"
    assert [(i.kind, i.value, i.verified) for i in customer.identities.all()] == [
        ("phone", "+14155550199", False)
    ]
    # the next lookup lands on them (a customer with no conversation yet is visible)
    assert client.get("/lookup/", {"phone": "415-555-0199"})["Location"] == (
        f"/customers/{customer.pk}/"
    )


def test_lookup_of_another_teams_customer_answers_like_an_unknown_number(channels_b, agent_a):
    send_call(channels_b["phone"], from_number="+1 415 555 0142")

    response = web(agent_a).get("/lookup/", {"phone": "(415) 555-0142"})

    assert response["Location"] == "/customers/new/?phone=%28415%29+555-0142"


def test_lookup_needs_a_value_and_a_login(client, agent_a):
    assert web(agent_a).get("/lookup/").status_code == 400
    anonymous = client.get("/lookup/", {"phone": "4155550142"})
    assert anonymous.status_code == 302
    assert anonymous["Location"].startswith("/login/")


# --- Directory and search ---------------------------------------------------------------------------


def test_the_directory_searches_by_name_identity_and_organisation(channels, channels_b, agent_a):
    organisation_create_or_update(name="Globex", domain="globex.example")
    send_email(channels["email"], sender="Ann Able <ann@globex.example>")
    send_call(channels["phone"], from_number="+1 415 555 0142")
    send_email(channels["email"], sender="Zed Zero <zed@example.com>")
    send_email(channels_b["email"], sender="Ann Bravo <annb@example.com>")  # Team B only

    api = client_for(agent_a)

    def names(q: str) -> list[str]:
        response = api.get("/api/v1/customers/", {"q": q})
        assert response.status_code == 200
        return [row["name"] or row["identities"][0]["value"] for row in response.json()["results"]]

    assert names("ann") == ["Ann Able"]
    assert names("globex") == ["Ann Able"]
    assert names("(415) 555-0142") == ["+14155550142"]
    assert names("555 0142") == ["+14155550142"]
    assert names("zed@example.com") == ["Zed Zero"]
    page = web(agent_a).get("/customers/", {"q": "ann"}).content.decode()
    assert "Ann Able" in page
    assert "Ann Bravo" not in page


def test_customer_api_patch_changes_only_what_is_given(channels, agent_a):
    jane = send_email(channels["email"], sender="Jane <jane@example.com>")
    api = client_for(agent_a)

    response = api.patch(
        f"/api/v1/customers/{jane.customer_id}/",
        {"organisation": "Initech", "notes": "Prefers phone"},
        format="json",
    )

    assert response.status_code == 200
    body = response.json()
    assert (body["name"], body["notes"], body["language"]) == ("Jane", "Prefers phone", "")
    assert body["organisation"]["name"] == "Initech"
    unlinked = api.patch(
        f"/api/v1/customers/{jane.customer_id}/", {"organisation": None}, format="json"
    )
    assert unlinked.json()["organisation"] is None


@pytest.mark.parametrize(
    "body",
    [
        {"language": "not a tag"},
        {"organisation": 999999},
        {"organisation": True},
        {"name": 5 * "x" * 100},
    ],
)
def test_customer_api_patch_refuses_bad_input_and_changes_nothing(channels, agent_a, body):
    jane = send_email(channels["email"], sender="Jane <jane@example.com>")

    response = client_for(agent_a).patch(
        f"/api/v1/customers/{jane.customer_id}/", body, format="json"
    )

    assert response.status_code == 400
    customer = Customer.objects.get(pk=jane.customer_id)
    assert (customer.name, customer.language, customer.organisation_id) == ("Jane", "", None)


def test_customer_api_shows_other_teams_conversations_without_ids(channels, channels_b, agent_a):
    customer, mine, _theirs = _shared_customer(channels, channels_b)

    body = client_for(agent_a).get(f"/api/v1/customers/{customer.pk}/").json()

    assert [c["id"] for c in body["conversations"]] == [mine.conversation_id]
    assert body["conversations_elsewhere"] == [
        {
            "subject": "B secret invoice",
            "status": "new",
            "team": "Team B",
            "channels": ["email"],
            "created_at": body["conversations_elsewhere"][0]["created_at"],
            "last_activity_at": body["conversations_elsewhere"][0]["last_activity_at"],
            "solved_at": None,
            "outcome": "no_survey",
        }
    ]


# --- Query counts -------------------------------------------------------------------------------------


def _customer_with(
    channels, channels_b, agent_a, *, email: str, conversations: int, identities: int
) -> int:
    customer = customer_create(actor=agent_a, name="Many", handles=[("email", email)])
    for n in range(identities):
        identity_link(
            customer=customer,
            kind="social",
            value=f"x:@{email.partition('@')[0]}{n}",
            actor=agent_a,
        )
    for n in range(conversations):
        channel = channels if n % 2 == 0 else channels_b
        result = send_email(channel["email"], sender=email, subject=f"Issue {n}")
        conversation = Conversation.objects.get(pk=result.conversation_id)
        if n % 3 == 0:
            conversation_solve(conversation=conversation, actor=agent_a)
    return customer.pk


def _queries(client, url: str) -> int:
    with CaptureQueriesContext(connection) as captured:
        assert client.get(url).status_code == 200
    return len(captured)


def test_the_customer_page_runs_the_same_queries_whatever_the_customer_has(
    channels, channels_b, agent_a
):
    client = web(agent_a)
    small = _customer_with(
        channels, channels_b, agent_a, email="small@example.com", conversations=2, identities=1
    )
    large = _customer_with(
        channels, channels_b, agent_a, email="large@example.com", conversations=12, identities=6
    )

    # session, user; the customer; visibility (has a visible one: exists); identities;
    # conversations (open first, with the visible flag); merges; verdicts (surveys: latest
    # surveys, their answers when any); the user's teams (call form); organisations (picker);
    # the top bar's unread notifications; the customer.page panel (quality: ideas through
    # visible mentions, cancellations). Visibility reads the user's teams in a subquery.
    counts = (_queries(client, f"/customers/{small}/"), _queries(client, f"/customers/{large}/"))
    assert counts == (13, 13)


def test_the_directory_runs_the_same_queries_whatever_the_page_holds(channels, agent_a):
    client = web(agent_a)
    send_email(channels["email"], sender="one@example.com")
    few = _queries(client, "/customers/")
    for n in range(20):
        send_email(channels["email"], sender=f"c{n}@example.com")
        identity_link(
            customer=Customer.objects.get(identities__value=f"c{n}@example.com"),
            kind="phone",
            value=f"+1212555{n:04d}",
            actor=agent_a,
        )

    # session, user, the page's count, unread notifications, the customers (with organisation
    # and conversation counts; the user's teams a subquery), their identities (one prefetch).
    assert (few, _queries(client, "/customers/")) == (6, 6)


def test_the_admin_sets_a_domain_and_links_customers(channels, admin_user):
    send_email(channels["email"], sender="ann@initech.example")
    client = web(admin_user)

    response = client.post(
        "/admin/tickets/organisation/add/",
        {"name": "Initech", "domain": "@Initech.example", "notes": ""},
    )

    assert response.status_code == 302
    organisation = Organisation.objects.get()
    assert (organisation.name, organisation.domain) == ("Initech", "initech.example")
    assert Customer.objects.get().organisation == organisation
    clash = client.post(
        "/admin/tickets/organisation/add/", {"name": "Other", "domain": "initech.example"}
    )
    assert clash.status_code == 200  # the form again, with the error
    assert Organisation.objects.count() == 1


def test_creating_a_customer_with_another_teams_handle_is_refused_without_naming_them(
    channels_b, agent_a
):
    theirs = send_email(channels_b["email"], sender="Bo Secret <bo@example.com>")
    before = Customer.objects.count()

    response = web(agent_a).post(
        "/customers/new/", {"name": "Bo", "email": "BO@example.com", "phone": ""}
    )

    assert response.status_code == 409
    page = response.content.decode()
    assert "belongs to a customer of a team you are not in" in page
    assert "Bo Secret" not in page
    assert f"/customers/{theirs.customer_id}/" not in page
    assert Customer.objects.count() == before


def test_creating_a_customer_with_a_visible_handle_goes_to_them(channels, agent_a):
    jane = send_email(channels["email"], sender="Jane <jane@example.com>")

    response = web(agent_a).post("/customers/new/", {"name": "", "email": "jane@example.com"})

    assert response["Location"] == f"/customers/{jane.customer_id}/"
    assert Customer.objects.count() == 1


def test_a_new_customer_form_without_any_handle_or_name_is_400(agent_a):
    response = web(agent_a).post("/customers/new/", {"name": "", "email": "", "phone": ""})

    assert response.status_code == 400
    assert Customer.objects.count() == 0


def test_log_a_call_from_the_customer_page_on_a_new_conversation(channels, agent_a):
    customer = customer_create(actor=agent_a, name="Pat", handles=[("phone", "(415) 555-0177")])
    client = web(agent_a)

    response = client.post(
        f"/customers/{customer.pk}/calls/",
        {
            "direction": "inbound",
            "conversation": "",
            "started_at": "",
            "wait_seconds": "0",
            "talk_seconds": "90",
            "hold_seconds": "0",
            "ended_by": "agent",
            "notes": "Wants a quote for 20 seats",
        },
    )

    conversation = Conversation.objects.get(customer=customer)
    assert response["Location"] == f"/conversations/{conversation.pk}/"
    assert (conversation.subject, conversation.team.name, conversation.contacts_counted) == (
        "Wants a quote for 20 seats",
        "Team A",
        1,
    )
    assert conversation.assignee == agent_a
    assert Event.objects.filter(
        conversation=conversation, kind="conversation.created", data__by="agent"
    ).exists()


def test_the_customer_page_shows_ideas_and_cancellations_of_visible_conversations(
    channels, channels_b, agent_a, agent_b
):
    from quality.models import CancellationReason
    from quality.services import cancellation_record, idea_create
    from tickets.models import Message

    customer, mine, theirs = _shared_customer(channels, channels_b)
    reason = CancellationReason.objects.create(name="Too expensive")
    idea_create(message=Message.objects.get(pk=mine.message_id), actor=agent_a, title="Dark mode")
    idea_create(
        message=Message.objects.get(pk=theirs.message_id), actor=agent_b, title="Secret B idea"
    )
    cancellation_record(
        conversation=Conversation.objects.get(pk=mine.conversation_id),
        actor=agent_a,
        reason=reason,
        note="Moving to a cheaper plan",
    )
    cancellation_record(
        conversation=Conversation.objects.get(pk=theirs.conversation_id),
        actor=agent_b,
        reason=reason,
        note="B secret note",
    )

    page = " ".join(web(agent_a).get(f"/customers/{customer.pk}/").content.decode().split())

    assert "Dark mode" in page
    assert "Moving to a cheaper plan" in page
    assert "Secret B idea" not in page
    assert "B secret note" not in page
