"""Customers, their identities, channels, conversations, messages, contacts and the event log.

Import every model from here (``tickets.models``). Two groups live in submodules and are
re-exported at the bottom: ``mailboxes`` (IMAP/SMTP accounts of email channels and their
imports) and ``triage`` (macros, saved views, presence).
"""

from __future__ import annotations

import secrets

from django.conf import settings
from django.db import models
from django.db.models import Q
from django.db.models.functions import Lower
from django.utils import timezone

from supportdesk.models import TimeStampedModel, choices_check
from supportdesk.sealing import seal, secret_digest, unseal


def _new_channel_secret() -> str:
    # The field default; historical migrations name this function, so it keeps its name.
    return secrets.token_urlsafe(32)


def new_channel_secret() -> str:
    """A fresh random channel secret (URL-safe, 43 characters)."""
    return _new_channel_secret()


class ChannelKind(models.TextChoices):
    EMAIL = "email", "Email"
    CHAT = "chat", "Chat"
    SOCIAL = "social", "Social"
    PHONE = "phone", "Phone"


class Organisation(TimeStampedModel):
    """A company customers belong to. With a ``domain``, a customer whose email address is at that
    domain is linked to it automatically (``organisation_create_or_update``, ``identity_link``,
    ingestion); an agent may also link or unlink a customer by hand."""

    name = models.CharField(max_length=200, unique=True)
    # Lower-cased, without "@" ("northwind.example"); "" when not linked by domain.
    domain = models.CharField(max_length=253, blank=True)
    notes = models.TextField(blank=True)

    class Meta:
        ordering = ["name"]
        constraints = [
            # One organisation per domain, so a new address finds exactly one.
            models.UniqueConstraint(
                fields=["domain"],
                condition=~Q(domain=""),
                name="tickets_organisation_unique_domain",
            ),
        ]

    def __str__(self) -> str:
        return self.name


class Customer(TimeStampedModel):
    """One person, whatever channels they use. Has one or more identities."""

    name = models.CharField(max_length=200, blank=True)
    # What agents should know before they answer ("prefers phone", "reseller"): internal only.
    notes = models.TextField(blank=True)
    # The language to write in, as a language tag ("en", "pt-br"); "" when not known.
    language = models.CharField(max_length=20, blank=True)
    organisation = models.ForeignKey(
        Organisation,
        null=True,
        blank=True,
        on_delete=models.SET_NULL,
        related_name="customers",
    )
    # Set when this customer was merged into another; kept (not deleted) so a merge can be undone.
    merged_into = models.ForeignKey(
        "self", null=True, blank=True, on_delete=models.PROTECT, related_name="merged_customers"
    )
    # Set by customer_erase (tickets.services.privacy): the row is an anonymous shell that keeps
    # the conversations' figures; nothing personal is left on it or anywhere else.
    erased_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["id"]

    def __str__(self) -> str:
        if self.erased_at is not None:
            return f"Erased customer #{self.pk}"
        return self.name or f"Customer #{self.pk}"


class IdentityKind(models.TextChoices):
    EMAIL = "email", "Email address"
    PHONE = "phone", "Phone number"
    CHAT = "chat", "Chat visitor id"
    SOCIAL = "social", "Social handle"
    EXTERNAL = "external", "External id"


class Identity(TimeStampedModel):
    """A handle on a channel, normalised so that an exact match finds the customer."""

    Kind = IdentityKind

    customer = models.ForeignKey(Customer, on_delete=models.PROTECT, related_name="identities")
    kind = models.CharField(max_length=10, choices=Kind.choices)
    # Lower-cased email, E.164 phone, "network:handle" for social; see identity_normalise().
    value = models.CharField(max_length=320)
    display_value = models.CharField(max_length=320, blank=True)
    # Verified: the customer proved control (they wrote from it). A handle an agent links or a
    # visitor types stays unverified until then.
    verified = models.BooleanField(default=False)
    # Set by a bounce: no automatic mail (surveys) goes to this address any more.
    undeliverable_at = models.DateTimeField(null=True, blank=True)
    # Set when an agent marked a conversation from this handle as spam and blocked the sender:
    # whatever arrives from it later is stored as spam (hidden, never surveyed, never counted).
    blocked_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["kind", "value"]
        verbose_name_plural = "identities"
        constraints = [
            models.UniqueConstraint(
                fields=["kind", "value"], name="tickets_identity_unique_kind_value"
            ),
            choices_check("kind", IdentityKind, name="tickets_identity_kind_valid"),
        ]

    def __str__(self) -> str:
        return f"{self.kind}:{self.value}"


