"""Triage: tags and priority, the API, search of message text, the queue at a glance, bulk
actions, macros, saved views, spam and blocked senders."""

from __future__ import annotations

from datetime import timedelta

import pytest
from django.core.cache import cache
from django.db import connection
from django.utils import timezone

from supportdesk.errors import Conflict
from supportdesk.models import AuditEntry
from surveys.models import Survey
from tests.conftest import client_for
from tests.factories import send_call, send_email
from tests.helpers import web
from tickets import selectors
from tickets.models import Conversation, Event, Identity, Message, SavedReply, SavedView, Tag
from tickets.services import (
    StaleVersion,
    conversation_assign,
    conversation_mark_spam,
    conversation_reply,
    conversation_solve,
    conversation_triage,
    conversation_unmark_spam,
    saved_reply_apply,
    saved_reply_create_or_update,
    tag_archive,
    tag_create,
    tag_rename,
    tags_by_names,
)
from tickets.services.triage import Forbidden

pytestmark = pytest.mark.django_db


@pytest.fixture(autouse=True)
def _fresh_cache():
    cache.clear()
    yield
    cache.clear()


def conv(result) -> Conversation:
    return Conversation.objects.get(pk=result.conversation_id)


@pytest.fixture
def tags(manager_a):
    return {name: tag_create(name=name, actor=manager_a) for name in ("billing", "refund", "bug")}


# --- Tags: managed by managers -------------------------------------------------------------------


def test_managers_create_rename_and_archive_tags_with_audit(manager_a):
    tag = tag_create(name="  Billing   issues ", actor=manager_a)
    assert tag.name == "Billing issues"
    tag_rename(tag=tag, name="Billing", actor=manager_a)
    tag_archive(tag=tag, actor=manager_a)
    tag.refresh_from_db()
    assert tag.name == "Billing"
    assert tag.archived_at is not None
    summaries = list(
        AuditEntry.objects.filter(target_type="tickets.tag", target_id=str(tag.pk))
        .order_by("at", "id")
        .values_list("summary", flat=True)
    )
    assert summaries == [
        "Tag 'Billing issues' created",
        "Tag 'Billing issues' renamed to 'Billing'",
        "Tag 'Billing' archived",
    ]


def test_tag_names_are_unique_whatever_their_case(manager_a):
    tag_create(name="Billing", actor=manager_a)
    with pytest.raises(Conflict, match="There is already a tag 'billing'"):
        tag_create(name="billing", actor=manager_a)
    assert Tag.objects.count() == 1


def test_an_agent_cannot_create_or_rename_tags_and_nothing_changes(agent_a, manager_a):
    tag = tag_create(name="billing", actor=manager_a)
    with pytest.raises(Forbidden):
        tag_create(name="refund", actor=agent_a)
    with pytest.raises(Forbidden):
        tag_rename(tag=tag, name="money", actor=agent_a)
    assert list(Tag.objects.values_list("name", flat=True)) == ["billing"]
    # The page says so too: 403, nothing created.
    response = web(agent_a).post("/tags/", {"name": "refund"})
    assert response.status_code == 403
    renamed = web(agent_a).post(f"/tags/{tag.pk}/", {"name": "money"})
    assert renamed.status_code == 403
    assert list(Tag.objects.values_list("name", flat=True)) == ["billing"]


# --- Tags and priority on a conversation ----------------------------------------------------------


