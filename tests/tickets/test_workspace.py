"""The agent workspace pages: queue, conversation page, actions, email frame, webhooks, /chat/."""

from __future__ import annotations

import hashlib
import hmac
import json
import threading
import urllib.error
from datetime import timedelta
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from unittest import mock

import pytest
import time_machine
from django.core import mail
from django.core.cache import cache
from django.test import Client
from django.utils import timezone

from supportdesk import extensions
from tests.factories import send_call, send_chat, send_email
from tests.helpers import outbox_held, web
from tickets.models import (
    Conversation,
    ConversationViewer,
    Customer,
    CustomerMerge,
    Identity,
    Message,
    SavedReply,
)
from tickets.services import (
    OutboundFile,
    WebhookRejected,
    channel_set_webhook,
    conversation_assign,
    conversation_presence_touch,
    conversation_reply,
    conversation_solve,
    inbound_email_raw,
    message_webhook_send,
    saved_replies_seed_defaults,
    webhook_signature,
)

pytestmark = pytest.mark.django_db

HOSTILE = Path(__file__).parent / "emails" / "hostile_html.eml"


@pytest.fixture(autouse=True)
def _fresh_rate_limits():
    cache.clear()
    yield
    cache.clear()


def at(minutes_ago: int):
    return timezone.now() - timedelta(minutes=minutes_ago)


def conversation_of(result) -> Conversation:
    return Conversation.objects.get(pk=result.conversation_id)


# --- Queue ------------------------------------------------------------------------------------------


def test_queue_views_count_and_list_exactly_what_they_say(channels, agent_a, manager_a):
    # Given: one conversation in each situation
    mine = conversation_of(send_email(channels["email"], sender="a@example.com", subject="Mine"))
    conversation_assign(conversation=mine, actor=manager_a, agent=agent_a)
    unassigned = conversation_of(
        send_email(channels["email"], sender="b@example.com", subject="Nobody")
    )
    pending = conversation_of(send_email(channels["email"], sender="c@example.com", subject="P"))
    conversation_reply(conversation=pending, author=manager_a, body="Tell me more")
    from tickets.services import conversation_set_pending

    conversation_set_pending(conversation=pending, actor=manager_a)
    reopened = conversation_of(send_chat(channels["chat"], visitor_id="v-r", body="broken"))
    conversation_solve(conversation=reopened, actor=manager_a)
    send_chat(channels["chat"], visitor_id="v-r", body="still broken")
    solved = conversation_of(send_email(channels["email"], sender="d@example.com", subject="S"))
    conversation_solve(conversation=solved, actor=manager_a)

    # When
    response = web(agent_a).get("/")

    # Then: counts per view
    assert response.status_code == 200
    counts = {v.key: n for v, n in response.context["views"]}
    assert counts == {
        "open": 4,
        "mine": 1,
        "unassigned": 1,
        "pending": 1,
        "reopened": 1,
        "solved": 1,
    }
    listed = {
        view: [c.pk for c in web(agent_a).get(f"/?view={view}").context["page"].conversations]
        for view in counts
    }
    assert listed["mine"] == [mine.pk]
    assert listed["unassigned"] == [unassigned.pk]
    assert listed["pending"] == [pending.pk]
    assert listed["reopened"] == [reopened.pk]
    assert listed["solved"] == [solved.pk]
    assert set(listed["open"]) == {mine.pk, unassigned.pk, pending.pk, reopened.pk}


def test_queue_finds_a_customer_by_phone_number_in_any_format(channels, agent_a):
    # Given: a call from +1 415 555 0100 and an email from someone else
    call = send_call(channels["phone"], from_number="+1 415 555 0100")
    send_email(channels["email"], sender="Other <other@example.com>")

    # Then: the number in any format (and a fragment of it) finds the call's conversation only
    for query in ("(415) 555-0100", "415.555.0100", "+14155550100", "555 0100"):
        page = web(agent_a).get("/", {"q": query}).context["page"]
        assert [c.pk for c in page.conversations] == [call.conversation_id], query


def test_queue_search_by_email_name_subject_and_id(channels, agent_a):
    jane = send_email(channels["email"], sender="Jane Doe <jane@example.com>", subject="Invoice")
    bob = send_email(channels["email"], sender="Bob Roe <bob@example.org>", subject="Login fails")
    client = web(agent_a)

    def found(q):
        return [c.pk for c in client.get("/", {"q": q}).context["page"].conversations]

    assert found("JANE@example.com") == [jane.conversation_id]
    assert found("bob roe") == [bob.conversation_id]
    assert found("login") == [bob.conversation_id]
    assert found(f"#{jane.conversation_id}") == [jane.conversation_id]
    assert found("nobody-matches-this") == []


@pytest.mark.parametrize(("customers", "messages"), [(500, 1000), (1, 0)])
def test_queue_search_naming_many_customers_or_messages_finds_the_same_conversations(
    channels, agent_a, monkeypatch, customers, messages
):
    # Given three customers, two of them on example.com, two writing about a kettle
    jane = send_email(
        channels["email"], sender="Jane Doe <jane@example.com>", body="The kettle leaks."
    )
    ann = send_email(channels["email"], sender="Ann <ann@example.com>", body="Refund please")
    bob = send_email(channels["email"], sender="Bob <bob@example.org>", body="Kettle broken")
    # When a search names more customers or messages than are put in by id (1 and 0), or fewer
    monkeypatch.setattr("tickets.selectors.queue.SEARCH_CUSTOMERS_INLINE", customers)
    monkeypatch.setattr("tickets.selectors.queue.SEARCH_MESSAGES_INLINE", messages)
    client = web(agent_a)

    def found(q):
        page = client.get("/", {"q": q}).context["page"]
        return {c.pk for c in page.conversations}, page.counts["open"]

    # Then the same conversations are found either way, and counted alike
    assert found("example.com") == ({jane.conversation_id, ann.conversation_id}, 2)
    assert found("kettle") == ({jane.conversation_id, bob.conversation_id}, 2)
    assert found("nobody@nowhere.test") == (set(), 0)


