"""The audit log: merges, staff roles and teams, secrets and tokens, settings, recomputes, targets.

Each entry is written by ``supportdesk.services.audit_record`` inside the transaction of the change;
a refused or rolled-back change writes none. Read-only in the admin; a page for admins and managers.
"""

from __future__ import annotations

from datetime import date
from io import StringIO

import pytest
from django.core.exceptions import ValidationError
from django.core.management import call_command
from django.db import transaction
from django.test import Client

from metrics.services import recompute_job_create, target_set
from supportdesk.errors import ApplicationError
from supportdesk.models import ApiToken, AuditEntry
from supportdesk.services import audit_record, staff_create_or_update, staff_token_rotate
from surveys.services import survey_settings_update
from tests.conftest import client_for
from tests.factories import make_staff, send_email
from tests.helpers import web
from tickets.models import Channel, CustomerMerge
from tickets.services import channel_create_or_update, channel_rotate_secret

pytestmark = pytest.mark.django_db


def mark() -> int:
    last = AuditEntry.objects.order_by("-id").first()
    return last.pk if last else 0


def since(start: int) -> list[tuple[str, str, str, str]]:
    return [
        (e.action, e.actor_email, e.target_type, e.summary)
        for e in AuditEntry.objects.filter(pk__gt=start).order_by("id")
    ]


# --- Customer merges ------------------------------------------------------------------------------


def test_merge_and_undo_through_the_api_are_audited_with_address_and_request_id(
    api_a, agent_a, channels
):
    jane = send_email(channels["email"])
    john = send_email(channels["email"], sender="John <john@example.com>")
    start = mark()

    response = api_a.post(
        f"/api/v1/customers/{jane.customer_id}/merge/", {"other": john.customer_id}, format="json"
    )
    merge = CustomerMerge.objects.get()
    undo = api_a.post(f"/api/v1/merges/{merge.pk}/undo/")

    assert (response.status_code, undo.status_code) == (201, 200)
    assert since(start) == [
        (
            "customer.merged",
            "alice@desk.example",
            "tickets.customer",
            f"Customer #{john.customer_id} merged into #{jane.customer_id}",
        ),
        (
            "customer.merge_undone",
            "alice@desk.example",
            "tickets.customer",
            f"Merge of customer #{john.customer_id} into #{jane.customer_id} undone",
        ),
    ]
    merged, undone = AuditEntry.objects.filter(pk__gt=start).order_by("id")
    assert merged.target_id == str(jane.customer_id)
    assert merged.actor == agent_a
    assert merged.ip == "127.0.0.1"
    assert merged.request_id == response["X-Request-ID"]
    assert undone.request_id == undo["X-Request-ID"]
    assert merged.details == {
        "merge": merge.pk,
        "merged": john.customer_id,
        "identity_ids": merge.identity_ids,
        "conversation_ids": [john.conversation_id],
    }


def test_a_refused_merge_writes_no_entry(api_a, channels):
    jane = send_email(channels["email"])
    start = mark()

    response = api_a.post(
        f"/api/v1/customers/{jane.customer_id}/merge/", {"other": jane.customer_id}, format="json"
    )

    assert response.status_code == 400
    assert since(start) == []


def test_an_entry_rolls_back_with_its_change(channels):
    jane = send_email(channels["email"])
    start = mark()

    def change_that_fails() -> None:
        with transaction.atomic():
            audit_record(
                action=AuditEntry.Action.CUSTOMER_MERGED,
                target=("tickets.customer", jane.customer_id),
                summary="never committed",
            )
            raise RuntimeError("the change fails after the entry was written")

    with pytest.raises(RuntimeError):
        change_that_fails()

    assert since(start) == []


# --- Staff: roles, teams, access, tokens ------------------------------------------------------------


def test_create_staff_command_audits_creation_role_team_and_token_changes(team_a):
    start = mark()
    out = StringIO()

    call_command(
        "create_staff", "sam@desk.example", "--role", "agent", "--team", "Team A", stdout=out
    )
    call_command(
        "create_staff", "sam@desk.example", "--role", "manager", "--team", "Team B", stdout=out
    )
    call_command("create_staff", "sam@desk.example", stdout=out)  # no change: no entry
    old_key = ApiToken.objects.get(user__email="sam@desk.example").key
    call_command("create_staff", "sam@desk.example", "--rotate-token", stdout=out)

    new_key = ApiToken.objects.get(user__email="sam@desk.example").key
    assert new_key != old_key
    assert out.getvalue().splitlines()[-1] == new_key
    assert since(start) == [
        ("staff.created", "", "supportdesk.user", "sam@desk.example created as agent"),
        ("api_token.created", "", "supportdesk.user", "API token of sam@desk.example created"),
        ("staff.role_changed", "", "supportdesk.user", "sam@desk.example: role agent -> manager"),
        ("staff.teams_changed", "", "supportdesk.user", "sam@desk.example: teams +Team B"),
        ("api_token.rotated", "", "supportdesk.user", "API token of sam@desk.example rotated"),
    ]
    created = AuditEntry.objects.filter(pk__gt=start).order_by("id").first()
    assert created.details == {
        "role": "agent",
        "teams": ["Team A"],
        "is_active": True,
        "is_staff": False,
        "is_superuser": False,
    }
    assert created.ip is None  # a command, not a request