def test_triage_records_events_audit_and_bumps_the_version_once(channels, agent_a, tags):
    conversation = conv(send_email(channels["email"]))
    version = conversation.version
    conversation_triage(
        conversation=conversation,
        actor=agent_a,
        tags=tags_by_names(["Billing", "refund", "billing"]),
        priority="urgent",
        expected_version=version,
    )
    conversation.refresh_from_db()
    assert conversation.version == version + 1
    assert conversation.priority == "urgent"
    assert sorted(conversation.tags.values_list("name", flat=True)) == ["billing", "refund"]
    events = Event.objects.filter(conversation=conversation).order_by("id")
    priority, tagged = (
        events.filter(kind=Event.Kind.PRIORITY_CHANGED).get(),
        events.filter(kind=Event.Kind.TAGS_CHANGED).get(),
    )
    assert priority.data == {"from": "normal", "to": "urgent"}
    assert priority.actor == agent_a
    assert tagged.data == {
        "added": ["billing", "refund"],
        "removed": [],
        "tags": ["billing", "refund"],
        "affected_dates": [],
    }
    actions = list(
        AuditEntry.objects.filter(
            target_type="tickets.conversation", target_id=str(conversation.pk)
        )
        .order_by("id")
        .values_list("action", "actor_email")
    )
    assert actions == [
        ("conversation.priority_changed", "alice@desk.example"),
        ("conversation.tags_changed", "alice@desk.example"),
    ]
    # The same values again: nothing recorded, no version bump.
    conversation_triage(
        conversation=conversation,
        actor=agent_a,
        tags=tags_by_names(["refund", "billing"]),
        priority="urgent",
    )
    conversation.refresh_from_db()
    assert conversation.version == version + 1
    assert (
        Event.objects.filter(
            conversation=conversation,
            kind__in=["conversation.tags_changed", "conversation.priority_changed"],
        ).count()
        == 2
    )


def test_a_stale_version_or_an_unknown_or_archived_tag_changes_nothing(
    channels, agent_a, manager_a, tags
):
    conversation = conv(send_email(channels["email"]))
    stale = conversation.version
    conversation_assign(conversation=conversation, actor=manager_a, agent=agent_a)
    with pytest.raises(StaleVersion):
        conversation_triage(
            conversation=conversation, actor=agent_a, priority="high", expected_version=stale
        )
    with pytest.raises(Exception, match="No tag 'nope'"):
        tags_by_names(["billing", "nope"])
    tag_archive(tag=tags["bug"], actor=manager_a)
    with pytest.raises(Exception, match="'bug' is archived"):
        conversation_triage(conversation=conversation, actor=agent_a, tags=[tags["bug"]])
    conversation.refresh_from_db()
    assert conversation.priority == "normal"
    assert list(conversation.tags.all()) == []
    assert not Event.objects.filter(
        conversation=conversation,
        kind__in=["conversation.tags_changed", "conversation.priority_changed"],
    ).exists()


def test_an_archived_tag_stays_on_the_conversations_that_carry_it(
    channels, agent_a, manager_a, tags
):
    conversation = conv(send_email(channels["email"]))
    conversation_triage(
        conversation=conversation, actor=agent_a, tags=[tags["bug"], tags["refund"]]
    )
    tag_archive(tag=tags["bug"], actor=manager_a)
    conversation_triage(
        conversation=conversation,
        actor=agent_a,
        tags=[tags["bug"], tags["refund"], tags["billing"]],
    )
    assert sorted(conversation.tags.values_list("name", flat=True)) == ["billing", "bug", "refund"]


# --- The API ---------------------------------------------------------------------------------------


