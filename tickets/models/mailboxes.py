"""Mailboxes: an email channel's own IMAP (fetching) and SMTP (sending) account, and the
messages each poll took in."""

from __future__ import annotations

from django.db import models
from django.db.models import Q
from django.utils import timezone

from supportdesk.models import TimeStampedModel, choices_check
from tickets.models import Channel, Message, QuarantinedMessage


class MailboxSecurity(models.TextChoices):
    TLS = "tls", "TLS (imaps, port 993)"
    STARTTLS = "starttls", "STARTTLS (port 143)"
    # Only for a server on the same machine or a test server: the password crosses in clear.
    PLAIN = "none", "None (local servers only)"


class MailboxAfterImport(models.TextChoices):
    LEAVE = "leave", "Leave it as it is"
    SEEN = "seen", "Mark it seen"
    MOVE = "move", "Move it to a folder"


class MailboxAuth(models.TextChoices):
    PASSWORD = "password", "Password or app password"
    OAUTH2 = "oauth2", "OAuth2 (XOAUTH2)"


class MailboxOAuthProvider(models.TextChoices):
    GOOGLE = "google", "Google Workspace / Gmail"
    MICROSOFT = "microsoft", "Microsoft 365 / Outlook"
    CUSTOM = "custom", "Other (custom endpoints)"


class Mailbox(TimeStampedModel):
    """The IMAP account an email channel fetches from, and the SMTP account it sends through.

    Credentials (password, OAuth2 client secret, refresh and access tokens) are held only sealed
    (supportdesk/sealing.py): set them through the services, read them through ``unseal`` in the
    transport. Nothing that renders a mailbox (pages, API, audit log) reads the sealed fields.
    """

    Security = MailboxSecurity
    AfterImport = MailboxAfterImport
    Auth = MailboxAuth
    OAuthProvider = MailboxOAuthProvider

    channel = models.OneToOneField(Channel, on_delete=models.CASCADE, related_name="mailbox")
    is_active = models.BooleanField(default=True)
    # IMAP.
    imap_host = models.CharField(max_length=255)
    imap_port = models.PositiveIntegerField(default=993)
    imap_security = models.CharField(
        max_length=10, choices=MailboxSecurity.choices, default=MailboxSecurity.TLS
    )
    username = models.CharField(max_length=320)
    folder = models.CharField(max_length=255, default="INBOX")
    after_import = models.CharField(
        max_length=10, choices=MailboxAfterImport.choices, default=MailboxAfterImport.LEAVE
    )
    move_to_folder = models.CharField(max_length=255, blank=True)
    # Authentication.
    auth = models.CharField(
        max_length=10, choices=MailboxAuth.choices, default=MailboxAuth.PASSWORD
    )
    password_sealed = models.TextField(blank=True, editable=False)
    oauth_provider = models.CharField(
        max_length=10, choices=MailboxOAuthProvider.choices, blank=True
    )
    oauth_client_id = models.CharField(max_length=255, blank=True)
    oauth_client_secret_sealed = models.TextField(blank=True, editable=False)
    # Custom provider only; Google and Microsoft use their presets (tickets/mailbox_transport.py).
    oauth_authorize_url = models.URLField(max_length=500, blank=True)
    oauth_token_url = models.URLField(max_length=500, blank=True)
    oauth_scope = models.CharField(max_length=500, blank=True)
    oauth_refresh_token_sealed = models.TextField(blank=True, editable=False)
    oauth_access_token_sealed = models.TextField(blank=True, editable=False)
    oauth_access_token_expires_at = models.DateTimeField(null=True, blank=True)
    # SMTP for replies from this mailbox; host "" sends through EMAIL_URL.
    smtp_host = models.CharField(max_length=255, blank=True)
    smtp_port = models.PositiveIntegerField(default=587)
    smtp_security = models.CharField(
        max_length=10, choices=MailboxSecurity.choices, default=MailboxSecurity.STARTTLS
    )
    smtp_username = models.CharField(max_length=320, blank=True)
    smtp_password_sealed = models.TextField(blank=True, editable=False)
    # Where the import stands: UIDs above last_uid under this UIDVALIDITY are new.
    uidvalidity = models.BigIntegerField(null=True, blank=True)
    last_uid = models.BigIntegerField(default=0)
    # Messages received before this day are not imported (MAILBOX_IMPORT_DAYS before the first poll).
    import_since = models.DateField(null=True, blank=True)
    # Progress of the running (or last) poll, for the admin page: messages done of messages found.
    progress_done = models.PositiveIntegerField(default=0)
    progress_total = models.PositiveIntegerField(default=0)
    # One poll per mailbox at a time: a poll claims the lease with a conditional UPDATE and renews
    # it after every batch; a poller killed mid-batch lets it expire (MAILBOX_POLL_LEASE_SECONDS).
    poll_lease_until = models.DateTimeField(null=True, blank=True)
    poll_lease_token = models.CharField(max_length=32, blank=True)
    # Health.
    last_poll_at = models.DateTimeField(null=True, blank=True)
    last_success_at = models.DateTimeField(null=True, blank=True)
    last_error = models.TextField(blank=True)
    consecutive_failures = models.PositiveIntegerField(default=0)
    failing_since = models.DateTimeField(null=True, blank=True)
    # Set once the admins were told it is failing; cleared (with a "recovered" notice) on success.
    alerted = models.BooleanField(default=False)

    class Meta:
        ordering = ["channel__name"]
        verbose_name_plural = "mailboxes"
        constraints = [
            choices_check("imap_security", MailboxSecurity, name="tickets_mailbox_imap_sec_valid"),
            choices_check("smtp_security", MailboxSecurity, name="tickets_mailbox_smtp_sec_valid"),
            choices_check("after_import", MailboxAfterImport, name="tickets_mailbox_after_valid"),
            choices_check("auth", MailboxAuth, name="tickets_mailbox_auth_valid"),
            choices_check(
                "oauth_provider",
                MailboxOAuthProvider,
                name="tickets_mailbox_oauth_provider_valid",
                blank=True,
            ),
            models.CheckConstraint(
                condition=~Q(after_import="move") | ~Q(move_to_folder=""),
                name="tickets_mailbox_move_has_folder",
            ),
        ]

    def __str__(self) -> str:
        return f"{self.channel.name} ({self.username}@{self.imap_host})"

    @property
    def healthy(self) -> bool:
        """Polled successfully last time (a mailbox never polled yet is not unhealthy)."""
        return self.consecutive_failures == 0


