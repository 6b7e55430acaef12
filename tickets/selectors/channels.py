"""Channels and the mailboxes of email channels: lookups for the webhooks, the settings and
mailbox pages, and where an agent can write first."""

from __future__ import annotations

from typing import Any

from django.db.models import (
    Q,
    QuerySet,
)
from django.http import Http404

from supportdesk.sealing import digests_match, secret_digest
from tickets.models import (
    Channel,
    ChannelKind,
    Mailbox,
)


def channel_get_by_secret(*, secret: str) -> Channel | None:
    """The active channel whose secret this is: found by digest, compared in constant time."""
    if not secret:
        return None
    channel = (
        Channel.objects.select_related("team")
        .filter(secret_digest=secret_digest(secret), is_active=True)
        .first()
    )
    if channel is None or not digests_match(channel.secret_digest, secret):
        return None
    return channel


def chat_channel_for_page() -> Channel | None:
    """The channel the built-in /chat/ page feeds: the first active chat channel."""
    return Channel.objects.filter(kind="chat", is_active=True).order_by("pk").first()


def chat_channel_by_widget_key(*, key: str) -> Channel | None:
    """The active chat channel whose embeddable widget has this key."""
    if not key or len(key) > 64:
        return None
    return Channel.objects.filter(kind=ChannelKind.CHAT, is_active=True, widget_key=key).first()


def channel_list_for_settings() -> list[Channel]:
    """Every channel for the channels settings page (a handful of rows)."""
    return list(Channel.objects.select_related("team").order_by("kind", "name"))


def email_channel_list() -> list[Channel]:
    """Email channels for the sending-settings page (a handful of rows)."""
    return list(
        Channel.objects.filter(kind=ChannelKind.EMAIL).select_related("team").order_by("name")
    )


def mailbox_list() -> QuerySet[Mailbox]:
    """Every mailbox with its channel and team (admins only: the API and the mailboxes page)."""
    return Mailbox.objects.select_related("channel", "channel__team").order_by(
        "channel__name", "pk"
    )


def mailbox_get(*, pk: Any) -> Mailbox:
    """One mailbox with its channel (admins only); Http404 if there is none."""
    try:
        return Mailbox.objects.select_related("channel", "channel__team").get(pk=int(pk))
    except (Mailbox.DoesNotExist, ValueError, TypeError) as exc:
        raise Http404("No such mailbox.") from exc


def channel_list() -> QuerySet[Channel]:
    """Every active channel with its team (any member of staff: where a reply can go)."""
    return Channel.objects.filter(is_active=True).select_related("team").order_by("kind", "name")


def email_channels_without_mailbox() -> QuerySet[Channel]:
    """Email channels a mailbox can still be connected to (the "Add a mailbox" form)."""
    return Channel.objects.filter(kind=ChannelKind.EMAIL, mailbox__isnull=True).order_by("name")


def channels_to_start_on() -> list[Channel]:
    """Channels an agent can write first on: email, and chat/social with a webhook URL."""
    return list(
        Channel.objects.filter(is_active=True, kind__in=["email", "chat", "social"])
        .filter(Q(kind="email") | ~Q(webhook_url=""))
        .select_related("team")
        .order_by("kind", "name")
    )
