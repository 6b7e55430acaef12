"""Mailboxes: connecting an email channel's IMAP/SMTP account, polling it exactly once, its health.

Exactly once, the way it holds:

- A poll claims its mailbox with a conditional UPDATE on ``poll_lease_until`` (renewed after every
  batch), so two workers never poll one mailbox at once; a worker killed mid-batch lets the lease
  run out (``MAILBOX_POLL_LEASE_SECONDS``) and the next poll takes over.
- Each message is stored together with its ``MailboxImport`` row (in transactions of up to
  ``COMMIT_EVERY`` messages), keyed by ``(mailbox, UIDVALIDITY, UID)`` under a unique constraint:
  killed before the commit, neither exists and the messages are fetched again; after it, the UIDs
  are known and never fetched again.
- Ingestion itself is idempotent on the Message-ID (``(channel, external_id)``), so a UIDVALIDITY
  change (every UID renumbered) re-reads the folder and stores nothing twice.
- ``last_uid`` (the high-water mark) only moves after a batch is stored and its after-import
  action (seen / move) is done, so a crash between the two repeats the action, never skips it.
"""

from __future__ import annotations

import logging
import secrets
import time
from dataclasses import dataclass
from datetime import date, timedelta
from typing import Any

from django.conf import settings
from django.core.mail.backends.base import BaseEmailBackend
from django.db import DatabaseError, IntegrityError, transaction
from django.db.models import Q
from django.utils import timezone

from supportdesk.errors import ApplicationError, Conflict
from supportdesk.models import AuditEntry, User
from supportdesk.outbox import outbox_batch
from supportdesk.sealing import UnsealError, seal, unseal
from supportdesk.services import audit_record, notification_create
from tickets.mailbox_transport import (
    OAUTH_PRESETS,
    FetchedMessage,
    ImapSession,
    ImapSettings,
    MailboxSmtpBackend,
    MailboxTransportError,
    TokenAnswer,
    oauth_token_request,
)
from tickets.models import (
    Channel,
    ChannelKind,
    Event,
    IngestMode,
    Mailbox,
    MailboxImport,
    QuarantinedMessage,
)
from tickets.services.channels import channel_create_or_update
from tickets.services.events import event_record
from tickets.services.inbound_email import desk_own_addresses, inbound_email_raw
from tickets.services.inbound_queue import Accepted, inbound_queue_accept_email
from tickets.services.ingest import InboundResult, quarantine_store

logger = logging.getLogger(__name__)

# Messages stored per transaction: one commit (and one outbox relay) for several messages.
COMMIT_EVERY = 20

# Refresh an OAuth2 access token this long before the provider says it expires.
ACCESS_TOKEN_MARGIN = timedelta(seconds=60)

# What the admin may set on a mailbox; credentials are separate (write-only).
MAILBOX_FIELDS = (
    "imap_host",
    "imap_port",
    "imap_security",
    "username",
    "folder",
    "after_import",
    "move_to_folder",
    "auth",
    "oauth_provider",
    "oauth_client_id",
    "oauth_authorize_url",
    "oauth_token_url",
    "oauth_scope",
    "smtp_host",
    "smtp_port",
    "smtp_security",
    "smtp_username",
    "is_active",
)
CREDENTIALS = {
    "password": "password_sealed",
    "oauth_client_secret": "oauth_client_secret_sealed",
    "smtp_password": "smtp_password_sealed",
}