class IngestMode(models.TextChoices):
    SYNC = "sync", "Synchronous (stored before the answer)"
    ASYNC = "async", "Asynchronous (accepted, stored by the worker)"


class Channel(TimeStampedModel):
    """An inbound endpoint (a mailbox, a chat widget, a social account, a phone line)."""

    Kind = ChannelKind

    kind = models.CharField(max_length=10, choices=ChannelKind.choices)
    name = models.CharField(max_length=100, unique=True)
    # New conversations from this channel go to this team.
    team = models.ForeignKey(
        "supportdesk.Team",
        null=True,
        blank=True,
        on_delete=models.SET_NULL,
        related_name="channels",
    )
    # The secret the channel's integration presents as X-Channel-Token, held only as a digest (to
    # find the channel) and a sealed copy (to sign outbound webhooks): supportdesk/sealing.py.
    # Set and read it through the ``secret`` property; channel_create_or_update gives a new channel one.
    secret_digest = models.CharField(max_length=64, unique=True, editable=False)
    secret_sealed = models.TextField(editable=False)
    # Email channels: the mailbox address mail arrives at (used to route provider webhooks).
    address = models.EmailField(blank=True)
    # Chat and social channels: where agent replies are delivered as signed webhooks.
    webhook_url = models.URLField(blank=True)
    is_active = models.BooleanField(default=True)
    # Email channels: the desk's name in From ("Alice via <from_name>"); blank: DESK_NAME.
    from_name = models.CharField(max_length=100, blank=True)
    # Email channels: appended to every reply after the agent's own signature ({variables}).
    signature = models.TextField(blank=True, max_length=2000)
    # Email channels: answer a new conversation with the acknowledgement template (never
    # automated mail, never past the per-address cap: tickets.services.acknowledgement).
    acknowledge = models.BooleanField(default=False)
    # Solves on this channel are surveyed (default on); a customer with no email is surveyed on
    # the channel itself (chat transcript, social webhook).
    surveyed = models.BooleanField(default=True)
    # Chat channels: the embeddable widget's key (``/widget/<key>.js``) and the origins allowed
    # to frame it (``frame-ancestors``); every other page is DENY.
    widget_key = models.CharField(max_length=64, unique=True, null=True, blank=True, editable=False)
    widget_origins = models.JSONField(default=list, blank=True)
    # "sync": an inbound call stores the message before it answers (201/200). "async": it
    # stores the payload only and answers 202 with an id to poll; the ingest workers store the
    # message (provider webhooks, mailbox imports and high-volume channels absorb bursts).
    ingest_mode = models.CharField(
        max_length=5, choices=IngestMode.choices, default=IngestMode.SYNC
    )

    class Meta:
        ordering = ["kind", "name"]
        constraints = [
            choices_check("kind", ChannelKind, name="tickets_channel_kind_valid"),
            choices_check("ingest_mode", IngestMode, name="tickets_channel_ingest_mode_valid"),
        ]

    def __str__(self) -> str:
        return f"{self.name} ({self.kind})"

    @property
    def secret(self) -> str:
        """The channel secret in clear (unsealed with SECRET_KEY); "" before the first save."""
        return unseal(self.secret_sealed) if self.secret_sealed else ""

    @secret.setter
    def secret(self, value: str) -> None:
        self.secret_digest = secret_digest(value)
        self.secret_sealed = seal(value)


class ConversationStatus(models.TextChoices):
    NEW = "new", "New"
    OPEN = "open", "Open"
    PENDING = "pending", "Pending on customer"
    SOLVED = "solved", "Solved"
    CLOSED = "closed", "Closed"