def test_queue_filters_by_channel_status_team_and_assignee(
    channels, channels_b, agent_a, admin_user
):
    email = send_email(channels["email"], sender="a@example.com")
    chat = send_chat(channels["chat"], visitor_id="v-9")
    other_team = send_email(channels_b["email"], sender="b@example.com")
    conversation_assign(conversation=conversation_of(chat), actor=admin_user, agent=agent_a)
    conversation_reply(conversation=conversation_of(chat), author=agent_a, body="Hello!")
    client = web(admin_user)

    def found(**params):
        return {c.pk for c in client.get("/", params).context["page"].conversations}

    assert found(channel="chat") == {chat.conversation_id}
    assert found(channel="email") == {email.conversation_id, other_team.conversation_id}
    assert found(team=channels_b["email"].team_id) == {other_team.conversation_id}
    assert found(assignee=str(agent_a.pk)) == {chat.conversation_id}
    assert found(assignee="none") == {email.conversation_id, other_team.conversation_id}
    assert found(status="new") == {email.conversation_id, other_team.conversation_id}
    assert found(status="open") == {chat.conversation_id}
    # An agent of team A never sees team B's conversation, whatever the filter
    assert other_team.conversation_id not in {
        c.pk
        for c in web(agent_a)
        .get("/", {"team": channels_b["email"].team_id})
        .context["page"]
        .conversations
    }


def test_queue_pages_by_keyset_without_gaps_or_repeats(channels, agent_a):
    # Given: 30 conversations with distinct activity times, two of them at the same instant
    same = at(100)
    ids = []
    for i in range(30):
        sent = same if i in (10, 11) else at(200 - i)
        with time_machine.travel(sent, tick=False):
            ids.append(send_email(channels["email"], sender=f"c{i}@example.com").conversation_id)
    client = web(agent_a)

    # When
    first = client.get("/").context["page"]
    second = client.get("/", {"after": first.next_cursor}).context["page"]

    # Then
    assert len(first.conversations) == 25
    assert len(second.conversations) == 5
    assert second.next_cursor is None
    seen = [c.pk for c in first.conversations] + [c.pk for c in second.conversations]
    assert sorted(seen) == sorted(ids)
    expected = list(
        Conversation.objects.order_by("-last_activity_at", "-id").values_list("pk", flat=True)
    )
    assert seen == expected


def test_queue_refuses_a_forged_cursor_with_400(agent_a):
    response = web(agent_a).get("/", {"after": "yesterday_abc"})
    assert response.status_code == 400


def test_queue_poll_returns_only_the_queue_fragment(channels, agent_a):
    send_email(channels["email"], sender="a@example.com", subject="Fresh one")
    response = web(agent_a).get("/", headers={"HX-Request": "true"})
    body = response.content.decode()
    assert response.status_code == 200
    assert body.lstrip().startswith('<div id="queue"')
    assert "Fresh one" in body
    assert "<html" not in body


def test_queue_runs_a_constant_number_of_queries(
    channels, agent_a, manager_a, django_assert_num_queries, without_higher_apps
):
    client = web(agent_a)

    def load():
        # session, user, counts of the open views, count of the recently solved, page (with
        # each row's last customer message and last reply), the rows' tags, filter teams,
        # filter agents, filter tags, saved views, unread notifications badge (the user's
        # teams are subqueries of the counts and the page, not queries of their own)
        with django_assert_num_queries(11):
            response = client.get("/")
        return response

    for i in range(3):
        send_email(channels["email"], sender=f"few{i}@example.com")
    assert len(load().context["page"].conversations) == 3
    for i in range(12):
        result = send_email(channels["email"], sender=f"many{i}@example.com")
        conversation_assign(conversation=conversation_of(result), actor=manager_a, agent=agent_a)
    assert len(load().context["page"].conversations) == 15


def test_queue_filter_lists_in_their_order(
    team_a, team_b, agent_a, agent_b, manager_a, admin_user, django_assert_num_queries
):
    from supportdesk.services import staff_deactivate
    from tests.factories import make_staff
    from tickets.selectors import queue_filter_choices
    from tickets.services import saved_view_save, tag_archive, tag_create

    # Given: two teams, a member who left, tags (one archived), saved views of two users
    gone = make_staff("gone@desk.example", role="agent", teams=["Team A"], full_name="Al Gone")
    staff_deactivate(user=gone, actor=admin_user)
    both = make_staff("zed@desk.example", role="agent", teams=["Team A", "Team B"], full_name="")
    tags = {name: tag_create(name=name, actor=manager_a) for name in ("refund", "Billing", "old")}
    tag_archive(tag=tags["old"], actor=manager_a)
    saved_view_save(user=agent_a, name="Urgent", query="priority=urgent")
    saved_view_save(user=agent_a, name="Email", query="channel=email")
    saved_view_save(user=agent_b, name="Mine", query="view=mine")

    # When: the queue's filter lists are read, for an agent and for an admin
    # teams, agents, tags, saved views
    with django_assert_num_queries(4):
        mine = queue_filter_choices(user=agent_a)
    every = queue_filter_choices(user=admin_user)

    # Then: the user's teams and their active members by name, live tags, own saved views
    assert [t.name for t in mine["teams"]] == ["Team A"]
    assert [(a.pk, str(a)) for a in mine["agents"]] == [
        (both.pk, "zed@desk.example"),  # no name: shown by email, sorted first (empty name)
        (agent_a.pk, "Alice Archer"),
        (manager_a.pk, "Mia Manager"),
    ]
    assert [t.name for t in mine["tags"]] == ["Billing", "refund"]
    assert [(v.name, v.query) for v in mine["saved_views"]] == [
        ("Email", "channel=email"),
        ("Urgent", "priority=urgent"),
    ]
    assert [t.name for t in every["teams"]] == ["Team A", "Team B"]
    assert [str(a) for a in every["agents"]] == [
        "zed@desk.example",
        "Alice Archer",
        "Bob Baker",
        "Mia Manager",
    ]
    assert every["saved_views"] == []


