"""Staff accounts, teams and the transactional outbox."""

from __future__ import annotations

import secrets
from typing import Any, ClassVar

from django.contrib.auth.models import AbstractBaseUser, BaseUserManager, PermissionsMixin
from django.db import models
from django.db.models import Q
from django.utils import timezone

from supportdesk.sealing import seal, secret_digest, unseal


def choices_check(
    field: str, choices: type[models.Choices], *, name: str, blank: bool = False
) -> models.CheckConstraint:
    """A CHECK that ``field`` holds one of the enum's values ("" too when ``blank``).

    Built from the enum itself, so a value added to the enum changes the constraint and
    ``makemigrations`` writes the migration: the database never refuses a value the code writes,
    and never accepts one it does not know.
    """
    values = list(choices.values)
    if blank and "" not in values:
        values = ["", *values]
    return models.CheckConstraint(condition=Q(**{f"{field}__in": values}), name=name)


class TimeStampedModel(models.Model):
    created_at = models.DateTimeField(default=timezone.now, editable=False)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        abstract = True


class Team(TimeStampedModel):
    name = models.CharField(max_length=100, unique=True)

    class Meta:
        ordering = ["name"]

    def __str__(self) -> str:
        return self.name


class UserManager(BaseUserManager["User"]):
    use_in_migrations = True

    def create_user(self, email: str, password: str | None = None, **extra: Any) -> User:
        if not email:
            raise ValueError("An email address is required")
        user = self.model(email=self.normalize_email(email).lower(), **extra)
        user.set_password(password)
        user.save(using=self._db)
        return user

    def get_by_natural_key(self, username: str | None) -> User:
        # Emails are stored lower-cased; "Alice@Desk.example" logs in as alice@desk.example.
        return self.get(email__iexact=(username or "").strip())

    def create_superuser(self, email: str, password: str | None = None, **extra: Any) -> User:
        extra.update(role=User.Role.ADMIN, is_staff=True, is_superuser=True)
        return self.create_user(email, password, **extra)


class UserRole(models.TextChoices):
    AGENT = "agent", "Agent"
    MANAGER = "manager", "Manager"
    ADMIN = "admin", "Admin"


class User(AbstractBaseUser, PermissionsMixin):
    """A member of staff. Customers never have an account; they answer by signed links."""

    Role = UserRole

    email = models.EmailField(unique=True)
    full_name = models.CharField(max_length=150, blank=True)
    role = models.CharField(max_length=10, choices=Role.choices, default=Role.AGENT)
    teams = models.ManyToManyField(Team, related_name="members", blank=True)
    is_active = models.BooleanField(default=True)
    # Django admin access; kept equal to ``role == admin`` by ``staff_create_or_update``.
    is_staff = models.BooleanField(default=False)
    date_joined = models.DateTimeField(default=timezone.now)
    # Appended to the agent's email replies; {variables} as in supportdesk.mailtemplates.
    signature = models.TextField(blank=True, max_length=2000)

    objects: ClassVar[UserManager] = UserManager()

    USERNAME_FIELD = "email"
    EMAIL_FIELD = "email"
    REQUIRED_FIELDS: ClassVar[list[str]] = []

    class Meta:
        ordering = ["email"]
        constraints = [
            choices_check("role", UserRole, name="supportdesk_user_role_valid"),
        ]

    def __str__(self) -> str:
        return self.full_name or self.email

    @property
    def first_name(self) -> str:
        return (self.full_name or self.email.split("@")[0]).split()[0]

    @property
    def is_admin(self) -> bool:
        return self.role == self.Role.ADMIN

    @property
    def is_manager(self) -> bool:
        return self.role in {self.Role.MANAGER, self.Role.ADMIN}


def new_api_token() -> str:
    """A fresh random API token: 40 hex characters, the shape clients already store."""
    return secrets.token_hex(20)


class ApiToken(models.Model):
    """A staff member's API token (``Authorization: Token <key>``), never stored in clear.

    The digest finds it, the sealed copy lets ``create_staff`` print it again
    (supportdesk/sealing.py). Set and read the token through ``key``; supportdesk.services issues it.
    """

    user = models.OneToOneField(User, on_delete=models.CASCADE, related_name="api_token")
    digest = models.CharField(max_length=64, unique=True, editable=False)
    sealed = models.TextField(editable=False)
    created_at = models.DateTimeField(default=timezone.now)

    def __str__(self) -> str:
        return f"API token of {self.user}"

    @property
    def key(self) -> str:
        return unseal(self.sealed)

    @key.setter
    def key(self, value: str) -> None:
        self.digest = secret_digest(value)
        self.sealed = seal(value)