def test_api_patch_sets_tags_and_priority_with_if_match(channels, agent_a, agent_b, tags):
    conversation = conv(send_email(channels["email"]))
    api = client_for(agent_a)
    url = f"/api/v1/conversations/{conversation.pk}/"
    etag = api.get(url)["ETag"]
    response = api.patch(
        url, {"tags": ["Billing", "bug"], "priority": "high"}, format="json", HTTP_IF_MATCH=etag
    )
    assert response.status_code == 200, response.content
    body = response.json()
    assert body["tags"] == ["billing", "bug"]
    assert body["priority"] == "high"
    assert body["spam_at"] is None
    assert response["ETag"] == f'"{conversation.version + 1}"'
    # The old ETag is stale now: 409, nothing changed.
    stale = api.patch(url, {"priority": "low"}, format="json", HTTP_IF_MATCH=etag)
    assert stale.status_code == 409
    assert "changed this conversation meanwhile" in stale.json()["detail"]
    unknown = api.patch(url, {"tags": ["nope"]}, format="json")
    assert unknown.status_code == 400
    assert unknown.json()["detail"].startswith("No tag 'nope'")
    bad = api.patch(url, {"priority": "asap"}, format="json")
    assert bad.status_code == 400
    empty = api.patch(url, {}, format="json")
    assert empty.status_code == 400
    # Another team's agent: 404, nothing changed.
    assert client_for(agent_b).patch(url, {"priority": "low"}, format="json").status_code == 404
    conversation.refresh_from_db()
    assert conversation.priority == "high"
    assert sorted(conversation.tags.values_list("name", flat=True)) == ["billing", "bug"]


def test_api_lists_filter_by_tag_priority_and_message_text(channels, agent_a, tags):
    refund = conv(
        send_email(
            channels["email"],
            sender="a@example.com",
            subject="Hello",
            body="I want my money back for the kettle",
        )
    )
    other = conv(
        send_email(
            channels["email"],
            sender="b@example.com",
            subject="Question",
            body="Where is my parcel?",
        )
    )
    conversation_triage(
        conversation=refund, actor=agent_a, tags=[tags["refund"]], priority="urgent"
    )
    api = client_for(agent_a)

    def ids(query: str) -> list[int]:
        response = api.get(f"/api/v1/conversations/?{query}")
        assert response.status_code == 200, response.content
        return [row["id"] for row in response.json()["results"]]

    assert ids("tag=REFUND") == [refund.pk]
    assert ids("priority=urgent") == [refund.pk]
    assert ids("priority=normal") == [other.pk]
    assert ids("q=kettle") == [refund.pk]  # the message text, not the subject
    assert ids("q=parc") == [other.pk]  # a prefix of a word
    assert ids("q=money+kettle") == [refund.pk]
    assert ids("q=money+parcel") == []
    assert ids("q=Refund") == [refund.pk]  # a tag's name
    assert api.get("/api/v1/conversations/?priority=asap").status_code == 400
    rows = api.get("/api/v1/conversations/?tag=refund").json()["results"]
    assert rows[0]["tags"] == ["refund"]
    assert rows[0]["priority"] == "urgent"


@pytest.mark.skipif(connection.vendor != "postgresql", reason="the GIN index is PostgreSQL's")
def test_message_text_search_uses_the_gin_index(channels):
    send_email(channels["email"], body="A kettle that leaks")
    with connection.cursor() as cursor:
        cursor.execute("SET LOCAL enable_seqscan = off")
        sql, params = selectors.messages_matching(["kettle"]).values("pk").query.sql_with_params()
        cursor.execute(f"EXPLAIN {sql}", params)
        plan = "\n".join(row[0] for row in cursor.fetchall())
    assert "tickets_msg_body_fts" in plan


# --- The queue at a glance ---------------------------------------------------------------------------


def test_queue_shows_waiting_time_preview_priority_and_tags(channels, agent_a, tags):
    waiting = conv(
        send_email(
            channels["email"],
            sender="w@example.com",
            subject="Broken lid",
            body="The lid\nbroke on day one.",
        )
    )
    answered = conv(
        send_email(channels["email"], sender="x@example.com", subject="Answered", body="First")
    )
    conversation_reply(conversation=answered, author=agent_a, body="Here you go")
    conversation_triage(conversation=waiting, actor=agent_a, tags=[tags["bug"]], priority="urgent")
    Message.objects.filter(conversation=waiting).update(
        sent_at=timezone.now() - timedelta(hours=3, minutes=5)
    )
    talked = conv(send_call(channels["phone"], from_number="+1 415 555 0199", talk_seconds=90))
    response = web(agent_a).get("/")
    rows = {c.pk: c for c in response.context["page"].conversations}
    assert rows[waiting.pk].preview == "The lid broke on day one."
    assert rows[waiting.pk].waiting_since is not None
    assert rows[answered.pk].waiting_since is None
    assert rows[talked.pk].waiting_since is None  # answered on the phone
    html = response.content.decode()
    assert "3 h 5 min" in html
    assert '<span class="priority priority-urgent">Urgent</span>' in html
    assert '<span class="tag">bug</span>' in html