class MailboxImportOutcome(models.TextChoices):
    IMPORTED = "imported", "Imported"
    SKIPPED = "skipped", "Already stored (same Message-ID)"
    QUARANTINED = "quarantined", "Quarantined"


class MailboxImport(models.Model):
    """One IMAP message taken in by a mailbox, keyed by (UIDVALIDITY, UID).

    Written in the same transaction as the message (or quarantine row) it produced, so a poller
    killed between fetch and commit leaves neither: the next poll fetches the message again. The
    unique constraint makes a second poller's insert of the same UID fail instead of importing twice.
    """

    Outcome = MailboxImportOutcome

    mailbox = models.ForeignKey(Mailbox, on_delete=models.CASCADE, related_name="imports")
    uidvalidity = models.BigIntegerField()
    uid = models.BigIntegerField()
    outcome = models.CharField(max_length=12, choices=MailboxImportOutcome.choices)
    message = models.ForeignKey(
        Message, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    quarantined = models.ForeignKey(
        QuarantinedMessage, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    imported_at = models.DateTimeField(default=timezone.now)

    class Meta:
        ordering = ["mailbox", "uidvalidity", "uid"]
        constraints = [
            # Also serves the poll's "which of these UIDs are done" lookup.
            models.UniqueConstraint(
                fields=["mailbox", "uidvalidity", "uid"], name="tickets_mailboximport_unique_uid"
            ),
            choices_check(
                "outcome", MailboxImportOutcome, name="tickets_mailboximport_outcome_valid"
            ),
        ]

    def __str__(self) -> str:
        return f"{self.mailbox_id}:{self.uidvalidity}:{self.uid} {self.outcome}"