@transaction.atomic
def mailbox_save(
    *,
    channel: Channel,
    values: dict[str, Any],
    credentials: dict[str, str] | None = None,
    actor: User | None = None,
) -> Mailbox:
    """Connect an IMAP/SMTP account to an email channel, or change it.

    ``values`` holds fields of ``MAILBOX_FIELDS`` (others are refused); ``credentials`` holds the
    write-only ones (``password``, ``oauth_client_secret``, ``smtp_password``): a blank one keeps
    what is stored. Credentials are sealed; the audit entry names which were set, never a value.
    Moving the account to another server or folder starts its import history afresh.
    Locks the mailbox row.
    """
    if channel.kind != ChannelKind.EMAIL:
        raise ApplicationError("Only email channels have a mailbox.")
    unknown = set(values) - set(MAILBOX_FIELDS)
    if unknown:
        raise ApplicationError(f"Unknown mailbox fields: {', '.join(sorted(unknown))}.")
    mailbox = Mailbox.objects.select_for_update().filter(channel=channel).first()
    created = mailbox is None
    if mailbox is None:
        mailbox = Mailbox(channel=channel)
    changed = [name for name, value in values.items() if getattr(mailbox, name) != value]
    where_before = (mailbox.imap_host, mailbox.username, mailbox.folder)
    for name, value in values.items():
        setattr(mailbox, name, value)
    _validate(mailbox)
    if not created and (mailbox.imap_host, mailbox.username, mailbox.folder) != where_before:
        # Another account or folder: its UIDs mean nothing here (Message-IDs still dedupe).
        mailbox.uidvalidity = None
        mailbox.last_uid = 0
        mailbox.import_since = None
    set_credentials = []
    for name, value in (credentials or {}).items():
        if name not in CREDENTIALS:
            raise ApplicationError(f"Unknown credential {name!r}.")
        if value:
            setattr(mailbox, CREDENTIALS[name], seal(value))
            set_credentials.append(name)
    if mailbox.auth == Mailbox.Auth.PASSWORD and not mailbox.password_sealed:
        raise ApplicationError("Enter the mailbox password (or app password).")
    mailbox.save()
    if created:
        audit_record(
            action=AuditEntry.Action.MAILBOX_CONNECTED,
            target=mailbox,
            actor=actor,
            team=channel.team,
            summary=f"Mailbox {mailbox.username}@{mailbox.imap_host} connected to {channel.name!r}",
        )
    elif changed:
        audit_record(
            action=AuditEntry.Action.MAILBOX_CHANGED,
            target=mailbox,
            actor=actor,
            team=channel.team,
            summary=f"Mailbox of {channel.name!r} changed: {', '.join(changed)}",
            details={"fields": changed},
        )
    if set_credentials:
        audit_record(
            action=AuditEntry.Action.MAILBOX_CREDENTIALS_SET,
            target=mailbox,
            actor=actor,
            team=channel.team,
            summary=f"Mailbox of {channel.name!r}: {', '.join(set_credentials)} set",
            details={"credentials": set_credentials},
        )
    return mailbox


@transaction.atomic
def mailbox_create(
    *,
    channel_name: str,
    team_name: str | None,
    address: str,
    values: dict[str, Any],
    credentials: dict[str, str] | None = None,
    actor: User | None = None,
) -> Mailbox:
    """Connect a mailbox to the email channel ``channel_name``, creating the channel if new.

    All or nothing: a mailbox the service refuses leaves no new channel behind.
    """
    existing = Channel.objects.filter(name=channel_name).first()
    if existing is not None and existing.kind != ChannelKind.EMAIL:
        raise ApplicationError(f"The channel {channel_name!r} is a {existing.kind} channel.")
    if existing is not None and Mailbox.objects.filter(channel=existing).exists():
        raise ApplicationError(f"The channel {channel_name!r} already has a mailbox: edit it.")
    channel = channel_create_or_update(
        kind=ChannelKind.EMAIL,
        name=channel_name,
        team_name=team_name,
        address=address,
        actor=actor,
    )
    return mailbox_save(channel=channel, values=values, credentials=credentials, actor=actor)