class OutboxItem(models.Model):
    """A Celery task to run, written in the same transaction as the change that causes it.

    The web process hands it to the broker right after commit; when the broker is down the row
    waits, and beat's ``outbox_relay_task`` hands it over once the broker is back. The tasks
    themselves claim their work, so a row relayed twice still has its effect once.
    """

    task_name = models.CharField(max_length=200)
    kwargs = models.JSONField(default=dict)
    created_at = models.DateTimeField(default=timezone.now)
    relayed_at = models.DateTimeField(null=True, blank=True)
    attempts = models.PositiveIntegerField(default=0)
    last_error = models.TextField(blank=True)

    class Meta:
        ordering = ["id"]
        indexes = [
            # Used by outbox_relay_pending: the unrelayed rows, oldest first.
            models.Index(
                fields=["created_at"],
                condition=Q(relayed_at__isnull=True),
                name="supportdesk_outbox_pending",
            ),
        ]

    def __str__(self) -> str:
        return f"{self.task_name}({self.kwargs})"


class Notification(models.Model):
    """Something a member of staff should see: shown in the top bar and on /notifications/.

    Any app creates one through ``supportdesk.services.notification_create`` (a survey answered
    *not resolved*, a QA dispute to review, a check-in due...). The optional email goes out through
    the outbox, once.
    """

    recipient = models.ForeignKey(User, on_delete=models.CASCADE, related_name="notifications")
    kind = models.CharField(max_length=40)
    title = models.CharField(max_length=200)
    body = models.TextField(blank=True)
    url = models.CharField(max_length=500, blank=True)
    created_at = models.DateTimeField(default=timezone.now)
    read_at = models.DateTimeField(null=True, blank=True)
    emailed_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["-created_at", "-id"]
        indexes = [
            # Used by notification_unread_count (every page's top bar) and the notifications page.
            models.Index(
                fields=["recipient", "-created_at"],
                condition=Q(read_at__isnull=True),
                name="supportdesk_notif_unread",
            ),
            models.Index(fields=["recipient", "-created_at"], name="supportdesk_notif_recipient"),
        ]

    def __str__(self) -> str:
        return f"{self.recipient}: {self.title}"


class IdempotencyKey(models.Model):
    """The first answer to a POST sent with an ``Idempotency-Key`` header, replayed to retries.

    Written in the same transaction as the change the request makes, under a unique constraint:
    a racing retry waits for the first request's commit, then replays its answer; if the first
    request rolled back, the retry runs instead. Pruned after ``IDEMPOTENCY_KEY_HOURS``.
    """

    user = models.ForeignKey("supportdesk.User", on_delete=models.CASCADE, related_name="+")
    key = models.CharField(max_length=255)
    # sha256 of method, path and body: the same key with another request is refused.
    fingerprint = models.CharField(max_length=64)
    response_status = models.PositiveSmallIntegerField(null=True)
    response_body = models.JSONField(null=True)
    created_at = models.DateTimeField(default=timezone.now)

    class Meta:
        constraints = [
            models.UniqueConstraint(fields=["user", "key"], name="supportdesk_idempotencykey_once"),
        ]
        indexes = [
            # Used by idempotency_keys_prune: the expired rows.
            models.Index(fields=["created_at"], name="supportdesk_idemkey_created"),
        ]

    def __str__(self) -> str:
        return f"{self.user_id}:{self.key}"


class SentMailKind(models.TextChoices):
    REPLY = "reply", "Agent reply"
    SURVEY = "survey", "Survey"
    SURVEY_REMINDER = "survey_reminder", "Survey reminder"
    ACKNOWLEDGEMENT = "acknowledgement", "Acknowledgement"


