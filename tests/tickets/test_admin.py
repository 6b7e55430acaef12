"""The Django admin shows the desk's records and changes them only through the services.

A bare edit of a conversation's status (the old admin allowed it) recorded no event, bumped no
version and scheduled no survey, so the scorecards disagreed with the page.
"""

from __future__ import annotations

import pytest
from django.contrib import admin
from django.test import Client

from supportdesk.models import AuditEntry
from surveys.models import Survey
from tests.factories import send_email
from tickets.models import Channel, Conversation, Event, SavedReply
from tickets.selectors import channel_get_by_secret

pytestmark = pytest.mark.django_db


@pytest.fixture
def root(admin_user) -> Client:
    client = Client()
    client.force_login(admin_user)
    return client


def _state(conversation_id: int) -> tuple[str, int, int]:
    row = Conversation.objects.get(pk=conversation_id)
    return row.status, row.version, Event.objects.filter(conversation_id=conversation_id).count()


def test_every_admin_list_add_and_change_page_answers_without_a_server_error(root, channels):
    send_email(channels["email"], sender="jane@example.com")
    for model, model_admin in admin.site._registry.items():
        opts = model._meta
        base = f"/admin/{opts.app_label}/{opts.model_name}/"
        assert root.get(base).status_code == 200, base
        assert root.get(f"{base}add/").status_code in (200, 403), base
        first = model_admin.get_queryset(root.get(base).wsgi_request).first()
        if first is not None:
            assert root.get(f"{base}{first.pk}/change/").status_code == 200, base


def test_a_conversation_cannot_be_edited_in_the_admin(root, channels):
    conversation_id = send_email(channels["email"]).conversation_id
    before = _state(conversation_id)

    response = root.post(
        f"/admin/tickets/conversation/{conversation_id}/change/",
        {"status": "solved", "subject": "changed"},
    )

    assert response.status_code == 403
    assert _state(conversation_id) == before
    assert Conversation.objects.get(pk=conversation_id).subject != "changed"


def test_the_solve_action_goes_through_the_service(
    root, channels, admin_user, django_capture_on_commit_callbacks
):
    conversation_id = send_email(channels["email"], sender="jane@example.com").conversation_id
    _status, version, events = _state(conversation_id)

    with django_capture_on_commit_callbacks(execute=True):
        response = root.post(
            "/admin/tickets/conversation/",
            {"action": "solve", "_selected_action": [conversation_id]},
            follow=True,
        )

    assert response.status_code == 200
    assert "Solved: 1." in response.content.decode()
    assert _state(conversation_id) == ("solved", version + 1, events + 1)
    solved = Event.objects.filter(conversation_id=conversation_id).latest("pk")
    assert (solved.kind, solved.actor_id) == (Event.Kind.SOLVED, admin_user.pk)
    assert Survey.objects.filter(event=solved).count() == 1


def test_a_refused_action_says_why_and_changes_nothing(root, channels):
    conversation_id = send_email(channels["email"]).conversation_id
    root.post(
        "/admin/tickets/conversation/", {"action": "solve", "_selected_action": [conversation_id]}
    )
    before = _state(conversation_id)

    response = root.post(
        "/admin/tickets/conversation/",
        {"action": "solve", "_selected_action": [conversation_id]},
        follow=True,
    )

    assert response.status_code == 200
    assert f"#{conversation_id}: " in response.content.decode()
    assert _state(conversation_id) == before


def test_a_channel_added_in_the_admin_is_audited_and_gets_a_secret(root, team_a):
    response = root.post(
        "/admin/tickets/channel/add/",
        {"name": "Web chat", "kind": "chat", "team": team_a.pk, "address": "", "webhook_url": ""},
    )

    assert response.status_code == 302, response.content.decode()[:2000]
    channel = Channel.objects.get(name="Web chat")
    assert (channel.kind, channel.team_id) == ("chat", team_a.pk)
    assert channel_get_by_secret(secret=channel.secret) == channel
    assert list(
        AuditEntry.objects.filter(
            target_type="tickets.channel", target_id=str(channel.pk)
        ).values_list("action", flat=True)
    ) == [AuditEntry.Action.CHANNEL_SECRET_CREATED]


def test_a_webhook_on_an_email_channel_is_a_form_error_and_nothing_changes(root, channels):
    email = channels["email"]

    response = root.post(
        f"/admin/tickets/channel/{email.pk}/change/",
        {"team": email.team_id, "address": "", "webhook_url": "https://hooks.example/x"},
    )

    assert response.status_code == 200
    assert "Only chat and social channels deliver by webhook." in response.content.decode()
    assert Channel.objects.get(pk=email.pk).webhook_url == ""


def test_rotating_a_secret_in_the_admin_retires_the_old_one(root, channels):
    chat = channels["chat"]
    old = chat.secret

    root.post("/admin/tickets/channel/", {"action": "rotate_secret", "_selected_action": [chat.pk]})

    assert channel_get_by_secret(secret=old) is None
    assert channel_get_by_secret(secret=Channel.objects.get(pk=chat.pk).secret) == chat
    assert (
        AuditEntry.objects.filter(
            action=AuditEntry.Action.CHANNEL_SECRET_ROTATED, target_id=str(chat.pk)
        ).count()
        == 1
    )


def test_a_saved_reply_is_saved_through_the_service(root):
    response = root.post(
        "/admin/tickets/savedreply/add/",
        {
            "title": "  Refund window  ",
            "body": " Hi {customer_first_name}, 30 days. ",
            "is_active": "on",
        },
    )

    assert response.status_code == 302
    reply = SavedReply.objects.get(title="Refund window")
    assert (reply.body, reply.is_active) == ("Hi {customer_first_name}, 30 days.", True)