def _validate(mailbox: Mailbox) -> None:
    preset = OAUTH_PRESETS.get(mailbox.oauth_provider) if mailbox.auth == "oauth2" else None
    if preset is not None and not mailbox.imap_host.strip():
        mailbox.imap_host, mailbox.imap_port, mailbox.imap_security = preset.imap_host, 993, "tls"
    if preset is not None and not mailbox.smtp_host.strip():
        mailbox.smtp_host, mailbox.smtp_port, mailbox.smtp_security = (
            preset.smtp_host,
            587,
            "starttls",
        )
    if not mailbox.imap_host.strip():
        raise ApplicationError("Enter the IMAP server's host name.")
    if not mailbox.username.strip():
        raise ApplicationError("Enter the mailbox user name.")
    if not 0 < mailbox.imap_port < 65536 or not 0 < mailbox.smtp_port < 65536:
        raise ApplicationError("A port is a number from 1 to 65535.")
    for name, enum in (
        ("imap_security", Mailbox.Security),
        ("smtp_security", Mailbox.Security),
        ("after_import", Mailbox.AfterImport),
        ("auth", Mailbox.Auth),
    ):
        if getattr(mailbox, name) not in enum.values:
            raise ApplicationError(f"{name} must be one of {', '.join(enum.values)}.")
    if not mailbox.folder.strip():
        mailbox.folder = "INBOX"
    if mailbox.after_import == Mailbox.AfterImport.MOVE:
        if not mailbox.move_to_folder.strip():
            raise ApplicationError("Name the folder imported messages are moved to.")
        if mailbox.move_to_folder == mailbox.folder:
            raise ApplicationError(
                "Imported messages must move to another folder than the one read."
            )
    else:
        mailbox.move_to_folder = ""
    if mailbox.auth == Mailbox.Auth.OAUTH2:
        if mailbox.oauth_provider not in Mailbox.OAuthProvider.values:
            raise ApplicationError("Choose the OAuth2 provider: google, microsoft or custom.")
        if not mailbox.oauth_client_id:
            raise ApplicationError("Enter the OAuth2 client id of your app registration.")
        if mailbox.oauth_provider == Mailbox.OAuthProvider.CUSTOM and not (
            mailbox.oauth_authorize_url and mailbox.oauth_token_url
        ):
            raise ApplicationError("A custom OAuth2 provider needs its authorize and token URLs.")
    else:
        mailbox.oauth_provider = ""


# --- OAuth2 ---------------------------------------------------------------------------------------


def mailbox_oauth_endpoints(mailbox: Mailbox) -> tuple[str, str, str, tuple[tuple[str, str], ...]]:
    """(authorize URL, token URL, scope, extra authorize parameters) of the mailbox's provider."""
    preset = OAUTH_PRESETS.get(mailbox.oauth_provider)
    if preset is None:
        return (mailbox.oauth_authorize_url, mailbox.oauth_token_url, mailbox.oauth_scope, ())
    return (
        mailbox.oauth_authorize_url or preset.authorize_url,
        mailbox.oauth_token_url or preset.token_url,
        mailbox.oauth_scope or preset.scope,
        preset.authorize_params,
    )


def _client_fields(mailbox: Mailbox) -> dict[str, str]:
    fields = {"client_id": mailbox.oauth_client_id}
    if mailbox.oauth_client_secret_sealed:
        fields["client_secret"] = unseal(mailbox.oauth_client_secret_sealed)
    return fields


@transaction.atomic
def mailbox_oauth_complete(
    *, mailbox: Mailbox, code: str, redirect_uri: str, actor: User | None
) -> Mailbox:
    """Exchange an authorization code for tokens (the OAuth2 callback) and store them sealed."""
    _, token_url, _, _ = mailbox_oauth_endpoints(mailbox)
    try:
        answer = oauth_token_request(
            token_url=token_url,
            fields={
                "grant_type": "authorization_code",
                "code": code,
                "redirect_uri": redirect_uri,
                **_client_fields(mailbox),
            },
        )
    except MailboxTransportError as exc:
        raise ApplicationError(str(exc)) from exc
    if not answer.refresh_token:
        raise ApplicationError(
            "The provider gave no refresh token: allow offline access and connect again."
        )
    mailbox = Mailbox.objects.select_for_update().get(pk=mailbox.pk)
    _store_tokens(mailbox, answer)
    audit_record(
        action=AuditEntry.Action.MAILBOX_CREDENTIALS_SET,
        target=mailbox,
        actor=actor,
        team=mailbox.channel.team,
        summary=f"Mailbox of {mailbox.channel.name!r}: OAuth2 refresh token stored",
        details={"credentials": ["oauth_refresh_token"]},
    )
    return mailbox