# --- Conversation page ------------------------------------------------------------------------------


def email_and_chat_conversation(channels, agent_a) -> Conversation:
    """Jane writes by email, then chats giving her email, then calls from a linked number."""
    from tickets.services import identity_link

    result = send_email(
        channels["email"],
        sender="Jane Doe <jane@example.com>",
        subject="Parcel late",
        body="Where is my parcel?",
    )
    send_chat(
        channels["chat"], visitor_id="v-jane", email="jane@example.com", body="Any news on it?"
    )
    conversation = conversation_of(result)
    identity_link(
        customer=conversation.customer, kind="phone", value="+1 415 555 0100", actor=agent_a
    )
    send_call(channels["phone"], from_number="+1 415 555 0100", talk_seconds=95)
    return conversation


def test_conversation_page_shows_every_channel_with_contact_boundaries(channels, agent_a):
    conversation = email_and_chat_conversation(channels, agent_a)

    response = web(agent_a).get(f"/conversations/{conversation.pk}/")

    body = response.content.decode()
    assert response.status_code == 200
    assert "Where is my parcel?" in body
    assert "Any news on it?" in body
    assert "Contact 1 · email" in body
    assert "Contact 2 · chat" in body
    assert "Contact 3 · phone" in body
    assert "jane@example.com" in body


def test_phone_call_shows_wait_talk_hold_and_who_ended_it(channels, agent_a):
    result = send_call(channels["phone"], from_number="+1 415 555 0100", talk_seconds=95)

    body = web(agent_a).get(f"/conversations/{result.conversation_id}/").content.decode()

    assert "Contact 1 · phone" in body
    assert "<dt>Wait</dt><dd>30 s</dd>" in body
    assert "<dt>Talk</dt><dd>95 s</dd>" in body
    assert "<dt>Hold</dt><dd>10 s</dd>" in body
    assert "<dt>Ended by</dt><dd>Customer</dd>" in body


def test_other_teams_conversation_is_404_not_403(channels_b, agent_a):
    result = send_email(channels_b["email"], sender="x@example.com")
    assert web(agent_a).get(f"/conversations/{result.conversation_id}/").status_code == 404


def test_customer_panel_shows_past_outcomes_and_the_extension_slots(
    channels, agent_a, manager_a, monkeypatch
):
    # Given: two earlier conversations of the same customer, then the current one
    earlier = conversation_of(
        send_email(channels["email"], sender="jane@example.com", subject="Old")
    )
    conversation_solve(conversation=earlier, actor=manager_a)
    unanswered = conversation_of(
        send_email(channels["email"], sender="jane@example.com", subject="Older")
    )
    conversation_solve(conversation=unanswered, actor=manager_a)
    current = conversation_of(
        send_email(channels["email"], sender="jane@example.com", subject="Now")
    )
    monkeypatch.setitem(
        extensions._annotators,
        "conversation.outcome",
        lambda ids: {earlier.pk: "resolved", unanswered.pk: "no_answer"},
    )
    monkeypatch.setitem(
        extensions._panels,
        "conversation.sidebar",
        [lambda request, conversation, customer: f"<p>CSAT for {customer.pk}</p>"],
    )
    monkeypatch.setitem(
        extensions._panels,
        "message.actions",
        [lambda request, conversation, message: f"<a>review {message.pk}</a>"],
    )
    monkeypatch.setitem(
        extensions._panels,
        "conversation.actions",
        [lambda request, conversation: "<button>QA review</button>"],
    )

    body = web(agent_a).get(f"/conversations/{current.pk}/").content.decode()

    assert "Customer said resolved" in body
    assert "No answer to the survey" in body
    assert f"<p>CSAT for {current.customer_id}</p>" in body
    assert "<button>QA review</button>" in body
    first_message = current.messages.get()
    assert f"<a>review {first_message.pk}</a>" in body


def test_customer_panel_shows_a_dash_when_no_app_knows_outcomes(
    channels, agent_a, manager_a, monkeypatch
):
    monkeypatch.delitem(extensions._annotators, "conversation.outcome", raising=False)
    earlier = conversation_of(
        send_email(channels["email"], sender="jane@example.com", subject="Old")
    )
    conversation_solve(conversation=earlier, actor=manager_a)
    current = conversation_of(
        send_email(channels["email"], sender="jane@example.com", subject="Now")
    )

    response = web(agent_a).get(f"/conversations/{current.pk}/")

    others = response.context["other_conversations"]
    assert [(c.pk, c.outcome_label) for c in others] == [(earlier.pk, "—")]


def test_conversation_page_runs_a_constant_number_of_queries(
    channels, agent_a, django_assert_num_queries, without_higher_apps
):
    conversation = email_and_chat_conversation(channels, agent_a)
    client = web(agent_a)
    # session, user, conversation (+customer/team/assignee; the user's teams a subquery), its
    # tags, messages, attachments, presence upsert, contacts, events, identities, other
    # conversations (visible flag: the user's teams a subquery), merges, saved replies, the
    # tags they add, viewers (+user), assignable agents, teams for the assign form, tags for
    # the triage panel, participants (reply-all), unread notifications
    expected = 20

    with django_assert_num_queries(expected):
        client.get(f"/conversations/{conversation.pk}/")
    for i in range(8):
        send_chat(channels["chat"], visitor_id="v-jane", body=f"more {i}", session_id=f"s-{i}")
        conversation_reply(conversation=conversation, author=agent_a, body=f"answer {i}")
    # Email replies with copies and files, and mail from the people copied: still constant.
    for i in range(3):
        conversation_reply(
            conversation=conversation,
            author=agent_a,
            body=f"by email {i}",
            channel_kind="email",
            cc=[f"colleague{i}@example.com"],
            attachments=[
                OutboundFile(filename=f"f{i}.txt", content_type="text/plain", content=b"x")
            ],
        )
        reply = conversation.messages.filter(channel_kind="email", direction="outbound").last()
        send_email(
            channels["email"],
            sender=f"colleague{i}@example.com",
            in_reply_to=f"<{reply.message_id}>",
            body=f"colleague {i} here",
        )
    with django_assert_num_queries(expected):
        response = client.get(f"/conversations/{conversation.pk}/")
    assert len([e for e in response.context["timeline"] if e.message]) == 25
    assert [p.email for p in response.context["participants"]] == [
        f"colleague{i}@example.com" for i in range(3)
    ]


