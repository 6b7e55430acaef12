"""``manage.py create_channel KIND NAME [--team NAME] [--address EMAIL] [--webhook-url URL]
[--widget-origin URL ...] [--no-surveys | --surveys] [--rotate-secret]
[--imap URL [--imap-after leave|seen|move:FOLDER]] [--smtp URL]``.

``--imap imap[s]://USER:PASSWORD@HOST:PORT/FOLDER`` connects the email channel's mailbox
(``imaps`` = TLS, ``imap`` = STARTTLS; ``?security=none`` for a server on the same machine);
``--smtp smtp[s]://USER:PASSWORD@HOST:PORT`` sends its replies (``smtp`` = STARTTLS).
User names and passwords are percent-encoded in the URL (``@`` is ``%40``).
``--widget-origin`` (chat channels, repeatable) lists the sites that may embed the chat widget.

Creates or updates an inbound channel through ``channel_create_or_update`` (the secret is kept
across updates unless ``--rotate-secret``) and prints the secret alone on the last line.
"""

from __future__ import annotations

from typing import Any
from urllib.parse import parse_qs, unquote, urlsplit

from django.conf import settings
from django.core.exceptions import ValidationError
from django.core.management.base import BaseCommand, CommandError, CommandParser

from supportdesk.errors import ApplicationError
from tickets.models import Channel, ChannelKind, IngestMode, Mailbox
from tickets.services import (
    channel_create_or_update,
    channel_rotate_secret,
    channel_set_surveyed,
    channel_set_webhook,
    channel_set_widget,
    mailbox_save,
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
        parser.add_argument(
            "--imap",
            help="email channels: the mailbox to fetch, imap[s]://USER:PASSWORD@HOST:PORT/FOLDER",
        )
        parser.add_argument(
            "--imap-after",
            default=None,
            help="what to do with an imported message: leave (default), seen, move:FOLDER",
        )
        parser.add_argument(
            "--smtp", help="email channels: send replies through smtp[s]://USER:PASSWORD@HOST:PORT"
        )
        parser.add_argument(
            "--ingest",
            choices=IngestMode.values,
            default=None,
            help="sync (default): store each inbound message before answering; async: accept "
            "it with one insert, answer 202 with an id to poll, and let the ingest workers store "
            "it (provider webhooks, mailbox imports and high-volume channels)",
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
        if (options["imap"] or options["smtp"] or options["imap_after"]) and kind != "email":
            raise CommandError("--imap, --imap-after and --smtp are only for email channels.")
        if (options["smtp"] or options["imap_after"]) and not (
            options["imap"] or Mailbox.objects.filter(channel__name=name).exists()
        ):
            raise CommandError("--smtp and --imap-after need a mailbox: give --imap as well.")
        mailbox_values, credentials = _mailbox_options(options)
        if options["widget_origin"] is not None and kind != ChannelKind.CHAT:
            raise CommandError("--widget-origin is only for chat channels.")
        if options["no_surveys"] and options["surveys"]:
            raise CommandError("Give --surveys or --no-surveys, not both.")
        existed = Channel.objects.filter(name=name).exists()
        try:
            channel = channel_create_or_update(
                kind=kind,
                name=name,
                team_name=options["team"],
                address=options["address"],
                ingest_mode=options["ingest"],
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
        if mailbox_values:
            try:
                mailbox_save(channel=channel, values=mailbox_values, credentials=credentials)
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
        if channel.ingest_mode == IngestMode.ASYNC:
            address += ", asynchronous ingestion"
        mailbox = Mailbox.objects.filter(channel=channel).first()
        if mailbox is not None:
            address += f", fetching {mailbox.username}@{mailbox.imap_host}/{mailbox.folder}"
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


_SECURITY = {"tls", "starttls", "none"}


def _server_url(url: str, *, schemes: tuple[str, str], ports: tuple[int, int]) -> dict[str, Any]:
    """Host, port, security, user, password and path of an imap[s]:// or smtp[s]:// URL."""
    parts = urlsplit(url)
    if parts.scheme not in schemes:
        raise CommandError(f"The URL must start with {schemes[0]}:// or {schemes[1]}://.")
    if not parts.hostname:
        raise CommandError(f"The {schemes[0]} URL has no host.")
    try:
        port = parts.port
    except ValueError as exc:
        raise CommandError(f"The {schemes[0]} URL has an invalid port.") from exc
    query = {key: values[-1] for key, values in parse_qs(parts.query).items()}
    tls = parts.scheme == schemes[1]
    security = query.get("security", "tls" if tls else "starttls")
    if security not in _SECURITY:
        raise CommandError("security= must be tls, starttls or none.")
    return {
        "host": parts.hostname,
        "port": port or (ports[1] if tls else ports[0]),
        "security": security,
        "username": unquote(parts.username or ""),
        "password": unquote(parts.password or ""),
        "path": unquote(parts.path.lstrip("/")),
    }


def _mailbox_options(options: dict[str, Any]) -> tuple[dict[str, Any], dict[str, str]]:
    values: dict[str, Any] = {}
    credentials: dict[str, str] = {}
    if options["imap"]:
        imap = _server_url(options["imap"], schemes=("imap", "imaps"), ports=(143, 993))
        if not imap["username"] or not imap["password"]:
            raise CommandError("The IMAP URL needs USER:PASSWORD@ (OAuth2: use the admin page).")
        values.update(
            imap_host=imap["host"],
            imap_port=imap["port"],
            imap_security=imap["security"],
            username=imap["username"],
            folder=imap["path"] or "INBOX",
            auth=Mailbox.Auth.PASSWORD,
        )
        credentials["password"] = imap["password"]
    after = options["imap_after"]
    if after is not None:
        action, _, folder = after.partition(":")
        if action not in Mailbox.AfterImport.values or (action == "move") != bool(folder):
            raise CommandError("--imap-after must be leave, seen or move:FOLDER.")
        values.update(after_import=action, move_to_folder=folder)
    if options["smtp"]:
        smtp = _server_url(options["smtp"], schemes=("smtp", "smtps"), ports=(587, 465))
        values.update(
            smtp_host=smtp["host"],
            smtp_port=smtp["port"],
            smtp_security=smtp["security"],
            smtp_username=smtp["username"],
        )
        credentials["smtp_password"] = smtp["password"]
    return values, credentials