def _store_tokens(mailbox: Mailbox, answer: TokenAnswer) -> None:
    mailbox.oauth_access_token_sealed = seal(answer.access_token)
    mailbox.oauth_access_token_expires_at = timezone.now() + timedelta(seconds=answer.expires_in)
    fields = ["oauth_access_token_sealed", "oauth_access_token_expires_at", "updated_at"]
    if answer.refresh_token:
        mailbox.oauth_refresh_token_sealed = seal(answer.refresh_token)
        fields.append("oauth_refresh_token_sealed")
    mailbox.save(update_fields=fields)


def mailbox_access_token(*, mailbox: Mailbox) -> str:
    """A valid OAuth2 access token: the stored one, or a new one from the refresh token.

    Refreshing is a state change (the new token and, if the provider rotates it, the new refresh
    token are stored); it locks the mailbox row so two pollers do not both spend the refresh token.
    """
    now = timezone.now()
    expires = mailbox.oauth_access_token_expires_at
    if mailbox.oauth_access_token_sealed and expires and expires - ACCESS_TOKEN_MARGIN > now:
        return unseal(mailbox.oauth_access_token_sealed)
    if not mailbox.oauth_refresh_token_sealed:
        raise MailboxTransportError("OAuth2 is not connected yet: use “Connect” on the admin page.")
    with transaction.atomic():
        locked = Mailbox.objects.select_for_update().get(pk=mailbox.pk)
        expires = locked.oauth_access_token_expires_at
        if locked.oauth_access_token_sealed and expires and expires - ACCESS_TOKEN_MARGIN > now:
            token = unseal(locked.oauth_access_token_sealed)
        else:
            _, token_url, _, _ = mailbox_oauth_endpoints(locked)
            answer = oauth_token_request(
                token_url=token_url,
                fields={
                    "grant_type": "refresh_token",
                    "refresh_token": unseal(locked.oauth_refresh_token_sealed),
                    **_client_fields(locked),
                },
            )
            _store_tokens(locked, answer)
            token = answer.access_token
    mailbox.refresh_from_db()
    return token


# --- The connection ------------------------------------------------------------------------------


def _imap_settings(mailbox: Mailbox) -> ImapSettings:
    common: dict[str, Any] = {
        "host": mailbox.imap_host,
        "port": mailbox.imap_port,
        "security": mailbox.imap_security,
        "username": mailbox.username,
        "folder": mailbox.folder,
        "timeout": settings.MAILBOX_TIMEOUT_SECONDS,
    }
    if mailbox.auth == Mailbox.Auth.OAUTH2:
        return ImapSettings(**common, access_token=mailbox_access_token(mailbox=mailbox))
    if not mailbox.password_sealed:
        raise MailboxTransportError("No password is stored for this mailbox.")
    return ImapSettings(**common, password=unseal(mailbox.password_sealed))


def _imap_settings_or_error(mailbox: Mailbox) -> ImapSettings:
    try:
        return _imap_settings(mailbox)
    except UnsealError as exc:
        raise MailboxTransportError(
            "The stored credentials cannot be opened with SECRET_KEY (or SECRET_KEY_FALLBACKS): "
            "enter them again on the mailbox page."
        ) from exc


