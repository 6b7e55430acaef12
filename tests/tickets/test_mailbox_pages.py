"""Mailbox admin pages and API: health shown, credentials write-only, OAuth2 connect flow."""

from __future__ import annotations

import urllib.parse
from typing import Any

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext

from supportdesk.models import AuditEntry
from supportdesk.sealing import unseal
from tests.conftest import client_for
from tickets.models import Channel, Mailbox
from tickets.services import channel_create_or_update, mailbox_save


def make_mailbox(name: str, *, password: str = "pw-secret-1") -> Mailbox:
    channel = channel_create_or_update(
        kind="email", name=name, team_name="Team A", address=f"{name.lower()}@desk.example"
    )
    return mailbox_save(
        channel=channel,
        values={"imap_host": "imap.desk.example", "username": f"{name.lower()}@desk.example"},
        credentials={"password": password, "smtp_password": "smtp-secret-2"},
    )


FORM = {
    "channel_name": "Support",
    "address": "help@desk.example",
    "imap_host": "imap.desk.example",
    "imap_port": "993",
    "imap_security": "tls",
    "username": "help@desk.example",
    "auth": "password",
    "password": "typed-password-77",
    "folder": "INBOX",
    "after_import": "seen",
    "smtp_port": "587",
    "smtp_security": "starttls",
}


def test_admin_connects_a_mailbox_and_the_password_is_never_shown_again(client, admin_user, team_a):
    client.force_login(admin_user)
    response = client.post("/mailboxes/new/", {**FORM, "team": team_a.pk})

    mailbox = Mailbox.objects.select_related("channel__team").get()
    assert response.status_code == 302
    assert response["Location"] == f"/mailboxes/{mailbox.pk}/"
    assert (mailbox.channel.name, mailbox.channel.address, mailbox.channel.team) == (
        "Support",
        "help@desk.example",
        team_a,
    )
    assert (mailbox.after_import, unseal(mailbox.password_sealed)) == ("seen", "typed-password-77")
    page = client.get(f"/mailboxes/{mailbox.pk}/").content.decode()
    assert "typed-password-77" not in page
    assert "stored ✓" in page
    listing = client.get("/mailboxes/").content.decode()
    assert "Not polled yet" in listing
    assert "typed-password-77" not in listing
    assert list(AuditEntry.objects.order_by("pk").values_list("action", flat=True))[-3:] == [
        "channel.secret_created",
        "mailbox.connected",
        "mailbox.credentials_set",
    ]


def test_a_refused_mailbox_leaves_no_channel_behind(client, admin_user):
    client.force_login(admin_user)
    audit_before = AuditEntry.objects.count()
    response = client.post("/mailboxes/new/", {**FORM, "password": ""})

    assert response.status_code == 400
    assert "Enter the mailbox password (or app password)." in response.content.decode()
    assert Channel.objects.count() == 0
    assert Mailbox.objects.count() == 0
    assert AuditEntry.objects.count() == audit_before


def test_editing_with_a_blank_password_keeps_the_stored_one(client, admin_user, team_a):
    mailbox = make_mailbox("Billing")
    client.force_login(admin_user)
    form = {**FORM, "password": "", "folder": "Support", "is_active": "on"}
    form.pop("channel_name")
    response = client.post(f"/mailboxes/{mailbox.pk}/", form)

    assert response.status_code == 302
    mailbox.refresh_from_db()
    assert (mailbox.folder, unseal(mailbox.password_sealed)) == ("Support", "pw-secret-1")


def test_agents_and_managers_cannot_see_or_change_mailboxes(client, agent_a, manager_a, team_a):
    mailbox = make_mailbox("Billing")
    for user in (agent_a, manager_a):
        client.force_login(user)
        assert client.get("/mailboxes/").status_code == 403
        assert client.post(f"/mailboxes/{mailbox.pk}/", {**FORM}).status_code == 403
        assert client_for(user).get("/api/v1/mailboxes/").status_code == 403
    mailbox.refresh_from_db()
    assert mailbox.after_import == "leave"


def test_mailbox_api_shows_health_and_never_a_credential(admin_user, team_a):
    mailbox = make_mailbox("Billing")
    Mailbox.objects.filter(pk=mailbox.pk).update(
        consecutive_failures=3, last_error="Cannot connect to imap.desk.example:993: timeout"
    )
    body = client_for(admin_user).get("/api/v1/mailboxes/").json()

    [row] = body
    assert {k: row[k] for k in ("id", "name", "address", "last_success_at", "last_error")} == {
        "id": mailbox.pk,
        "name": "Billing",
        "address": "billing@desk.example",
        "last_success_at": None,
        "last_error": "Cannot connect to imap.desk.example:993: timeout",
    }
    assert (row["consecutive_failures"], row["healthy"]) == (3, False)
    text = str(body)
    assert "pw-secret-1" not in text
    assert "smtp-secret-2" not in text
    assert "sealed" not in text


def test_channel_api_lists_channels_for_staff_without_secrets(agent_a, channels):
    body = client_for(agent_a).get("/api/v1/channels/").json()

    assert [(c["kind"], c["name"], c["team"]) for c in body] == [
        ("email", "email A", "Team A"),
        ("chat", "chat A", "Team A"),
        ("social", "social A", "Team A"),
        ("phone", "phone A", "Team A"),
    ]
    assert set(body[0]) == {"id", "kind", "name", "team", "address"}
    assert all(c.secret not in str(body) for c in channels.values())


