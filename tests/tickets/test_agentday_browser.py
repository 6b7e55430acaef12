"""The agent's day on the README's demo desk, in Chromium: write first, log a call, screen pop."""

from __future__ import annotations

import io
from datetime import timedelta

import pytest
from django.core import mail
from django.core.cache import cache
from django.core.management import call_command
from django.utils import timezone
from playwright.sync_api import expect

from supportdesk.models import User
from tests.browser import login, screenshot, watch_console
from tests.conftest import client_for
from tests.factories import email_bytes
from tests.helpers import post_email
from tickets.demo.scenarios import DEMO_PASSWORD
from tickets.models import Channel, Conversation, Identity

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]

FAST_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]


@pytest.fixture
def demo_desk(settings):
    """A small demo desk, seeded exactly as `bin/dev` seeds the big one."""
    settings.PASSWORD_HASHERS = FAST_HASHERS
    cache.clear()
    call_command(
        "seed_demo",
        "--customers",
        "15",
        "--conversations",
        "40",
        "--days",
        "10",
        "--seed",
        "7",
        stdout=io.StringIO(),
    )


def _agent_of(team_name: str) -> User:
    return User.objects.filter(role="agent", teams__name=team_name).order_by("email").first()


def test_start_an_email_conversation_and_see_the_answer_threaded(page, live_server, demo_desk):
    problems = watch_console(page)
    sam = User.objects.get(email="sam@demo.example")
    login(page, live_server, sam, password=DEMO_PASSWORD)

    # Sam writes first, from the top bar's menu
    page.locator(".nav-more summary").click()
    page.locator(".nav-more-menu").get_by_role("link", name="New conversation").click()
    page.get_by_label("Write on").select_option(label="Email: Billing email (Billing)")
    page.get_by_label("To").fill("maya.new@example.com")
    page.get_by_label("Subject").fill("Your annual plan renews on Monday")
    page.get_by_label("Message").fill(
        "Hello Maya,\n\nYour plan renews on Monday. Reply here if you want to change it.\n\nSam"
    )
    screenshot(page, "conversation-new")
    page.get_by_role("button", name="Send and start").click()

    expect(page.get_by_text("Conversation started")).to_be_visible()
    conversation = Conversation.objects.get(subject="Your annual plan renews on Monday")
    assert page.url.endswith(f"/conversations/{conversation.pk}/")
    expect(page.locator(".conv-head .status")).to_have_text("Pending on customer")
    (sent,) = [m for m in mail.outbox if m.to == ["maya.new@example.com"]]
    assert sent.subject == f"Your annual plan renews on Monday [#{conversation.pk}]"
    assert (conversation.contacts_counted, conversation.status) == (0, "pending")

    # Maya answers from her mail program: In-Reply-To names the desk's Message-ID
    channel = Channel.objects.get(name="Billing email")
    answer = email_bytes(
        sender="Maya New <maya.new@example.com>",
        to="billing@demo.example",
        subject=f"Re: {sent.subject}",
        body="Thanks Sam, please switch me to the monthly plan.",
        in_reply_to=sent.extra_headers["Message-ID"],
        references=sent.extra_headers["Message-ID"],
    )
    assert post_email(channel, answer).status_code == 201

    page.reload()
    expect(page.get_by_text("please switch me to the monthly plan")).to_be_visible()
    expect(page.locator(".contact-boundary").first).to_contain_text("Contact 1 · email")
    expect(page.locator(".conv-head .status")).to_have_text("Open")
    conversation.refresh_from_db()
    assert (conversation.contacts_counted, conversation.status) == (1, "open")
    screenshot(page, "conversation-started")
    assert problems == []


