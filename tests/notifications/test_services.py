"""Conversation notifications: who hears what, once, never about their own action."""

from __future__ import annotations

from datetime import timedelta

import pytest
from django.core import mail
from django.utils import timezone

from notifications.models import ConversationNotification, NotificationPreference
from notifications.services import (
    notification_digests_send,
    notification_preference_set,
    notifications_for_event,
)
from notifications.tasks import notifications_for_event_task
from supportdesk.models import Notification
from tests.factories import send_email
from tickets.models import Conversation, Event, Message
from tickets.services import (
    conversation_assign,
    conversation_reply,
    conversation_solve,
    conversation_take_next,
)

pytestmark = pytest.mark.django_db


def rows(user):
    return list(
        Notification.objects.filter(recipient=user)
        .order_by("id")
        .values_list("kind", "title", "body", "url")
    )


def new_conversation(
    channels,
    react,
    *,
    subject="Parcel late",
    body="Where is my parcel?",
    sender="Jane Doe <jane@example.com>",
    message_id="<first@mail.example.com>",
):
    with react():
        result = send_email(
            channels["email"],
            sender=sender,
            subject=subject,
            body=body,
            message_id=message_id,
        )
    return Conversation.objects.get(pk=result.conversation_id)


def customer_writes(channels, react, body, *, message_id="<second@mail.example.com>"):
    with react():
        return send_email(
            channels["email"],
            sender="Jane Doe <jane@example.com>",
            subject="Re: Parcel late",
            body=body,
            message_id=message_id,
            in_reply_to="<first@mail.example.com>",
        )


def test_a_message_on_an_unassigned_conversation_tells_nobody_in_one_query(
    channels, react, django_assert_num_queries
):
    # Given a conversation nobody is assigned to, and the customer writing on it again
    new_conversation(channels, react)
    result = customer_writes(channels, react, "Any news?")
    event = Event.objects.get(message_id=result.message_id, kind=Event.Kind.INBOUND)

    # When the reaction runs: one light query finds that there is nobody to tell
    with django_assert_num_queries(1):
        assert notifications_for_event(event_id=event.pk) == []

    # Then nothing was created
    assert Notification.objects.count() == 0
    assert ConversationNotification.objects.count() == 0


def test_assigned_by_someone_else_then_the_customer_writes(
    channels, agent_a, manager_a, carl, react
):
    conversation = new_conversation(channels, react)
    assert Notification.objects.count() == 0  # unassigned: nobody's yet

    with react():
        conversation_assign(conversation=conversation, actor=manager_a, agent=agent_a)
    result = customer_writes(channels, react, "Any news?\nIt was due on Monday.")

    c = conversation.pk
    assert rows(agent_a) == [
        (
            "conversation.assigned",
            f"Mia Manager assigned #{c} to you: Parcel late",
            "Jane Doe",
            f"/conversations/{c}/",
        ),
        (
            "conversation.customer_wrote",
            f"Jane Doe wrote on #{c}: Parcel late",
            "Any news? It was due on Monday.",
            f"/conversations/{c}/#message-{result.message_id}",
        ),
    ]
    assert rows(manager_a) == []
    assert rows(carl) == []
    links = ConversationNotification.objects.order_by("id")
    assert [(link.reason, link.recipient_id, link.conversation_id) for link in links] == [
        ("assigned", agent_a.pk, c),
        ("customer_wrote", agent_a.pk, c),
    ]


def test_a_retried_task_or_a_redelivered_event_creates_no_duplicate(
    channels, agent_a, manager_a, carl, react
):
    conversation = new_conversation(channels, react)
    with react():
        conversation_assign(conversation=conversation, actor=manager_a, agent=agent_a)
    customer_writes(channels, react, "Any news?")
    inbound = Event.objects.filter(kind=Event.Kind.INBOUND).latest("id")
    assigned = Event.objects.get(kind=Event.Kind.ASSIGNED)
    before = list(Notification.objects.order_by("id").values_list("id", "recipient_id", "kind"))
    assert len(before) == 2

    # The broker delivers both reactions again, twice.
    for _ in range(2):
        assert notifications_for_event(event_id=inbound.pk) == []
        assert notifications_for_event_task.apply(kwargs={"event_id": assigned.pk}).get() == 0
    # Even when the conversation changed hands meanwhile: the event notified its person already.
    with react():
        conversation_assign(conversation=conversation, actor=manager_a, agent=carl)
    assert notifications_for_event(event_id=inbound.pk) == []

    after = list(Notification.objects.order_by("id").values_list("id", "recipient_id", "kind"))
    assert after == [*before, (after[-1][0], carl.pk, "conversation.assigned")]
    assert ConversationNotification.objects.count() == 3


