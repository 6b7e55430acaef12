"""A new manager sets up hours, a promise, routing, a rule and availability in Chromium."""

from __future__ import annotations

import pytest
from playwright.sync_api import expect

from routing.models import BusinessHours, Rule, TeamRouting
from routing.services import availability_set
from supportdesk.models import User
from tests.browser import login, screenshot, watch_console
from tests.factories import make_staff, send_chat
from tickets.models import Conversation, Event
from tickets.services import tag_create

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]


def test_a_new_manager_sets_up_hours_routing_rules_and_availability(
    page, live_server, manager_a, agent_a, channels, admin_user
):
    problems = watch_console(page)
    tag_create(name="refunds", actor=manager_a)
    make_staff("sam@desk.example", role="agent", teams=["Team A"], full_name="Sam Second")
    login(page, live_server, manager_a)

    # Hours and routing, from the top bar's "More" menu
    page.locator(".nav-more summary").click()
    page.locator(".nav-more-menu").get_by_role("link", name="Hours & promises").click()
    team = page.locator(f"section#hours-{channels['chat'].team_id}")
    team.get_by_label("Time zone").fill("Europe/Berlin")
    for day in ("Monday", "Tuesday", "Wednesday", "Thursday", "Friday"):
        team.get_by_label(day, exact=True).fill("09:00-12:30, 13:30-17:00")
    team.get_by_role("button", name="Save hours").click()
    expect(page.get_by_text("Hours of Team A saved.")).to_be_visible()
    hours = BusinessHours.objects.get(team=channels["chat"].team)
    assert hours.week["mon"] == [["09:00", "12:30"], ["13:30", "17:00"]]
    assert hours.week["sat"] == []
    team = page.locator(f"section#hours-{channels['chat'].team_id}")
    team.locator("input[name=date]").fill("2026-12-25")
    team.locator("input[name=name]").fill("Christmas")
    team.get_by_role("button", name="Add").click()
    expect(page.get_by_text("Christmas")).to_be_visible()
    team = page.locator(f"section#hours-{channels['chat'].team_id}")
    team.get_by_label("New conversations").select_option("round_robin")
    team.get_by_label("Open conversations per agent at most (0: no cap)").fill("5")
    team.get_by_role("button", name="Save routing").click()
    expect(page.get_by_text("Routing of Team A saved.")).to_be_visible()
    routing = TeamRouting.objects.get(team=channels["chat"].team)
    assert (routing.mode, routing.cap) == ("round_robin", 5)
    # A manager cannot change the promises (the admin's), nor the desk's hours
    expect(page.get_by_role("button", name="Save promise")).to_have_count(0)
    team.scroll_into_view_if_needed()
    screenshot(page, "routing-hours")

    # A rule, tried first on the recent conversations
    send_chat(channels["chat"], session_id="old", visitor_id="old", body="Where is my refund?")
    page.locator(".nav-more summary").click()
    page.locator(".nav-more-menu").get_by_role("link", name="Rules").click()
    page.get_by_label("Name").fill("Refunds are urgent")
    page.get_by_label("Words in the subject or message").fill("refund, chargeback")
    page.locator("#rule-form").get_by_label("Chat").check()
    page.get_by_label("Add tags").select_option("refunds")
    page.get_by_label("Set priority").select_option("urgent")
    page.get_by_label("Add an internal note").fill("Check the payment provider first.")
    page.get_by_role("button", name="Dry run on the last 30 days").click()
    expect(page.get_by_text("Dry run: 1 conversation would have matched")).to_be_visible()
    assert Rule.objects.count() == 0
    page.get_by_role("button", name="Add rule").click()
    expect(page.get_by_text("Rule “Refunds are urgent” saved.")).to_be_visible()
    rule = Rule.objects.get()
    assert rule.conditions == {"channel_kinds": ["chat"], "words": ["refund", "chargeback"]}
    assert rule.actions == {
        "add_tags": ["refunds"],
        "priority": "urgent",
        "note": "Check the payment provider first.",
    }
    expect(page.locator("#rule-list")).to_contain_text("Refunds are urgent")
    screenshot(page, "routing-rules")

    # A customer writes: the rule applies and round-robin gives it to an agent (whose
    # availability ignores the hours, so that the test does not depend on the time of day)
    for agent in User.objects.filter(role="agent"):
        availability_set(user=agent, status="available", follows_hours=False, actor=agent)
    result = send_chat(channels["chat"], session_id="new", visitor_id="new", body="A refund?")
    conversation = Conversation.objects.get(pk=result.conversation_id)
    assert conversation.priority == "urgent"
    assert conversation.assignee is not None
    assert Event.objects.filter(conversation=conversation, kind="rule.applied").count() == 1
    page.reload()
    expect(page.locator("#rule-list")).to_contain_text("1")

    # Availability: Sam goes away; the manager sees it
    page.locator(".nav-more summary").click()
    page.locator(".nav-more-menu").get_by_role("link", name="Availability").click()
    row = page.locator("tr", has_text="Sam Second")
    row.get_by_role("combobox").select_option("away")
    row.get_by_role("button", name="Set").click()
    expect(page.get_by_text("Sam Second is now away.")).to_be_visible()
    expect(page.locator("tr", has_text="Sam Second")).to_contain_text("Away")
    screenshot(page, "routing-availability")
    assert problems == []