def test_saved_replies_are_seeded_filled_in_and_end_with_an_invitation(channels, agent_a):
    # Given: the defaults (the migration seeds them; a flushed test database may have lost them)
    saved_replies_seed_defaults()
    assert saved_replies_seed_defaults() == 0  # idempotent
    conversation = email_and_chat_conversation(channels, agent_a)

    response = web(agent_a).get(f"/conversations/{conversation.pk}/")

    rendered = {reply.title: text for reply, text in response.context["saved_replies"]}
    assert SavedReply.objects.count() == 4
    assert rendered["Refund issued"].startswith("Hi Jane,")
    assert rendered["Refund issued"].endswith("Alice")
    for text in rendered.values():
        last_paragraph = text.split("\n\n")[-2]
        assert "reply" in last_paragraph.lower() or "together" in last_paragraph.lower(), text


# --- Actions ----------------------------------------------------------------------------------------


def test_reply_by_email_from_the_page_is_sent_threaded(
    channels, agent_a, django_capture_on_commit_callbacks
):
    result = send_email(
        channels["email"], sender="Jane <jane@example.com>", message_id="<orig@mail.example.com>"
    )
    page = web(agent_a).get(f"/conversations/{result.conversation_id}/")

    with django_capture_on_commit_callbacks(execute=True):
        response = web(agent_a).post(
            f"/conversations/{result.conversation_id}/reply/",
            {
                "body": "It ships today.",
                "channel": "email",
                "seen_up_to": page.context["seen_up_to"],
            },
        )

    assert response.status_code == 302
    assert len(mail.outbox) == 1
    sent = mail.outbox[0]
    assert sent.to == ["jane@example.com"]
    assert sent.extra_headers["In-Reply-To"] == "<orig@mail.example.com>"
    assert sent.body == "It ships today."
    reply = Message.objects.get(direction="outbound")
    assert reply.delivery_state == "sent"
    assert conversation_of(result).assignee == agent_a


def test_reply_is_held_when_the_customer_wrote_after_the_page_loaded(channels, agent_a):
    result = send_email(
        channels["email"], sender="jane@example.com", message_id="<one@mail.example.com>"
    )
    seen = web(agent_a).get(f"/conversations/{result.conversation_id}/").context["seen_up_to"]
    send_email(
        channels["email"],
        sender="jane@example.com",
        in_reply_to="<one@mail.example.com>",
        subject="Re: My order has not arrived",
        body="Actually, never mind, it came!",
    )

    response = web(agent_a).post(
        f"/conversations/{result.conversation_id}/reply/",
        {"body": "Sorry for the delay", "channel": "email", "seen_up_to": seen},
    )

    body = response.content.decode()
    assert response.status_code == 409
    assert "The customer wrote 1 new message since you opened this conversation" in body
    assert "Sorry for the delay</textarea>" in body
    assert "Actually, never mind, it came!" in body
    assert Message.objects.filter(direction="outbound").count() == 0
    assert mail.outbox == []
    # Sending again from the refreshed page (newer seen_up_to) goes through
    response = web(agent_a).post(
        f"/conversations/{result.conversation_id}/reply/",
        {"body": "Glad it came!", "channel": "email", "seen_up_to": response.context["seen_up_to"]},
    )
    assert response.status_code == 302
    assert Message.objects.filter(direction="outbound").count() == 1


def test_internal_note_is_stored_and_nothing_is_sent(channels, agent_a):
    result = send_email(channels["email"], sender="jane@example.com")

    web(agent_a).post(
        f"/conversations/{result.conversation_id}/reply/", {"body": "VIP customer", "internal": "1"}
    )

    note = Message.objects.get(direction="note")
    assert (note.body_text, note.author, note.channel_kind) == ("VIP customer", agent_a, "")
    assert mail.outbox == []


def test_empty_reply_is_a_400_and_stores_nothing(channels, agent_a):
    result = send_email(channels["email"], sender="jane@example.com")
    response = web(agent_a).post(f"/conversations/{result.conversation_id}/reply/", {"body": "  "})
    assert response.status_code == 400
    assert Message.objects.exclude(direction="inbound").count() == 0


def test_take_pending_solve_reopen_from_the_page(channels, agent_a):
    conversation = conversation_of(send_email(channels["email"], sender="jane@example.com"))
    client = web(agent_a)
    url = f"/conversations/{conversation.pk}"

    assert client.post(f"{url}/take/").status_code == 302
    conversation.refresh_from_db()
    assert conversation.assignee == agent_a
    client.post(f"{url}/pending/")
    conversation.refresh_from_db()
    assert conversation.status == "pending"
    client.post(f"{url}/solve/")
    conversation.refresh_from_db()
    assert conversation.status == "solved"
    # Solving twice is refused with 409 and changes nothing
    solved_at = conversation.solved_at
    assert client.post(f"{url}/solve/").status_code == 409
    conversation.refresh_from_db()
    assert conversation.solved_at == solved_at
    client.post(f"{url}/reopen/")
    conversation.refresh_from_db()
    assert conversation.status == "open"


def test_assign_to_an_agent_outside_the_team_is_refused(channels, agent_a, agent_b):
    conversation = conversation_of(send_email(channels["email"], sender="jane@example.com"))

    response = web(agent_a).post(
        f"/conversations/{conversation.pk}/assign/", {"agent": str(agent_b.pk)}
    )

    assert response.status_code == 400
    conversation.refresh_from_db()
    assert conversation.assignee is None