def test_nobody_hears_about_their_own_action(channels, agent_a, carl, react):
    conversation = new_conversation(channels, react)
    with react():
        taken = conversation_take_next(agent=agent_a)  # assigns it to herself
        assert taken is not None
        assert taken.pk == conversation.pk
        conversation_assign(conversation=conversation, actor=agent_a, agent=agent_a)
        conversation_reply(
            conversation=conversation,
            author=agent_a,
            body="Note to self: @Alice Archer check the depot",
            internal=True,
        )
        conversation_reply(conversation=conversation, author=agent_a, body="On it, Jane!")

    assert Notification.objects.count() == 0
    assert Event.objects.filter(kind=Event.Kind.ASSIGNED, agent=agent_a).count() == 1
    assert Event.objects.filter(kind=Event.Kind.NOTE_ADDED).count() == 1


def test_reopened_by_the_customer_is_one_notification_not_two(channels, agent_a, manager_a, react):
    conversation = new_conversation(channels, react)
    with react():
        conversation_assign(conversation=conversation, actor=manager_a, agent=agent_a)
    with react():
        conversation_solve(conversation=conversation, actor=agent_a)
    customer_writes(channels, react, "It still has not arrived.")

    c = conversation.pk
    message = Message.objects.filter(direction="inbound").latest("id")
    assert Conversation.objects.get(pk=c).status == "open"
    assert [kind for kind, *_ in rows(agent_a)] == [
        "conversation.assigned",
        "conversation.reopened",
    ]
    assert rows(agent_a)[1:] == [
        (
            "conversation.reopened",
            f"Jane Doe reopened #{c} by writing back: Parcel late",
            "It still has not arrived.",
            f"/conversations/{c}/#message-{message.pk}",
        )
    ]


def test_an_agent_reopening_or_a_team_move_notifies_nobody(
    channels, agent_a, manager_a, react, team_b
):
    from tickets.services import conversation_reopen

    conversation = new_conversation(channels, react)
    with react():
        conversation_assign(conversation=conversation, actor=manager_a, agent=agent_a)
        conversation_solve(conversation=conversation, actor=agent_a)
        conversation_reopen(conversation=conversation, actor=manager_a)
        # The same assignee, another team: not "assigned to you" again.
        manager_a.teams.add(team_b)
        agent_a.teams.add(team_b)
        conversation_assign(conversation=conversation, actor=manager_a, team=team_b)

    assert [kind for kind, *_ in rows(agent_a)] == ["conversation.assigned"]


def test_a_mention_notifies_the_teammates_named_who_can_see_it(
    channels, agent_a, agent_b, manager_a, carl, admin_user, react
):
    conversation = new_conversation(channels, react)
    c = conversation.pk
    with react():
        note = conversation_reply(
            conversation=conversation,
            author=agent_a,
            body="@Carl Cooper can you call the depot? @mia FYI. @bob, @ALICE and ada@example.com too",
            internal=True,
        )

    title = f"Alice Archer mentioned you on #{c}: Parcel late"
    body = "@Carl Cooper can you call the depot? @mia FYI. @bob, @ALICE and ada@example.com too"
    url = f"/conversations/{c}/#message-{note.pk}"
    assert rows(carl) == [("conversation.mentioned", title, body, url)]
    assert rows(manager_a) == [("conversation.mentioned", title, body, url)]
    # Bob is in Team B: he cannot open it, so naming him notifies nobody; Alice wrote it; the
    # admin was not named (an email address is not a mention).
    assert rows(agent_b) == []
    assert rows(agent_a) == []
    assert rows(admin_user) == []


def test_a_mention_of_someone_who_cannot_see_the_conversation_notifies_nobody(
    channels, agent_a, agent_b, react
):
    conversation = new_conversation(channels, react)
    with react():
        conversation_reply(
            conversation=conversation,
            author=agent_a,
            body="@Bob Baker @bob @bob@desk.example do you know this customer?",
            internal=True,
        )
    assert Notification.objects.count() == 0
    assert ConversationNotification.objects.count() == 0