def test_queue_search_highlights_message_text_and_escapes_it(channels, agent_a):
    send_email(
        channels["email"],
        subject="Hello",
        body="Please <script>alert(1)</script> refund the <b>kettle</b> today",
    )
    response = web(agent_a).get("/?q=kettle")
    assert response.status_code == 200
    html = response.content.decode()
    fragment = html.split('<span class="preview match" title="Matching message text">')[1]
    fragment = fragment.split("</span>")[0]
    # PostgreSQL's ts_headline drops the markup; SQLite's fragment escapes it: never live tags.
    assert fragment in (
        "Please alert(1) refund the <mark>kettle</mark> today",
        "Please &lt;script&gt;alert(1)&lt;/script&gt; refund the &lt;b&gt;<mark>kettle</mark>"
        "&lt;/b&gt; today",
    )
    assert "<script>alert(1)" not in html


def test_highlight_markers_typed_by_a_customer_stay_balanced():
    from tickets.selectors import highlight_html

    assert str(highlight_html("\x03<b>a</b> \x02x\x02y")) == "&lt;b&gt;a&lt;/b&gt; <mark>xy</mark>"


def test_highlights_never_turn_customer_text_into_markup(channels, agent_a):
    send_email(
        channels["email"],
        body='kettle \x02<img src=x onerror="alert(1)">\x03 & "kettle"',
    )
    conversation = Conversation.objects.get()
    found = selectors.message_search_highlights(conversation_ids=[conversation.pk], query="kettle")
    html = str(found[conversation.pk])
    assert "<img" not in html
    assert html.count("<mark>") == html.count("</mark>")
    assert html.replace("<mark>", "").replace("</mark>", "").count("<") == 0


def test_queue_filters_by_tag_and_priority(channels, agent_a, tags):
    tagged = conv(send_email(channels["email"], sender="t@example.com"))
    plain = conv(send_email(channels["email"], sender="p@example.com"))
    conversation_triage(conversation=tagged, actor=agent_a, tags=[tags["billing"]], priority="high")
    client = web(agent_a)

    def found(query: str) -> list[int]:
        return [c.pk for c in client.get(f"/?{query}").context["page"].conversations]

    assert found("tag=billing") == [tagged.pk]
    assert found("priority=high") == [tagged.pk]
    assert found("priority=normal") == [plain.pk]
    assert client.get("/?tag=billing").context["page"].counts["open"] == 1


@pytest.mark.parametrize("rows", [2, 14])
def test_queue_runs_a_constant_number_of_queries_with_tags_and_search(
    channels, agent_a, manager_a, tags, rows, django_assert_num_queries, without_higher_apps
):
    for i in range(rows):
        conversation = conv(
            send_email(channels["email"], sender=f"s{i}@example.com", body=f"kettle number {i}")
        )
        conversation_triage(
            conversation=conversation, actor=manager_a, tags=list(tags.values()), priority="high"
        )
    client = web(agent_a)
    # session, user, counts of the open views, count of the recently solved, page (with each
    # row's last customer message and last reply), the rows' tags, filter teams, filter agents,
    # filter tags, saved views, unread notifications badge (the user's teams are subqueries)
    with django_assert_num_queries(11):
        page = client.get("/").context["page"]
    assert len(page.conversations) == rows
    # A search adds the customers (by name or identity) and the messages it names, and the
    # highlighted fragments.
    with django_assert_num_queries(14):
        page = client.get("/?q=kettle").context["page"]
    assert len(page.conversations) == rows
    assert len(page.highlights) == rows


