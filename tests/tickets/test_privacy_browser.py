"""Privacy in Chromium, as an admin would: export a customer, erase them after typing the
confirmation, and look at what is left; the retention page. At 1,280 px."""

from __future__ import annotations

import json

import pytest
from playwright.sync_api import expect

from tests.browser import login, screenshot, watch_console
from tests.factories import send_email
from tests.tickets.privacy_data import customer_with_everything
from tickets.models import Customer

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]


def test_an_admin_exports_then_erases_a_customer(page, live_server, channels, agent_a, admin_user):
    customer = customer_with_everything(channels, agent_a)
    send_email(channels["email"], sender="Jane Roe <jane.roe@example.org>", subject="Hello again")
    problems = watch_console(page)
    page.set_viewport_size({"width": 1280, "height": 900})
    login(page, live_server, admin_user)
    page.goto(f"{live_server.url}/customers/{customer.pk}/")

    with page.expect_download() as download:
        page.get_by_role("link", name="Export data (JSON)").click()
    exported = json.loads(open(download.value.path(), encoding="utf-8").read())  # noqa: SIM115
    assert exported["customer"]["name"] == "Jane Roe"

    page.get_by_text("Erase this customer…").click()
    page.locator("#privacy").scroll_into_view_if_needed()
    screenshot(page, "customer-privacy")
    page.get_by_label(f"Type ERASE {customer.pk} to confirm").fill(f"ERASE {customer.pk}")
    page.get_by_role("button", name=f"Erase customer #{customer.pk}").click()

    expect(page.get_by_role("heading", name=f"Erased customer #{customer.pk}")).to_be_visible()
    expect(page.get_by_text("Jane Roe")).to_have_count(0)
    expect(page.get_by_text("jane.roe@example.org")).to_have_count(0)
    expect(page.get_by_role("link", name="Export data (JSON)")).to_be_visible()
    assert page.evaluate("document.documentElement.scrollWidth <= window.innerWidth")
    screenshot(page, "customer-erased")
    customer.refresh_from_db()
    assert customer.erased_at is not None
    assert problems == []


def test_an_admin_sets_retention(page, live_server, admin_user):
    problems = watch_console(page)
    page.set_viewport_size({"width": 1280, "height": 900})
    login(page, live_server, admin_user)
    page.goto(f"{live_server.url}/privacy/retention/")
    page.get_by_label("Raw mail (the original MIME of each email), days after arrival").fill("30")
    page.get_by_label("Attachments and their files, days after arrival").fill("365")
    page.get_by_role("button", name="Save").click()

    expect(page.get_by_text("Retention settings saved")).to_be_visible()
    assert page.get_by_label("Attachments and their files, days after arrival").input_value() == (
        "365"
    )
    assert page.evaluate("document.documentElement.scrollWidth <= window.innerWidth")
    screenshot(page, "retention")
    assert problems == []
    assert Customer.objects.count() == 0