def test_an_invalid_role_changes_nothing_and_writes_no_entry(agent_a):
    start = mark()

    with pytest.raises(ValueError, match="role must be one of"):
        staff_create_or_update(email=agent_a.email, role="owner")

    assert since(start) == []
    agent_a.refresh_from_db()
    assert agent_a.role == "agent"


def test_token_rotation_is_audited_and_the_old_token_stops_working(agent_a, admin_user):
    old = client_for(agent_a)
    start = mark()

    token = staff_token_rotate(user=agent_a, actor=admin_user)

    assert old.get("/api/v1/conversations/").status_code == 401
    assert ApiToken.objects.get(user=agent_a) == token
    assert since(start) == [
        (
            "api_token.rotated",
            "root@desk.example",
            "supportdesk.user",
            "API token of alice@desk.example rotated",
        )
    ]


def test_role_and_team_changes_in_the_django_admin_are_audited(admin_user, agent_a, team_a, team_b):
    start = mark()

    response = web(admin_user).post(
        f"/admin/supportdesk/user/{agent_a.pk}/change/",
        {
            "email": agent_a.email,
            "full_name": agent_a.full_name,
            "role": "manager",
            "teams": [team_b.pk],
            "is_active": "on",
            "last_login_0": "",
            "last_login_1": "",
            "date_joined_0": "2026-01-01",
            "date_joined_1": "00:00:00",
        },
    )

    assert response.status_code == 302, response.content.decode()[:2000]
    assert since(start) == [
        (
            "staff.role_changed",
            "root@desk.example",
            "supportdesk.user",
            "alice@desk.example: role agent -> manager",
        ),
        (
            "staff.teams_changed",
            "root@desk.example",
            "supportdesk.user",
            "alice@desk.example: teams +Team B -Team A",
        ),
    ]


# --- Channels, survey settings, recomputes, targets -------------------------------------------------


def test_channel_creation_and_secret_rotation_are_audited(team_a):
    start = mark()
    out = StringIO()

    call_command("create_channel", "chat", "Web chat", "--team", "Team A", stdout=out)
    first = Channel.objects.get(name="Web chat").secret
    call_command("create_channel", "chat", "Web chat", stdout=out)  # kept: no entry
    call_command("create_channel", "chat", "Web chat", "--rotate-secret", stdout=out)

    channel = Channel.objects.get(name="Web chat")
    assert channel.secret != first
    assert out.getvalue().splitlines()[-1] == channel.secret
    assert since(start) == [
        (
            "channel.secret_created",
            "",
            "tickets.channel",
            "Channel 'Web chat' (chat) created with a new secret",
        ),
        ("channel.secret_rotated", "", "tickets.channel", "Secret of channel 'Web chat' rotated"),
    ]
    assert {e.team for e in AuditEntry.objects.filter(pk__gt=start)} == {team_a}


def test_changing_an_existing_channel_is_audited_with_before_and_after(team_a, team_b, admin_user):
    channel_create_or_update(kind="chat", name="Web chat", team_name="Team A")
    start = mark()

    channel_create_or_update(kind="chat", name="Web chat", ingest_mode="async", actor=admin_user)
    channel_create_or_update(kind="chat", name="Web chat", ingest_mode="async")  # same: no entry
    channel_create_or_update(kind="chat", name="Web chat", team_name="Team B", ingest_mode="sync")

    assert since(start) == [
        (
            "channel.changed",
            "root@desk.example",
            "tickets.channel",
            "Settings of channel 'Web chat' changed: ingest_mode",
        ),
        (
            "channel.changed",
            "",
            "tickets.channel",
            "Settings of channel 'Web chat' changed: team, ingest_mode",
        ),
    ]
    entries = AuditEntry.objects.filter(pk__gt=start).order_by("id")
    assert [e.details for e in entries] == [
        {
            "changed": ["ingest_mode"],
            "before": {"ingest_mode": "sync"},
            "after": {"ingest_mode": "async"},
        },
        {
            "changed": ["team", "ingest_mode"],
            "before": {"team": "Team A", "ingest_mode": "async"},
            "after": {"team": "Team B", "ingest_mode": "sync"},
        },
    ]


def test_a_refused_channel_change_writes_no_entry_and_changes_nothing(team_a):
    channel = channel_create_or_update(kind="chat", name="Web chat", team_name="Team A")
    start = mark()

    with pytest.raises(ApplicationError):
        channel_create_or_update(kind="chat", name="Web chat", ingest_mode="later")

    assert since(start) == []
    channel.refresh_from_db()
    assert channel.ingest_mode == "sync"


def test_rotated_channel_secret_refuses_the_old_one(channels, admin_user):
    old = channels["chat"].secret
    channel_rotate_secret(channel=channels["chat"], actor=admin_user)

    response = Client().post(
        "/api/v1/inbound/chat/",
        {"external_id": "c-1", "session_id": "s", "visitor_id": "v", "body": "hi"},
        content_type="application/json",
        HTTP_X_CHANNEL_TOKEN=old,
    )
    assert response.status_code == 401