def mailbox_test_connection(*, mailbox: Mailbox) -> tuple[bool, str]:
    """Log in, open the folder and count what a poll would import; (ok, what to tell the admin).

    Changes nothing but, for OAuth2, the stored access token when it had to be refreshed.
    """
    try:
        with ImapSession(_imap_settings_or_error(mailbox)) as session:
            uidvalidity = session.select(mailbox.folder)
            if mailbox.uidvalidity == uidvalidity:
                waiting = len(session.uids_after(mailbox.last_uid, since=mailbox.import_since))
            else:
                waiting = len(session.uids_after(0, since=_import_since()))
            if mailbox.after_import == Mailbox.AfterImport.MOVE and not session.folder_exists(
                mailbox.move_to_folder
            ):
                note = (
                    f" The folder {mailbox.move_to_folder!r} will be created on the first import."
                )
            else:
                note = ""
    except MailboxTransportError as exc:
        return False, str(exc)
    return True, f"Connected to {mailbox.folder!r}: {waiting} message(s) to import.{note}"


def mailbox_smtp_connection(*, channel_id: int | None) -> BaseEmailBackend | None:
    """The connection replies from the channel go out through: its mailbox's SMTP account
    (XOAUTH2 for an OAuth2 mailbox), or None for the default ``EMAIL_URL`` connection."""
    if channel_id is None:
        return None
    mailbox = (
        Mailbox.objects.filter(channel_id=channel_id, is_active=True).exclude(smtp_host="").first()
    )
    if mailbox is None:
        return None
    username = mailbox.smtp_username or mailbox.username
    kwargs: dict[str, Any] = {
        "host": mailbox.smtp_host,
        "port": mailbox.smtp_port,
        "username": username,
        "use_ssl": mailbox.smtp_security == Mailbox.Security.TLS,
        "use_tls": mailbox.smtp_security == Mailbox.Security.STARTTLS,
        "timeout": settings.MAILBOX_TIMEOUT_SECONDS,
        "fail_silently": False,
    }
    if mailbox.auth == Mailbox.Auth.OAUTH2:
        return MailboxSmtpBackend(access_token=mailbox_access_token(mailbox=mailbox), **kwargs)
    sealed = mailbox.smtp_password_sealed or mailbox.password_sealed
    return MailboxSmtpBackend(password=unseal(sealed) if sealed else "", **kwargs)


# --- Polling --------------------------------------------------------------------------------------


@dataclass
class PollResult:
    imported: int = 0
    skipped: int = 0
    quarantined: int = 0
    busy: bool = False  # another poll holds this mailbox
    more: bool = False  # stopped at max_seconds with messages left for the next poll
    error: str = ""

    def summary(self) -> str:
        return f"imported {self.imported}, skipped {self.skipped}, quarantined {self.quarantined}"


class _LeaseLost(Exception):
    pass


class _StoreFailed(Exception):
    pass


def _import_since() -> date:
    return (timezone.now() - timedelta(days=settings.MAILBOX_IMPORT_DAYS)).date()


def _claim(mailbox_id: int) -> str | None:
    now = timezone.now()
    token = secrets.token_hex(16)
    claimed = (
        Mailbox.objects.filter(pk=mailbox_id, is_active=True)
        .filter(Q(poll_lease_until__isnull=True) | Q(poll_lease_until__lt=now))
        .update(
            poll_lease_until=now + timedelta(seconds=settings.MAILBOX_POLL_LEASE_SECONDS),
            poll_lease_token=token,
        )
    )
    return token if claimed else None


def _renew(mailbox_id: int, token: str, **fields: Any) -> None:
    lease = timezone.now() + timedelta(seconds=settings.MAILBOX_POLL_LEASE_SECONDS)
    if not Mailbox.objects.filter(pk=mailbox_id, poll_lease_token=token).update(
        poll_lease_until=lease, **fields
    ):
        raise _LeaseLost()


