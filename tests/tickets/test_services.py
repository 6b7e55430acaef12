"""Ingestion, contact counting (docs/metrics.md "Counting contacts"), threading, identities, merges."""

from __future__ import annotations

from datetime import timedelta

import pytest
from django.core import mail
from django.utils import timezone

from supportdesk.errors import ApplicationError, Conflict
from supportdesk.models import OutboxItem
from tests.factories import email_bytes, send_call, send_chat, send_email, send_social
from tests.helpers import outbox_held
from tickets import tokens
from tickets.models import Contact, Conversation, Customer, CustomerMerge, Event, Identity, Message
from tickets.services import (
    conversation_reopen,
    conversation_reply,
    conversation_set_pending,
    conversation_solve,
    customer_merge,
    customer_merge_undo,
    identity_link,
    inbound_email_raw,
    message_move,
)

pytestmark = pytest.mark.django_db


def ago(**kwargs) -> timezone.datetime:
    return timezone.now() - timedelta(**kwargs)


def reasons(conversation_id: int) -> list[str]:
    return list(
        Contact.objects.filter(conversation_id=conversation_id)
        .order_by("started_at", "id")
        .values_list("reason", flat=True)
    )


# --- Contact counting -------------------------------------------------------------------------


def test_first_email_opens_a_conversation_with_one_contact(channels):
    # When
    result = send_email(channels["email"], message_id="<first@mail.example.com>")

    # Then
    conversation = Conversation.objects.get(pk=result.conversation_id)
    assert result.new_contact is True
    assert conversation.contacts_counted == 1
    assert conversation.status == "new"
    assert conversation.channels == ["email"]
    assert conversation.subject == "My order has not arrived"
    assert conversation.team.name == "Team A"
    assert reasons(conversation.pk) == ["first"]
    customer = Customer.objects.get()
    assert customer.name == "Jane Doe"
    assert list(customer.identities.values_list("kind", "value", "verified")) == [
        ("email", "jane@example.com", True)
    ]


def test_follow_up_email_within_chaser_window_continues_the_contact(channels):
    # Given an unanswered email
    first = inbound_email_raw(
        channel=channels["email"],
        raw=email_bytes(message_id="<a@mail.example.com>"),
        received_at=ago(hours=2),
    )

    # When the customer adds detail an hour later, before anyone answered
    second = inbound_email_raw(
        channel=channels["email"],
        raw=email_bytes(
            message_id="<b@mail.example.com>", in_reply_to="<a@mail.example.com>", body="Also..."
        ),
        received_at=ago(hours=1),
    )

    # Then it is the same contact
    assert second.conversation_id == first.conversation_id
    assert second.new_contact is False
    assert Conversation.objects.get(pk=first.conversation_id).contacts_counted == 1


def test_unanswered_message_chased_after_four_hours_is_a_new_contact(channels):
    first = inbound_email_raw(
        channel=channels["email"],
        raw=email_bytes(message_id="<a@mail.example.com>"),
        received_at=ago(hours=6),
    )
    second = inbound_email_raw(
        channel=channels["email"],
        raw=email_bytes(message_id="<b@mail.example.com>", in_reply_to="<a@mail.example.com>"),
        received_at=ago(hours=1),
    )

    assert second.new_contact is True
    assert reasons(first.conversation_id) == ["first", "chaser"]
    assert Conversation.objects.get(pk=first.conversation_id).contacts_counted == 2


def test_answered_message_then_customer_reply_continues_the_contact(channels, agent_a):
    first = inbound_email_raw(
        channel=channels["email"],
        raw=email_bytes(message_id="<a@mail.example.com>"),
        received_at=ago(hours=10),
    )
    conversation = Conversation.objects.get(pk=first.conversation_id)
    reply = conversation_reply(
        conversation=conversation, author=agent_a, body="Checking", at=ago(hours=9)
    )

    second = inbound_email_raw(
        channel=channels["email"],
        raw=email_bytes(message_id="<b@mail.example.com>", in_reply_to=f"<{reply.message_id}>"),
        received_at=ago(hours=1),
    )

    assert second.conversation_id == first.conversation_id
    assert second.new_contact is False
    assert reasons(first.conversation_id) == ["first"]