class ConversationPriority(models.TextChoices):
    LOW = "low", "Low"
    NORMAL = "normal", "Normal"
    HIGH = "high", "High"
    URGENT = "urgent", "Urgent"


class Tag(TimeStampedModel):
    """A topic of conversations ("billing", "refund"), created, renamed and archived by managers.

    One desk, one set of tags. An archived tag stays on the conversations that carry it (history
    and outcomes by topic keep it) but can no longer be put on one.
    """

    name = models.CharField(max_length=50)
    archived_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["name"]
        constraints = [
            # "Billing" and "billing" are one topic: names are unique whatever their case.
            models.UniqueConstraint(Lower("name"), name="tickets_tag_unique_name_ci"),
        ]

    def __str__(self) -> str:
        return self.name


class Conversation(TimeStampedModel):
    """One customer issue (a ticket); it may span several channels."""

    Status = ConversationStatus

    Priority = ConversationPriority

    ACTIVE_STATUSES = (Status.NEW, Status.OPEN, Status.PENDING)

    customer = models.ForeignKey(Customer, on_delete=models.PROTECT, related_name="conversations")
    team = models.ForeignKey(
        "supportdesk.Team",
        null=True,
        blank=True,
        on_delete=models.PROTECT,
        related_name="conversations",
    )
    assignee = models.ForeignKey(
        settings.AUTH_USER_MODEL,
        null=True,
        blank=True,
        on_delete=models.PROTECT,
        related_name="assigned_conversations",
    )
    subject = models.CharField(max_length=998, blank=True)
    status = models.CharField(max_length=10, choices=Status.choices, default=Status.NEW)
    # Channel kinds touched by this conversation, in order of first use.
    channels = models.JSONField(default=list, blank=True)
    # Contacts counted by the rules of docs/metrics.md ("Counting contacts").
    contacts_counted = models.PositiveIntegerField(default=0)
    first_inbound_at = models.DateTimeField(null=True, blank=True)
    last_inbound_at = models.DateTimeField(null=True, blank=True)
    last_activity_at = models.DateTimeField(default=timezone.now)
    solved_at = models.DateTimeField(null=True, blank=True)
    closed_at = models.DateTimeField(null=True, blank=True)
    # A customer writing on a closed conversation opens a follow-up that points back.
    follow_up_of = models.ForeignKey(
        "self", null=True, blank=True, on_delete=models.SET_NULL, related_name="follow_ups"
    )
    # Optimistic concurrency: bumped by every service that changes the conversation.
    version = models.PositiveIntegerField(default=1)
    priority = models.CharField(
        max_length=10, choices=ConversationPriority.choices, default=ConversationPriority.NORMAL
    )
    tags = models.ManyToManyField(Tag, blank=True, related_name="conversations")
    # Marked as spam (conversation_mark_spam): hidden from the queue, never surveyed, never in
    # any metric (docs/metrics.md, "What is counted").
    spam_at = models.DateTimeField(null=True, blank=True)
    # Set when its personal text was removed (the customer erased, or the retention policy after
    # a close): an anonymous shell that keeps every figure (tickets.services.privacy).
    anonymised_at = models.DateTimeField(null=True, blank=True)
    # When the customer's unanswered message is due under the reply time promised for its
    # channel and priority (set by routing when the customer writes; cleared by a public reply
    # or a solve). Empty: nothing promised, or answered.
    due_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["-last_activity_at", "-id"]
        indexes = [
            # conversation_list_for_user: a team's queue, newest activity first (keyset).
            models.Index(
                fields=["team", "-last_activity_at", "-id"], name="tickets_conv_team_activity"
            ),
            # conversation_list_for_user(assignee=...): "mine".
            models.Index(
                fields=["assignee", "-last_activity_at", "-id"], name="tickets_conv_assignee_act"
            ),
            # Ingestion's attach rule: the customer's active conversations.
            models.Index(
                fields=["customer", "status", "-last_activity_at"], name="tickets_conv_customer"
            ),
            # conversations_close_solved: solved conversations past the survey window.
            models.Index(
                fields=["solved_at"],
                condition=Q(status="solved"),
                name="tickets_conv_solved_at",
            ),
            # Unfiltered desk queue for admins, newest activity first.
            models.Index(fields=["-last_activity_at", "-id"], name="tickets_conv_activity"),
            # The queue's open views: a few thousand active conversations among millions.
            models.Index(
                fields=["-last_activity_at", "-id"],
                condition=Q(status__in=["new", "open", "pending"]),
                name="tickets_conv_active_activity",
            ),
            # The queue's "Recently solved" count: a week of solves, per team and desk-wide.
            models.Index(fields=["team", "solved_at"], name="tickets_conv_team_solved"),
            # Visibility is an OR no index condition takes: the count walks the desk's week of
            # solves, from this index alone (docs/query-plans.md, 5 December).
            models.Index(
                fields=["solved_at"],
                include=["team", "assignee", "channels"],
                condition=Q(status__in=["solved", "closed"], spam_at__isnull=True),
                name="tickets_conv_solved_recent",
            ),
            # The queue sorted by due time, and its "due soon" count.
            models.Index(
                fields=["due_at", "id"],
                condition=Q(status__in=["new", "open", "pending"], due_at__isnull=False),
                name="tickets_conv_due",
            ),
        ]
        constraints = [
            choices_check("status", ConversationStatus, name="tickets_conversation_status_valid"),
            choices_check(
                "priority", ConversationPriority, name="tickets_conversation_priority_valid"
            ),
        ]

    def __str__(self) -> str:
        return f"#{self.pk} {self.subject}"[:80]

    @property
    def is_active(self) -> bool:
        return self.status in self.ACTIVE_STATUSES