def test_log_a_call_and_the_contact_and_phone_figures_count_it(page, live_server, demo_desk):
    from metrics.services import facts_compute

    problems = watch_console(page)
    # an open conversation of Sam's team (Billing)
    sam = User.objects.get(email="sam@demo.example")
    conversation = (
        Conversation.objects.filter(team__name="Billing", status__in=["new", "open", "pending"])
        .order_by("-last_activity_at")
        .first()
    )
    api = client_for(sam)
    before = api.get(f"/api/v1/conversations/{conversation.pk}/").json()["contacts_counted"]
    today = timezone.localdate()

    def handle_time_n() -> int:
        facts_compute(day_from=today - timedelta(days=1), day_to=today + timedelta(days=1))
        response = api.get(
            "/api/v1/scorecards/",
            {
                "from": today.isoformat(),
                "to": (today + timedelta(days=1)).isoformat(),
                "group_by": "agent",
            },
        )
        assert response.status_code == 200, response.content
        groups = response.json()["groups"]
        return sum(group["metrics"]["handle_time"]["n"] for group in groups)

    calls_before = handle_time_n()
    login(page, live_server, sam, password=DEMO_PASSWORD)
    page.goto(f"{live_server.url}/conversations/{conversation.pk}/")

    # Sam took the call and logs it: the customer called, 3 min 20 s, the customer hung up
    page.locator("#log-call summary").click()
    form = page.locator("#log-call form")
    form.get_by_label("The customer called").check()
    form.get_by_label("Wait (s)").fill("25")
    form.get_by_label("Talk (s)").fill("200")
    form.get_by_label("Hold (s)").fill("15")
    form.get_by_label("Ended by").select_option("customer")
    form.get_by_label("Notes").fill("Called to confirm the refund date.")
    form.get_by_role("button", name="Log call").click()

    expect(page.get_by_text("Call logged.")).to_be_visible()
    entry = page.locator(".entry", has_text="Called to confirm the refund date.")
    expect(entry).to_contain_text("talked 3m 20s")
    expect(entry.locator(".call-details")).to_contain_text("Logged by")
    after = api.get(f"/api/v1/conversations/{conversation.pk}/").json()["contacts_counted"]
    assert after == before + 1
    # the phone figures include it: one more call in Sam's handle time today
    assert handle_time_n() == calls_before + 1
    screenshot(page, "call-logged")
    assert problems == []


def test_screen_pop_lands_on_the_customer_and_shows_their_page(page, live_server, demo_desk):
    problems = watch_console(page)
    identity = Identity.objects.select_related("customer").get(kind="phone", value="+14155550142")
    customer = identity.customer
    team = (
        Conversation.objects.filter(customer=customer, team__isnull=False)
        .order_by("-last_activity_at")
        .values_list("team__name", flat=True)
        .first()
    )
    agent = _agent_of(team)
    login(page, live_server, agent, password=DEMO_PASSWORD)

    # the phone system opens the screen pop with the caller's number as it shows it
    page.goto(f"{live_server.url}/lookup/?phone=(415) 555-0142")

    assert page.url == f"{live_server.url}/customers/{customer.pk}/"
    expect(page.get_by_role("heading", level=1)).to_have_text(str(customer))
    expect(page.locator(".identities")).to_contain_text("+1 415 555 0142")
    rows = page.locator(".customer-conversations tbody tr")
    assert rows.count() == Conversation.objects.filter(customer=customer).count()
    # open conversations come first
    statuses = [
        s.strip() for s in page.locator(".customer-conversations .status").all_inner_texts()
    ]
    open_labels = {"New", "Open", "Pending on customer"}
    first_closed = next((i for i, s in enumerate(statuses) if s not in open_labels), len(statuses))
    assert all(s not in open_labels for s in statuses[first_closed:])
    page.set_viewport_size({"width": 1280, "height": 900})
    screenshot(page, "customer")

    # an unknown number opens the new-customer form, filled in
    page.goto(f"{live_server.url}/lookup/?phone=(415) 555-0199")
    expect(page.get_by_label("Phone")).to_have_value("(415) 555-0199")
    page.get_by_label("Name").fill("Robin Caller")
    page.get_by_role("button", name="Create customer").click()
    expect(page.get_by_role("heading", level=1)).to_have_text("Robin Caller")
    screenshot(page, "customer-new-from-screen-pop")
    assert problems == []


def test_the_customer_directory_finds_by_phone_in_any_format(page, live_server, demo_desk):
    identity = Identity.objects.select_related("customer").get(kind="phone", value="+14155550142")
    team = (
        Conversation.objects.filter(customer=identity.customer, team__isnull=False)
        .values_list("team__name", flat=True)
        .first()
    )
    login(page, live_server, _agent_of(team), password=DEMO_PASSWORD)

    page.get_by_role("link", name="Customers").click()
    page.get_by_role("searchbox", name="Search").fill("555 0142")
    page.get_by_role("button", name="Search").click()

    expect(page.locator("table.customers tbody tr")).to_have_count(1)
    expect(page.locator("table.customers")).to_contain_text(str(identity.customer))
    screenshot(page, "customers")
