"""The workspace's fragment caches (tickets.fragments): reused while nothing they show changed,
re-rendered on the next request after anything they show changed, never shared across viewers
whose pages differ."""

from __future__ import annotations

import re
from datetime import timedelta

import pytest
import time_machine
from django.core.cache import cache
from django.utils import timezone, translation

from supportdesk.models import User
from tests.factories import send_call, send_chat, send_email
from tests.helpers import web
from tests.tickets.privacy_data import email_with_file
from tickets.fragments import fragment_key
from tickets.models import Conversation, Customer, Tag
from tickets.services import (
    conversation_reply,
    conversation_solve,
    conversation_triage,
    customer_erase,
    customer_update,
    inbound_email_raw,
    message_delivery_failed,
    message_move,
    retention_policy_update,
    retention_run,
)

pytestmark = pytest.mark.django_db

MESSAGE = "tickets/_message.html"
PAST = "tickets/_past_conversations.html"
ROW = "tickets/_queue_row.html"
# How an inbound message names the address it came from.
JANE_EMAIL_SHOWN = '<span class="muted">(jane@example.com)</span>'


@pytest.fixture(autouse=True)
def _empty_cache():
    cache.clear()
    yield
    cache.clear()


def renders(response, name: str) -> int:
    return sum(1 for template in response.templates if template.name == name)


def counts(response) -> dict[str, int]:
    """The queue views' counts as the page shows them."""
    return {
        view: int(count)
        for view, count in re.findall(
            r'href="\?view=(\w+)[^"]*"[^>]*>[^<]*<span class="count">(\d+)</span>',
            response.content.decode(),
        )
    }


def conversation_of(result) -> Conversation:
    return Conversation.objects.get(pk=result.conversation_id)


def three_channel_conversation(channels) -> Conversation:
    """Jane: an email, a chat, a call; an agent's reply and note come later in each test."""
    conversation = conversation_of(
        send_email(channels["email"], sender="Jane Doe <jane@example.com>", body="Parcel late?")
    )
    send_chat(channels["chat"], visitor_id="v-jane", email="jane@example.com", body="Any news?")
    return conversation


# --- Conversation page: reuse ----------------------------------------------------------------------


def test_second_visit_renders_no_message_and_runs_the_same_queries(
    channels, agent_a, django_assert_num_queries, without_higher_apps
):
    # Given: a conversation of 5 messages and a past conversation of the same customer
    earlier = conversation_of(send_email(channels["email"], sender="jane@example.com"))
    conversation_reply(conversation=earlier, author=agent_a, body="Done")
    conversation_solve(conversation=earlier, actor=agent_a)
    conversation = three_channel_conversation(channels)
    for i in range(2):
        conversation_reply(conversation=conversation, author=agent_a, body=f"answer {i}")
    conversation_reply(conversation=conversation, author=agent_a, body="note", internal=True)
    client = web(agent_a)
    url = f"/conversations/{conversation.pk}/"
    first = client.get(url)
    assert renders(first, MESSAGE) == 5
    assert renders(first, PAST) == 1

    # When: the agent opens it again; the fragments cost no query (the page's 20, as
    # test_conversation_page_runs_a_constant_number_of_queries lists them)
    with django_assert_num_queries(20):
        second = client.get(url)

    # Then: nothing was rendered again, and the page is the same but for the CSRF tokens
    assert renders(second, MESSAGE) == 0
    assert renders(second, PAST) == 0
    assert timeline(second) == timeline(first)


def timeline(response) -> str:
    body = response.content.decode()
    return body[body.index('<ol class="timeline">') : body.index("</ol>")].replace(
        str(response.context["csrf_token"]), "CSRF"
    )


def test_a_new_message_renders_only_itself(channels, agent_a):
    conversation = three_channel_conversation(channels)
    client = web(agent_a)
    client.get(f"/conversations/{conversation.pk}/")

    conversation_reply(conversation=conversation, author=agent_a, body="A new answer")
    response = client.get(f"/conversations/{conversation.pk}/")

    assert renders(response, MESSAGE) == 1
    assert "A new answer" in response.content.decode()


