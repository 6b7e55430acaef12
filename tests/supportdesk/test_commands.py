"""Management commands (create_staff, create_channel, seed_demo) and the login/queue pages."""

from __future__ import annotations

import re
from io import StringIO

import pytest
from django.core.management import call_command
from django.core.management.base import CommandError

from supportdesk.models import ApiToken, Team, User
from tests.factories import make_staff, send_chat, send_email
from tickets.models import Channel, Conversation, Customer, Message

FAST_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]


def run(*args: str) -> list[str]:
    out = StringIO()
    call_command(*args, stdout=out, stderr=StringIO())
    return out.getvalue().strip().splitlines()


def run_from_command_line(monkeypatch, *argv: str) -> int:
    """Run like ``manage.py ...`` does, returning the exit code."""
    from django.core.management import load_command_class
    from django.core.management.base import connections

    # run_from_argv closes every connection when it ends, which would end the test's transaction.
    monkeypatch.setattr(connections, "close_all", lambda: None)
    command = load_command_class("supportdesk" if argv[0] == "create_staff" else "tickets", argv[0])
    try:
        command.run_from_argv(["manage.py", *argv])
    except SystemExit as exc:
        return int(exc.code or 0)
    return 0


# --- create_staff ---------------------------------------------------------------------------------


@pytest.mark.django_db
def test_create_staff_creates_the_account_and_prints_its_token_last(settings):
    settings.PASSWORD_HASHERS = FAST_HASHERS

    # when
    lines = run(
        "create_staff",
        "Ann.Lee@Desk.example",
        "--role",
        "manager",
        "--team",
        "Billing",
        "--team",
        "Technical",
        "--password",
        "a-long-pass-phrase-1",
        "--name",
        "Ann Lee",
    )

    # then
    user = User.objects.get()
    assert user.email == "ann.lee@desk.example"
    assert user.role == "manager"
    assert user.full_name == "Ann Lee"
    assert user.is_staff is False
    assert user.check_password("a-long-pass-phrase-1")
    assert sorted(user.teams.values_list("name", flat=True)) == ["Billing", "Technical"]
    assert lines[-1] == ApiToken.objects.get(user=user).key
    assert "Created manager ann.lee@desk.example" in lines[0]


@pytest.mark.django_db
def test_create_staff_updates_an_existing_account_and_keeps_its_token(settings):
    settings.PASSWORD_HASHERS = FAST_HASHERS
    first = run("create_staff", "bo@desk.example", "--role", "agent", "--team", "Billing")

    # when
    second = run(
        "create_staff",
        "BO@desk.example",
        "--role",
        "admin",
        "--team",
        "Technical",
        "--password",
        "x-new-pass-99",
    )

    # then
    user = User.objects.get()
    assert user.role == "admin"
    assert user.is_staff is True
    assert user.is_superuser is True
    assert user.check_password("x-new-pass-99")
    # Teams are added, never removed.
    assert sorted(user.teams.values_list("name", flat=True)) == ["Billing", "Technical"]
    assert first[-1] == second[-1] == ApiToken.objects.get(user=user).key
    assert second[0].startswith("Updated admin bo@desk.example")


@pytest.mark.django_db
def test_create_staff_without_role_keeps_the_existing_role(settings):
    settings.PASSWORD_HASHERS = FAST_HASHERS
    make_staff("mia@desk.example", role="manager", teams=["Billing"])

    run("create_staff", "mia@desk.example", "--team", "Technical")

    assert User.objects.get().role == "manager"


@pytest.mark.django_db
def test_create_staff_with_a_bad_role_fails_and_creates_nothing(monkeypatch, capsys):
    # when
    with pytest.raises(
        CommandError, match="--role must be one of agent, manager, admin, not 'boss'"
    ):
        run("create_staff", "eve@desk.example", "--role", "boss", "--team", "Billing")
    code = run_from_command_line(monkeypatch, "create_staff", "eve@desk.example", "--role", "boss")

    # then
    assert code == 1
    assert "--role must be one of agent, manager, admin" in capsys.readouterr().err
    assert User.objects.count() == 0
    assert Team.objects.count() == 0
    assert ApiToken.objects.count() == 0


@pytest.mark.django_db
def test_create_staff_rejects_a_weak_password_and_creates_nothing():
    with pytest.raises(CommandError, match="Password rejected"):
        run("create_staff", "eve@desk.example", "--role", "agent", "--password", "short")

    assert User.objects.count() == 0


# --- create_channel -------------------------------------------------------------------------------