def test_a_mention_in_a_public_reply_or_by_a_deactivated_teammate_notifies_nobody(
    channels, agent_a, carl, react
):
    conversation = new_conversation(channels, react)
    with react():
        conversation_reply(conversation=conversation, author=agent_a, body="Hi Jane, @Carl Cooper")
    carl.is_active = False
    carl.save(update_fields=["is_active"])
    with react():
        conversation_reply(
            conversation=conversation, author=agent_a, body="@Carl Cooper?", internal=True
        )
    assert Notification.objects.count() == 0


def test_old_news_and_stale_assignments_notify_nobody(
    channels, agent_a, manager_a, carl, react, time_machine
):
    conversation = new_conversation(channels, react)
    # History replayed a day and more later (seed_demo, an import, a long outage).
    time_machine.move_to(timezone.now() - timedelta(hours=30))
    conversation_assign(conversation=conversation, actor=manager_a, agent=agent_a)
    old = Event.objects.get(kind=Event.Kind.ASSIGNED)
    time_machine.move_to(timezone.now() + timedelta(hours=30))
    assert notifications_for_event(event_id=old.pk) == []
    # Assigned to Alice, then to Carl before the reaction ran: Alice is not told.
    conversation_assign(conversation=conversation, actor=manager_a, agent=agent_a)
    to_alice = Event.objects.filter(kind=Event.Kind.ASSIGNED).latest("id")
    conversation_assign(conversation=conversation, actor=manager_a, agent=carl)
    assert notifications_for_event(event_id=to_alice.pk) == []
    assert Notification.objects.count() == 0


def test_a_move_to_another_team_withdraws_what_the_old_team_may_no_longer_read(
    channels, agent_a, agent_b, manager_a, carl, react, team_b
):
    conversation = new_conversation(channels, react)
    with react():
        conversation_assign(conversation=conversation, actor=manager_a, agent=agent_a)
        conversation_reply(
            conversation=conversation, author=agent_a, body="@Carl Cooper look", internal=True
        )
    other = new_conversation(
        channels, react, subject="Other", sender="kim@example.com", message_id="<kim@example.com>"
    )
    assert other.pk != conversation.pk
    with react():
        conversation_assign(conversation=other, actor=manager_a, agent=carl)
    assert Notification.objects.count() == 3
    manager_a.teams.add(team_b)

    with react():
        conversation_assign(conversation=conversation, actor=manager_a, team=team_b, agent=agent_b)

    # Alice's "assigned" and Carl's mention are gone; Bob is told; Carl's other one stays.
    c = conversation.pk
    assert rows(agent_a) == []
    assert [kind for kind, *_ in rows(carl)] == ["conversation.assigned"]
    assert rows(agent_b) == [
        (
            "conversation.assigned",
            f"Mia Manager assigned #{c} to you: Parcel late",
            "Jane Doe",
            f"/conversations/{c}/",
        )
    ]
    assert ConversationNotification.objects.count() == 2


def test_automated_mail_notifies_nobody(channels, agent_a, manager_a, react):
    conversation = new_conversation(channels, react)
    with react():
        conversation_assign(conversation=conversation, actor=manager_a, agent=agent_a)
        send_email(
            channels["email"],
            sender="Jane Doe <jane@example.com>",
            subject="Out of office: Re: Parcel late",
            body="I am away until Monday.",
            in_reply_to="<first@mail.example.com>",
            extra_headers={"Auto-Submitted": "auto-replied"},
        )
    assert Message.objects.filter(conversation=conversation, automated__gt="").count() == 1
    assert [kind for kind, *_ in rows(agent_a)] == ["conversation.assigned"]


# --- Email ----------------------------------------------------------------------------------------


def test_at_once_emails_each_notification(channels, agent_a, manager_a, react):
    conversation = new_conversation(channels, react)
    mail.outbox.clear()
    with react():
        conversation_assign(conversation=conversation, actor=manager_a, agent=agent_a)
    customer_writes(channels, react, "Any news?")

    c = conversation.pk
    assert [(m.to, m.subject) for m in mail.outbox] == [
        (["alice@desk.example"], f"Mia Manager assigned #{c} to you: Parcel late"),
        (["alice@desk.example"], f"Jane Doe wrote on #{c}: Parcel late"),
    ]
    assert "http://localhost:8000/conversations/" in mail.outbox[1].body