class ContactReason(models.TextChoices):
    FIRST = "first", "First inbound message"
    CHANNEL_CHANGE = "channel_change", "Another channel"
    REOPEN = "reopen", "Wrote after a solve or while pending"
    CHASER = "chaser", "Chased an unanswered message"
    CALL = "call", "Phone call"
    CHAT_SESSION = "chat_session", "New chat session"


class ContactEndedBy(models.TextChoices):
    CUSTOMER = "customer", "Customer"
    AGENT = "agent", "Agent"
    SYSTEM = "system", "System"


class Contact(models.Model):
    """A customer-initiated touch about a conversation (docs/metrics.md, "Counting contacts")."""

    Reason = ContactReason

    EndedBy = ContactEndedBy

    conversation = models.ForeignKey(
        Conversation, on_delete=models.CASCADE, related_name="contacts"
    )
    channel = models.ForeignKey(Channel, on_delete=models.PROTECT, related_name="contacts")
    channel_kind = models.CharField(max_length=10, choices=ChannelKind.choices)
    reason = models.CharField(max_length=20, choices=Reason.choices)
    started_at = models.DateTimeField()
    session_id = models.CharField(max_length=255, blank=True)
    # Phone calls only.
    wait_seconds = models.PositiveIntegerField(null=True, blank=True)
    talk_seconds = models.PositiveIntegerField(null=True, blank=True)
    hold_seconds = models.PositiveIntegerField(null=True, blank=True)
    wrap_seconds = models.PositiveIntegerField(null=True, blank=True)
    ended_by = models.CharField(max_length=10, choices=EndedBy.choices, blank=True)
    agent = models.ForeignKey(
        settings.AUTH_USER_MODEL,
        null=True,
        blank=True,
        on_delete=models.SET_NULL,
        related_name="handled_contacts",
    )

    class Meta:
        constraints = [
            choices_check("channel_kind", ChannelKind, name="tickets_contact_channel_kind_valid"),
            choices_check("reason", ContactReason, name="tickets_contact_reason_valid"),
            choices_check(
                "ended_by", ContactEndedBy, name="tickets_contact_ended_by_valid", blank=True
            ),
        ]
        ordering = ["started_at", "id"]
        indexes = [
            # Timeline contact boundaries and recounts, per conversation in time order.
            models.Index(fields=["conversation", "started_at"], name="tickets_contact_conv_time"),
            # perf: the facts compute reads a range of days' contacts (metrics.facts).
            models.Index(fields=["started_at"], name="tickets_contact_started"),
        ]

    def __str__(self) -> str:
        return f"{self.channel_kind} contact on #{self.conversation_id}"