# --- Conversation page: every change shows on the next request ------------------------------------


def test_erasing_the_customer_removes_their_text_from_the_cached_page(
    channels, agent_a, admin_user
):
    conversation = three_channel_conversation(channels)
    client = web(agent_a)
    before = client.get(f"/conversations/{conversation.pk}/").content.decode()
    assert "Parcel late?" in before
    assert JANE_EMAIL_SHOWN in before

    customer_erase(customer=conversation.customer, actor=admin_user)
    body = client.get(f"/conversations/{conversation.pk}/").content.decode()

    assert "Parcel late?" not in body
    assert "Any news?" not in body
    assert "Jane Doe" not in body
    assert JANE_EMAIL_SHOWN not in body
    assert f"Erased customer #{conversation.customer_id}" in body


def test_retention_deleting_files_removes_them_from_the_cached_page(channels, agent_a, admin_user):
    result = inbound_email_raw(
        channel=channels["email"],
        raw=email_with_file("jane@example.com", "Report", "See the file", "report.pdf"),
    )
    client = web(agent_a)
    assert "report.pdf" in client.get(f"/conversations/{result.conversation_id}/").content.decode()

    retention_policy_update(
        actor=admin_user, raw_mime_days=None, attachment_days=1, anonymise_closed_days=None
    )
    with time_machine.travel(timezone.now() + timedelta(days=2)):
        retention_run()
    body = client.get(f"/conversations/{result.conversation_id}/").content.decode()

    assert "report.pdf" not in body


def test_a_moved_message_leaves_the_source_page_and_shows_on_the_target(channels, agent_a):
    # Given: Jane's solved email, then her chat (a new conversation)
    source = conversation_of(
        send_email(channels["email"], sender="jane@example.com", body="Belongs to the parcel")
    )
    conversation_solve(conversation=source, actor=agent_a)
    target = conversation_of(send_chat(channels["chat"], email="jane@example.com", body="Hi"))
    assert source.pk != target.pk
    client = web(agent_a)
    assert "Belongs to the parcel" in client.get(f"/conversations/{source.pk}/").content.decode()
    assert (
        "Belongs to the parcel" not in client.get(f"/conversations/{target.pk}/").content.decode()
    )

    message_move(message=source.messages.get(), to_conversation=target, actor=agent_a)

    assert (
        "Belongs to the parcel" not in client.get(f"/conversations/{source.pk}/").content.decode()
    )
    assert "Belongs to the parcel" in client.get(f"/conversations/{target.pk}/").content.decode()


def test_a_delivery_failure_shows_on_the_next_visit(channels, agent_a):
    conversation = three_channel_conversation(channels)
    reply = conversation_reply(
        conversation=conversation, author=agent_a, body="Here it is", channel_kind="email"
    )
    client = web(agent_a)
    reply.refresh_from_db()
    assert reply.delivery_state == "queued"  # sent once the test's transaction commits: never
    assert '<span class="delivery delivery-queued" title="">Queued</span>' in (
        client.get(f"/conversations/{conversation.pk}/").content.decode()
    )

    message_delivery_failed(message_id=reply.pk, error="550 mailbox full")
    body = client.get(f"/conversations/{conversation.pk}/").content.decode()

    assert "Failed: 550 mailbox full" in body
    assert "delivery-queued" not in body


def test_renaming_the_customer_and_the_agent_shows_on_the_next_visit(channels, agent_a):
    conversation = three_channel_conversation(channels)
    conversation_reply(conversation=conversation, author=agent_a, body="On it")
    client = web(agent_a)
    body = client.get(f"/conversations/{conversation.pk}/").content.decode()
    assert '<strong class="author">Jane Doe' in body

    customer_update(customer=conversation.customer, actor=agent_a, name="Jane Roe")
    User.objects.filter(pk=agent_a.pk).update(full_name="Agent Renamed")
    body = client.get(f"/conversations/{conversation.pk}/").content.decode()

    assert '<strong class="author">Jane Roe' in body
    assert '<strong class="author">Agent Renamed</strong>' in body


