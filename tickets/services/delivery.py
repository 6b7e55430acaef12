"""Delivery of outbound messages: email building and sending, signed webhooks for chat and social.

Both claim a message with ``message_claim_for_sending`` (one conditional UPDATE) so a task
delivered twice sends once.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import urllib.error
import urllib.request
from collections.abc import Sequence
from datetime import timedelta
from typing import Any

from django.core.mail import EmailMultiAlternatives
from django.db.models import F, Q
from django.utils import timezone

from supportdesk.models import SentMail
from supportdesk.services import sent_mail_record
from supportdesk.urlguard import HostNotResolved, UnsafeURL, webhook_opener
from tickets import tokens
from tickets.models import Channel, ChannelKind, Conversation, Message
from tickets.services.mailboxes import mailbox_smtp_connection
from tickets.services.outbound_mail import sender_address, sender_desk_name

Direction = Message.Direction


SEND_LEASE = timedelta(minutes=15)


def message_claim_for_sending(*, message_id: int, kinds: Sequence[str] | None) -> bool:
    """Claim an outbound message for one sender (queued -> sending, or a stale sending lease).

    A conditional UPDATE, so two workers never both send; the lease counts from the claim
    (``claimed_at``), never from when the message was written.
    """
    now = timezone.now()
    claimable = Message.objects.filter(
        Q(delivery_state=Message.Delivery.QUEUED)
        | Q(
            delivery_state=Message.Delivery.SENDING,
            delivered_at__isnull=True,
            claimed_at__lt=now - SEND_LEASE,
        )
        | Q(
            delivery_state=Message.Delivery.SENDING,
            delivered_at__isnull=True,
            claimed_at__isnull=True,
            created_at__lt=now - SEND_LEASE,
        ),
        pk=message_id,
        direction=Direction.OUTBOUND,
    )
    if kinds is not None:
        claimable = claimable.filter(channel_kind__in=list(kinds))
    return bool(
        claimable.update(
            delivery_state=Message.Delivery.SENDING,
            delivery_attempts=F("delivery_attempts") + 1,
            claimed_at=now,
        )
    )


def message_email_send(*, message_id: int) -> bool:
    """Send an outbound email message exactly once; returns True if this call sent it.

    The message is claimed with a conditional UPDATE (queued -> sending), so a task delivered
    twice sends once. A send that fails puts it back to queued (the task retries); the caller
    marks it failed when retries run out.
    """
    if not message_claim_for_sending(message_id=message_id, kinds=None):
        return False
    message = (
        Message.objects.select_related("conversation", "identity", "author", "channel")
        .prefetch_related("attachments")
        .get(pk=message_id)
    )
    try:
        email = _build_email(message)
        # The channel's own mailbox SMTP account when it has one; EMAIL_URL otherwise.
        email.connection = mailbox_smtp_connection(channel_id=message.channel_id)
        email.send(fail_silently=False)
    except Exception as exc:
        Message.objects.filter(pk=message_id).update(
            delivery_state=Message.Delivery.QUEUED, delivery_error=str(exc)[:2000]
        )
        raise
    # What a later bounce must name before it marks this address undeliverable: every
    # recipient, copies included.
    for address in [*email.to, *email.cc, *email.bcc]:
        sent_mail_record(
            address=address,
            message_id=message.message_id,
            kind=SentMail.Kind.REPLY,
            automatic=False,
        )
    Message.objects.filter(pk=message_id).update(
        delivery_state=Message.Delivery.SENT, delivered_at=timezone.now(), delivery_error=""
    )
    return True


def message_delivery_failed(*, message_id: int, error: str, from_state: str = "queued") -> None:
    """Give up on delivering a message (retries ran out, or the receiver refused it)."""
    Message.objects.filter(pk=message_id, delivery_state=from_state).update(
        delivery_state=Message.Delivery.FAILED, delivery_error=error[:2000]
    )


def _build_email(message: Message) -> EmailMultiAlternatives:
    conversation = message.conversation
    assert message.identity is not None
    thread = list(
        Message.objects.filter(conversation=conversation, channel_kind=ChannelKind.EMAIL)
        .exclude(message_id="")
        .exclude(pk=message.pk)
        .filter(Q(sent_at__lt=message.sent_at) | Q(sent_at=message.sent_at, pk__lt=message.pk))
        .order_by("sent_at", "id")
        .values_list("message_id", "direction")
    )
    last_inbound = next((mid for mid, d in reversed(thread) if d == Direction.INBOUND), None)
    in_reply_to = last_inbound or (thread[-1][0] if thread else None)
    references = [mid for mid, _ in thread][-20:]
    author_name = (message.author.full_name if message.author else "") or "Support"
    from_name = _header_safe(f"{author_name} via {sender_desk_name(message.channel)}")
    headers = {
        "Message-ID": f"<{message.message_id}>",
        "Reply-To": tokens.reply_address(conversation.pk),
        "Auto-Submitted": "no",
        "X-Supportdesk-Conversation": str(conversation.pk),
    }
    if in_reply_to:
        headers["In-Reply-To"] = f"<{in_reply_to}>"
        headers["References"] = " ".join(f"<{mid}>" for mid in references)
    email = EmailMultiAlternatives(
        subject=_header_safe(message.subject),
        body=message.body_text,
        from_email=f'"{from_name}" <{sender_address(message.channel)}>',
        to=[message.identity.value],
        cc=list(message.cc),
        bcc=list(message.bcc),
        headers=headers,
    )
    if message.body_html:
        email.attach_alternative(_html_document(message.body_html), "text/html")
    for attachment in message.attachments.all():
        with attachment.file.open("rb") as stored:
            email.attach(attachment.filename, stored.read(), attachment.content_type)
    return email


def _html_document(body_html: str) -> str:
    """The HTML part: the sanitised body in a minimal document (mail clients style the rest)."""
    return (
        '<!DOCTYPE html><html><head><meta charset="utf-8"></head>'
        f'<body style="font-family: sans-serif; line-height: 1.5">{body_html}</body></html>'
    )


def _header_safe(value: str) -> str:
    return " ".join(value.replace('"', "'").split())[:200]


WEBHOOK_SIGNATURE_HEADER = "X-Supportdesk-Signature"
WEBHOOK_TIMESTAMP_HEADER = "X-Supportdesk-Timestamp"
WEBHOOK_TIMEOUT_SECONDS = 10


class WebhookRejected(Exception):
    """The receiver answered with a 4xx that retrying will not change."""


def webhook_signature(*, secret: str, timestamp: str, body: bytes) -> str:
    """``sha256=<hex>`` of HMAC-SHA256(secret, "<timestamp>." + body): what receivers verify."""
    digest = hmac.new(secret.encode(), timestamp.encode() + b"." + body, hashlib.sha256)
    return f"sha256={digest.hexdigest()}"


def _webhook_payload(message: Message) -> bytes:
    identity = message.identity
    author = message.author
    return json.dumps(
        {
            "type": "message.outbound",
            "message_id": message.pk,
            "conversation_id": message.conversation_id,
            "channel": message.channel_kind,
            "thread_key": message.thread_key or _thread_key_for_reply(message),
            "to": {"kind": identity.kind, "value": identity.value} if identity else None,
            "author": {"name": author.full_name or author.first_name} if author else None,
            "body": message.body_text,
            "sent_at": message.sent_at.isoformat(),
        },
        sort_keys=True,
    ).encode()


def chat_session_latest(conversation: Conversation, channel: Channel | None) -> str:
    """The thread key (chat session) of the customer's latest message on ``channel``."""
    if channel is None:
        return ""
    return (
        Message.objects.filter(
            conversation_id=conversation.pk, channel_id=channel.pk, direction=Direction.INBOUND
        )
        .exclude(thread_key="")
        .order_by("-sent_at", "-id")
        .values_list("thread_key", flat=True)
        .first()
        or ""
    )