def test_move_a_message_to_another_conversation_of_the_customer(channels, agent_a, manager_a):
    first = conversation_of(send_email(channels["email"], sender="jane@example.com", subject="A"))
    second = conversation_of(
        send_email(channels["email"], sender="jane@example.com", subject="B (new topic)")
    )
    stray = send_chat(channels["chat"], visitor_id="v-j", email="jane@example.com", body="About A")

    response = web(agent_a).post(
        f"/messages/{stray.message_id}/move/", {"to_conversation": first.pk}
    )

    assert response.status_code == 302
    assert Message.objects.get(pk=stray.message_id).conversation_id == first.pk
    assert second.pk != first.pk


def test_link_a_handle_then_merge_with_confirmation_and_undo(channels, agent_a):
    # Given: Jane by email, and "the same person" known only by a social handle
    jane = conversation_of(send_email(channels["email"], sender="Jane Doe <jane@example.com>"))
    from tests.factories import send_social

    social = conversation_of(send_social(channels["social"], handle="@janed", network="x"))
    client = web(agent_a)

    # When: the agent links a phone number (free) and then the social handle (taken)
    response = client.post(
        f"/customers/{jane.customer_id}/identities/",
        {"kind": "phone", "value": "(415) 555-0123", "conversation": jane.pk},
    )
    assert response.status_code == 302
    assert Identity.objects.get(kind="phone").value == "+14155550123"
    response = client.post(
        f"/customers/{jane.customer_id}/identities/",
        {"kind": "social", "value": "x:@janed", "conversation": jane.pk},
    )

    # Then: offered a merge confirmation, which merges only when confirmed
    assert response.status_code == 302
    confirm = client.get(response["Location"])
    assert confirm.status_code == 200
    assert "Merge janed into Jane Doe?" in confirm.content.decode()
    assert Customer.objects.get(pk=social.customer_id).merged_into_id is None
    response = client.post(
        f"/customers/{jane.customer_id}/merge/",
        {"other": social.customer_id, "conversation": jane.pk},
    )
    assert response.status_code == 302
    assert Customer.objects.get(pk=social.customer_id).merged_into_id == jane.customer_id
    assert conversation_of_pk(social.pk).customer_id == jane.customer_id

    # And the undo on the customer panel puts everything back
    merge = CustomerMerge.objects.get()
    page = client.get(f"/conversations/{jane.pk}/").content.decode()
    assert f"/merges/{merge.pk}/undo/" in page
    client.post(f"/merges/{merge.pk}/undo/", {"conversation": jane.pk})
    assert Customer.objects.get(pk=social.customer_id).merged_into_id is None
    assert conversation_of_pk(social.pk).customer_id == social.customer_id


def conversation_of_pk(pk):
    return Conversation.objects.get(pk=pk)


def test_presence_shows_other_viewers_and_who_is_replying(channels, agent_a, manager_a):
    conversation = conversation_of(send_email(channels["email"], sender="jane@example.com"))
    alice, mia = web(agent_a), web(manager_a)
    alice.get(f"/conversations/{conversation.pk}/")
    mia.post(f"/conversations/{conversation.pk}/presence/", {"seen_up_to": 0, "replying": "1"})

    response = alice.post(
        f"/conversations/{conversation.pk}/presence/",
        {"seen_up_to": conversation.messages.get().pk, "replying": "0"},
    )

    body = " ".join(response.content.decode().split())
    assert "Mia Manager</strong> (writing a reply) is also viewing this conversation." in body
    assert "new message" not in body
    assert ConversationViewer.objects.count() == 2
    # Someone who left a minute ago is no longer shown
    with time_machine.travel(timezone.now() + timedelta(minutes=1)):
        later = alice.post(f"/conversations/{conversation.pk}/presence/", {"seen_up_to": 0})
    assert "Mia Manager" not in later.content.decode()
    assert "The customer wrote 1 new message" in later.content.decode()
    # Closing the page removes the agent at once
    assert mia.post(f"/conversations/{conversation.pk}/presence/leave/").status_code == 204
    assert list(ConversationViewer.objects.values_list("user__email", flat=True)) == [
        "alice@desk.example"
    ]


@pytest.mark.django_db(transaction=True)
def test_a_presence_heartbeat_is_one_statement_and_keeps_the_replying_mark(
    channels, agent_a, django_assert_num_queries
):
    conversation = conversation_of(send_email(channels["email"], sender="jane@example.com"))
    # Outside a transaction, as in production: no BEGIN and COMMIT around the upsert
    with django_assert_num_queries(1):
        conversation_presence_touch(conversation=conversation, user=agent_a, replying=True)
    first = ConversationViewer.objects.get()
    with django_assert_num_queries(1):
        conversation_presence_touch(conversation=conversation, user=agent_a)
    again = ConversationViewer.objects.get()
    assert again.pk == first.pk
    assert again.last_seen_at > first.last_seen_at
    assert again.replying_at == first.replying_at is not None


# --- Email HTML ----------------------------------------------------------------------------------


def test_email_html_is_served_sanitised_with_its_own_strict_policy(channels, agent_a, agent_b):
    result = inbound_email_raw(channel=channels["email"], raw=HOSTILE.read_bytes())
    message = Message.objects.get(pk=result.message_id)
    assert message.body_html

    page = web(agent_a).get(f"/conversations/{result.conversation_id}/").content.decode()
    frame = web(agent_a).get(f"/messages/{message.pk}/html/")

    assert '<iframe class="email-frame" sandbox="" ' in page
    html = frame.content.decode().lower()
    assert frame["Content-Security-Policy"] == (
        "default-src 'none'; style-src 'unsafe-inline'; frame-ancestors 'self'"
    )
    for forbidden in ("<script", "onerror", "onload", "<img", "<iframe", "javascript:", "<form"):
        assert forbidden not in html, forbidden
    assert web(agent_b).get(f"/messages/{message.pk}/html/").status_code == 404


