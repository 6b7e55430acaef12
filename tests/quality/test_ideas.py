"""Ideas: logged from a customer's message, attached to existing ones, customers told when shipped."""

from datetime import date

import pytest
from django.core import mail
from django.utils import timezone

from quality.models import Idea, IdeaMention
from quality.selectors import idea_credits, idea_list, ideas_captured, ideas_for_customer
from quality.services import idea_attach, idea_create, idea_notify_customers, idea_set_status
from supportdesk.errors import ApplicationError, Conflict
from tests.factories import send_email
from tickets.models import Message
from tickets.services import conversation_reply

pytestmark = pytest.mark.django_db


@pytest.fixture
def messages_from(channels):
    def make(sender: str, body: str = "It would be great to export invoices as CSV.") -> Message:
        result = send_email(channels["email"], sender=sender, body=body, subject="Invoices")
        return Message.objects.get(pk=result.message_id)

    return make


def test_log_an_idea_from_a_customer_message(messages_from, agent_a):
    message = messages_from("Jane <jane@example.com>")

    idea = idea_create(message=message, actor=agent_a, title=" CSV export ", quote="export as CSV")

    mention = idea.mentions.get()
    assert (idea.title, idea.status, idea.created_by) == ("CSV export", "new", agent_a)
    assert (mention.quote, mention.customer_id, mention.conversation_id, mention.logged_by) == (
        "export as CSV",
        message.conversation.customer_id,
        message.conversation_id,
        agent_a,
    )


def test_ideas_come_from_customer_messages_only(messages_from, agent_a):
    message = messages_from("Jane <jane@example.com>")
    reply = conversation_reply(conversation=message.conversation, author=agent_a, body="Noted!")

    with pytest.raises(ApplicationError, match="customer's own"):
        idea_create(message=reply, actor=agent_a, title="x")
    with pytest.raises(ApplicationError, match="title"):
        idea_create(message=message, actor=agent_a, title="  ")

    assert Idea.objects.count() == 0


def test_attach_counts_distinct_customers(messages_from, agent_a, manager_a):
    jane_1 = messages_from("Jane <jane@example.com>")
    jane_2 = messages_from("Jane <jane@example.com>", body="Also: CSV, please, for my accountant.")
    omar = messages_from("Omar <omar@example.net>")
    idea = idea_create(message=jane_1, actor=agent_a, title="CSV export")

    idea_attach(idea=idea, message=jane_2, actor=manager_a)
    idea_attach(idea=idea, message=omar, actor=agent_a, quote="CSV export for invoices")
    with pytest.raises(Conflict):
        idea_attach(idea=idea, message=omar, actor=agent_a)

    listed = idea_list().get(pk=idea.pk)
    assert (listed.customers, listed.mention_count) == (2, 3)
    assert idea_credits(ideas=[idea]) == {idea.pk: [agent_a, manager_a]}
    assert idea.mentions.get(message=jane_2).quote == "Also: CSV, please, for my accountant."
    assert ideas_for_customer(customer_id=omar.conversation.customer_id) == [idea]


def test_board_filters_and_searches(messages_from, agent_a, manager_a):
    a = idea_create(message=messages_from("A <a@example.com>"), actor=agent_a, title="Dark mode")
    b = idea_create(message=messages_from("B <b@example.com>"), actor=agent_a, title="CSV export")
    idea_set_status(idea=b, actor=manager_a, status="planned")

    assert list(idea_list(status="planned")) == [b]
    assert list(idea_list(q="dark")) == [a]
    assert list(idea_list(q="invoices")) == [b, a]  # both quotes; newest first
    with pytest.raises(ApplicationError):
        idea_set_status(idea=a, actor=agent_a, status="shipped")
    a.refresh_from_db()
    assert a.status == "new"


def test_idea_list_is_one_query(messages_from, agent_a, django_assert_num_queries):
    for i in range(4):
        idea_create(
            message=messages_from(f"C{i} <c{i}@example.com>"), actor=agent_a, title=f"Idea {i}"
        )

    with django_assert_num_queries(2):  # the board with its counts; the credits
        ideas = list(idea_list())
        credits = idea_credits(ideas=ideas)
        assert [u.email for users in credits.values() for u in users] == ["alice@desk.example"] * 4


def test_shipped_idea_tells_each_customer_once_by_a_real_reply(
    messages_from, agent_a, manager_a, django_capture_on_commit_callbacks
):
    jane_1 = messages_from("Jane <jane@example.com>")
    jane_2 = messages_from("Jane <jane@example.com>", body="CSV please")
    omar = messages_from("Omar <omar@example.net>")
    idea = idea_create(message=jane_1, actor=agent_a, title="CSV export")
    idea_attach(idea=idea, message=jane_2, actor=agent_a)
    idea_attach(idea=idea, message=omar, actor=agent_a)

    with pytest.raises(ApplicationError, match="shipped"):
        idea_notify_customers(idea=idea, actor=manager_a, body="It's here")
    assert len(mail.outbox) == 0

    idea_set_status(idea=idea, actor=manager_a, status="shipped")
    idea.refresh_from_db()
    with django_capture_on_commit_callbacks(execute=True):
        told, problems = idea_notify_customers(
            idea=idea, actor=manager_a, body="CSV export is live!"
        )

    assert (told, problems) == (2, [])
    assert sorted(m.to[0] for m in mail.outbox) == ["jane@example.com", "omar@example.net"]
    assert all(m.body == "CSV export is live!" for m in mail.outbox)
    replies = Message.objects.filter(direction="outbound", body_text="CSV export is live!")
    assert replies.count() == 2
    assert IdeaMention.objects.filter(notified_message__isnull=True).count() == 0
    # Jane is told on her latest conversation about it
    assert replies.get(identity__value="jane@example.com").conversation_id == jane_2.conversation_id

    with django_capture_on_commit_callbacks(execute=True):
        again = idea_notify_customers(idea=idea, actor=manager_a, body="CSV export is live!")
    assert again == (0, [])
    assert len(mail.outbox) == 2


def test_ideas_captured_counts(messages_from, agent_a, manager_a, team_a):
    today = timezone.localdate()
    idea = idea_create(message=messages_from("J <j@example.com>"), actor=agent_a, title="One")
    idea_attach(
        idea=idea, message=messages_from("J <j@example.com>", body="again"), actor=manager_a
    )
    idea_create(message=messages_from("K <k@example.com>"), actor=agent_a, title="Two")
    end = date.fromordinal(today.toordinal() + 1)

    assert ideas_captured(start=today, end=end) == [{"mentions": 3, "ideas": 2, "customers": 2}]
    assert ideas_captured(start=today, end=end, group_by="agent") == [
        {"mentions": 2, "ideas": 2, "customers": 2, "agent_id": agent_a.pk},
        {"mentions": 1, "ideas": 1, "customers": 1, "agent_id": manager_a.pk},
    ]
    assert ideas_captured(start=today, end=end, group_by="team") == [
        {"mentions": 3, "ideas": 2, "customers": 2, "team_id": team_a.pk}
    ]