class MessageDirection(models.TextChoices):
    INBOUND = "inbound", "Inbound"
    OUTBOUND = "outbound", "Outbound"
    NOTE = "note", "Internal note"


class MessageDelivery(models.TextChoices):
    NONE = "", "Not applicable"
    QUEUED = "queued", "Queued"
    SENDING = "sending", "Sending"
    SENT = "sent", "Sent"
    FAILED = "failed", "Failed"
    NOT_SENT = "not_sent", "Not sent (no delivery route)"


class Message(models.Model):
    """One entry of a conversation: inbound (customer), outbound (agent) or an internal note."""

    Direction = MessageDirection

    Delivery = MessageDelivery

    conversation = models.ForeignKey(
        Conversation, on_delete=models.PROTECT, related_name="messages"
    )
    contact = models.ForeignKey(
        Contact, null=True, blank=True, on_delete=models.SET_NULL, related_name="messages"
    )
    channel = models.ForeignKey(
        Channel, null=True, blank=True, on_delete=models.PROTECT, related_name="messages"
    )
    channel_kind = models.CharField(max_length=10, choices=ChannelKind.choices, blank=True)
    direction = models.CharField(max_length=10, choices=Direction.choices)
    author = models.ForeignKey(
        settings.AUTH_USER_MODEL,
        null=True,
        blank=True,
        on_delete=models.PROTECT,
        related_name="authored_messages",
    )
    # The customer's handle this came from (inbound) or went to (outbound).
    identity = models.ForeignKey(
        Identity, null=True, blank=True, on_delete=models.SET_NULL, related_name="messages"
    )
    # The channel's own id for the message (email Message-ID, chat message id, call id).
    # NULL, not "", for messages without one (agent replies): the unique constraint skips NULLs.
    external_id = models.CharField(max_length=998, null=True, blank=True)  # noqa: DJ001
    # RFC 5322 Message-ID, ours or theirs, without angle brackets: email threading looks it up.
    message_id = models.CharField(max_length=998, blank=True)
    in_reply_to = models.TextField(blank=True)
    references = models.TextField(blank=True)
    # Chat session id or social thread id.
    thread_key = models.CharField(max_length=255, blank=True)
    subject = models.CharField(max_length=998, blank=True)
    body_text = models.TextField(blank=True)
    # Sanitised with nh3 at ingestion; the original stays in ``raw``.
    body_html = models.TextField(blank=True)
    raw = models.BinaryField(blank=True, editable=False)
    # Non-empty for auto-replies, bounces, list mail and our own mail: never triggers anything.
    automated = models.CharField(max_length=20, blank=True)
    sent_at = models.DateTimeField(default=timezone.now)
    created_at = models.DateTimeField(default=timezone.now)
    delivery_state = models.CharField(
        max_length=10, choices=Delivery.choices, blank=True, default=Delivery.NONE
    )
    delivery_error = models.TextField(blank=True)
    delivered_at = models.DateTimeField(null=True, blank=True)
    delivery_attempts = models.PositiveIntegerField(default=0)
    # When a sender last claimed the message (queued -> sending): the lease a stuck send is taken
    # over from runs from here, not from created_at (an old message may be being sent right now).
    claimed_at = models.DateTimeField(null=True, blank=True)
    # An address the sender typed (the built-in /chat/ page) but never proved: shown to agents as
    # unverified, never used to find a customer or a conversation.
    claimed_email = models.EmailField(max_length=320, blank=True)
    # Email: the Cc addresses (inbound: as the sender copied them; outbound: as the agent sent
    # them). Bcc: outbound only, never shown to the customer.
    cc = models.JSONField(default=list, blank=True)
    bcc = models.JSONField(default=list, blank=True)
    # Inbound from someone copied on the conversation (not its customer): who wrote.
    participant = models.ForeignKey(
        "ConversationParticipant",
        null=True,
        blank=True,
        on_delete=models.SET_NULL,
        related_name="messages",
    )

    class Meta:
        ordering = ["sent_at", "id"]
        indexes = [
            # conversation_get_for_user: the timeline in time order.
            models.Index(fields=["conversation", "sent_at", "id"], name="tickets_msg_timeline"),
            # Email threading: In-Reply-To/References against stored Message-IDs.
            models.Index(
                fields=["message_id"], condition=~Q(message_id=""), name="tickets_msg_message_id"
            ),
            # Chat sessions and social threads continue their conversation.
            models.Index(
                fields=["channel", "thread_key"],
                condition=~Q(thread_key=""),
                name="tickets_msg_thread_key",
            ),
            # perf: facts_mark_dirty_from_sources (beat) reads the messages stored since its
            # watermark.
            models.Index(fields=["created_at"], name="tickets_msg_created"),
            # perf: the facts compute reads a range of days' agent replies (metrics.facts).
            models.Index(
                fields=["sent_at"],
                condition=Q(direction="outbound"),
                name="tickets_msg_outbound_sent",
            ),
        ]
        constraints = [
            # Idempotent ingestion: concurrent deliveries of one message store it once.
            models.UniqueConstraint(
                fields=["channel", "external_id"],
                condition=Q(external_id__isnull=False),
                name="tickets_message_unique_external_id",
            ),
            choices_check(
                "channel_kind", ChannelKind, name="tickets_message_channel_kind_valid", blank=True
            ),
            choices_check("direction", MessageDirection, name="tickets_message_direction_valid"),
            choices_check(
                "delivery_state", MessageDelivery, name="tickets_message_delivery_state_valid"
            ),
        ]

    def __str__(self) -> str:
        return f"{self.direction} {self.channel_kind} #{self.pk}"

    @property
    def is_public(self) -> bool:
        return self.direction != self.Direction.NOTE