# --- Webhook delivery for chat and social -----------------------------------------------------------


class FakeResponse:
    def __enter__(self):
        return self

    def __exit__(self, *exc):
        return False


def test_chat_reply_is_delivered_as_a_signed_webhook(
    channels, agent_a, django_capture_on_commit_callbacks
):
    channel_set_webhook(channel=channels["chat"], webhook_url="https://hooks.example.com/chat")
    send_chat(channels["chat"], visitor_id="v-1", session_id="sess-9", body="hello?")
    conversation = Conversation.objects.get()
    requests = []

    with (
        mock.patch(
            "tickets.services.delivery._webhook_urlopen",
            side_effect=lambda r, timeout: requests.append(r) or FakeResponse(),
        ),
        django_capture_on_commit_callbacks(execute=True),
    ):
        message = conversation_reply(conversation=conversation, author=agent_a, body="Hi there!")

    message.refresh_from_db()
    assert message.channel_kind == "chat"
    assert message.delivery_state == "sent"
    assert message.delivery_attempts == 1
    (request,) = requests
    assert request.full_url == "https://hooks.example.com/chat"
    payload = json.loads(request.data)
    assert payload["body"] == "Hi there!"
    assert payload["thread_key"] == "sess-9"
    assert payload["to"] == {"kind": "chat", "value": "v-1"}
    timestamp = request.get_header("X-supportdesk-timestamp")
    expected = hmac.new(
        channels["chat"].secret.encode(), timestamp.encode() + b"." + request.data, hashlib.sha256
    ).hexdigest()
    assert request.get_header("X-supportdesk-signature") == f"sha256={expected}"
    assert (
        webhook_signature(secret=channels["chat"].secret, timestamp=timestamp, body=request.data)
        == f"sha256={expected}"
    )


def test_webhook_server_error_requeues_for_retry_and_4xx_fails(channels, agent_a):
    channel_set_webhook(channel=channels["social"], webhook_url="https://hooks.example.com/s")
    from tests.factories import send_social

    send_social(channels["social"], handle="@jane")
    conversation = Conversation.objects.get()
    with outbox_held():
        message = conversation_reply(conversation=conversation, author=agent_a, body="On it")
    assert message.delivery_state == "queued"

    error = urllib.error.HTTPError("https://hooks.example.com/s", 503, "down", {}, None)
    with (
        mock.patch("tickets.services.delivery._webhook_urlopen", side_effect=error),
        pytest.raises(urllib.error.HTTPError),
    ):
        message_webhook_send(message_id=message.pk)
    message.refresh_from_db()
    assert (message.delivery_state, message.delivery_error) == (
        "queued",
        "HTTP 503 from the webhook URL.",
    )

    from tickets.tasks import message_webhook_send_task

    error = urllib.error.HTTPError("https://hooks.example.com/s", 410, "gone", {}, None)
    with mock.patch("tickets.services.delivery._webhook_urlopen", side_effect=error):
        message_webhook_send_task(message_id=message.pk)
    message.refresh_from_db()
    assert (message.delivery_state, message.delivery_attempts) == ("failed", 2)
    page = web(agent_a).get(f"/conversations/{conversation.pk}/").content.decode()
    assert (
        'class="delivery delivery-failed" title="HTTP 410 from the webhook URL.">Failed (2 attempts)'
        in page
    )
    assert "hooks.example.com" not in page


def test_a_webhook_redirect_is_not_followed_and_the_error_never_names_the_url(channels, agent_a):
    # given: a receiver that answers 302 towards another (internal) address, which counts hits
    hits: list[str] = []

    class Internal(BaseHTTPRequestHandler):
        def do_GET(self):
            hits.append(self.path)
            self.send_response(200)
            self.end_headers()

        do_POST = do_GET

        def log_message(self, *args):
            pass

    internal = ThreadingHTTPServer(("127.0.0.1", 0), Internal)
    target = f"http://127.0.0.1:{internal.server_address[1]}/latest/meta-data/"

    class Redirecting(BaseHTTPRequestHandler):
        def do_POST(self):
            self.rfile.read(int(self.headers["Content-Length"]))
            self.send_response(302)
            self.send_header("Location", target)
            self.send_header("Content-Length", "0")
            self.end_headers()

        def log_message(self, *args):
            pass

    outside = ThreadingHTTPServer(("127.0.0.1", 0), Redirecting)
    for server in (internal, outside):
        threading.Thread(target=server.serve_forever, daemon=True).start()
    url = f"http://127.0.0.1:{outside.server_address[1]}/chat?token=s3cret-pass"
    channel_set_webhook(channel=channels["chat"], webhook_url=url)
    send_chat(channels["chat"], visitor_id="v-1", session_id="sess-1", body="hello?")
    conversation = Conversation.objects.get()
    with outbox_held():
        message = conversation_reply(conversation=conversation, author=agent_a, body="Hi")

    # when
    try:
        with pytest.raises(WebhookRejected):
            message_webhook_send(message_id=message.pk)
    finally:
        for server in (internal, outside):
            server.shutdown()
            server.server_close()

    # then: the internal address was never called, the message failed, no URL in sight
    assert hits == []
    message.refresh_from_db()
    assert (message.delivery_state, message.delivery_attempts) == ("failed", 1)
    assert message.delivery_error == (
        "HTTP 302 (a redirect) from the webhook URL; redirects are not followed."
    )
    page = web(agent_a).get(f"/conversations/{conversation.pk}/").content.decode()
    assert "s3cret-pass" not in page
    assert "/latest/meta-data/" not in page


def test_social_reply_without_webhook_says_it_was_not_sent(channels, agent_a):
    from tests.factories import send_social

    send_social(channels["social"], handle="@jane")
    message = conversation_reply(
        conversation=Conversation.objects.get(), author=agent_a, body="On it"
    )
    message.refresh_from_db()
    assert message.delivery_state == "not_sent"
    assert message.delivery_error == "The social channel social A has no webhook URL to deliver to."


