"""The Channels admin page: webhook URLs, widget sites and the survey switch go through the
audited services of ``tickets.services.channels``; so does rotating a channel's secret."""

from __future__ import annotations

import pytest
from django.conf import settings

from supportdesk.models import AuditEntry
from tests.helpers import web
from tickets.models import Channel
from tickets.selectors import channel_get_by_secret

pytestmark = pytest.mark.django_db


def _audit(channel: Channel) -> list[tuple[str, list[str], str]]:
    return [
        (entry.action, entry.details.get("changed", []), entry.actor_email)
        for entry in AuditEntry.objects.filter(
            target_type="tickets.channel", target_id=str(channel.pk)
        ).order_by("id")
    ]


def test_the_page_shows_every_channel_with_its_settings_in_few_queries(
    channels, admin_user, django_assert_max_num_queries
):
    admin = web(admin_user)
    with django_assert_max_num_queries(6):
        page = admin.get("/settings/channels/")
    html = page.content.decode()
    assert page.status_code == 200
    for channel in channels.values():
        assert f'id="channel-{channel.pk}"' in html
    # The webhook field only on chat and social; the widget's sites only on chat.
    assert html.count('name="webhook_url"') == 2
    assert html.count('name="origins"') == 1
    assert html.count("Rotate the secret of") == 4
    # No secret is ever printed on the page by itself.
    for channel in channels.values():
        assert channel.secret not in html


def test_a_webhook_url_is_set_through_the_service_and_audited(channels, admin_user):
    social = channels["social"]
    before = _audit(social)
    admin = web(admin_user)
    url = f"/settings/channels/{social.pk}/"

    saved = admin.post(url, {"surveyed": "on", "webhook_url": "https://hooks.example.com/bridge"})
    assert saved.status_code == 302
    assert saved["Location"] == f"/settings/channels/#channel-{social.pk}"
    social.refresh_from_db()
    assert (social.webhook_url, social.surveyed) == ("https://hooks.example.com/bridge", True)
    assert _audit(social)[len(before) :] == [("channel.changed", ["webhook_url"], admin_user.email)]
    entry = AuditEntry.objects.filter(action="channel.changed").get()
    assert entry.details["webhook_url"] == "https://hooks.example.com/bridge"
    assert entry.details["previous"] == ""

    # Saving the same values again changes and records nothing.
    assert admin.post(url, {"surveyed": "on", "webhook_url": social.webhook_url}).status_code == 302
    assert AuditEntry.objects.filter(action="channel.changed").count() == 1


@pytest.mark.parametrize("bad", ["ftp://bridge.example/hook", "javascript:alert(1)"])
def test_a_bad_webhook_url_changes_nothing(channels, admin_user, bad):
    chat = channels["chat"]
    audited = AuditEntry.objects.count()
    refused = web(admin_user).post(
        f"/settings/channels/{chat.pk}/",
        {"webhook_url": bad, "origins": "https://shop.example"},
    )
    assert refused.status_code == 400
    html = refused.content.decode()
    assert "The webhook URL must start with https:// or http://." in html
    assert f'value="{bad}"' in html  # what was typed is kept in the form
    chat.refresh_from_db()
    # All or nothing: neither the URL, nor the sites, nor the survey switch changed.
    assert (chat.webhook_url, chat.widget_origins, chat.widget_key, chat.surveyed) == (
        "",
        [],
        None,
        True,
    )
    assert AuditEntry.objects.count() == audited


def test_widget_sites_and_the_survey_switch_are_audited(channels, admin_user):
    chat = channels["chat"]
    saved = web(admin_user).post(
        f"/settings/channels/{chat.pk}/",
        {"origins": "https://shop.example", "webhook_url": ""},
    )
    assert saved.status_code == 302
    chat.refresh_from_db()
    assert (chat.widget_origins, chat.surveyed) == (["https://shop.example"], False)
    assert [a for a in _audit(chat) if a[0] == "channel.changed"] == [
        ("channel.changed", ["widget_origins", "widget_key"], admin_user.email),
        ("channel.changed", ["surveyed"], admin_user.email),
    ]


def test_too_many_widget_sites_are_refused(channels, admin_user):
    chat = channels["chat"]
    origins = "\n".join(f"https://s{i}.example" for i in range(21))
    refused = web(admin_user).post(f"/settings/channels/{chat.pk}/", {"origins": origins})
    assert refused.status_code == 400
    assert "At most 20 sites may embed one widget." in refused.content.decode()
    chat.refresh_from_db()
    assert chat.widget_origins == []


def test_an_admin_rotates_a_secret_on_the_page_audited_and_shown_once(channels, admin_user):
    social = channels["social"]
    old = social.secret
    admin = web(admin_user)

    page = admin.post(f"/settings/channels/{social.pk}/rotate-secret/")

    assert page.status_code == 200
    assert page["Cache-Control"] == "no-store"
    social.refresh_from_db()
    new = social.secret
    assert new != old
    html = page.content.decode()
    assert f'value="{new}"' in html
    assert old not in html
    # The old secret stops working at once; the new one authenticates the channel.
    assert channel_get_by_secret(secret=old) is None
    found = channel_get_by_secret(secret=new)
    assert found is not None
    assert found.pk == social.pk
    rotated = AuditEntry.objects.filter(action="channel.secret_rotated").get()
    assert (rotated.target_id, rotated.actor_email) == (str(social.pk), admin_user.email)
    # Shown once: the page afterwards does not carry it.
    assert new not in admin.get("/settings/channels/").content.decode()


def test_agents_and_managers_change_nothing(channels, agent_a, manager_a):
    chat = channels["chat"]
    secret = chat.secret
    for user in (agent_a, manager_a):
        client = web(user)
        assert client.get("/settings/channels/").status_code == 403
        assert (
            client.post(
                f"/settings/channels/{chat.pk}/",
                {"webhook_url": "https://evil.example/", "origins": "https://evil.example"},
            ).status_code
            == 403
        )
        assert client.post(f"/settings/channels/{chat.pk}/rotate-secret/").status_code == 403
    chat.refresh_from_db()
    assert (chat.webhook_url, chat.widget_origins, chat.secret) == ("", [], secret)
    assert not AuditEntry.objects.filter(
        action__in=["channel.changed", "channel.secret_rotated"]
    ).exists()


def test_an_unknown_channel_is_404(db, admin_user):
    admin = web(admin_user)
    assert admin.post("/settings/channels/999999/", {}).status_code == 404
    assert admin.post("/settings/channels/999999/rotate-secret/").status_code == 404


def test_the_snippet_is_shown_once_a_site_is_saved(channels, admin_user):
    chat = channels["chat"]
    admin = web(admin_user)
    assert "Save a site to get this channel" in admin.get("/settings/channels/").content.decode()
    admin.post(f"/settings/channels/{chat.pk}/", {"origins": "https://shop.example"})
    chat.refresh_from_db()
    html = admin.get("/settings/channels/").content.decode()
    snippet = f"{settings.SITE_URL}/widget/{chat.widget_key}.js"
    assert f"&lt;script src=&quot;{snippet}&quot; async&gt;&lt;/script&gt;" in html