def test_a_calls_changed_times_show_on_the_next_visit(channels, agent_a):
    result = send_call(channels["phone"], from_number="+1 415 555 0100", talk_seconds=95)
    client = web(agent_a)
    assert "<dt>Talk</dt><dd>95 s</dd>" in (
        client.get(f"/conversations/{result.conversation_id}/").content.decode()
    )

    from tickets.models import Contact

    Contact.objects.filter(conversation_id=result.conversation_id).update(talk_seconds=120)
    body = client.get(f"/conversations/{result.conversation_id}/").content.decode()

    assert "<dt>Talk</dt><dd>120 s</dd>" in body


# --- Per viewer: nothing leaks ----------------------------------------------------------------------


def test_past_conversations_of_another_team_stay_unlinked_for_an_agent_after_an_admin(
    channels, channels_b, agent_a, admin_user
):
    # Given: Jane wrote to team B before, then to team A
    elsewhere = conversation_of(
        send_email(channels_b["email"], sender="jane@example.com", subject="Team B matter")
    )
    current = conversation_of(send_email(channels["email"], sender="jane@example.com"))
    assert elsewhere.customer_id == current.customer_id

    # When: an admin opens the page first (the past list with a link), then the agent
    admin_body = web(admin_user).get(f"/conversations/{current.pk}/").content.decode()
    agent_body = web(agent_a).get(f"/conversations/{current.pk}/").content.decode()

    # Then: the agent sees that it exists, not its link
    link = f'href="/conversations/{elsewhere.pk}/"'
    assert link in admin_body
    assert link not in agent_body
    assert "In other teams" in agent_body


def test_each_viewer_gets_their_own_csrf_token_in_a_cached_timeline(channels, agent_a, manager_a):
    conversation = three_channel_conversation(channels)
    other = conversation_of(send_email(channels["email"], sender="jane@example.com", subject="B"))
    assert other.pk != conversation.pk
    first = web(agent_a).get(f"/conversations/{conversation.pk}/")
    second = web(manager_a).get(f"/conversations/{conversation.pk}/")

    assert renders(second, MESSAGE) == 0
    # The move forms (one per public message) carry the viewer's own token
    mine = second.content.decode().count(
        f'name="csrfmiddlewaretoken" value="{second.context["csrf_token"]!s}"'
    )
    assert mine >= 2
    assert str(first.context["csrf_token"]) not in second.content.decode()


def test_the_key_holds_the_language_and_the_time_zone():
    parts = (1, "inbound")
    key = fragment_key(MESSAGE, parts)

    with translation.override("de"):
        german = fragment_key(MESSAGE, parts)
    with timezone.override("Europe/Paris"):
        paris = fragment_key(MESSAGE, parts)

    assert len({key, german, paris}) == 3
    assert fragment_key(MESSAGE, parts) == key
    assert fragment_key(MESSAGE, (1, "outbound")) != key
    assert fragment_key(ROW, parts) != key


# --- Queue ------------------------------------------------------------------------------------------


def test_queue_rows_are_reused_and_their_times_stay_live(channels, agent_a):
    for i in range(3):
        send_email(channels["email"], sender=f"c{i}@example.com", subject=f"Question {i}")
    client = web(agent_a)
    first = client.get("/")
    assert renders(first, ROW) == 3
    assert "just now" in first.content.decode()

    with time_machine.travel(timezone.now() + timedelta(minutes=12)):
        later = client.get("/")

    assert renders(later, ROW) == 0
    body = later.content.decode()
    assert body.count("12 min ago") == 3
    assert "Question 0" in body