def mailbox_poll(*, mailbox_id: int, max_seconds: float | None = None) -> PollResult:
    """Poll one mailbox once: import what is new, apply the after-import action, record health.

    ``max_seconds`` (the beat task passes MAILBOX_POLL_MAX_SECONDS) stops a long first import
    after the batch that passes it, well inside the task's time limit; the next poll goes on from
    there. Returns at once with ``busy`` when another poll holds the mailbox. A connection or server
    failure is recorded on the mailbox (and alerts the admins once it lasts
    ``MAILBOX_ALERT_MINUTES``), not raised: beat simply polls again.
    """
    token = _claim(mailbox_id)
    if token is None:
        return PollResult(busy=True)
    result = PollResult()
    try:
        mailbox = Mailbox.objects.select_related("channel", "channel__team").get(pk=mailbox_id)
        _poll(mailbox, token, result, max_seconds=max_seconds)
    except _LeaseLost:
        logger.warning("mailbox %s: another poll took over the lease", mailbox_id)
        return result
    except (MailboxTransportError, _StoreFailed) as exc:
        result.error = str(exc)[:2000]
        _poll_failed(mailbox_id, result.error)
    else:
        _poll_succeeded(mailbox_id)
    finally:
        Mailbox.objects.filter(pk=mailbox_id, poll_lease_token=token).update(
            poll_lease_until=None, poll_lease_token=""
        )
    logger.info(
        "mailbox %s polled: %s%s",
        mailbox_id,
        result.summary(),
        f" ({result.error})" if result.error else "",
    )
    return result


def _poll(mailbox: Mailbox, token: str, result: PollResult, *, max_seconds: float | None) -> None:
    deadline = time.monotonic() + max_seconds if max_seconds else None
    with ImapSession(_imap_settings_or_error(mailbox)) as session:
        uidvalidity = session.select(mailbox.folder)
        if mailbox.uidvalidity != uidvalidity:
            # First import, or the server renumbered the folder: read it again from the start of
            # the import window; Message-IDs keep what was already stored from being stored twice.
            if mailbox.uidvalidity is not None:
                logger.warning(
                    "mailbox %s: UIDVALIDITY changed %s -> %s, rescanning",
                    mailbox.pk,
                    mailbox.uidvalidity,
                    uidvalidity,
                )
            mailbox.uidvalidity = uidvalidity
            mailbox.last_uid = 0
            mailbox.import_since = _import_since()
            _renew(
                mailbox.pk,
                token,
                uidvalidity=uidvalidity,
                last_uid=0,
                import_since=mailbox.import_since,
            )
        found = session.uids_after(mailbox.last_uid, since=mailbox.import_since)
        _renew(mailbox.pk, token, progress_done=0, progress_total=len(found))
        done = 0
        batch_size = settings.MAILBOX_BATCH_SIZE
        for start in range(0, len(found), batch_size):
            batch = found[start : start + batch_size]
            known = set(
                MailboxImport.objects.filter(
                    mailbox=mailbox, uidvalidity=uidvalidity, uid__in=batch
                ).values_list("uid", flat=True)
            )
            result.skipped += len(known)
            wanted = [uid for uid in batch if uid not in known]
            group: list[FetchedMessage] = []
            for fetched in session.fetch(wanted):
                group.append(fetched)
                if len(group) == COMMIT_EVERY:
                    _import_group(mailbox, uidvalidity, group, result)
                    group = []
            _import_group(mailbox, uidvalidity, group, result)
            session.after_import(batch, action=mailbox.after_import, folder=mailbox.move_to_folder)
            done += len(batch)
            mailbox.last_uid = batch[-1]
            _renew(mailbox.pk, token, last_uid=batch[-1], progress_done=done)
            if deadline is not None and time.monotonic() > deadline and done < len(found):
                result.more = True
                return