def test_survey_settings_changes_are_audited_and_invalid_ones_write_nothing(admin_user):
    start = mark()

    survey_settings_update(actor=admin_user, delay_minutes=5, channels=["email", "chat"])
    survey_settings_update(actor=admin_user, delay_minutes=5)  # unchanged: no entry
    with pytest.raises(ValidationError):
        survey_settings_update(actor=admin_user, channels=["fax"])

    assert since(start) == [
        (
            "survey_settings.changed",
            "root@desk.example",
            "surveys.surveysettings",
            "Survey settings: delay_minutes None -> 5, channels [] -> ['email', 'chat']",
        )
    ]
    entry = AuditEntry.objects.get(pk__gt=start)
    assert entry.details == {
        # None and [] stand for "the environment's default" (SURVEY_DELAY_MINUTES...).
        "delay_minutes": {"from": None, "to": 5},
        "channels": {"from": [], "to": ["email", "chat"]},
    }


def test_recompute_requests_are_audited_but_not_the_nightly_run(manager_a):
    start = mark()

    job = recompute_job_create(
        day_from=date(2026, 11, 2), day_to=date(2026, 11, 9), requested_by=manager_a
    )
    recompute_job_create(day_from=date(2026, 11, 2), day_to=date(2026, 11, 3), requested_by=None)

    assert since(start) == [
        (
            "scorecards.recompute",
            "mia@desk.example",
            "metrics.recomputejob",
            "Scorecards recompute of [2026-11-02, 2026-11-09) requested",
        )
    ]
    assert AuditEntry.objects.get(pk__gt=start).target_id == str(job.pk)


def test_target_changes_are_audited_and_refused_ones_are_not(manager_a, agent_a, team_a):
    start = mark()

    target_set(metric="resolution_rate", team=team_a, value=0.8, actor=manager_a)
    target_set(metric="resolution_rate", team=team_a, value=None, actor=manager_a)
    with pytest.raises(Exception, match="Targets can be set on outcome"):
        target_set(metric="first_response_time", team=team_a, value=1, actor=manager_a)

    assert [s[3] for s in since(start)] == [
        "Target resolution_rate of Team A: None -> 0.8",
        "Target resolution_rate of Team A: 0.8 -> None",
    ]


# --- Who sees the log -------------------------------------------------------------------------------


def test_the_audit_log_is_read_only_in_the_admin(admin_user, agent_a):
    entry = AuditEntry.objects.filter(action="staff.created").first()
    client = web(admin_user)

    assert client.get("/admin/supportdesk/auditentry/").status_code == 200
    assert client.get(f"/admin/supportdesk/auditentry/{entry.pk}/change/").status_code == 200
    assert client.get("/admin/supportdesk/auditentry/add/").status_code == 403
    delete = client.post(f"/admin/supportdesk/auditentry/{entry.pk}/delete/", {"post": "yes"})
    assert delete.status_code == 403
    assert AuditEntry.objects.filter(pk=entry.pk).exists()


def test_audit_page_admins_see_all_managers_their_teams_agents_nothing(
    admin_user, manager_a, agent_a, team_a, team_b
):
    channel_create_or_update(kind="chat", name="A chat", team_name="Team A", actor=admin_user)
    channel_create_or_update(kind="chat", name="B chat", team_name="Team B", actor=admin_user)

    admin_page = web(admin_user).get("/audit/").content.decode()
    manager_page = web(manager_a).get("/audit/").content.decode()
    agent = web(agent_a).get("/audit/")

    assert "Channel &#x27;A chat&#x27; (chat) created" in admin_page
    assert "Channel &#x27;B chat&#x27; (chat) created" in admin_page
    assert "Channel &#x27;A chat&#x27; (chat) created" in manager_page
    assert "B chat" not in manager_page
    assert agent.status_code == 403
    filtered = web(admin_user).get("/audit/?action=staff.created").content.decode()
    assert "B chat" not in filtered
    assert "root@desk.example created as admin" in filtered


def test_make_staff_fixture_leaves_the_expected_entries(db):
    start = mark()
    make_staff("new@desk.example", role="admin", teams=[])
    assert [s[0] for s in since(start)] == ["staff.created", "api_token.created"]


def test_staff_notification_email_is_capped_per_hour_the_rest_stays_in_the_workspace(
    agent_a, settings, django_capture_on_commit_callbacks
):
    from django.core import mail

    from supportdesk.models import Notification
    from supportdesk.services import notification_create

    settings.STAFF_NOTIFICATION_EMAILS_PER_HOUR = 3
    mail.outbox.clear()

    with django_capture_on_commit_callbacks(execute=True):
        for i in range(5):
            notification_create(
                recipient=agent_a, kind="qa.sample", title=f"Note {i}", url="/qa/", email=True
            )

    assert [m.subject for m in mail.outbox] == ["Note 0", "Note 1", "Note 2"]
    assert Notification.objects.filter(recipient=agent_a).count() == 5
