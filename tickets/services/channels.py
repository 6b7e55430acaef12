"""Channels: creating and updating them, their secrets and webhook URLs."""

from __future__ import annotations

import secrets
from urllib.parse import urlsplit

from django.db import transaction

from supportdesk.errors import ApplicationError
from supportdesk.models import AuditEntry, User
from supportdesk.services import audit_record, team_get_or_create
from supportdesk.urlguard import check_webhook_url
from tickets.identities import normalise_email
from tickets.models import Channel, ChannelKind, IngestMode, new_channel_secret


@transaction.atomic
def channel_create_or_update(
    *,
    kind: str,
    name: str,
    team_name: str | None = None,
    address: str | None = None,
    actor: User | None = None,
    ingest_mode: str | None = None,
) -> Channel:
    """Create or update an inbound channel by name; its secret is kept across updates.

    ``ingest_mode`` "async" switches the channel to the asynchronous ingestion mode
    (tickets.services.inbound_queue), "sync" back; None keeps it."""
    if kind not in ChannelKind.values:
        raise ApplicationError(f"kind must be one of {', '.join(ChannelKind.values)}")
    if ingest_mode is not None and ingest_mode not in IngestMode.values:
        raise ApplicationError(f"ingest mode must be one of {', '.join(IngestMode.values)}")
    channel = Channel.objects.select_for_update().filter(name=name).first()
    if channel is None:
        channel = Channel(name=name)
        channel.secret = new_channel_secret()
    before = {
        "kind": channel.kind,
        "team": channel.team.name if channel.team is not None else None,
        "address": channel.address,
        "ingest_mode": channel.ingest_mode,
    }
    channel.kind = kind
    if team_name:
        channel.team = team_get_or_create(name=team_name)
    if address is not None:
        channel.address = normalise_email(address) if address else ""
    if ingest_mode is not None:
        channel.ingest_mode = ingest_mode
    created = channel.pk is None
    channel.save()
    if not created:
        after = {
            "kind": channel.kind,
            "team": channel.team.name if channel.team is not None else None,
            "address": channel.address,
            "ingest_mode": channel.ingest_mode,
        }
        changed = [field for field in before if before[field] != after[field]]
        if changed:
            # Who switched a channel to asynchronous ingestion, or moved it to another team, is
            # kept like every other settings change.
            _audit_channel_change(
                channel,
                changed,
                actor,
                {
                    "before": {f: before[f] for f in changed},
                    "after": {f: after[f] for f in changed},
                },
            )
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


def _origin_clean(origin: str) -> str:
    """``scheme://host[:port]`` (what a browser sends as an origin), or ApplicationError."""
    parts = urlsplit(origin.strip())
    if (
        parts.scheme not in ("https", "http")
        or not parts.hostname
        or parts.path not in ("", "/")
        or parts.query
        or parts.fragment
        or parts.username
        or parts.password
        or any(c in origin for c in " ;,'\"")
    ):
        raise ApplicationError(
            f"{origin!r} is not a site origin: give scheme, host and optional port, "
            "e.g. https://www.example.com"
        )
    try:
        port = parts.port
    except ValueError:
        raise ApplicationError(f"{origin!r} has an invalid port.") from None
    return f"{parts.scheme}://{parts.hostname}" + (f":{port}" if port else "")


def _widget_origins_clean(channel: Channel, origins: list[str]) -> list[str]:
    if channel.kind != ChannelKind.CHAT:
        raise ApplicationError("Only chat channels have an embeddable widget.")
    if len(origins) > MAX_WIDGET_ORIGINS:
        raise ApplicationError(f"At most {MAX_WIDGET_ORIGINS} sites may embed one widget.")
    return list(dict.fromkeys(_origin_clean(origin) for origin in origins))


# A widget's sites are listed in one Content-Security-Policy header: keep it short.
MAX_WIDGET_ORIGINS = 20


def _audit_channel_change(
    channel: Channel, changed: list[str], actor: User | None, details: dict[str, object]
) -> None:
    audit_record(
        action=AuditEntry.Action.CHANNEL_CHANGED,
        target=channel,
        actor=actor,
        team=channel.team,
        summary=f"Settings of channel {channel.name!r} changed: {', '.join(changed)}",
        details={"changed": changed, **details},
    )


@transaction.atomic
def channel_set_widget(
    *, channel: Channel, origins: list[str], actor: User | None = None
) -> Channel:
    """Set the sites (origins) that may embed a chat channel's widget; gives the channel its
    widget key on first use. Only those origins may frame ``/widget/<key>/`` (every other page
    stays DENY). Bad origins change nothing. Audited when something changed."""
    cleaned = _widget_origins_clean(channel, origins)
    channel = Channel.objects.select_for_update().get(pk=channel.pk)
    changed = []
    if channel.widget_origins != cleaned:
        channel.widget_origins = cleaned
        changed.append("widget_origins")
    if not channel.widget_key:
        channel.widget_key = secrets.token_urlsafe(18)
        changed.append("widget_key")
    if changed:
        channel.save(update_fields=[*changed, "updated_at"])
        _audit_channel_change(channel, changed, actor, {"widget_origins": cleaned})
    return channel


@transaction.atomic
def channel_set_surveyed(*, channel: Channel, surveyed: bool, actor: User | None = None) -> Channel:
    """Turn surveys of a channel's solves on or off (on by default). Audited when changed."""
    channel = Channel.objects.select_for_update().get(pk=channel.pk)
    if channel.surveyed != surveyed:
        channel.surveyed = surveyed
        channel.save(update_fields=["surveyed", "updated_at"])
        _audit_channel_change(channel, ["surveyed"], actor, {"surveyed": surveyed})
    return channel


@transaction.atomic
def channel_settings_update(
    *,
    channel: Channel,
    surveyed: bool,
    actor: User,
    webhook_url: str | None = None,
    origins: list[str] | None = None,
) -> Channel:
    """The Channels admin page's save of one channel: its survey switch, where its replies are
    delivered (chat and social: ``channel_set_webhook``, with its URL checks) and the sites that
    may embed its chat widget (``channel_set_widget``). All or nothing: a bad webhook URL or
    site changes nothing. Each change is audited."""
    channel = Channel.objects.select_for_update().get(pk=channel.pk)
    if webhook_url is not None and webhook_url != channel.webhook_url:
        previous = channel.webhook_url
        channel = channel_set_webhook(channel=channel, webhook_url=webhook_url)
        _audit_channel_change(
            channel,
            ["webhook_url"],
            actor,
            {"webhook_url": channel.webhook_url, "previous": previous},
        )
    if origins is not None:
        channel = channel_set_widget(channel=channel, origins=origins, actor=actor)
    return channel_set_surveyed(channel=channel, surveyed=surveyed, actor=actor)