class ParticipantSource(models.TextChoices):
    COPIED = "copied", "Copied by the customer"
    AGENT = "agent", "Copied by an agent"
    WROTE = "wrote", "Wrote in"


class ConversationParticipant(models.Model):
    """Someone besides the customer on an email conversation (a colleague they copied).

    Offered for reply-all in the composer; their mail threads into the conversation (as the
    customer's would) and is stored as theirs without making them a customer.
    """

    Source = ParticipantSource

    conversation = models.ForeignKey(
        Conversation, on_delete=models.CASCADE, related_name="participants"
    )
    # Lower-cased (tickets.identities.normalise_email).
    email = models.CharField(max_length=320)
    name = models.CharField(max_length=200, blank=True)
    source = models.CharField(max_length=10, choices=Source.choices)
    created_at = models.DateTimeField(default=timezone.now)

    class Meta:
        ordering = ["created_at", "id"]
        constraints = [
            # participants_add: one row per address and conversation (upsert on this).
            models.UniqueConstraint(
                fields=["conversation", "email"], name="tickets_participant_unique_email"
            ),
            choices_check("source", ParticipantSource, name="tickets_participant_source_valid"),
        ]

    def __str__(self) -> str:
        return f"{self.name} <{self.email}>" if self.name else self.email


class CallDirection(models.TextChoices):
    INBOUND = "inbound", "Inbound (the customer called)"
    OUTBOUND = "outbound", "Outbound (we called)"


class Call(models.Model):
    """A call an agent logged in the workspace or through ``/calls/`` (either direction).

    An inbound call is ingested like a phone system's call (``inbound_phone``): its message has a
    ``Contact`` with the times, which the figures read; this row adds who logged it. An outbound
    call is not a contact: its message is the agent's (a public reply when the customer picked up,
    an internal note when nobody did) and its times live here only.
    """

    Direction = CallDirection

    message = models.OneToOneField(Message, on_delete=models.CASCADE, related_name="call_log")
    direction = models.CharField(max_length=10, choices=CallDirection.choices)
    started_at = models.DateTimeField()
    wait_seconds = models.PositiveIntegerField(default=0)
    talk_seconds = models.PositiveIntegerField(default=0)
    hold_seconds = models.PositiveIntegerField(default=0)
    ended_by = models.CharField(max_length=10, choices=ContactEndedBy.choices)
    logged_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.PROTECT, related_name="+"
    )
    logged_at = models.DateTimeField(default=timezone.now)

    class Meta:
        ordering = ["started_at", "id"]
        constraints = [
            choices_check("direction", CallDirection, name="tickets_call_direction_valid"),
            choices_check("ended_by", ContactEndedBy, name="tickets_call_ended_by_valid"),
        ]

    def __str__(self) -> str:
        return f"{self.direction} call on message #{self.message_id}"