def test_queue_row_shows_a_new_tag_a_rename_and_a_priority_on_the_next_poll(
    channels, agent_a, manager_a
):
    conversation = conversation_of(
        send_email(channels["email"], sender="Jane Doe <jane@example.com>", subject="Billing")
    )
    client = web(agent_a)
    assert "Jane Doe" in client.get("/").content.decode()

    tag = Tag.objects.create(name="refund")
    conversation_triage(conversation=conversation, actor=manager_a, tags=[tag], priority="high")
    customer_update(
        customer=Customer.objects.get(pk=conversation.customer_id), actor=agent_a, name="Jane Roe"
    )
    poll = client.get("/", headers={"HX-Request": "true"})

    assert renders(poll, ROW) == 1
    body = poll.content.decode()
    assert '<span class="tag">refund</span>' in body
    assert "Jane Roe" in body
    assert "Jane Doe" not in body
    assert 'class="queue-row priority-row-high"' in body


def test_queue_poll_reuses_the_counts_while_its_page_is_the_same(
    channels, agent_a, settings, django_assert_num_queries, without_higher_apps
):
    settings.QUEUE_COUNTS_SECONDS = 20
    send_email(channels["email"], sender="a@example.com")
    client = web(agent_a)
    poll = {"HX-Request": "true"}
    # A poll with nothing kept counts: session, user, page (with each row's last customer
    # message and last reply), the rows' tags, counts of the open views, count of the recently
    # solved, filter teams, filter agents, filter tags, saved views (the partial shows no
    # notifications badge)
    with django_assert_num_queries(10):
        first = client.get("/", headers=poll)
    # The same page 15 s later: the two counts are kept
    with django_assert_num_queries(8):
        again = client.get("/", headers=poll)
    expected = {"open": 1, "mine": 0, "unassigned": 1, "pending": 0, "reopened": 0, "solved": 0}
    assert counts(first) == counts(again) == expected

    # A new conversation on the page is counted at once
    send_email(channels["email"], sender="b@example.com")
    with django_assert_num_queries(10):
        new = client.get("/", headers=poll)
    assert counts(new)["open"] == 2

    # A change the page does not show (the pending view lists none of these) is up to 20 s
    # behind on a poll...
    client.get("/?view=pending", headers=poll)
    send_email(channels["email"], sender="c@example.com")
    with django_assert_num_queries(7):  # as above, and no rows: no tags to read
        kept = client.get("/?view=pending", headers=poll)
    assert counts(kept)["open"] == 2
    # ...never on a page load (which keeps its counts for the next poll)
    with django_assert_num_queries(10):  # the full page's 11 (test_workspace), but the tags
        load = client.get("/?view=pending")
    assert counts(load)["open"] == 3
    # ...and 20 s at most
    send_email(channels["email"], sender="d@example.com")
    with (
        time_machine.travel(timezone.now() + timedelta(seconds=21)),
        django_assert_num_queries(9),  # counted again (no rows: no tags)
    ):
        late = client.get("/?view=pending", headers=poll)
    assert counts(late)["open"] == 4


def test_queue_counts_are_never_shared_between_users(channels, agent_a, manager_a):
    mine = conversation_of(send_email(channels["email"], sender="a@example.com"))
    from tickets.services import conversation_assign

    conversation_assign(conversation=mine, actor=manager_a, agent=agent_a)
    assert web(agent_a).get("/").context["page"].counts["mine"] == 1

    poll = web(manager_a).get("/", headers={"HX-Request": "true"})

    assert counts(poll)["mine"] == 0
    assert counts(poll)["open"] == 1


def test_the_pages_render_when_the_cache_is_down(channels, agent_a, monkeypatch):
    conversation = three_channel_conversation(channels)

    def down(*args, **kwargs):
        raise ConnectionError("Redis is down")

    for method in ("get", "set", "get_many", "set_many"):
        monkeypatch.setattr(cache, method, down)
    client = web(agent_a)
    page = client.get(f"/conversations/{conversation.pk}/")
    poll = client.get("/", headers={"HX-Request": "true"})

    assert page.status_code == 200
    assert renders(page, MESSAGE) == 2
    assert "Parcel late?" in page.content.decode()
    assert poll.status_code == 200
    assert renders(poll, ROW) == 1
    assert counts(poll)["open"] == 1