# --- Bulk actions ------------------------------------------------------------------------------------


def test_bulk_assign_tag_and_priority_act_on_visible_rows_only(
    channels, channels_b, agent_a, agent_b, tags
):
    mine = [conv(send_email(channels["email"], sender=f"m{i}@example.com")) for i in range(3)]
    theirs = conv(send_email(channels_b["email"], sender="other@example.com"))
    client = web(agent_a)
    ids = [c.pk for c in mine] + [theirs.pk]
    response = client.post(
        "/conversations/bulk/", {"ids": ids, "action": "assign_me", "next": "/?view=open"}
    )
    assert response.status_code == 302
    assert response["Location"] == "/?view=open"
    assert [
        c.assignee_id
        for c in Conversation.objects.filter(pk__in=[c.pk for c in mine]).order_by("pk")
    ] == [agent_a.pk] * 3
    client.post("/conversations/bulk/", {"ids": ids, "action": "tag", "tag": "billing"})
    client.post("/conversations/bulk/", {"ids": ids, "action": "priority", "priority": "low"})
    for conversation in mine:
        conversation.refresh_from_db()
        assert list(conversation.tags.values_list("name", flat=True)) == ["billing"]
        assert conversation.priority == "low"
    theirs.refresh_from_db()
    assert theirs.assignee_id is None
    assert theirs.priority == "normal"
    assert not theirs.tags.exists()
    # No action on nothing; a bad request changes nothing.
    client.post("/conversations/bulk/", {"action": "priority"})
    client.post("/conversations/bulk/", {"ids": [mine[0].pk], "action": "priority"})
    mine[0].refresh_from_db()
    assert mine[0].priority == "low"


def test_bulk_solve_asks_first_then_solves_each_with_its_survey(
    channels, agent_a, django_capture_on_commit_callbacks
):
    rows = [conv(send_email(channels["email"], sender=f"s{i}@example.com")) for i in range(3)]
    with django_capture_on_commit_callbacks(execute=True):
        conversation_solve(conversation=rows[2], actor=agent_a)
    client = web(agent_a)
    ids = [c.pk for c in rows]
    asked = client.post("/conversations/bulk/", {"ids": ids, "action": "solve"})
    assert Survey.objects.filter(conversation__in=rows).count() == 1
    assert asked.status_code == 200
    assert "Solve 3 conversations?" in asked.content.decode()
    assert Conversation.objects.filter(pk__in=ids, status="solved").count() == 1
    with django_capture_on_commit_callbacks(execute=True):
        done = client.post(
            "/conversations/bulk/", {"ids": ids, "action": "solve", "confirm": "1"}, follow=True
        )
    texts = [str(m) for m in done.context["messages"]]
    assert texts[0] == "2 conversations solved (each customer will be asked whether it is)."
    assert texts[1] == f"#{rows[2].pk} skipped: The conversation is already solved."
    assert Conversation.objects.filter(pk__in=ids, status="solved").count() == 3
    # Each solve is the ordinary solve: one solve event and one survey per conversation.
    assert Event.objects.filter(conversation__in=rows, kind=Event.Kind.SOLVED).count() == 3
    assert Survey.objects.filter(conversation__in=rows).count() == 3


# --- Macros --------------------------------------------------------------------------------------------