def test_email_then_chat_then_call_are_three_contacts_on_one_conversation(channels, agent_a):
    # Given an email from Jane
    email = send_email(channels["email"], sender="Jane Doe <Jane@Example.com>")
    customer = Customer.objects.get(pk=email.customer_id)

    # When she chats giving the same email, and the agent links her number before she calls
    chat = send_chat(
        channels["chat"], email="jane@example.com", visitor_id="visitor-9", body="Any news?"
    )
    identity_link(customer=customer, kind="phone", value="+1 (415) 555-0100", actor=agent_a)
    call = send_call(channels["phone"], from_number="415-555-0100")

    # Then one customer, one conversation, three contacts across three channels
    assert {email.customer_id, chat.customer_id, call.customer_id} == {customer.pk}
    assert {email.conversation_id, chat.conversation_id, call.conversation_id} == {
        email.conversation_id
    }
    conversation = Conversation.objects.get(pk=email.conversation_id)
    assert conversation.contacts_counted == 3
    assert conversation.channels == ["email", "chat", "phone"]
    assert reasons(conversation.pk) == ["first", "channel_change", "call"]
    assert Customer.objects.count() == 1
    assert set(customer.identities.values_list("kind", "value")) == {
        ("email", "jane@example.com"),
        ("chat", "visitor-9"),
        ("phone", "+14155550100"),
    }


def test_phone_calls_are_always_one_contact_each_and_keep_call_details(channels, agent_a):
    first = send_call(
        channels["phone"], talk_seconds=0, ended_by="system", started_at=ago(minutes=30)
    )
    second = send_call(
        channels["phone"], talk_seconds=300, started_at=ago(minutes=10), agent_email=agent_a.email
    )

    assert first.conversation_id == second.conversation_id
    assert second.new_contact is True
    conversation = Conversation.objects.get(pk=first.conversation_id)
    assert conversation.contacts_counted == 2
    assert conversation.assignee == agent_a
    calls = list(Contact.objects.filter(conversation=conversation).order_by("started_at"))
    assert [(c.reason, c.talk_seconds, c.ended_by) for c in calls] == [
        ("call", 0, "system"),
        ("call", 300, "customer"),
    ]
    assert calls[1].agent == agent_a
    assert (calls[1].wait_seconds, calls[1].hold_seconds, calls[1].wrap_seconds) == (30, 10, 45)


def test_a_chat_session_is_one_contact_and_a_new_session_another(channels):
    send_chat(channels["chat"], session_id="s1", body="Hi", sent_at=ago(minutes=50))
    send_chat(channels["chat"], session_id="s1", body="Still there?", sent_at=ago(minutes=40))
    result = send_chat(channels["chat"], session_id="s2", body="Back again", sent_at=ago(minutes=5))

    assert result.new_contact is True
    assert reasons(result.conversation_id) == ["first", "chat_session"]
    assert Message.objects.filter(conversation_id=result.conversation_id).count() == 3


def test_writing_after_a_solve_reopens_and_counts_a_contact(channels, agent_a):
    first = send_email(channels["email"], message_id="<a@mail.example.com>")
    conversation = Conversation.objects.get(pk=first.conversation_id)
    conversation_reply(conversation=conversation, author=agent_a, body="Fixed it")
    solve = conversation_solve(conversation=conversation, actor=agent_a)

    again = send_email(
        channels["email"], message_id="<b@mail.example.com>", in_reply_to="<a@mail.example.com>"
    )

    conversation.refresh_from_db()
    assert again.conversation_id == conversation.pk
    assert again.new_contact is True
    assert conversation.status == "open"
    assert reasons(conversation.pk) == ["first", "reopen"]
    assert solve.data == {
        "status_from": "open",
        "status_to": "solved",
        "contacts_counted": 1,
        "channel": "email",
    }
    reopen = Event.objects.get(conversation=conversation, kind="conversation.reopened")
    assert reopen.data["by"] == "customer"
    assert reopen.agent == agent_a


def test_writing_while_pending_opens_a_contact_and_moves_to_open(channels, agent_a):
    first = send_social(channels["social"], thread_id="t1", sent_at=ago(minutes=30))
    conversation = Conversation.objects.get(pk=first.conversation_id)
    conversation_reply(
        conversation=conversation,
        author=agent_a,
        body="Can you DM your order number?",
        at=ago(minutes=29),
    )
    conversation_set_pending(conversation=conversation, actor=agent_a)

    again = send_social(channels["social"], thread_id="t1", body="It's 1234")

    conversation.refresh_from_db()
    assert again.conversation_id == conversation.pk
    assert again.new_contact is True
    assert conversation.status == "open"
    assert reasons(conversation.pk) == ["first", "reopen"]


