"""Staff and team administration: the pages call the services, every change is audited."""

from __future__ import annotations

import pytest
from django.contrib.sessions.models import Session
from django.test import Client

from supportdesk.models import ApiToken, AuditEntry, Team, User
from supportdesk.services import api_token_get_or_create
from tests.factories import TEST_PASSWORD

pytestmark = pytest.mark.django_db


def signed_in(user: User) -> Client:
    client = Client()
    assert (
        client.post("/login/", {"login": user.email, "password": TEST_PASSWORD}).status_code == 302
    )
    return client


def test_deactivation_stops_the_token_at_once_and_ends_every_session(admin_user, agent_a):
    token, _ = api_token_get_or_create(user=agent_a)
    api = Client(HTTP_AUTHORIZATION=f"Token {token.key}")
    browser_one, browser_two = signed_in(agent_a), signed_in(agent_a)
    assert api.get("/api/v1/conversations/").status_code == 200
    assert browser_one.get("/").status_code == 200
    own_sessions = [
        s.session_key
        for s in Session.objects.all()
        if s.get_decoded().get("_auth_user_id") == str(agent_a.pk)
    ]
    assert len(own_sessions) == 2
    admin = signed_in(admin_user)

    response = admin.post(f"/settings/staff/{agent_a.pk}/deactivate/")

    assert (response.status_code, response["Location"]) == (302, "/settings/staff/")
    assert api.get("/api/v1/conversations/").status_code == 401
    assert api.get("/api/v1/conversations/").json() == {"detail": "User inactive or deleted."}
    assert Session.objects.filter(session_key__in=own_sessions).count() == 0
    assert browser_one.get("/")["Location"].startswith("/login/")
    assert browser_two.get("/")["Location"].startswith("/login/")
    assert admin.get("/").status_code == 200  # the admin's own session is untouched
    entry = AuditEntry.objects.get(action=AuditEntry.Action.STAFF_DEACTIVATED)
    assert (entry.actor_email, entry.target_id, entry.details) == (
        admin_user.email,
        str(agent_a.pk),
        {"sessions_ended": 2},
    )
    # Nor can they sign in again, until reactivated (the token then works again).
    again = Client().post("/login/", {"login": agent_a.email, "password": TEST_PASSWORD})
    assert (again.status_code, again["Location"]) == (302, "/accounts/inactive/")
    assert not [
        s for s in Session.objects.all() if s.get_decoded().get("_auth_user_id") == str(agent_a.pk)
    ]
    assert admin.post(f"/settings/staff/{agent_a.pk}/reactivate/").status_code == 302
    assert api.get("/api/v1/conversations/").status_code == 200
    assert AuditEntry.objects.filter(action=AuditEntry.Action.STAFF_REACTIVATED).count() == 1


def test_an_admin_cannot_deactivate_themselves(admin_user):
    admin = signed_in(admin_user)
    response = admin.post(f"/settings/staff/{admin_user.pk}/deactivate/")
    assert response.status_code == 302
    admin_user.refresh_from_db()
    assert admin_user.is_active is True
    assert not AuditEntry.objects.filter(action=AuditEntry.Action.STAFF_DEACTIVATED).exists()


def test_role_and_teams_change_with_audit_entries(admin_user, agent_a, team_a):
    team_b = Team.objects.create(name="Team B")
    admin = signed_in(admin_user)
    response = admin.post(
        f"/settings/staff/{agent_a.pk}/", {"role": "manager", "teams": [team_b.pk]}
    )
    assert response.status_code == 302
    agent_a.refresh_from_db()
    assert agent_a.role == "manager"
    assert list(agent_a.teams.values_list("name", flat=True)) == ["Team B"]
    actions = sorted(
        AuditEntry.objects.filter(target_id=str(agent_a.pk), actor=admin_user).values_list(
            "action", flat=True
        )
    )
    assert actions == [AuditEntry.Action.STAFF_ROLE_CHANGED, AuditEntry.Action.STAFF_TEAMS_CHANGED]


def test_bad_input_is_a_400_and_nothing_changes(admin_user, agent_a, team_a):
    admin = signed_in(admin_user)
    before = AuditEntry.objects.count()
    assert admin.post(f"/settings/staff/{agent_a.pk}/", {"role": "king"}).status_code == 400
    assert (
        admin.post(
            "/settings/staff/invite/", {"email": "not-an-email", "role": "agent"}
        ).status_code
        == 400
    )
    assert (
        admin.post("/settings/staff/invite/", {"email": agent_a.email, "role": "agent"}).status_code
        == 400
    )
    assert admin.post("/settings/teams/", {"name": "team a"}).status_code == 400
    assert admin.post(f"/settings/teams/{team_a.pk}/", {"name": ""}).status_code == 400
    agent_a.refresh_from_db()
    assert agent_a.role == "agent"
    assert User.objects.count() == 2
    assert list(Team.objects.values_list("name", flat=True)) == ["Team A"]
    assert AuditEntry.objects.count() == before


def test_token_rotation_shows_the_new_key_once_and_the_old_one_stops(admin_user, agent_a):
    old, _ = api_token_get_or_create(user=agent_a)
    old_key = old.key
    admin = signed_in(admin_user)
    response = admin.post(f"/settings/staff/{agent_a.pk}/token/")
    new_key = ApiToken.objects.get(user=agent_a).key
    assert response.status_code == 200
    assert response["Cache-Control"] == "no-store"
    assert new_key != old_key
    assert new_key in response.content.decode()
    assert (
        Client(HTTP_AUTHORIZATION=f"Token {old_key}").get("/api/v1/conversations/").status_code
        == 401
    )
    assert (
        Client(HTTP_AUTHORIZATION=f"Token {new_key}").get("/api/v1/conversations/").status_code
        == 200
    )
    assert new_key not in admin.get(f"/settings/staff/{agent_a.pk}/").content.decode()


def test_teams_are_created_and_renamed_with_audit(admin_user, team_a):
    admin = signed_in(admin_user)
    assert admin.post("/settings/teams/", {"name": "  Billing  "}).status_code == 302
    billing = Team.objects.get(name="Billing")
    assert admin.post(f"/settings/teams/{billing.pk}/", {"name": "Payments"}).status_code == 302
    billing.refresh_from_db()
    assert billing.name == "Payments"
    assert list(
        AuditEntry.objects.filter(target_type="supportdesk.team")
        .order_by("id")
        .values_list("action", "summary")
    ) == [
        (AuditEntry.Action.TEAM_CREATED, "Team Billing created"),
        (AuditEntry.Action.TEAM_RENAMED, "Team Billing renamed Payments"),
    ]


def test_open_sign_up_is_closed(client):
    response = client.post(
        "/accounts/signup/", {"email": "x@y.example", "password1": "a long password 9"}
    )
    assert response.status_code == 200
    assert "Sign Up Closed" in response.content.decode()
    assert User.objects.count() == 0


def test_the_staff_list_is_three_queries_at_any_size(admin_user, team_a, django_assert_num_queries):
    from supportdesk.selectors import staff_list_for_admin
    from tests.factories import make_staff

    for size in (1, 5):
        for i in range(size):
            make_staff(f"s{size}-{i}@desk.example", teams=["Team A"])
        with django_assert_num_queries(2):
            rows = list(staff_list_for_admin())
        assert all(row.teams.all()[0].name == "Team A" for row in rows if row.role == "agent")