def _import_group(
    mailbox: Mailbox, uidvalidity: int, group: list[FetchedMessage], result: PollResult
) -> None:
    """Store a few messages in one transaction (one commit and one outbox relay for all) with
    their import rows in one INSERT; counted only once committed.

    Each message's ingestion runs in its own savepoint (``ingest``), so a message that fails is
    rolled back alone and quarantined. When the import rows' INSERT meets a UID another poll
    stored meanwhile (the lease makes it rare), the whole group rolls back and is stored again
    one message at a time, each with its import row in a savepoint of its own."""
    if not group:
        return
    own = desk_own_addresses()  # once for the group, not once per message
    try:
        with transaction.atomic(), outbox_batch():
            rows = [_import_one(mailbox, uidvalidity, f.uid, f.raw, own) for f in group]
            MailboxImport.objects.bulk_create(rows)
    except IntegrityError:
        with transaction.atomic(), outbox_batch():
            rows = [_import_one_alone(mailbox, uidvalidity, f.uid, f.raw, own) for f in group]
    for row in rows:
        if row.outcome == MailboxImport.Outcome.IMPORTED:
            result.imported += 1
        elif row.outcome == MailboxImport.Outcome.SKIPPED:
            result.skipped += 1
        else:
            result.quarantined += 1


def _import_one_alone(
    mailbox: Mailbox, uidvalidity: int, uid: int, raw: bytes, own_addresses: list[str]
) -> MailboxImport:
    """``_import_one`` and its import row in a savepoint: a UID another poll stored first
    leaves nothing of ours and counts as skipped."""
    try:
        with transaction.atomic():
            row = _import_one(mailbox, uidvalidity, uid, raw, own_addresses)
            row.save(force_insert=True)
    except IntegrityError:
        return MailboxImport(
            mailbox=mailbox, uidvalidity=uidvalidity, uid=uid, outcome=MailboxImport.Outcome.SKIPPED
        )
    return row


def _import_one(
    mailbox: Mailbox, uidvalidity: int, uid: int, raw: bytes, own_addresses: list[str]
) -> MailboxImport:
    """Store one message (or accept it, on an asynchronous channel); its import row, not
    inserted yet. Ingestion rolls its own savepoint back on any error, so what fails here
    has written nothing and is quarantined."""
    channel = mailbox.channel
    stored: InboundResult | QuarantinedMessage | Accepted
    try:
        if channel.ingest_mode == IngestMode.ASYNC:
            # Accepted with the import row; the ingest workers store the message.
            stored = inbound_queue_accept_email(channel=channel, raw=raw, source="imap")
        else:
            stored = inbound_email_raw(
                channel=channel, raw=raw, source="imap", own_addresses=own_addresses
            )
    except (Conflict, DatabaseError) as exc:
        # Transient: the group rolls back and the next poll fetches it again. Not an
        # IntegrityError any more, so it cannot pass for "another poll stored this UID".
        raise _StoreFailed(f"Storing UID {uid} failed, retried next poll: {exc}") from exc
    except ApplicationError as exc:  # e.g. an attachment over the size limit
        stored = quarantine_store(channel=channel, source="imap", raw=raw, error=exc.message)
    except Exception as exc:
        # A message the parser cannot handle must not stop the mailbox: keep it raw.
        logger.exception("mailbox %s: UID %s could not be ingested", mailbox.pk, uid)
        stored = quarantine_store(
            channel=channel,
            source="imap",
            raw=raw,
            error=f"{exc.__class__.__name__}: {exc}"[:2000],
        )
    message_id, quarantined = None, None
    if isinstance(stored, QuarantinedMessage):
        outcome, quarantined = MailboxImport.Outcome.QUARANTINED, stored
    else:
        outcome = (
            MailboxImport.Outcome.IMPORTED if stored.created else MailboxImport.Outcome.SKIPPED
        )
        if not isinstance(stored, Accepted):
            message_id = stored.message_id
    return MailboxImport(
        mailbox=mailbox,
        uidvalidity=uidvalidity,
        uid=uid,
        outcome=outcome,
        message_id=message_id,
        quarantined=quarantined,
    )


# --- Health ---------------------------------------------------------------------------------------


def _admins() -> list[User]:
    return list(User.objects.filter(role=User.Role.ADMIN, is_active=True).order_by("pk"))