@pytest.mark.parametrize("size", [1, 4])
def test_mailbox_list_page_and_api_queries_do_not_grow(client, admin_user, team_a, size):
    for i in range(size):
        make_mailbox(f"Box{i}")
    client.force_login(admin_user)
    api = client_for(admin_user)
    with CaptureQueriesContext(connection) as page:
        assert client.get("/mailboxes/").status_code == 200
    with CaptureQueriesContext(connection) as listing:
        assert api.get("/api/v1/mailboxes/").status_code == 200
    # Page: session, user, the mailboxes with channel and team (one join), notifications badge.
    # API: token, the page of mailboxes with channel and team.
    assert (len(page), len(listing)) == (EXPECTED_PAGE, EXPECTED_API)


EXPECTED_PAGE = 4
EXPECTED_API = 2


def test_test_connection_answers_in_place_with_htmx(client, admin_user, team_a):
    mailbox = make_mailbox("Billing")
    Mailbox.objects.filter(pk=mailbox.pk).update(
        imap_host="127.0.0.1", imap_port=1, imap_security="none"
    )
    client.force_login(admin_user)

    response = client.post(f"/mailboxes/{mailbox.pk}/test/", HTTP_HX_REQUEST="true")

    assert response.status_code == 200
    html = response.content.decode()
    assert "alert-error" in html
    assert "Cannot connect to 127.0.0.1:1: ConnectionRefusedError" in html
    mailbox.refresh_from_db()
    assert (mailbox.consecutive_failures, mailbox.last_poll_at) == (0, None)  # a test is no poll


def oauth_form(provider: Any) -> dict[str, str]:
    form = {
        **FORM,
        "auth": "oauth2",
        "password": "",
        "oauth_provider": "custom",
        "oauth_client_id": "desk-client",
        "oauth_client_secret": "client-secret-xyz",
        "oauth_authorize_url": f"{provider.url}/authorize",
        "oauth_token_url": f"{provider.url}/token",
        "oauth_scope": "mail offline",
    }
    return form


def test_oauth_connect_flow_stores_the_refresh_token(
    client,
    admin_user,
    team_a,
    oauth_provider,
    settings,
):
    settings.SITE_URL = "https://desk.example"
    client.force_login(admin_user)
    assert client.post("/mailboxes/new/", oauth_form(oauth_provider)).status_code == 302
    mailbox = Mailbox.objects.get()
    page = client.get(f"/mailboxes/{mailbox.pk}/").content.decode()
    assert "Connect with Other (custom endpoints)" in page
    assert "<code>https://desk.example/mailboxes/oauth/callback/</code>" in page

    # When the admin presses Connect, they are sent to the provider
    start = client.post(f"/mailboxes/{mailbox.pk}/oauth/")
    assert start.status_code == 302
    location = urllib.parse.urlsplit(start["Location"])
    query = dict(urllib.parse.parse_qsl(location.query))
    assert (
        f"{location.scheme}://{location.netloc}{location.path}" == f"{oauth_provider.url}/authorize"
    )
    assert {k: v for k, v in query.items() if k != "state"} == {
        "response_type": "code",
        "client_id": "desk-client",
        "redirect_uri": "https://desk.example/mailboxes/oauth/callback/",
        "scope": "mail offline",
    }

    # And the provider sends them back with a code: the desk buys the tokens and stores them
    back = client.get("/mailboxes/oauth/callback/", {"code": "the-code", "state": query["state"]})
    assert back.status_code == 302
    assert back["Location"] == f"/mailboxes/{mailbox.pk}/"
    assert oauth_provider.requests == [
        (
            "/token",
            {
                "grant_type": "authorization_code",
                "code": "the-code",
                "redirect_uri": "https://desk.example/mailboxes/oauth/callback/",
                "client_id": "desk-client",
                "client_secret": "client-secret-xyz",
            },
        )
    ]
    mailbox.refresh_from_db()
    assert unseal(mailbox.oauth_refresh_token_sealed) == "refresh-from-code"
    assert unseal(mailbox.oauth_access_token_sealed) == "access-1"
    assert (
        AuditEntry.objects.filter(
            action="mailbox.credentials_set",
            summary="Mailbox of 'Support': OAuth2 refresh token stored",
        ).count()
        == 1
    )

    # A replayed callback (the state was used) stores nothing more
    again = client.get("/mailboxes/oauth/callback/", {"code": "other", "state": query["state"]})
    assert again.status_code == 400
    assert len(oauth_provider.requests) == 1


def test_oauth_callback_with_a_forged_state_stores_nothing(
    client,
    admin_user,
    team_a,
    oauth_provider,
):
    client.force_login(admin_user)
    client.post("/mailboxes/new/", oauth_form(oauth_provider))
    mailbox = Mailbox.objects.get()
    client.post(f"/mailboxes/{mailbox.pk}/oauth/")

    response = client.get("/mailboxes/oauth/callback/", {"code": "c", "state": "forged"})

    assert response.status_code == 400
    assert oauth_provider.requests == []
    mailbox.refresh_from_db()
    assert mailbox.oauth_refresh_token_sealed == ""


def test_google_preset_fills_the_servers(admin_user, team_a):
    channel = channel_create_or_update(kind="email", name="Gmail", team_name="Team A")
    mailbox = mailbox_save(
        channel=channel,
        values={
            "imap_host": "",
            "username": "help@example.com",
            "auth": "oauth2",
            "oauth_provider": "google",
            "oauth_client_id": "123.apps.googleusercontent.com",
        },
        credentials={"oauth_client_secret": "gsecret"},
    )
    assert (mailbox.imap_host, mailbox.imap_port, mailbox.imap_security) == (
        "imap.gmail.com",
        993,
        "tls",
    )
    assert (mailbox.smtp_host, mailbox.smtp_port, mailbox.smtp_security) == (
        "smtp.gmail.com",
        587,
        "starttls",
    )