def test_auto_reply_is_stored_but_never_reopens_or_counts(channels, agent_a):
    first = send_email(channels["email"], message_id="<a@mail.example.com>")
    conversation = Conversation.objects.get(pk=first.conversation_id)
    reply = conversation_reply(conversation=conversation, author=agent_a, body="Done")
    conversation_solve(conversation=conversation, actor=agent_a)
    mail.outbox.clear()

    auto = send_email(
        channels["email"],
        subject="Out of office: Re: My order has not arrived",
        in_reply_to=f"<{reply.message_id}>",
        extra_headers={"Auto-Submitted": "auto-replied", "X-Autoreply": "yes"},
    )

    conversation.refresh_from_db()
    assert auto.conversation_id == conversation.pk
    assert auto.new_contact is False
    assert conversation.status == "solved"
    assert conversation.contacts_counted == 1
    assert Message.objects.get(pk=auto.message_id).automated == "auto_reply"
    assert mail.outbox == []
    assert not Event.objects.filter(kind="conversation.reopened").exists()


# --- Threading --------------------------------------------------------------------------------


def test_reply_to_our_outbound_message_id_threads(channels, agent_a):
    first = send_email(channels["email"])
    conversation = Conversation.objects.get(pk=first.conversation_id)
    reply = conversation_reply(conversation=conversation, author=agent_a, body="On it")

    # The customer's client drops In-Reply-To but keeps References.
    result = send_email(channels["email"], references=f"<older@x.example> <{reply.message_id}>")

    assert result.conversation_id == conversation.pk


def test_reply_address_token_threads_and_a_tampered_token_does_not(channels):
    first = send_email(channels["email"], message_id="<a@mail.example.com>")
    address = tokens.reply_address(first.conversation_id)
    tampered = address.replace(".", ".0", 1)

    threaded = send_email(channels["email"], to=address, subject="no headers at all")
    separate = send_email(channels["email"], to=tampered, subject="forged")

    assert threaded.conversation_id == first.conversation_id
    assert separate.conversation_id != first.conversation_id


def test_subject_tag_threads_only_for_a_participant(channels):
    first = send_email(channels["email"], sender="jane@example.com")
    tag = tokens.subject_tag(first.conversation_id)

    from_jane = send_email(channels["email"], sender="jane@example.com", subject=f"Re: help {tag}")
    from_stranger = send_email(
        channels["email"], sender="eve@evil.example", subject=f"Re: help {tag}"
    )

    assert from_jane.conversation_id == first.conversation_id
    assert from_stranger.conversation_id != first.conversation_id
    assert Message.objects.filter(conversation_id=first.conversation_id).count() == 2


def test_mail_on_a_closed_conversation_opens_a_linked_follow_up(channels, agent_a):
    first = send_email(channels["email"], message_id="<a@mail.example.com>")
    conversation = Conversation.objects.get(pk=first.conversation_id)
    conversation_solve(conversation=conversation, actor=agent_a)
    Conversation.objects.filter(pk=conversation.pk).update(status="closed")

    later = send_email(channels["email"], in_reply_to="<a@mail.example.com>")

    follow_up = Conversation.objects.get(pk=later.conversation_id)
    assert follow_up.pk != conversation.pk
    assert follow_up.follow_up_of_id == conversation.pk
    assert follow_up.contacts_counted == 1


def test_duplicate_delivery_is_stored_once(channels):
    first = send_email(channels["email"], message_id="<same@mail.example.com>")
    second = send_email(channels["email"], message_id="<same@mail.example.com>")

    assert first.created is True
    assert second.created is False
    assert (second.message_id, second.conversation_id) == (first.message_id, first.conversation_id)
    assert Message.objects.count() == 1


def test_unparseable_input_is_quarantined_not_dropped(channels):
    from tickets.models import QuarantinedMessage

    result = inbound_email_raw(channel=channels["email"], raw=b"this is not an email")

    assert isinstance(result, QuarantinedMessage)
    assert QuarantinedMessage.objects.get().raw == b"this is not an email"
    assert Message.objects.count() == 0


