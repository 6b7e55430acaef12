"""Channels: creating and updating them, their secrets and webhook URLs."""

from __future__ import annotations

from django.db import transaction

from supportdesk.errors import ApplicationError
from supportdesk.models import AuditEntry, User
from supportdesk.services import audit_record, team_get_or_create
from supportdesk.urlguard import check_webhook_url
from tickets.identities import normalise_email
from tickets.models import Channel, ChannelKind, new_channel_secret


@transaction.atomic
def channel_create_or_update(
    *,
    kind: str,
    name: str,
    team_name: str | None = None,
    address: str | None = None,
    actor: User | None = None,
) -> Channel:
    """Create or update an inbound channel by name; its secret is kept across updates."""
    if kind not in ChannelKind.values:
        raise ApplicationError(f"kind must be one of {', '.join(ChannelKind.values)}")
    channel = Channel.objects.select_for_update().filter(name=name).first()
    if channel is None:
        channel = Channel(name=name)
        channel.secret = new_channel_secret()
    channel.kind = kind
    if team_name:
        channel.team = team_get_or_create(name=team_name)
    if address is not None:
        channel.address = normalise_email(address) if address else ""
    created = channel.pk is None
    channel.save()
    if created:
        audit_record(
            action=AuditEntry.Action.CHANNEL_SECRET_CREATED,
            target=channel,
            actor=actor,
            team=channel.team,
            summary=f"Channel {channel.name!r} ({channel.kind}) created with a new secret",
        )
    return channel


@transaction.atomic
def channel_rotate_secret(*, channel: Channel, actor: User | None = None) -> Channel:
    """Give the channel a new secret: the old one stops working at once."""
    channel = Channel.objects.select_for_update().get(pk=channel.pk)
    channel.secret = new_channel_secret()
    channel.save(update_fields=["secret_digest", "secret_sealed", "updated_at"])
    audit_record(
        action=AuditEntry.Action.CHANNEL_SECRET_ROTATED,
        target=channel,
        actor=actor,
        team=channel.team,
        summary=f"Secret of channel {channel.name!r} rotated",
    )
    return channel


@transaction.atomic
def channel_set_webhook(*, channel: Channel, webhook_url: str) -> Channel:
    """Set (or clear with "") where replies on a chat or social channel are delivered.

    The URL's host must resolve to public addresses only, unless an admin allowed the host
    (``supportdesk.urlguard``); otherwise UnsafeURL (400) and nothing changes."""
    if webhook_url and channel.kind not in (ChannelKind.CHAT, ChannelKind.SOCIAL):
        raise ApplicationError("Only chat and social channels deliver by webhook.")
    if webhook_url and not webhook_url.startswith(("https://", "http://")):
        raise ApplicationError("The webhook URL must start with https:// or http://.")
    if webhook_url:
        check_webhook_url(webhook_url)
    channel.webhook_url = webhook_url
    channel.save(update_fields=["webhook_url", "updated_at"])
    return channel


@transaction.atomic
def channel_mail_settings_update(
    *,
    channel: Channel,
    from_name: str,
    signature: str,
    acknowledge: bool,
    actor: User,
) -> Channel:
    """An email channel's sending settings: the desk name in From, the mailbox signature and
    whether new conversations get the acknowledgement. Audited with what changed."""
    channel = Channel.objects.select_for_update().get(pk=channel.pk)
    if channel.kind != ChannelKind.EMAIL:
        raise ApplicationError("Only email channels have sending settings.")
    from_name = " ".join(from_name.replace('"', "'").split())[:100]
    signature = signature.strip()[:2000]
    changed = [
        field
        for field, value in (
            ("from_name", from_name),
            ("signature", signature),
            ("acknowledge", acknowledge),
        )
        if getattr(channel, field) != value
    ]
    if not changed:
        return channel
    channel.from_name = from_name
    channel.signature = signature
    channel.acknowledge = acknowledge
    channel.save(update_fields=[*changed, "updated_at"])
    audit_record(
        action=AuditEntry.Action.CHANNEL_MAIL_CHANGED,
        target=channel,
        actor=actor,
        team=channel.team,
        summary=f"Sending settings of {channel.name!r} changed: {', '.join(changed)}",
        details={"changed": changed, "acknowledge": acknowledge},
    )
    return channel