def test_a_macro_replies_tags_sets_priority_assignee_and_solves_in_one_click(
    channels, agent_a, tags, django_capture_on_commit_callbacks
):
    conversation = conv(send_email(channels["email"], sender="Jane Doe <jane@example.com>"))
    macro = saved_reply_create_or_update(
        title="Refund done",
        body="Hi {customer_first_name}, your refund is on its way. {agent_first_name}",
        add_tags=[tags["refund"]],
        set_priority="low",
        set_status="solved",
        set_assignee="me",
    )
    assert macro.actions_summary == "tags refund; priority low; assign to whoever runs it; solve"
    with django_capture_on_commit_callbacks(execute=True):
        response = web(agent_a).post(
            f"/conversations/{conversation.pk}/macro/",
            {"macro": macro.pk, "version": conversation.version},
        )
    assert response.status_code == 302
    conversation.refresh_from_db()
    assert conversation.status == "solved"
    assert conversation.priority == "low"
    assert conversation.assignee == agent_a
    assert list(conversation.tags.values_list("name", flat=True)) == ["refund"]
    reply = Message.objects.get(conversation=conversation, direction="outbound")
    assert reply.body_text == "Hi Jane, your refund is on its way. Alice"
    assert Survey.objects.filter(conversation=conversation).count() == 1


def test_a_macro_on_a_stale_page_changes_nothing(channels, agent_a, manager_a, tags):
    conversation = conv(send_email(channels["email"]))
    macro = saved_reply_create_or_update(
        title="Tag it", body="", add_tags=[tags["bug"]], set_status="pending"
    )
    stale = conversation.version
    conversation_assign(conversation=conversation, actor=manager_a, agent=agent_a)
    with pytest.raises(StaleVersion):
        saved_reply_apply(
            conversation=conversation, saved_reply=macro, actor=agent_a, expected_version=stale
        )
    conversation.refresh_from_db()
    assert conversation.status == "new"
    assert not conversation.tags.exists()
    assert not Message.objects.filter(conversation=conversation, direction="outbound").exists()
    with pytest.raises(Exception, match="needs a title and a body"):
        saved_reply_create_or_update(title="Nothing", body="")
    assert not SavedReply.objects.filter(title="Nothing").exists()


# --- Saved views -----------------------------------------------------------------------------------


def test_an_agent_saves_and_deletes_their_own_views(channels, agent_a, manager_a):
    client = web(agent_a)
    response = client.post(
        "/views/",
        {
            "name": "Urgent billing",
            "query": "view=open&tag=billing&priority=urgent&after=x&bogus=1",
        },
    )
    assert response.status_code == 302
    saved = SavedView.objects.get(user=agent_a)
    assert saved.name == "Urgent billing"
    assert saved.query == "view=open&tag=billing&priority=urgent"
    assert response["Location"] == "/?view=open&tag=billing&priority=urgent"
    assert "Urgent billing" in client.get("/").content.decode()
    # Another agent's view cannot be deleted (404) and does not show.
    other = web(manager_a)
    assert other.post("/views/delete/", {"view": saved.pk}).status_code == 404
    assert "Urgent billing" not in other.get("/").content.decode()
    assert client.post("/views/", {"name": "Bad", "query": "priority=asap"}).status_code == 400
    client.post("/views/delete/", {"view": saved.pk})
    assert not SavedView.objects.exists()


# --- Spam ------------------------------------------------------------------------------------------------