def test_bounce_threads_to_the_original_and_marks_the_address_undeliverable(channels, agent_a):
    first = send_email(channels["email"], sender="jane@example.com")
    conversation = Conversation.objects.get(pk=first.conversation_id)
    reply = conversation_reply(conversation=conversation, author=agent_a, body="Here you go")
    conversation_solve(conversation=conversation, actor=agent_a)
    dsn = (
        "From: Mail Delivery System <MAILER-DAEMON@mx.example.com>\r\n"
        "To: support@desk.example\r\n"
        "Subject: Undelivered Mail Returned to Sender\r\n"
        "Message-ID: <bounce-1@mx.example.com>\r\n"
        "Auto-Submitted: auto-replied\r\n"
        "MIME-Version: 1.0\r\n"
        'Content-Type: multipart/report; report-type=delivery-status; boundary="BB"\r\n\r\n'
        "--BB\r\nContent-Type: text/plain\r\n\r\nYour message could not be delivered.\r\n"
        "--BB\r\nContent-Type: message/delivery-status\r\n\r\n"
        "Reporting-MTA: dns; mx.example.com\r\n\r\n"
        "Final-Recipient: rfc822; jane@example.com\r\nAction: failed\r\nStatus: 5.1.1\r\n\r\n"
        "--BB\r\nContent-Type: text/rfc822-headers\r\n\r\n"
        f"Message-ID: <{reply.message_id}>\r\nTo: jane@example.com\r\nSubject: Re: x\r\n\r\n"
        "--BB--\r\n"
    ).encode()

    result = inbound_email_raw(channel=channels["email"], raw=dsn)

    conversation.refresh_from_db()
    assert result.conversation_id == conversation.pk
    assert Message.objects.get(pk=result.message_id).automated == "bounce"
    assert conversation.status == "solved"
    assert Identity.objects.get(value="jane@example.com").undeliverable_at is not None
    assert Customer.objects.count() == 1


def test_a_forged_bounce_quoting_a_customers_own_message_id_is_quarantined(channels, agent_a):
    from tickets.models import QuarantinedMessage

    # given: Jane's mail (her Message-ID went to everyone she copied) and the desk's reply
    first = send_email(channels["email"], sender="jane@example.com", message_id="<jane-1@x.test>")
    conversation = Conversation.objects.get(pk=first.conversation_id)
    conversation_reply(conversation=conversation, author=agent_a, body="Here you go")
    before = list(conversation.messages.order_by("pk").values_list("pk", "body_text"))
    forged = (
        b"From: MAILER-DAEMON@attacker.example\r\n"
        b"To: support@desk.example\r\n"
        b"Subject: failure notice\r\n"
        b"Message-ID: <forged-1@attacker.example>\r\n\r\n"
        b"Your reset code is 771245, reply with it to verify.\r\n\r\n"
        b"--- Below this line is a copy of the message.\r\n\r\n"
        b"Message-ID: <jane-1@x.test>\r\nFrom: jane@example.com\r\n"
    )

    # when
    result = inbound_email_raw(channel=channels["email"], raw=forged)

    # then: nothing reached Jane's conversation and her address is still deliverable
    assert isinstance(result, QuarantinedMessage)
    assert QuarantinedMessage.objects.get().raw == forged
    assert list(conversation.messages.order_by("pk").values_list("pk", "body_text")) == before
    assert Identity.objects.get(value="jane@example.com").undeliverable_at is None


# --- Attach rule for chat, social and phone ---------------------------------------------------


def test_social_attaches_to_the_single_active_conversation(channels):
    first = send_social(channels["social"], handle="@Jane", sent_at=ago(days=2))
    second = send_social(channels["social"], handle="jane", body="any update?")

    assert second.conversation_id == first.conversation_id
    assert Identity.objects.get(kind="social").value == "x:jane"


def test_a_new_conversation_when_the_active_one_is_outside_the_window(channels, settings):
    settings.ATTACH_WINDOW_DAYS = 7
    first = send_social(channels["social"], sent_at=ago(days=8))
    second = send_social(channels["social"])

    assert second.conversation_id != first.conversation_id
    assert second.customer_id == first.customer_id


