"""Automated messages on a customer's own channel (chat transcript, social webhook).

Higher apps (surveys, quality) reach a customer with no email address where they wrote: the
message is an outbound message of the conversation, delivered like an agent's chat or social
reply, but with no author and ``automated`` naming what sent it.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from django.db import transaction
from django.utils import timezone

from supportdesk.outbox import outbox_enqueue
from tickets.models import Channel, ChannelKind, Conversation, Event, Identity, Message
from tickets.services.events import event_record

Direction = Message.Direction

# The channels a message can reach a customer on without an email address.
MESSAGE_CHANNELS = (ChannelKind.CHAT, ChannelKind.SOCIAL)


@dataclass(frozen=True)
class ChannelRoute:
    """Where the customer last wrote on a chat or social channel."""

    channel: Channel
    identity: Identity | None
    thread_key: str

    @property
    def deliverable(self) -> bool:
        """A social message needs the channel's webhook; a chat message shows on the chat page
        (or goes to the chat provider's webhook)."""
        if not self.channel.is_active:
            return False
        return self.channel.kind == ChannelKind.CHAT or bool(self.channel.webhook_url)


def customer_channel_route(*, conversation_id: int) -> ChannelRoute | None:
    """The chat or social channel of the customer's latest own message in the conversation
    (automated mail never counts), or None when they wrote on none."""
    last = (
        Message.objects.filter(
            conversation_id=conversation_id,
            direction=Direction.INBOUND,
            automated="",
            channel_kind__in=list(MESSAGE_CHANNELS),
            channel__isnull=False,
        )
        .select_related("channel", "identity")
        .order_by("-sent_at", "-id")
        .first()
    )
    if last is None or last.channel is None:
        return None
    return ChannelRoute(channel=last.channel, identity=last.identity, thread_key=last.thread_key)


@transaction.atomic
def message_automated_send(
    *,
    conversation: Conversation,
    route: ChannelRoute,
    body: str,
    automated: str,
    at: datetime | None = None,
) -> Message:
    """An automated outbound message on the customer's chat or social channel.

    Side effects: one outbound Message (no author, ``automated`` set, in the chat session the
    customer last wrote in) queued for delivery: a webhook to the channel's ``webhook_url`` when
    it has one, else the visitor's chat page picks it up. Records ``message.automated``. The
    conversation's status, assignee and activity are left alone: nobody replied.
    """
    if not route.deliverable:
        raise ValueError(f"channel {route.channel.pk} cannot deliver a message")
    at = at or timezone.now()
    channel = route.channel
    message = Message.objects.create(
        conversation=conversation,
        channel=channel,
        channel_kind=channel.kind,
        direction=Direction.OUTBOUND,
        author=None,
        identity=route.identity,
        thread_key=route.thread_key if channel.kind == ChannelKind.CHAT else "",
        body_text=body,
        automated=automated[:20],
        sent_at=at,
        created_at=at,
        delivery_state=Message.Delivery.QUEUED,
    )
    if channel.webhook_url:
        outbox_enqueue(
            task_name="tickets.tasks.message_webhook_send_task", kwargs={"message_id": message.pk}
        )
    event_record(
        kind=Event.Kind.AUTOMATED,
        conversation=conversation,
        message=message,
        channel_kind=channel.kind,
        occurred_at=at,
        data={"automated": automated[:20]},
    )
    return message