# --- The customer's chat page -----------------------------------------------------------------------


def test_chat_page_anonymous_visitor_writes_and_sees_the_agent_reply(channels, agent_a):
    visitor = Client()
    assert visitor.get("/chat/").status_code == 200
    visitor.post("/chat/", {"start": "1", "name": "", "email": ""})

    response = visitor.post("/chat/", {"body": "Is anyone there?"})

    assert response.status_code == 302
    message = Message.objects.get()
    assert (message.channel_id, message.direction, message.body_text) == (
        channels["chat"].pk,
        "inbound",
        "Is anyone there?",
    )
    assert message.identity.kind == "chat"
    reply = conversation_reply(
        conversation=message.conversation, author=agent_a, body="Yes! How can I help?"
    )
    assert reply.delivery_state == "queued"
    looked = visitor.get("/chat/transcript/")  # a GET shows, and changes nothing
    reply.refresh_from_db()
    assert reply.delivery_state == "queued"
    poll = visitor.post("/chat/transcript/")  # the page's own poll is the read receipt
    body = poll.content.decode()
    assert looked.content.decode() == body
    assert "Is anyone there?" in body
    assert "Yes! How can I help?" in body
    assert "Alice" in body
    reply.refresh_from_db()
    assert reply.delivery_state == "sent"


def test_an_email_typed_on_the_chat_page_is_an_unverified_hint_that_joins_nothing(
    channels, agent_a
):
    # given: Jane wrote by email
    first = send_email(channels["email"], sender="Jane <jane@example.com>")
    jane_before = list(Message.objects.filter(conversation_id=first.conversation_id))

    # when: a visitor types her address on /chat/
    visitor = Client()
    visitor.post("/chat/", {"start": "1", "email": "Jane@Example.com", "name": "Jane"})
    visitor.post("/chat/", {"body": "Following up on my email"})

    # then: a conversation and a customer of its own; the address only a hint on the message
    chat = Message.objects.get(channel_kind="chat")
    assert chat.conversation_id != first.conversation_id
    assert chat.conversation.customer_id != first.customer_id
    assert chat.claimed_email == "jane@example.com"
    assert list(chat.conversation.customer.identities.values_list("kind", "verified")) == [
        ("chat", False)
    ]
    assert Identity.objects.get(kind="email").customer_id == first.customer_id
    assert list(Message.objects.filter(conversation_id=first.conversation_id)) == jane_before
    page = web(agent_a).get(f"/conversations/{chat.conversation_id}/").content.decode()
    assert "says jane@example.com · unverified" in page


def test_chat_bad_email_is_a_400_and_another_visitor_sees_nothing(channels):
    visitor = Client()
    response = visitor.post("/chat/", {"start": "1", "email": "not-an-email"})
    assert response.status_code == 400
    assert Message.objects.count() == 0
    stranger = Client()
    assert stranger.get("/chat/transcript/").status_code == 204


def test_chat_posting_is_rate_limited(channels):
    visitor = Client()
    # One fixed instant: the limit counts per clock minute, the posts must not straddle two
    with time_machine.travel(timezone.now().replace(second=5), tick=False):
        visitor.post("/chat/", {"start": "1"})
        responses = [visitor.post("/chat/", {"body": f"spam {i}"}) for i in range(31)]
    # The start counts too: 30 posts a minute from one address, then 429 with Retry-After
    assert [r.status_code for r in responses] == [302] * 29 + [429] * 2
    assert responses[-1]["Retry-After"] == "60"
    assert Message.objects.count() == 29


def test_create_channel_sets_the_webhook_url(channels):
    from io import StringIO

    from django.core.management import call_command

    out = StringIO()
    call_command(
        "create_channel",
        "chat",
        "chat A",
        "--webhook-url",
        "https://hooks.example.com/c",
        stdout=out,
    )

    channels["chat"].refresh_from_db()
    assert channels["chat"].webhook_url == "https://hooks.example.com/c"
    assert "replies POSTed to https://hooks.example.com/c" in out.getvalue()


def test_another_teams_agent_gets_404_on_every_action_and_nothing_changes(
    channels, agent_a, agent_b
):
    # Given: a team A conversation with a second one of the same customer
    result = send_email(channels["email"], sender="jane@example.com", subject="First")
    other = send_email(channels["email"], sender="jane@example.com", subject="Second")
    social = conversation_of(send_chat(channels["chat"], visitor_id="v-other"))
    conversation = conversation_of(result)
    before = (conversation.status, conversation.assignee_id, conversation.version)
    bob = web(agent_b)
    pk = conversation.pk

    # When: Bob (team B) tries everything
    responses = [
        bob.get(f"/conversations/{pk}/"),
        bob.post(f"/conversations/{pk}/reply/", {"body": "hi", "channel": "email"}),
        bob.post(f"/conversations/{pk}/take/"),
        bob.post(f"/conversations/{pk}/pending/"),
        bob.post(f"/conversations/{pk}/solve/"),
        bob.post(f"/conversations/{pk}/assign/", {"agent": str(agent_b.pk)}),
        bob.post(f"/conversations/{pk}/presence/", {"seen_up_to": 0}),
        bob.post(
            f"/messages/{result.message_id}/move/", {"to_conversation": other.conversation_id}
        ),
        bob.get(f"/messages/{result.message_id}/html/"),
        bob.post(
            f"/customers/{conversation.customer_id}/identities/",
            {"kind": "email", "value": "bob@example.com", "conversation": pk},
        ),
        bob.post(
            f"/customers/{conversation.customer_id}/merge/",
            {"other": social.customer_id, "conversation": pk},
        ),
    ]

    # Then
    assert [r.status_code for r in responses] == [404] * len(responses)
    conversation.refresh_from_db()
    assert (conversation.status, conversation.assignee_id, conversation.version) == before
    assert Message.objects.exclude(direction="inbound").count() == 0
    assert Message.objects.get(pk=result.message_id).conversation_id == pk
    assert Identity.objects.filter(value="bob@example.com").count() == 0
    assert CustomerMerge.objects.count() == 0
    assert ConversationViewer.objects.filter(user=agent_b).count() == 0