@pytest.mark.django_db
def test_create_channel_prints_its_secret_last():
    lines = run(
        "create_channel",
        "email",
        "Billing inbox",
        "--team",
        "Billing",
        "--address",
        "Billing@Desk.example",
    )

    channel = Channel.objects.get()
    assert (channel.kind, channel.name, channel.address) == (
        "email",
        "Billing inbox",
        "billing@desk.example",
    )
    assert channel.team.name == "Billing"
    assert lines[-1] == channel.secret
    assert len(channel.secret) >= 32


@pytest.mark.django_db
def test_create_channel_again_keeps_the_secret_and_moves_the_team():
    first = run("create_channel", "chat", "Website chat", "--team", "Billing")

    # when
    second = run("create_channel", "chat", "Website chat", "--team", "Technical")

    # then
    channel = Channel.objects.get()
    assert channel.team.name == "Technical"
    assert first[-1] == second[-1] == channel.secret
    assert second[0].startswith("Updated chat channel 'Website chat'")


@pytest.mark.django_db
def test_create_channel_with_a_bad_kind_fails_and_creates_nothing():
    with pytest.raises(CommandError, match="must be one of email, chat, social, phone, not 'fax'"):
        run("create_channel", "fax", "Fax line", "--team", "Billing")

    assert Channel.objects.count() == 0
    assert Team.objects.count() == 0


# --- seed_demo --------------------------------------------------------------------------------------


@pytest.mark.django_db
def test_seed_demo_fills_a_realistic_desk_through_the_services(settings):
    settings.PASSWORD_HASHERS = FAST_HASHERS

    # when
    lines = run(
        "seed_demo", "--customers", "15", "--conversations", "40", "--days", "10", "--seed", "7"
    )

    # then: staff who can log in, and one channel per kind per team
    admin = User.objects.get(email="admin@demo.example")
    assert admin.role == "admin"
    assert admin.check_password("demo-password-123")
    assert User.objects.filter(role="agent").count() == 4
    assert sorted(Channel.objects.values_list("team__name", "kind")) == sorted(
        (team, kind)
        for team in ("Billing", "Technical")
        for kind in ("chat", "email", "phone", "social")
    )
    assert any(line.strip().startswith("manager@demo.example") for line in lines)

    # every channel kind carried customer messages
    inbound = Message.objects.filter(direction=Message.Direction.INBOUND)
    assert set(inbound.values_list("channel_kind", flat=True)) == {
        "email",
        "chat",
        "social",
        "phone",
    }

    # at least one (unmerged) customer reached us on two channel kinds
    kinds_by_customer: dict[int, set[str]] = {}
    for customer_id, kind in inbound.values_list("conversation__customer_id", "channel_kind"):
        kinds_by_customer.setdefault(customer_id, set()).add(kind)
    live = set(Customer.objects.filter(merged_into__isnull=True).values_list("pk", flat=True))
    assert any(len(kinds) >= 2 for pk, kinds in kinds_by_customer.items() if pk in live)

    # the stored count of contacts is the contacts themselves; no conversation is empty
    conversations = list(Conversation.objects.prefetch_related("contacts", "messages"))
    # 40 issues; a customer's new issue while another is active joins it (the attach rule)
    assert 30 <= len(conversations) <= 40
    for conversation in conversations:
        assert conversation.contacts_counted == len(conversation.contacts.all()), conversation.pk
        assert conversation.messages.all(), conversation.pk
    assert {c.status for c in conversations} >= {"solved", "open"}
    # Solved conversations carry their scenario's topic (outcomes by topic on the dashboard).
    solved = [c for c in conversations if c.status in ("solved", "closed")]
    assert solved
    assert all(c.tags.count() == 1 for c in solved), [c.pk for c in solved if not c.tags.exists()]
    assert Message.objects.filter(direction=Message.Direction.OUTBOUND).exists()
    # History, not a single moment: spread over the requested days.
    first, last = (
        inbound.order_by("sent_at").first().sent_at,
        inbound.order_by("sent_at").last().sent_at,
    )
    assert (last - first).days >= 5
    # Replayed replies count as sent; nothing waits to mail the made-up customers.
    assert not Message.objects.filter(delivery_state=Message.Delivery.QUEUED).exists()


@pytest.mark.django_db
def test_seed_demo_does_nothing_when_demo_data_exists(settings):
    settings.PASSWORD_HASHERS = FAST_HASHERS
    run("seed_demo", "--customers", "4", "--conversations", "6", "--days", "5")
    before = (Customer.objects.count(), Conversation.objects.count(), Message.objects.count())

    # when
    lines = run("seed_demo", "--customers", "4", "--conversations", "6", "--days", "5")

    # then
    assert "already present" in lines[-1]
    assert (
        Customer.objects.count(),
        Conversation.objects.count(),
        Message.objects.count(),
    ) == before


