"""The admins' Settings index, webhook hosts, survey settings and saved replies pages: they call
the services (validated, audited); bad input is a 400 with nothing stored."""

from __future__ import annotations

import pytest

from supportdesk.models import AuditEntry, WebhookAllowedHost
from surveys.models import SurveySettings
from tests.helpers import web
from tickets.models import SavedReply
from tickets.services import saved_reply_create_or_update, tag_create

pytestmark = pytest.mark.django_db


def _audit_mark() -> int:
    """The newest audit entry so far (staff fixtures are audited when created)."""
    return AuditEntry.objects.order_by("-pk").values_list("pk", flat=True).first() or 0


def _audited_since(mark: int):
    return AuditEntry.objects.filter(pk__gt=mark).order_by("pk")


def test_the_settings_index_links_every_admin_page(admin_user, django_assert_max_num_queries):
    client = web(admin_user)
    with django_assert_max_num_queries(12):
        page = client.get("/settings/")
    assert page.status_code == 200
    html = page.content.decode()
    for href in (
        "/settings/staff/",
        "/mailboxes/",
        "/settings/sending/",
        "/settings/surveys/",
        "/settings/survey-page/",
        "/saved-replies/",
        "/tags/",
        "/settings/email-templates/",
        "/settings/webhook-hosts/",
        "/audit/",
    ):
        assert f'href="{href}"' in html, href
    assert 'href="/settings/"' in web(admin_user).get("/").content.decode()  # in the nav


def test_only_admins_see_the_settings_pages(agent_a, manager_a):
    for user in (agent_a, manager_a):
        for url in ("/settings/", "/settings/surveys/", "/settings/webhook-hosts/"):
            assert web(user).get(url).status_code == 403
    assert 'href="/settings/"' not in web(manager_a).get("/").content.decode()


def test_an_admin_allows_and_removes_a_webhook_host(admin_user):
    mark = _audit_mark()
    client = web(admin_user)
    response = client.post(
        "/settings/webhook-hosts/", {"host": "Relay.Internal.Example", "note": "in the DC"}
    )
    assert response.status_code == 302
    entry = WebhookAllowedHost.objects.get()
    assert (entry.host, entry.note, entry.created_by) == (
        "relay.internal.example",
        "in the DC",
        admin_user,
    )
    assert "relay.internal.example" in client.get("/settings/webhook-hosts/").content.decode()

    response = client.post(f"/settings/webhook-hosts/{entry.pk}/remove/")
    assert response.status_code == 302
    assert not WebhookAllowedHost.objects.exists()
    assert list(_audited_since(mark).values_list("action", flat=True)) == [
        "webhook_host.allowed",
        "webhook_host.removed",
    ]


def test_a_bad_webhook_host_is_refused_and_nothing_stored(admin_user):
    mark = _audit_mark()
    for data in ({"host": "https://x.example/hook"}, {"host": ""}, {"host": "x.example:8080"}):
        response = web(admin_user).post("/settings/webhook-hosts/", data)
        assert response.status_code == 400
    assert not WebhookAllowedHost.objects.exists()
    assert not _audited_since(mark).exists()


VALID = {
    "delay_minutes": "30",
    "min_days_between": "14",
    "window_days": "10",
    "reminder_days": "4",
    "reminders_enabled": "on",
    "channels": ["email", "chat"],
    "sampling_percent": "50",
    "nps_interval_days": "120",
}


def test_an_admin_changes_the_survey_settings(admin_user):
    mark = _audit_mark()
    response = web(admin_user).post("/settings/surveys/", VALID)
    assert response.status_code == 302
    row = SurveySettings.objects.get(pk=1)
    assert (
        row.delay_minutes,
        row.min_days_between,
        row.window_days,
        row.reminder_days,
        row.reminders_enabled,
        row.channels,
        row.sampling_rate,
        row.nps_interval_days,
    ) == (30, 14, 10, 4, True, ["email", "chat"], 0.5, 120)
    entry = _audited_since(mark).get()
    assert (entry.action, entry.actor) == ("survey_settings.changed", admin_user)
    assert entry.details["sampling_rate"] == {"from": 1.0, "to": 0.5}
    page = web(admin_user).get("/settings/surveys/").content.decode()
    assert 'value="50"' in page

    # empty numbers fall back to the environment's defaults
    blank = {**VALID, "delay_minutes": "", "window_days": "", "reminder_days": ""}
    assert web(admin_user).post("/settings/surveys/", blank).status_code == 302
    row.refresh_from_db()
    assert (row.delay_minutes, row.window_days, row.reminder_days) == (None, None, None)


