"""A new admin runs the desk's settings from the product, in Debian's Chromium: the Settings
index from the nav, a webhook host allowed, the survey settings, a macro created and edited.
Screenshots at 1,280 px."""

from __future__ import annotations

import pytest
from playwright.sync_api import expect

from supportdesk.models import AuditEntry, WebhookAllowedHost
from surveys.models import SurveySettings
from tests.browser import login, screenshot, watch_console
from tickets.models import SavedReply
from tickets.services import tag_create


@pytest.mark.browser
@pytest.mark.django_db(transaction=True)
def test_a_new_admin_runs_the_settings_pages(page, live_server, admin_user):
    tag_create(name="refunds", actor=admin_user)
    problems = watch_console(page)
    page.set_viewport_size({"width": 1280, "height": 900})
    login(page, live_server, admin_user)

    page.get_by_text("More", exact=True).click()
    page.get_by_role("link", name="Settings", exact=True).click()
    expect(page.get_by_role("heading", name="Settings", exact=True)).to_be_visible()
    screenshot(page, "settings-index")

    # Webhook hosts: a bad entry is refused, a host is allowed
    page.get_by_role("link", name="Webhook hosts").click()
    page.get_by_label("Host name or address").fill("https://relay.internal.example/hook")
    page.get_by_role("button", name="Allow host").click()
    expect(page.get_by_text("is not a host name")).to_be_visible()
    page.get_by_label("Host name or address").fill("relay.internal.example")
    page.get_by_label("Why (shown in the list)").fill("Our chat relay in the data centre")
    page.get_by_role("button", name="Allow host").click()
    expect(
        page.get_by_text("Webhook URLs may now point at relay.internal.example.")
    ).to_be_visible()
    screenshot(page, "settings-webhook-hosts")

    # Survey settings: an impossible reminder is refused, then a valid change is saved
    page.goto(f"{live_server.url}/settings/")
    page.get_by_role("link", name="Survey settings").click()
    page.get_by_label("Days a survey link stays valid").fill("5")
    page.get_by_label("Days without an answer before the single reminder").fill("6")
    page.get_by_role("button", name="Save survey settings").click()
    expect(page.get_by_text("The reminder must go out before the link expires")).to_be_visible()
    page.get_by_label("Days without an answer before the single reminder").fill("3")
    page.get_by_label("Share of eligible solves that get a survey (%)").fill("80")
    page.get_by_role("checkbox", name="Chat").check()
    page.get_by_role("button", name="Save survey settings").click()
    expect(page.get_by_text("Survey settings saved.")).to_be_visible()
    expect(page.get_by_text("80 %")).to_be_visible()
    screenshot(page, "settings-surveys")

    # Saved replies and macros: create one that tags and solves, then rename it
    page.goto(f"{live_server.url}/settings/")
    page.get_by_role("link", name="Saved replies and macros").click()
    page.get_by_label("Title").fill("Refund on its way")
    page.get_by_label("Reply").fill("Hi {customer_first_name}, the refund is on its way.")
    page.get_by_role("checkbox", name="refunds").check()
    page.get_by_label("Status").select_option("solved")
    page.get_by_role("button", name="Create saved reply").click()
    expect(page.get_by_text("Saved reply “Refund on its way” created.")).to_be_visible()
    screenshot(page, "settings-saved-replies")
    page.get_by_role("link", name="Edit Refund on its way").click()
    page.get_by_label("Title").fill("Refund sent")
    page.get_by_role("button", name="Save", exact=True).click()
    expect(page.get_by_text("Saved reply “Refund sent” saved.")).to_be_visible()

    assert list(WebhookAllowedHost.objects.values_list("host", "note")) == [
        ("relay.internal.example", "Our chat relay in the data centre")
    ]
    row = SurveySettings.objects.get(pk=1)
    assert (row.window_days, row.reminder_days, row.sampling_rate, row.channels) == (
        5,
        3,
        0.8,
        ["chat"],
    )
    reply = SavedReply.objects.get(title="Refund sent")
    assert (reply.set_status, [t.name for t in reply.add_tags.all()]) == ("solved", ["refunds"])
    assert list(
        AuditEntry.objects.filter(actor_email=admin_user.email)
        .exclude(action="tag.changed")
        .order_by("pk")
        .values_list("action", "actor_email")
    ) == [
        ("webhook_host.allowed", admin_user.email),
        ("survey_settings.changed", admin_user.email),
        ("saved_reply.created", admin_user.email),
        ("saved_reply.changed", admin_user.email),
    ]
    # the two refused forms (a URL given as a host, an impossible reminder) answer 400, as bad
    # input should; nothing else went wrong in the console
    refused = [p for p in problems if "status of 400 (Bad Request)" in p]
    assert len(refused) == 2
    assert [p for p in problems if p not in refused] == []