def _thread_key_for_reply(message: Message) -> str:
    # The customer's messages on the reply's channel (or with no channel, as the reply).
    same_channel = (
        Q(channel__isnull=True) if message.channel_id is None else Q(channel_id=message.channel_id)
    )
    return (
        Message.objects.filter(
            same_channel,
            conversation_id=message.conversation_id,
            direction=Direction.INBOUND,
        )
        .exclude(thread_key="")
        .order_by("-sent_at", "-id")
        .values_list("thread_key", flat=True)
        .first()
        or ""
    )


class _RefuseRedirects(urllib.request.HTTPRedirectHandler):
    """A 3xx ends the delivery: following it would let a receiver (or whoever answers at its
    address) point the desk's signed POST at loopback, private or cloud-metadata addresses."""

    def redirect_request(self, *args: Any, **kwargs: Any) -> None:
        return None


def _webhook_urlopen(request: urllib.request.Request, *, timeout: float) -> Any:
    """Open the webhook URL: its host is resolved and checked again (an internal address is
    refused with UnsafeURL unless an admin allowed the host), the address reached is checked,
    and a redirect is never followed."""
    return webhook_opener(request.full_url, _RefuseRedirects()).open(request, timeout=timeout)


def message_webhook_send(*, message_id: int) -> bool:
    """POST a chat/social reply to its channel's webhook URL exactly once; True if this call did.

    Claimed like ``message_email_send`` (queued -> sending). Signed with the channel's secret:
    ``X-Supportdesk-Timestamp`` and ``X-Supportdesk-Signature: sha256=HMAC(secret, ts + "." +
    body)``. A 3xx (redirects are not followed) or a 4xx other than 408/429 fails the message at
    once (``WebhookRejected``), and so does a URL whose host now resolves to (or connects to) an
    internal address (``supportdesk.urlguard``, unless an admin allowed the host); network errors and 5xx put it back to queued and re-raise so the
    task retries with backoff. ``delivery_error`` never names the URL.
    """
    now = timezone.now()
    if not message_claim_for_sending(
        message_id=message_id, kinds=[ChannelKind.CHAT, ChannelKind.SOCIAL]
    ):
        return False
    message = Message.objects.select_related("channel", "identity", "author").get(pk=message_id)
    channel = message.channel
    if channel is None or not channel.webhook_url:
        Message.objects.filter(pk=message_id).update(
            delivery_state=Message.Delivery.NOT_SENT,
            delivery_error="The channel has no webhook URL any more.",
        )
        return False
    body = _webhook_payload(message)
    timestamp = str(int(now.timestamp()))
    request = urllib.request.Request(
        channel.webhook_url,
        data=body,
        method="POST",
        headers={
            "Content-Type": "application/json",
            "User-Agent": "Supportdesk-Webhook/1",
            WEBHOOK_TIMESTAMP_HEADER: timestamp,
            WEBHOOK_SIGNATURE_HEADER: webhook_signature(
                secret=channel.secret, timestamp=timestamp, body=body
            ),
        },
    )
    # delivery_error is shown to every agent of the conversation: it never carries the URL,
    # which often holds the receiver's credentials.
    try:
        with _webhook_urlopen(request, timeout=WEBHOOK_TIMEOUT_SECONDS):
            pass
    except HostNotResolved as exc:
        _delivery_requeue(message_id, f"Network error: {exc.message}")
        raise OSError(exc.message) from exc  # a DNS failure: retried like any network error
    except UnsafeURL as exc:
        message_delivery_failed(message_id=message_id, error=exc.message, from_state="sending")
        raise WebhookRejected(exc.message) from exc
    except urllib.error.HTTPError as exc:
        if 300 <= exc.code < 400:
            error = (
                f"HTTP {exc.code} (a redirect) from the webhook URL; redirects are not followed."
            )
        else:
            error = f"HTTP {exc.code} from the webhook URL."
        if 300 <= exc.code < 500 and exc.code not in (408, 429):
            message_delivery_failed(message_id=message_id, error=error, from_state="sending")
            raise WebhookRejected(error) from exc
        _delivery_requeue(message_id, error)
        raise
    except urllib.error.URLError as exc:
        if isinstance(exc.reason, UnsafeURL):
            error = exc.reason.message
            message_delivery_failed(message_id=message_id, error=error, from_state="sending")
            raise WebhookRejected(error) from exc
        reason = str(exc.reason).replace(channel.webhook_url, "the webhook URL")
        _delivery_requeue(message_id, f"Network error: {reason}")
        raise
    except (OSError, ValueError) as exc:
        reason = (str(exc) or exc.__class__.__name__).replace(
            channel.webhook_url, "the webhook URL"
        )
        _delivery_requeue(message_id, reason)
        raise
    Message.objects.filter(pk=message_id).update(
        delivery_state=Message.Delivery.SENT, delivered_at=timezone.now(), delivery_error=""
    )
    return True


def _delivery_requeue(message_id: int, error: str) -> None:
    Message.objects.filter(pk=message_id, delivery_state=Message.Delivery.SENDING).update(
        delivery_state=Message.Delivery.QUEUED, delivery_error=error[:2000]
    )


def chat_replies_mark_delivered(*, message_ids: Sequence[int]) -> int:
    """The visitor's /chat/ page showed these queued replies: they are delivered (a read-receipt)."""
    if not message_ids:
        return 0
    return Message.objects.filter(
        pk__in=list(message_ids),
        direction=Direction.OUTBOUND,
        channel_kind=ChannelKind.CHAT,
        delivery_state=Message.Delivery.QUEUED,
        channel__webhook_url="",
    ).update(delivery_state=Message.Delivery.SENT, delivered_at=timezone.now())