def test_never_email_means_in_the_app_only(channels, agent_a, manager_a, react):
    notification_preference_set(user=agent_a, email="off")
    conversation = new_conversation(channels, react)
    mail.outbox.clear()
    with react():
        conversation_assign(conversation=conversation, actor=manager_a, agent=agent_a)
    assert mail.outbox == []
    assert Notification.objects.filter(recipient=agent_a).count() == 1
    assert notification_digests_send(now=timezone.now() + timedelta(days=2)) == 0


def test_hourly_digest_sends_what_is_unread_once(channels, agent_a, manager_a, carl, react):
    start = timezone.now()
    notification_preference_set(user=agent_a, email="hourly")
    conversation = new_conversation(channels, react)
    mail.outbox.clear()
    with react():
        conversation_assign(conversation=conversation, actor=manager_a, agent=agent_a)
        conversation_reply(
            conversation=conversation, author=carl, body="@Alice Archer see above", internal=True
        )
    customer_writes(channels, react, "Any news?")
    assert mail.outbox == []  # nothing at once
    assigned, mentioned, wrote = Notification.objects.filter(recipient=agent_a).order_by("id")
    # Alice reads the mention in the app before the digest goes out.
    from supportdesk.services import notifications_mark_read

    notifications_mark_read(recipient=agent_a, ids=[mentioned.pk])

    assert notification_digests_send(now=start + timedelta(minutes=30)) == 0  # not an hour yet
    digest_at = start + timedelta(minutes=61)
    assert notification_digests_send(now=digest_at) == 1
    assert notification_digests_send(now=digest_at) == 0  # beat twice: one digest

    assert len(mail.outbox) == 1
    email = mail.outbox[0]
    c = conversation.pk
    assert email.to == ["alice@desk.example"]
    assert email.subject == "Supportdesk: 2 notifications this hour"
    assert f"Mia Manager assigned #{c} to you: Parcel late" in email.body
    assert f"Jane Doe wrote on #{c}: Parcel late" in email.body
    assert "mentioned you" not in email.body
    assert email.extra_headers["Auto-Submitted"] == "auto-generated"
    assert set(
        Notification.objects.filter(recipient=agent_a, emailed_at=digest_at).values_list(
            "pk", flat=True
        )
    ) == {assigned.pk, wrote.pk}
    assert Notification.objects.get(pk=mentioned.pk).emailed_at is None
    assert NotificationPreference.objects.get(user=agent_a).last_digest_at == digest_at


def test_daily_digest_waits_for_the_digest_hour(
    channels, agent_a, manager_a, react, settings, time_machine
):
    settings.NOTIFICATION_DIGEST_HOUR = 8
    day = timezone.now().replace(hour=6, minute=0, second=0, microsecond=0) + timedelta(days=1)
    time_machine.move_to(day - timedelta(hours=20))  # the day before, 10:00
    notification_preference_set(user=agent_a, email="daily")
    conversation = new_conversation(channels, react)
    with react():
        conversation_assign(conversation=conversation, actor=manager_a, agent=agent_a)
    mail.outbox.clear()

    assert notification_digests_send(now=day) == 0  # 06:00 the next day: not yet
    assert notification_digests_send(now=day + timedelta(hours=2)) == 1  # 08:00
    assert notification_digests_send(now=day + timedelta(hours=3)) == 0
    assert [m.subject for m in mail.outbox] == ["Supportdesk: 1 notification this day"]


def test_a_failed_digest_send_gives_the_notifications_back(
    channels, agent_a, manager_a, react, monkeypatch
):
    start = timezone.now()
    notification_preference_set(user=agent_a, email="hourly")
    conversation = new_conversation(channels, react)
    with react():
        conversation_assign(conversation=conversation, actor=manager_a, agent=agent_a)

    def refuse(self, fail_silently=False):
        raise OSError("SMTP down")

    monkeypatch.setattr("django.core.mail.EmailMessage.send", refuse)
    with pytest.raises(OSError, match="SMTP down"):
        notification_digests_send(now=start + timedelta(minutes=61))
    assert Notification.objects.get(recipient=agent_a).emailed_at is None
    preference = NotificationPreference.objects.get(user=agent_a)
    assert preference.last_digest_at is not None
    assert preference.last_digest_at < start + timedelta(minutes=1)
    monkeypatch.undo()
    mail.outbox.clear()
    assert notification_digests_send(now=start + timedelta(minutes=62)) == 1
    assert len(mail.outbox) == 1