def test_a_new_conversation_when_two_are_active(channels):
    first = send_email(channels["email"], sender="jane@example.com", subject="Order A")
    second = send_email(channels["email"], sender="jane@example.com", subject="Order B")
    chat = send_chat(channels["chat"], email="jane@example.com", visitor_id="v-77")

    assert len({first.conversation_id, second.conversation_id, chat.conversation_id}) == 3
    assert len({first.customer_id, second.customer_id, chat.customer_id}) == 1


def test_a_solved_conversation_is_not_attached_to(channels, agent_a):
    first = send_call(channels["phone"])
    conversation_solve(
        conversation=Conversation.objects.get(pk=first.conversation_id), actor=agent_a
    )

    again = send_call(channels["phone"])

    assert again.conversation_id != first.conversation_id


# --- Replies ----------------------------------------------------------------------------------


def test_email_reply_sends_one_threaded_email(
    channels, agent_a, django_capture_on_commit_callbacks
):
    first = send_email(
        channels["email"], message_id="<cust-1@mail.example.com>", sender="Jane <jane@example.com>"
    )
    conversation = Conversation.objects.get(pk=first.conversation_id)

    with django_capture_on_commit_callbacks(execute=True) as callbacks:
        reply = conversation_reply(
            conversation=conversation, author=agent_a, body="We have shipped it."
        )

    # The outbox hands the email over after commit (other apps' reactions to the reply event are
    # their own outbox rows).
    assert len(callbacks) >= 1
    assert list(
        OutboxItem.objects.filter(task_name__startswith="tickets.").values_list(
            "task_name", "kwargs"
        )
    ) == [("tickets.tasks.message_email_send_task", {"message_id": reply.pk})]

    reply.refresh_from_db()
    assert reply.delivery_state == "sent"
    assert len(mail.outbox) == 1
    sent = mail.outbox[0]
    assert sent.to == ["jane@example.com"]
    assert sent.subject == f"Re: My order has not arrived [#{conversation.pk}]"
    assert sent.extra_headers["Message-ID"] == f"<{reply.message_id}>"
    assert sent.extra_headers["In-Reply-To"] == "<cust-1@mail.example.com>"
    assert sent.extra_headers["References"] == "<cust-1@mail.example.com>"
    assert sent.extra_headers["Reply-To"] == tokens.reply_address(conversation.pk)
    assert sent.body == "We have shipped it."
    conversation.refresh_from_db()
    assert (conversation.status, conversation.assignee) == ("open", agent_a)


def test_internal_note_sends_nothing_and_counts_nothing(channels, agent_a):
    first = send_email(channels["email"])
    conversation = Conversation.objects.get(pk=first.conversation_id)
    mail.outbox.clear()

    note = conversation_reply(conversation=conversation, author=agent_a, body="VIP", internal=True)

    assert note.direction == "note"
    assert mail.outbox == []
    conversation.refresh_from_db()
    assert conversation.status == "new"


def test_reply_to_a_customer_without_email_is_refused(channels, agent_a):
    first = send_call(channels["phone"])
    conversation = Conversation.objects.get(pk=first.conversation_id)

    with pytest.raises(ApplicationError, match="no email handle"):
        conversation_reply(conversation=conversation, author=agent_a, body="Hi")
    assert Message.objects.filter(direction="outbound").count() == 0


def test_solving_twice_is_a_conflict_and_reopen_requires_solved(channels, agent_a):
    first = send_email(channels["email"])
    conversation = Conversation.objects.get(pk=first.conversation_id)
    with pytest.raises(Conflict):
        conversation_reopen(conversation=conversation, actor=agent_a)
    conversation_solve(conversation=conversation, actor=agent_a)
    with pytest.raises(Conflict):
        conversation_solve(conversation=conversation, actor=agent_a)
    assert Event.objects.filter(kind="conversation.solved").count() == 1


# --- Identities, merges, moves ----------------------------------------------------------------