class SentMail(models.Model):
    """One email the desk sent to someone outside: a reply, a survey, a reminder.

    Two rules read it. The per-address cap on *automatic* mail (``automatic_mail_claim``) counts
    these rows, so a loop with another auto-responder, or a flood of solves, cannot make the desk
    mail one address without end. And a bounce marks an address undeliverable only when it names
    a message the desk really sent to that address (``sent_mail_exists``), so a forged DSN cannot
    silence a customer's surveys.
    """

    Kind = SentMailKind

    address = models.CharField(max_length=254)  # lower-cased
    message_id = models.CharField(max_length=998, blank=True)  # without angle brackets
    kind = models.CharField(max_length=30, choices=Kind.choices)
    automatic = models.BooleanField()
    sent_at = models.DateTimeField(default=timezone.now)

    class Meta:
        constraints = [
            choices_check("kind", SentMailKind, name="supportdesk_sentmail_kind_valid"),
        ]
        ordering = ["-sent_at", "-id"]
        indexes = [
            # Used by automatic_mail_claim: automatic mail to one address in the last day.
            models.Index(
                fields=["address", "sent_at"],
                condition=Q(automatic=True),
                name="supportdesk_sentmail_auto",
            ),
            # Used by sent_mail_exists: does a bounce name a message we sent to that address?
            models.Index(fields=["message_id"], name="supportdesk_sentmail_msgid"),
        ]

    def __str__(self) -> str:
        return f"{self.kind} to {self.address} at {self.sent_at:%Y-%m-%d %H:%M}"


class AuditAction(models.TextChoices):
    CUSTOMER_MERGED = "customer.merged", "Customers merged"
    CUSTOMER_MERGE_UNDONE = "customer.merge_undone", "Customer merge undone"
    STAFF_CREATED = "staff.created", "Staff account created"
    STAFF_ROLE_CHANGED = "staff.role_changed", "Staff role changed"
    STAFF_TEAMS_CHANGED = "staff.teams_changed", "Staff teams changed"
    STAFF_ACCESS_CHANGED = "staff.access_changed", "Staff access changed"
    STAFF_PASSWORD_SET = "staff.password_set", "Staff password set"
    API_TOKEN_CREATED = "api_token.created", "API token created"
    API_TOKEN_ROTATED = "api_token.rotated", "API token rotated"
    CHANNEL_SECRET_CREATED = "channel.secret_created", "Channel secret created"
    CHANNEL_SECRET_ROTATED = "channel.secret_rotated", "Channel secret rotated"
    CHANNEL_CHANGED = "channel.changed", "Channel settings changed"
    MAILBOX_CONNECTED = "mailbox.connected", "Mailbox connected"
    MAILBOX_CHANGED = "mailbox.changed", "Mailbox settings changed"
    MAILBOX_CREDENTIALS_SET = "mailbox.credentials_set", "Mailbox credentials set"
    SURVEY_SETTINGS_CHANGED = "survey_settings.changed", "Survey settings changed"
    SCORECARDS_RECOMPUTE = "scorecards.recompute", "Scorecard recompute requested"
    TARGET_CHANGED = "target.changed", "Target changed"
    MAIL_TEMPLATE_SAVED = "mail_template.saved", "Email template saved"
    MAIL_TEMPLATE_RESET = "mail_template.reset", "Email template reset"
    SIGNATURE_CHANGED = "signature.changed", "Email signature changed"
    CHANNEL_MAIL_CHANGED = "channel.mail_changed", "Mailbox sending settings changed"
    CONVERSATION_TAGS = "conversation.tags_changed", "Conversation tags changed"
    CONVERSATION_PRIORITY = "conversation.priority_changed", "Conversation priority changed"
    CONVERSATION_SPAM = "conversation.spam_marked", "Conversation marked as spam"
    CONVERSATION_NOT_SPAM = "conversation.spam_unmarked", "Conversation not spam"
    SENDER_BLOCKED = "identity.blocked", "Sender blocked"
    SENDER_UNBLOCKED = "identity.unblocked", "Sender unblocked"
    TAG_CHANGED = "tag.changed", "Tag created, renamed or archived"
    CUSTOMER_ERASED = "customer.erased", "Customer erased"
    CUSTOMER_EXPORTED = "customer.exported", "Customer data exported"
    RETENTION_CHANGED = "retention.changed", "Retention settings changed"
    HOURS_CHANGED = "hours.changed", "Business hours changed"
    PROMISES_CHANGED = "promises.changed", "Promises to customers changed"
    ROUTING_CHANGED = "routing.changed", "Team routing changed"
    RULE_CHANGED = "rule.changed", "Rule created, changed, moved or deleted"
    AVAILABILITY_CHANGED = "availability.changed", "Availability changed"
    STAFF_INVITED = "staff.invited", "Staff member invited"
    STAFF_DEACTIVATED = "staff.deactivated", "Staff account deactivated"
    STAFF_REACTIVATED = "staff.reactivated", "Staff account reactivated"
    TEAM_CREATED = "team.created", "Team created"
    TEAM_RENAMED = "team.renamed", "Team renamed"
    WEBHOOK_HOST_ALLOWED = "webhook_host.allowed", "Webhook host allowed"
    WEBHOOK_HOST_REMOVED = "webhook_host.removed", "Webhook host no longer allowed"
    SAVED_REPLY_CREATED = "saved_reply.created", "Saved reply created"
    SAVED_REPLY_CHANGED = "saved_reply.changed", "Saved reply changed"
    SAVED_REPLY_DELETED = "saved_reply.deleted", "Saved reply deleted"