def test_a_post_without_csrf_token_is_refused(channels, agent_a):
    result = send_email(channels["email"], sender="jane@example.com")
    client = Client(enforce_csrf_checks=True)
    client.force_login(agent_a)

    response = client.post(f"/conversations/{result.conversation_id}/reply/", {"body": "Hello"})

    assert response.status_code == 403
    assert Message.objects.exclude(direction="inbound").count() == 0


def test_an_internal_note_is_never_held(channels, agent_a):
    result = send_email(channels["email"], sender="jane@example.com")

    response = web(agent_a).post(
        f"/conversations/{result.conversation_id}/reply/",
        {"body": "Customer is VIP", "internal": "1", "seen_up_to": 0},
    )

    assert response.status_code == 302
    assert Message.objects.filter(direction="note").count() == 1


def test_attachments_download_as_files_for_the_team_only(channels, agent_a, agent_b):
    raw = (Path(__file__).parent / "emails" / "attachments.eml").read_bytes()
    result = inbound_email_raw(channel=channels["email"], raw=raw)
    attachment = Message.objects.get(pk=result.message_id).attachments.first()

    page = web(agent_a).get(f"/conversations/{result.conversation_id}/").content.decode()
    response = web(agent_a).get(f"/attachments/{attachment.pk}/")

    assert f'href="/attachments/{attachment.pk}/" download' in page
    assert response.status_code == 200
    assert response["Content-Type"] == "application/octet-stream"
    assert response["Content-Disposition"].startswith("attachment;")
    assert b"".join(response.streaming_content) == attachment.file.open("rb").read()
    assert web(agent_b).get(f"/attachments/{attachment.pk}/").status_code == 404


def test_a_visitor_typing_someones_email_never_reads_or_writes_their_live_chat(channels, agent_a):
    from surveys.models import Survey

    # Given: Jane chats through the provider (signed in there), an agent answered; her earlier
    # conversation was solved and waits for its survey
    solved = send_chat(
        channels["chat"], visitor_id="v-jane", session_id="jane-0", email="jane@example.com"
    )
    conversation_solve(conversation=conversation_of(solved), actor=agent_a)
    survey_before = list(Survey.objects.values_list("pk", "status"))
    live = send_chat(
        channels["chat"], visitor_id="v-jane", session_id="jane-1", email="jane@example.com"
    )
    assert live.conversation_id != solved.conversation_id
    conversation_reply(conversation=conversation_of(live), author=agent_a, body="Your PIN is 4821")

    # When: someone else opens /chat/ giving Jane's address, writes, and keeps polling
    visitor = Client()
    visitor.post("/chat/", {"start": "1", "email": "jane@example.com"})
    visitor.post("/chat/", {"body": "What was my PIN again?"})
    conversation_reply(
        conversation=conversation_of(live), author=agent_a, body="Your reset code is 771245"
    )
    delivery_before = list(
        Message.objects.order_by("pk").values_list("pk", "delivery_state", "delivered_at")
    )
    got = [visitor.get("/chat/transcript/").content.decode() for _ in range(2)]

    # Then: the visitor's message is in a conversation of their own
    mine = Message.objects.get(body_text="What was my PIN again?")
    assert mine.conversation_id not in (live.conversation_id, solved.conversation_id)
    assert mine.conversation.customer_id != live.customer_id
    # Jane's conversations: untouched, still solved, her survey as it was
    assert list(
        Message.objects.filter(conversation_id=live.conversation_id)
        .order_by("pk")
        .values_list("direction", "body_text")
    ) == [
        ("inbound", "Hi, I need help"),
        ("outbound", "Your PIN is 4821"),
        ("outbound", "Your reset code is 771245"),
    ]
    assert conversation_of(solved).status == "solved"
    assert list(Survey.objects.values_list("pk", "status")) == survey_before
    # the visitor reads only their own session, and two GETs changed nothing
    assert got[0] == got[1]
    assert "What was my PIN again?" in got[0]
    assert "4821" not in got[0]
    assert "771245" not in got[0]
    assert (
        list(Message.objects.order_by("pk").values_list("pk", "delivery_state", "delivered_at"))
        == delivery_before
    )


def test_a_chat_transcript_shows_only_its_own_session(channels, agent_a):
    # Given: the same visitor's earlier session in the same conversation was answered
    first = send_chat(channels["chat"], visitor_id="v-9", session_id="old-session")
    conversation_reply(conversation=conversation_of(first), author=agent_a, body="Old answer")
    visitor = Client()
    visitor.post("/chat/", {"start": "1"})
    visitor.post("/chat/", {"body": "New question"})
    mine = Message.objects.get(body_text="New question")
    conversation_reply(conversation=mine.conversation, author=agent_a, body="New answer")

    body = visitor.get("/chat/transcript/").content.decode()

    assert body.count('class="chat-line') == 2
    assert "New question" in body
    assert "New answer" in body
    assert "Old answer" not in body


def test_chat_transcript_poll_runs_a_constant_number_of_queries(
    channels, agent_a, django_assert_num_queries
):
    visitor = Client()
    visitor.post("/chat/", {"start": "1"})
    visitor.post("/chat/", {"body": "First"})
    conversation = Message.objects.get().conversation
    conversation_reply(conversation=conversation, author=agent_a, body="Hi", channel_kind="chat")

    def poll():
        # session, chat channel, the session's transcript (+authors), mark the shown replies
        # delivered (the page polls with POST)
        with django_assert_num_queries(4):
            return visitor.post("/chat/transcript/")

    assert poll().content.decode().count('class="chat-line') == 2
    for i in range(6):
        visitor.post("/chat/", {"body": f"more {i}"})
        conversation_reply(
            conversation=conversation, author=agent_a, body=f"answer {i}", channel_kind="chat"
        )
    assert poll().content.decode().count('class="chat-line') == 14