@transaction.atomic
def _poll_failed(mailbox_id: int, error: str) -> None:
    """Record a failed poll; once it has failed for MAILBOX_ALERT_MINUTES, tell the admins once."""
    mailbox = Mailbox.objects.select_for_update().select_related("channel").get(pk=mailbox_id)
    now = timezone.now()
    mailbox.last_poll_at = now
    mailbox.last_error = error[:2000]
    mailbox.consecutive_failures += 1
    mailbox.failing_since = mailbox.failing_since or now
    fields = ["last_poll_at", "last_error", "consecutive_failures", "failing_since"]
    alert_after = timedelta(minutes=settings.MAILBOX_ALERT_MINUTES)
    if not mailbox.alerted and now - mailbox.failing_since >= alert_after:
        mailbox.alerted = True
        fields.append("alerted")
        minutes = int((now - mailbox.failing_since).total_seconds() // 60)
        event_record(
            kind=Event.Kind.MAILBOX_FAILING,
            team=mailbox.channel.team,
            channel_kind=ChannelKind.EMAIL,
            data={"mailbox": mailbox.pk, "channel": mailbox.channel_id, "error": error[:500]},
        )
        for admin in _admins():
            notification_create(
                recipient=admin,
                kind="mailbox.failing",
                title=f"Mailbox {mailbox.channel.name!r} has failed for {minutes} minutes",
                body=(
                    f"No mail has been fetched from {mailbox.username} since "
                    f"{(mailbox.last_success_at or mailbox.failing_since):%Y-%m-%d %H:%M} UTC "
                    f"({mailbox.consecutive_failures} failed polls). Last error: {error[:500]}"
                ),
                url="/mailboxes/",
                email=True,
            )
    mailbox.save(update_fields=fields)


@transaction.atomic
def _poll_succeeded(mailbox_id: int) -> None:
    """Record a good poll; if the admins were told it was failing, tell them it recovered."""
    mailbox = Mailbox.objects.select_for_update().select_related("channel").get(pk=mailbox_id)
    now = timezone.now()
    if mailbox.alerted:
        down = now - (mailbox.failing_since or now)
        event_record(
            kind=Event.Kind.MAILBOX_RECOVERED,
            team=mailbox.channel.team,
            channel_kind=ChannelKind.EMAIL,
            data={
                "mailbox": mailbox.pk,
                "channel": mailbox.channel_id,
                "failed_polls": mailbox.consecutive_failures,
            },
        )
        for admin in _admins():
            notification_create(
                recipient=admin,
                kind="mailbox.recovered",
                title=f"Mailbox {mailbox.channel.name!r} is fetching mail again",
                body=(
                    f"It failed for {int(down.total_seconds() // 60)} minutes "
                    f"({mailbox.consecutive_failures} polls); mail that arrived meanwhile is "
                    "being imported."
                ),
                url="/mailboxes/",
                email=True,
            )
    mailbox.last_poll_at = now
    mailbox.last_success_at = now
    mailbox.last_error = ""
    mailbox.consecutive_failures = 0
    mailbox.failing_since = None
    mailbox.alerted = False
    mailbox.save(
        update_fields=[
            "last_poll_at",
            "last_success_at",
            "last_error",
            "consecutive_failures",
            "failing_since",
            "alerted",
        ]
    )


def mailbox_poll_by_name(*, name: str | None) -> list[tuple[Mailbox, PollResult]]:
    """Poll the mailbox of the channel called ``name`` (every active mailbox when None), once."""
    mailboxes = Mailbox.objects.select_related("channel").filter(is_active=True)
    if name is not None:
        mailboxes = Mailbox.objects.select_related("channel").filter(channel__name=name)
    return [(mailbox, mailbox_poll(mailbox_id=mailbox.pk)) for mailbox in mailboxes]


def mailboxes_poll_due() -> list[int]:
    """The active mailboxes no poll holds now: beat queues one poll task for each."""
    now = timezone.now()
    return list(
        Mailbox.objects.filter(is_active=True, channel__is_active=True)
        .filter(Q(poll_lease_until__isnull=True) | Q(poll_lease_until__lt=now))
        .order_by("pk")
        .values_list("pk", flat=True)
    )