def _attachment_path(instance: Attachment, filename: str) -> str:
    now = timezone.now()
    return f"attachments/{now:%Y/%m}/{secrets.token_hex(8)}"


class Attachment(models.Model):
    message = models.ForeignKey(Message, on_delete=models.CASCADE, related_name="attachments")
    # Stored under a random name; the customer's filename is only ever shown, never used as a path.
    file = models.FileField(upload_to=_attachment_path, max_length=255)
    filename = models.CharField(max_length=255)
    content_type = models.CharField(max_length=255)
    size = models.PositiveBigIntegerField()
    content_id = models.CharField(max_length=255, blank=True)
    inline = models.BooleanField(default=False)

    class Meta:
        ordering = ["id"]

    def __str__(self) -> str:
        return self.filename


class QuarantinedMessage(models.Model):
    """Inbound input the parser could not handle: kept raw with its error, never dropped."""

    channel = models.ForeignKey(
        Channel, null=True, blank=True, on_delete=models.PROTECT, related_name="quarantined"
    )
    source = models.CharField(max_length=50)
    raw = models.BinaryField(editable=False)
    error = models.TextField()
    created_at = models.DateTimeField(default=timezone.now)
    resolved_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["-created_at"]

    def __str__(self) -> str:
        return f"{self.source}: {self.error[:60]}"


class EventKind(models.TextChoices):
    CONVERSATION_CREATED = "conversation.created", "Conversation created"
    STATUS_CHANGED = "conversation.status_changed", "Status changed"
    ASSIGNED = "conversation.assigned", "Assigned"
    SOLVED = "conversation.solved", "Solved"
    REOPENED = "conversation.reopened", "Reopened"
    CLOSED = "conversation.closed", "Closed"
    INBOUND = "message.inbound", "Customer wrote"
    REPLIED = "message.replied", "Agent replied"
    AUTOMATED = "message.automated", "Automated message on the customer's channel"
    MESSAGE_MOVED = "message.moved", "Message moved"
    # An internal note: the notifications app reads the @-mentions in it.
    NOTE_ADDED = "message.note", "Internal note added"
    CUSTOMER_MERGED = "customer.merged", "Customers merged"
    CUSTOMER_MERGE_UNDONE = "customer.merge_undone", "Merge undone"
    IDENTITY_LINKED = "identity.linked", "Identity linked"
    IDENTITY_UNDELIVERABLE = "identity.undeliverable", "Address bounced"
    CUSTOMER_LANGUAGE_SET = "customer.language_set", "Customer language set"
    MAILBOX_FAILING = "mailbox.failing", "Mailbox failing"
    MAILBOX_RECOVERED = "mailbox.recovered", "Mailbox recovered"
    CUSTOMER_CREATED = "customer.created", "Customer created"
    CUSTOMER_UPDATED = "customer.updated", "Customer updated"
    CALL_LOGGED = "call.logged", "Call logged"
    TAGS_CHANGED = "conversation.tags_changed", "Tags changed"
    PRIORITY_CHANGED = "conversation.priority_changed", "Priority changed"
    SPAM_MARKED = "conversation.spam_marked", "Marked as spam"
    SPAM_UNMARKED = "conversation.spam_unmarked", "Not spam after all"
    CUSTOMER_ERASED = "customer.erased", "Customer erased"
    RULE_APPLIED = "rule.applied", "Rule applied"
    RULE_FAILED = "rule.failed", "Rule failed"


