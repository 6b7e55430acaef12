"""``manage.py create_channel KIND NAME [--team NAME] [--address EMAIL] [--webhook-url URL]
[--widget-origin URL ...] [--no-surveys | --surveys] [--rotate-secret]``.

Creates or updates an inbound channel through ``channel_create_or_update`` (the secret is kept
across updates unless ``--rotate-secret``) and prints the secret alone on the last line.
"""

from __future__ import annotations

from typing import Any

from django.conf import settings
from django.core.exceptions import ValidationError
from django.core.management.base import BaseCommand, CommandError, CommandParser

from supportdesk.errors import ApplicationError
from tickets.models import Channel, ChannelKind
from tickets.services import (
    channel_create_or_update,
    channel_rotate_secret,
    channel_set_surveyed,
    channel_set_webhook,
    channel_set_widget,
)

KINDS = ", ".join(ChannelKind.values)


class Command(BaseCommand):
    help = "Create or update an inbound channel and print its secret (X-Channel-Token) last."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("kind", help=f"one of {KINDS}")
        parser.add_argument("name", help='a unique name, e.g. "Billing inbox"')
        parser.add_argument(
            "--team", help="new conversations from this channel go to this team (created if new)"
        )
        parser.add_argument("--address", help="email channels: the mailbox address mail arrives at")
        parser.add_argument(
            "--webhook-url",
            help="chat and social channels: where agent replies are POSTed as signed webhooks "
            '("" clears it)',
        )
        parser.add_argument(
            "--widget-origin",
            action="append",
            default=None,
            help="chat channels: a site (https://host[:port]) allowed to embed the chat widget; "
            "repeat for several; replaces the list",
        )
        parser.add_argument(
            "--no-surveys",
            action="store_true",
            help="do not survey this channel's customers (surveyed by default)",
        )
        parser.add_argument(
            "--surveys",
            action="store_true",
            help="survey this channel's customers again",
        )
        parser.add_argument(
            "--rotate-secret",
            action="store_true",
            help="give an existing channel a new secret; the old one stops working at once",
        )

    def handle(self, *args: Any, **options: Any) -> None:
        kind = options["kind"].strip().lower()
        if kind not in ChannelKind.values:
            raise CommandError(f"The channel kind must be one of {KINDS}, not {options['kind']!r}.")
        name = options["name"].strip()
        if not name:
            raise CommandError("The channel needs a name.")
        if options["address"] and kind != ChannelKind.EMAIL:
            raise CommandError("--address is only for email channels.")
        if options["widget_origin"] is not None and kind != ChannelKind.CHAT:
            raise CommandError("--widget-origin is only for chat channels.")
        if options["no_surveys"] and options["surveys"]:
            raise CommandError("Give --surveys or --no-surveys, not both.")
        existed = Channel.objects.filter(name=name).exists()
        try:
            channel = channel_create_or_update(
                kind=kind, name=name, team_name=options["team"], address=options["address"]
            )
        except ApplicationError as exc:
            raise CommandError(exc.message) from exc
        except ValidationError as exc:  # an invalid --address
            raise CommandError(" ".join(exc.messages)) from exc
        if options["webhook_url"] is not None:
            try:
                channel = channel_set_webhook(channel=channel, webhook_url=options["webhook_url"])
            except ApplicationError as exc:
                raise CommandError(exc.message) from exc
        if options["widget_origin"] is not None:
            try:
                channel = channel_set_widget(channel=channel, origins=options["widget_origin"])
            except ApplicationError as exc:
                raise CommandError(exc.message) from exc
        if options["no_surveys"] or options["surveys"]:
            channel = channel_set_surveyed(channel=channel, surveyed=bool(options["surveys"]))
        if options["rotate_secret"] and existed:
            channel = channel_rotate_secret(channel=channel)
        verb = "Updated" if existed else "Created"
        team = channel.team.name if channel.team else "no team"
        address = f" at {channel.address}" if channel.address else ""
        if channel.webhook_url:
            address += f", replies POSTed to {channel.webhook_url}"
        if channel.widget_key:
            address += f", widget {settings.SITE_URL}/widget/{channel.widget_key}.js for " + (
                ", ".join(channel.widget_origins) or "no site yet"
            )
        if not channel.surveyed:
            address += ", not surveyed"
        self.stdout.write(
            f"{verb} {channel.kind} channel {channel.name!r}{address} (team: {team}). "
            "Secret (send it as X-Channel-Token):"
        )
        self.stdout.write(channel.secret)