class WebhookAllowedHost(models.Model):
    """A host an admin allows webhook URLs to point at although it resolves to a loopback,
    private or otherwise internal address (``supportdesk.urlguard``). Hosts in the
    ``WEBHOOK_ALLOWED_HOSTS`` environment setting are allowed as well."""

    host = models.CharField(max_length=253, unique=True)
    note = models.CharField(max_length=200, blank=True)
    created_by = models.ForeignKey(
        "supportdesk.User", on_delete=models.SET_NULL, null=True, blank=True, related_name="+"
    )
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["host"]

    def __str__(self) -> str:
        return self.host


class AuditEntry(models.Model):
    """One security-relevant change: who did what to which object, when and from where.

    Written by ``supportdesk.services.audit_record`` inside the transaction of the change itself,
    so a change that rolls back leaves no entry and a committed change always has one. Rows are
    never edited: the admin shows them read-only.
    """

    Action = AuditAction

    at = models.DateTimeField(default=timezone.now, db_index=True)
    # The actor's email is kept beside the link: an entry outlives a deleted account.
    actor = models.ForeignKey(
        User, on_delete=models.SET_NULL, null=True, blank=True, related_name="+"
    )
    actor_email = models.CharField(max_length=254, blank=True)
    action = models.CharField(max_length=40, choices=Action.choices)
    target_type = models.CharField(max_length=60)
    target_id = models.CharField(max_length=64, blank=True)
    # The team the change concerns, when there is one: managers see their teams' entries.
    team = models.ForeignKey(
        Team, on_delete=models.SET_NULL, null=True, blank=True, related_name="+"
    )
    summary = models.CharField(max_length=500)
    details = models.JSONField(default=dict, blank=True)
    ip = models.GenericIPAddressField(null=True, blank=True)
    request_id = models.CharField(max_length=64, blank=True)

    class Meta:
        constraints = [
            choices_check("action", AuditAction, name="supportdesk_auditentry_action_valid"),
        ]
        ordering = ["-at", "-id"]
        verbose_name_plural = "audit entries"
        indexes = [
            # Used by audit_list_for_user: one object's history, newest first.
            models.Index(
                fields=["target_type", "target_id", "-at"], name="supportdesk_audit_target"
            ),
        ]

    def __str__(self) -> str:
        return f"{self.at:%Y-%m-%d %H:%M} {self.action} {self.summary}"


class MailTemplateKey(models.TextChoices):
    ACKNOWLEDGEMENT = "acknowledgement", "Acknowledgement (we got your message)"
    SURVEY = "survey", "Resolution survey"
    SURVEY_REMINDER = "survey_reminder", "Resolution survey reminder"
    STAFF_NOTIFICATION = "staff_notification", "Staff notification"


class MailTemplate(TimeStampedModel):
    """An admin's wording of one automatic email, one row per language.

    No row means the built-in wording (``supportdesk.mailtemplates.DEFAULTS``); a language
    without a row falls back to ``settings.LANGUAGE_CODE``'s row, then to the built-in one.
    The text is rendered by ``mailtemplates.render`` (plain ``{variable}`` substitution only).
    """

    Key = MailTemplateKey

    key = models.CharField(max_length=30, choices=Key.choices)
    # A language code ("en", "pt-br"); the customers' languages come with their own feature.
    language = models.CharField(max_length=10)
    subject = models.CharField(max_length=300)
    body = models.TextField(max_length=20_000)
    updated_by = models.ForeignKey(
        "User", null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )

    class Meta:
        ordering = ["key", "language"]
        constraints = [
            # mail_template_for: one wording per template and language.
            models.UniqueConstraint(
                fields=["key", "language"], name="supportdesk_mailtemplate_unique_key_language"
            ),
            choices_check("key", MailTemplateKey, name="supportdesk_mailtemplate_key_valid"),
        ]

    def __str__(self) -> str:
        return f"{self.key} ({self.language})"