def test_linking_a_handle_of_another_customer_is_a_conflict(channels, agent_a):
    jane = send_email(channels["email"], sender="jane@example.com")
    bob = send_call(channels["phone"], from_number="+44 20 7946 0958")

    with pytest.raises(ApplicationError, match="not a possible phone number"):
        identity_link(
            customer=Customer.objects.get(pk=jane.customer_id),
            kind="phone",
            value="12",
            actor=agent_a,
        )
    with pytest.raises(Conflict) as info:
        identity_link(
            customer=Customer.objects.get(pk=jane.customer_id),
            kind="phone",
            value="+442079460958",
            actor=agent_a,
        )
    # the holder is known to the caller (who checks visibility), never part of the answer
    assert info.value.holder_id == bob.customer_id
    assert info.value.extra == {}
    assert Identity.objects.get(kind="phone").customer_id == bob.customer_id


def test_merge_moves_identities_and_conversations_and_undo_moves_them_back(channels, agent_a):
    # Given Jane by email and by phone as two customers, the phone one with a solved call
    jane = send_email(channels["email"], sender="jane@example.com")
    caller = send_call(channels["phone"], from_number="+14155550100")
    call_conversation = Conversation.objects.get(pk=caller.conversation_id)
    conversation_solve(conversation=call_conversation, actor=agent_a)
    target = Customer.objects.get(pk=jane.customer_id)
    other = Customer.objects.get(pk=caller.customer_id)

    # When merged
    merge = customer_merge(target=target, other=other, actor=agent_a)

    # Then
    assert set(target.identities.values_list("kind", flat=True)) == {"email", "phone"}
    assert set(target.conversations.values_list("pk", flat=True)) == {
        jane.conversation_id,
        caller.conversation_id,
    }
    other.refresh_from_db()
    assert other.merged_into == target
    event = Event.objects.get(kind="customer.merged")
    today = timezone.localdate().isoformat()
    assert event.data["affected_dates"] == [today]
    assert event.data["conversation_ids"] == [caller.conversation_id]
    # A later call from that number now reaches the target
    assert send_call(channels["phone"], from_number="+14155550100").customer_id == target.pk
    with pytest.raises(Conflict):
        customer_merge(target=target, other=other, actor=agent_a)

    # When undone
    customer_merge_undo(merge=merge, actor=agent_a)

    other.refresh_from_db()
    assert other.merged_into is None
    assert list(other.identities.values_list("kind", flat=True)) == ["phone"]
    assert Conversation.objects.get(pk=caller.conversation_id).customer == other
    assert CustomerMerge.objects.get().undone_at is not None
    assert Event.objects.get(kind="customer.merge_undone").data["affected_dates"] == [today]


def test_call_from_unknown_number_merged_and_moved_gives_three_contacts(channels, agent_a):
    # Given an email, a chat with the same email, and a call from a number nobody knew yet
    email = send_email(channels["email"], sender="jane@example.com")
    send_chat(channels["chat"], email="jane@example.com")
    call = send_call(channels["phone"], from_number="+14155550100")
    assert call.customer_id != email.customer_id

    # When the agent merges the caller into Jane and moves the call into her conversation
    customer_merge(
        target=Customer.objects.get(pk=email.customer_id),
        other=Customer.objects.get(pk=call.customer_id),
        actor=agent_a,
    )
    message_move(
        message=Message.objects.get(pk=call.message_id),
        to_conversation=Conversation.objects.get(pk=email.conversation_id),
        actor=agent_a,
    )

    # Then
    conversation = Conversation.objects.get(pk=email.conversation_id)
    assert conversation.contacts_counted == 3
    assert conversation.channels == ["email", "chat", "phone"]
    assert reasons(conversation.pk) == ["first", "channel_change", "call"]
    emptied = Conversation.objects.get(pk=call.conversation_id)
    assert emptied.contacts_counted == 0
    assert Contact.objects.get(reason="call").talk_seconds == 120


def test_moving_a_message_recounts_both_conversations(channels, agent_a):
    first = send_email(channels["email"], sender="jane@example.com", subject="A")
    second = send_email(channels["email"], sender="jane@example.com", subject="B")
    extra = send_chat(
        channels["chat"], email="jane@example.com", session_id="x", sent_at=ago(seconds=1)
    )
    moved_from = extra.conversation_id
    assert moved_from not in (first.conversation_id, second.conversation_id)

    message_move(
        message=Message.objects.get(pk=extra.message_id),
        to_conversation=Conversation.objects.get(pk=first.conversation_id),
        actor=agent_a,
    )

    assert Conversation.objects.get(pk=first.conversation_id).contacts_counted == 2
    assert Conversation.objects.get(pk=moved_from).contacts_counted == 0
    assert Event.objects.get(kind="message.moved").data["from"] == moved_from