class Event(models.Model):
    """Append-only log of what happened; higher apps react to it (see supportdesk.events)."""

    Kind = EventKind

    kind = models.CharField(max_length=40, choices=Kind.choices)
    occurred_at = models.DateTimeField(default=timezone.now)
    conversation = models.ForeignKey(
        Conversation, null=True, blank=True, on_delete=models.PROTECT, related_name="events"
    )
    customer = models.ForeignKey(
        Customer, null=True, blank=True, on_delete=models.PROTECT, related_name="events"
    )
    message = models.ForeignKey(
        Message, null=True, blank=True, on_delete=models.SET_NULL, related_name="events"
    )
    actor = models.ForeignKey(
        settings.AUTH_USER_MODEL,
        null=True,
        blank=True,
        on_delete=models.PROTECT,
        related_name="+",
    )
    # Attribution at the time of the event (docs/metrics.md, "Attribution").
    team = models.ForeignKey(
        "supportdesk.Team", null=True, blank=True, on_delete=models.PROTECT, related_name="+"
    )
    agent = models.ForeignKey(
        settings.AUTH_USER_MODEL,
        null=True,
        blank=True,
        on_delete=models.PROTECT,
        related_name="+",
    )
    channel_kind = models.CharField(max_length=10, choices=ChannelKind.choices, blank=True)
    data = models.JSONField(default=dict, blank=True)

    class Meta:
        constraints = [
            choices_check("kind", EventKind, name="tickets_event_kind_valid"),
            choices_check(
                "channel_kind", ChannelKind, name="tickets_event_channel_kind_valid", blank=True
            ),
        ]
        ordering = ["occurred_at", "id"]
        indexes = [
            # Contact recounts and the timeline read a conversation's events in order.
            models.Index(fields=["conversation", "occurred_at"], name="tickets_event_conv_time"),
            # Metrics read events of one kind by date (solves, reopens).
            models.Index(fields=["kind", "occurred_at"], name="tickets_event_kind_time"),
        ]

    def __str__(self) -> str:
        return f"{self.kind} @ {self.occurred_at:%Y-%m-%d %H:%M}"


class CustomerMerge(models.Model):
    """Audit record of a merge: what moved, so that it can be undone."""

    target = models.ForeignKey(Customer, on_delete=models.PROTECT, related_name="merges_in")
    merged = models.ForeignKey(Customer, on_delete=models.PROTECT, related_name="merges_out")
    actor = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.PROTECT, related_name="+"
    )
    identity_ids = models.JSONField(default=list)
    conversation_ids = models.JSONField(default=list)
    merged_name = models.CharField(max_length=200, blank=True)
    created_at = models.DateTimeField(default=timezone.now)
    undone_at = models.DateTimeField(null=True, blank=True)
    undone_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.PROTECT, related_name="+"
    )

    class Meta:
        ordering = ["-created_at"]
        constraints = [
            # A customer is merged away at most once at a time.
            models.UniqueConstraint(
                fields=["merged"],
                condition=Q(undone_at__isnull=True),
                name="tickets_customermerge_one_active_per_merged",
            ),
            models.CheckConstraint(
                condition=~Q(target=models.F("merged")), name="tickets_customermerge_not_self"
            ),
        ]

    def __str__(self) -> str:
        return f"#{self.merged_id} into #{self.target_id}"


# The submodules' models point at the models above (Channel, Message, Conversation, Tag...), so
# they are imported once those exist. Importing them here also registers them with Django (app
# label "tickets", unchanged tables), and the ``x as x`` re-exports keep ``from tickets.models
# import Mailbox`` working.
from tickets.models.mailboxes import (  # noqa: E402, I001
    Mailbox as Mailbox,
    MailboxAfterImport as MailboxAfterImport,
    MailboxAuth as MailboxAuth,
    MailboxImport as MailboxImport,
    MailboxImportOutcome as MailboxImportOutcome,
    MailboxOAuthProvider as MailboxOAuthProvider,
    MailboxSecurity as MailboxSecurity,
)
from tickets.models.privacy import (  # noqa: E402
    RetentionPolicy as RetentionPolicy,
    RetentionRun as RetentionRun,
)
from tickets.models.triage import (  # noqa: E402
    ConversationViewer as ConversationViewer,
    MacroAssignee as MacroAssignee,
    MacroStatus as MacroStatus,
    SavedReply as SavedReply,
    SavedView as SavedView,
)
from tickets.models.inbound_queue import (  # noqa: E402
    InboundQueueItem as InboundQueueItem,
    InboundQueueKind as InboundQueueKind,
    InboundQueueStatus as InboundQueueStatus,
)