@pytest.mark.parametrize(
    "change",
    [
        {"sampling_percent": "101"},
        {"window_days": "0"},
        {"window_days": "3", "reminder_days": "3"},
        {"channels": ["fax"]},
        {"nps_interval_days": ""},
        {"delay_minutes": "-1"},
    ],
)
def test_bad_survey_settings_are_refused_and_nothing_changes(admin_user, change):
    mark = _audit_mark()
    response = web(admin_user).post("/settings/surveys/", {**VALID, **change})
    assert response.status_code == 400
    assert not SurveySettings.objects.exists()
    assert not _audited_since(mark).exists()


def test_saved_replies_are_created_edited_and_deleted(manager_a, django_assert_max_num_queries):
    mark = _audit_mark()
    tag = tag_create(name="billing", actor=manager_a)
    client = web(manager_a)
    response = client.post(
        "/saved-replies/",
        {
            "title": "Refund sent",
            "body": "Hi {customer_first_name}, the refund is on its way.",
            "is_active": "on",
            "add_tags": [str(tag.pk)],
            "set_priority": "",
            "set_status": "solved",
            "set_assignee": "",
        },
    )
    assert response.status_code == 302
    reply = SavedReply.objects.get(title="Refund sent")
    assert (reply.set_status, list(reply.add_tags.all())) == ("solved", [tag])
    with django_assert_max_num_queries(12):
        assert client.get("/saved-replies/").status_code == 200

    response = client.post(
        f"/saved-replies/{reply.pk}/",
        {"title": "Refund confirmed", "body": reply.body, "set_priority": "high"},
    )
    assert response.status_code == 302
    reply.refresh_from_db()
    assert (reply.title, reply.is_active, reply.set_priority, reply.set_status) == (
        "Refund confirmed",
        False,
        "high",
        "",
    )
    assert list(reply.add_tags.all()) == []

    assert client.post(f"/saved-replies/{reply.pk}/delete/").status_code == 302
    assert not SavedReply.objects.filter(pk=reply.pk).exists()
    entries = list(_audited_since(mark).values_list("action", "details"))
    assert [action for action, _ in entries] == [
        "tag.changed",
        "saved_reply.created",
        "saved_reply.changed",
        "saved_reply.deleted",
    ]
    assert entries[2][1]["changed"] == [
        "title",
        "is_active",
        "set_priority",
        "set_status",
        "add_tags",
    ]


def test_bad_saved_replies_are_refused_and_nothing_changes(manager_a, agent_a):
    existing = saved_reply_create_or_update(title="Greeting", body="Hello")
    other = saved_reply_create_or_update(title="Other", body="Bye")
    count = SavedReply.objects.count()
    mark = _audit_mark()
    client = web(manager_a)
    for data in (
        {"title": "", "body": "x"},
        {"title": "Empty", "body": ""},
        {"title": "Greeting", "body": "A second one"},
        {"title": "Odd", "body": "x", "set_status": "deleted"},
    ):
        assert client.post("/saved-replies/", data).status_code == 400
    assert (
        client.post(f"/saved-replies/{other.pk}/", {"title": "Greeting", "body": "Bye"}).status_code
        == 400
    )
    assert SavedReply.objects.count() == count
    titles = set(SavedReply.objects.values_list("title", flat=True))
    assert {"Greeting", "Other"} <= titles
    assert not titles & {"", "Empty", "Odd"}
    assert SavedReply.objects.get(pk=other.pk).title == "Other"
    assert SavedReply.objects.get(pk=existing.pk).body == "Hello"
    assert not _audited_since(mark).exists()

    assert web(agent_a).get("/saved-replies/").status_code == 403
    assert web(agent_a).post(f"/saved-replies/{other.pk}/delete/").status_code == 403
    assert SavedReply.objects.filter(pk=other.pk).exists()