# --- login, logout and the queue --------------------------------------------------------------------


@pytest.mark.django_db
def test_login_page_has_labelled_fields(client):
    response = client.get("/login/")

    assert response.status_code == 200
    html = response.content.decode()
    assert '<label for="id_login">Email</label>' in html
    assert '<label for="id_password">Password</label>' in html
    assert 'type="email" name="login" id="id_login"' in html
    assert 'type="password" name="password" id="id_password"' in html
    # Scripts only from our own static files (htmx), never inline: the CSP forbids inline script.
    scripts = re.findall(r"<script([^>]*)>", html)
    assert scripts
    assert all(re.search(r'src="/static/[^"]+"', attrs) for attrs in scripts), scripts


@pytest.mark.django_db
def test_login_with_valid_credentials_redirects_to_the_queue(client, agent_a):
    response = client.post(
        "/login/", {"login": "alice@desk.example", "password": "correct horse battery"}
    )

    assert response.status_code == 302
    assert response["Location"] == "/"


@pytest.mark.django_db
def test_login_email_is_case_insensitive(client, agent_a):
    response = client.post(
        "/login/", {"login": "  Alice@Desk.Example", "password": "correct horse battery"}
    )

    assert response.status_code == 302
    assert int(client.session["_auth_user_id"]) == agent_a.pk


@pytest.mark.django_db
def test_login_with_a_wrong_password_shows_the_error(client, agent_a):
    response = client.post("/login/", {"login": "alice@desk.example", "password": "nope"})

    assert response.status_code == 200
    html = response.content.decode()
    assert "The email address and/or password you specified are not correct." in html
    assert 'value="alice@desk.example"' in html
    assert "_auth_user_id" not in client.session


@pytest.mark.django_db
def test_anonymous_visitor_is_sent_to_login(client):
    response = client.get("/")

    assert response.status_code == 302
    assert response["Location"] == "/login/?next=/"


@pytest.mark.django_db
def test_queue_lists_the_teams_conversations(client, agent_a, channels):
    # given
    send_email(
        channels["email"], sender="Jane Doe <jane@example.com>", subject="Refund for order #4411"
    )
    send_chat(
        channels["chat"], body="Hi, my parcel is late", email="raj@example.com", name="Raj Patel"
    )
    client.force_login(agent_a)

    # when
    response = client.get("/")

    # then
    assert response.status_code == 200
    html = response.content.decode()
    assert "Refund for order #4411" in html
    assert "Hi, my parcel is late" in html
    assert "Jane Doe" in html
    assert "Raj Patel" in html
    assert "alice@desk.example" in html
    assert 'action="/logout/"' in html
    assert 'name="csrfmiddlewaretoken"' in html
    assert "/api/docs/" in html
    assert 'href="/admin/"' not in html  # agents get no admin link
    # No inline script (the CSP forbids it): every <script> loads a file of our own
    assert re.findall(r"<script(?![^>]*\bsrc=\"/static/)", html) == []


@pytest.mark.django_db
def test_queue_shows_the_admin_link_to_admins(client, admin_user):
    client.force_login(admin_user)

    html = client.get("/").content.decode()

    assert 'href="/admin/"' in html
    assert "Nothing here" in html


@pytest.mark.django_db
def test_queue_query_count_does_not_grow_with_rows(
    client, agent_a, channels, django_assert_num_queries, without_higher_apps
):
    for n in range(6):
        send_email(
            channels["email"], sender=f"Customer {n} <c{n}@example.com>", subject=f"Issue {n}"
        )
    client.force_login(agent_a)

    # 1 session, 2 user, 3 counts of the open views, 4 count of the recently solved,
    # 5 conversations joined with customer/team/assignee (and each one's last customer message
    # and reply), 6 their tags, 7 teams, 8 agents and 9 tags for the filters, 10 saved views,
    # 11 unread notifications (the user's teams are subqueries of the visibility filter)
    with django_assert_num_queries(11):
        response = client.get("/")

    assert response.content.decode().count('<td class="subject"') == 6


@pytest.mark.django_db
def test_logout_is_a_post_and_ends_the_session(client, agent_a):
    client.force_login(agent_a)

    # when
    response = client.post("/logout/")

    # then
    assert response.status_code == 302
    assert response["Location"] == "/login/"
    assert client.get("/")["Location"] == "/login/?next=/"