def test_messages_move_only_within_one_customer(channels, agent_a):
    jane = send_email(channels["email"], sender="jane@example.com")
    bob = send_email(channels["email"], sender="bob@example.com")

    with pytest.raises(ApplicationError):
        message_move(
            message=Message.objects.get(pk=bob.message_id),
            to_conversation=Conversation.objects.get(pk=jane.conversation_id),
            actor=agent_a,
        )
    assert Message.objects.get(pk=bob.message_id).conversation_id == bob.conversation_id


def test_history_import_reply_is_stored_as_sent_and_sends_nothing(
    channels, agent_a, django_capture_on_commit_callbacks
):
    first = send_email(channels["email"])
    conversation = Conversation.objects.get(pk=first.conversation_id)
    mail.outbox.clear()
    at = ago(days=3)

    with django_capture_on_commit_callbacks(execute=True):
        reply = conversation_reply(
            conversation=conversation, author=agent_a, body="Old answer", at=at, deliver=False
        )

    reply.refresh_from_db()
    assert (reply.delivery_state, reply.delivered_at) == ("sent", at)
    assert reply.message_id.startswith(f"sd.{reply.pk}.")
    assert mail.outbox == []
    from supportdesk.models import OutboxItem

    # No send task (other apps' reactions to the events may be queued: surveys, metrics).
    assert not OutboxItem.objects.filter(task_name="tickets.tasks.message_email_send_task").exists()


def test_phone_conversation_subject_comes_from_the_call_notes(channels):
    with_notes = send_call(channels["phone"], notes="Refund for order 88\nCustomer was upset")
    assert Conversation.objects.get(pk=with_notes.conversation_id).subject == "Refund for order 88"
    without = send_call(channels["phone"], from_number="+1 212 555 0199")
    assert Conversation.objects.get(pk=without.conversation_id).subject == (
        "Phone call from +12125550199"
    )


def test_solve_event_is_attributed_to_the_last_contact_channel_agent_and_team(
    channels, agent_a, team_a
):
    email = send_email(channels["email"], sender="jane@example.com")
    send_chat(channels["chat"], email="jane@example.com")
    conversation = Conversation.objects.get(pk=email.conversation_id)

    event = conversation_solve(conversation=conversation, actor=agent_a)

    event.refresh_from_db()
    assert (event.kind, event.channel_kind, event.agent, event.team) == (
        "conversation.solved",
        "chat",
        agent_a,
        team_a,
    )
    assert event.data == {
        "status_from": "new",
        "status_to": "solved",
        "contacts_counted": 2,
        "channel": "chat",
    }


# --- Sending ------------------------------------------------------------------------------------


def test_a_stuck_send_is_taken_over_by_the_age_of_its_claim_not_of_the_message(channels, agent_a):

    from tickets.services import message_email_send

    # given: a reply written two hours ago that a worker claimed a minute ago and is sending now
    first = send_email(channels["email"], sender="jane@example.com")
    conversation = Conversation.objects.get(pk=first.conversation_id)
    with outbox_held():
        reply = conversation_reply(conversation=conversation, author=agent_a, body="On its way")
    Message.objects.filter(pk=reply.pk).update(
        created_at=ago(hours=2),
        delivery_state="sending",
        delivery_attempts=1,
        claimed_at=ago(minutes=1),
    )
    mail.outbox.clear()

    # when: the task is delivered again
    sent = message_email_send(message_id=reply.pk)

    # then: it is not claimed twice, nobody is mailed twice
    assert sent is False
    assert mail.outbox == []
    assert Message.objects.filter(pk=reply.pk).values_list(
        "delivery_state", "delivery_attempts"
    ).get() == ("sending", 1)

    # when: the claim is 16 minutes old (its worker died), the send is taken over once
    Message.objects.filter(pk=reply.pk).update(claimed_at=ago(minutes=16))
    assert message_email_send(message_id=reply.pk) is True
    assert [m.to for m in mail.outbox] == [["jane@example.com"]]
    assert Message.objects.filter(pk=reply.pk).values_list(
        "delivery_state", "delivery_attempts"
    ).get() == ("sent", 2)