def test_spam_is_hidden_and_a_blocked_sender_later_mail_is_spam_at_once(channels, agent_a):
    spam = conv(
        send_email(channels["email"], sender="spammer@example.com", subject="Cheap watches")
    )
    keep = conv(send_email(channels["email"], sender="real@example.com"))
    response = web(agent_a).post(
        f"/conversations/{spam.pk}/spam/", {"block_sender": "1", "version": spam.version}
    )
    assert response.status_code == 302
    spam.refresh_from_db()
    assert spam.spam_at is not None
    assert Identity.objects.get(value="spammer@example.com").blocked_at is not None
    queue = web(agent_a).get("/").context["page"]
    assert [c.pk for c in queue.conversations] == [keep.pk]
    assert queue.counts["open"] == 1
    assert [c.pk for c in web(agent_a).get("/?view=spam").context["page"].conversations] == [
        spam.pk
    ]
    event = Event.objects.get(conversation=spam, kind=Event.Kind.SPAM_MARKED)
    assert event.data["blocked"] == ["spammer@example.com"]
    assert (
        AuditEntry.objects.filter(
            action="identity.blocked",
            target_id=str(Identity.objects.get(value="spammer@example.com").pk),
        ).count()
        == 1
    )
    # Later mail from the blocked sender: stored, but as spam, never in the queue.
    later = conv(
        send_email(channels["email"], sender="spammer@example.com", subject="More watches")
    )
    assert later.pk != spam.pk or later.spam_at is not None
    later.refresh_from_db()
    assert later.spam_at is not None
    assert (
        Event.objects.get(
            conversation=later, kind=Event.Kind.SPAM_MARKED, data__by="blocked_sender"
        ).actor
        is None
    )
    assert [c.pk for c in web(agent_a).get("/").context["page"].conversations] == [keep.pk]
    # Not spam after all: back in the queue, the sender unblocked.
    conversation_unmark_spam(conversation=spam, actor=agent_a)
    assert Identity.objects.get(value="spammer@example.com").blocked_at is None
    assert spam.pk in [c.pk for c in web(agent_a).get("/").context["page"].conversations]


def test_spam_is_never_surveyed(channels, agent_a, django_capture_on_commit_callbacks):
    solved_then_spam = conv(send_email(channels["email"], sender="a@example.com"))
    with django_capture_on_commit_callbacks(execute=True):
        conversation_solve(conversation=solved_then_spam, actor=agent_a)
    survey = Survey.objects.get(conversation=solved_then_spam)
    assert survey.status == "scheduled"
    with django_capture_on_commit_callbacks(execute=True):
        conversation_mark_spam(conversation=solved_then_spam, actor=agent_a)
    survey.refresh_from_db()
    assert survey.status == "cancelled"
    # Solving a conversation that is spam already schedules nothing.
    spam_first = conv(send_email(channels["email"], sender="b@example.com"))
    with django_capture_on_commit_callbacks(execute=True):
        conversation_mark_spam(conversation=spam_first, actor=agent_a)
        conversation_solve(conversation=spam_first, actor=agent_a)
    assert not Survey.objects.filter(conversation=spam_first).exists()


@pytest.mark.parametrize("rows", [2, 8])
def test_api_list_runs_a_constant_number_of_queries_with_tags(
    channels, agent_a, manager_a, tags, rows, django_assert_num_queries
):
    for i in range(rows):
        conversation = conv(send_email(channels["email"], sender=f"r{i}@example.com"))
        conversation_triage(conversation=conversation, actor=manager_a, tags=list(tags.values()))
    api = client_for(agent_a)
    # token + user, the page (customer, team, assignee; the user's teams a subquery), its tags
    with django_assert_num_queries(3):
        response = api.get("/api/v1/conversations/?tag=bug&priority=normal")
    assert [row["tags"] for row in response.json()["results"]] == [
        ["billing", "bug", "refund"]
    ] * rows


@pytest.mark.parametrize("count", [1, 3])
def test_conversation_page_runs_a_constant_number_of_queries_with_tags_and_macros(
    channels, agent_a, manager_a, count, django_assert_num_queries, without_higher_apps
):
    made = [tag_create(name=f"topic {i}", actor=manager_a) for i in range(count)]
    for i in range(count):
        saved_reply_create_or_update(title=f"Macro {i}", body="Hello", add_tags=made)
    conversation = conv(send_email(channels["email"]))
    conversation_triage(conversation=conversation, actor=agent_a, tags=made)
    client = web(agent_a)
    client.get(f"/conversations/{conversation.pk}/")  # the presence row exists from now on
    # The 20 queries of tests/tickets/test_workspace.py's page count, whatever the number of
    # tags on the conversation, tags on the desk and macros with tags.
    with django_assert_num_queries(20):
        response = client.get(f"/conversations/{conversation.pk}/")
    assert len(response.context["conversation_tags"]) == count
