"""The asynchronous ingestion mode's queue: inbound payloads accepted durably, ingested later.

A channel in the asynchronous mode (``Channel.ingest_mode``) answers an inbound call with 202
after one insert here; the ingest workers turn the rows into messages in batches
(tickets.services.inbound_queue), each exactly once and, per sender, in arrival order.
"""

from __future__ import annotations

from django.db import models
from django.db.models import Q

from supportdesk.models import choices_check


class InboundQueueStatus(models.TextChoices):
    PENDING = "pending", "Pending"
    DONE = "done", "Done"
    FAILED = "failed", "Failed"


class InboundQueueKind(models.TextChoices):
    EMAIL = "email", "Raw RFC 822 email"
    ANYMAIL = "anymail", "Provider webhook (django-anymail)"
    IMAP = "imap", "Mailbox import"
    CHAT = "chat", "Chat message"
    SOCIAL = "social", "Social message"
    PHONE = "phone", "Call log"


class InboundQueueItem(models.Model):
    Status = InboundQueueStatus
    Kind = InboundQueueKind

    channel = models.ForeignKey(
        "tickets.Channel", on_delete=models.CASCADE, related_name="inbound_queue"
    )
    kind = models.CharField(max_length=10, choices=InboundQueueKind.choices)
    # The raw message (email) or the validated call as JSON (chat, social, phone).
    payload = models.BinaryField()
    # Where it came from: "api", "anymail:<provider>", "imap".
    source = models.CharField(max_length=60, default="api")
    # The channel's external id (Message-ID for email), for idempotent accepts; "" if none.
    external_id = models.CharField(max_length=255, blank=True, default="")
    # The sender's handle: rows of one sender are ingested in arrival (id) order by one worker.
    order_key = models.CharField(max_length=320, blank=True, default="")
    shard = models.PositiveSmallIntegerField(default=0)
    status = models.CharField(
        max_length=10, choices=InboundQueueStatus.choices, default=InboundQueueStatus.PENDING
    )
    error = models.TextField(blank=True, default="")
    received_at = models.DateTimeField(auto_now_add=True)
    processed_at = models.DateTimeField(null=True, blank=True)
    attempts = models.PositiveSmallIntegerField(default=0)
    # The outcome, as the synchronous call would have answered it.
    customer_id_result = models.BigIntegerField(null=True, blank=True)
    conversation_id_result = models.BigIntegerField(null=True, blank=True)
    message_id_result = models.BigIntegerField(null=True, blank=True)
    new_contact = models.BooleanField(null=True, blank=True)
    quarantined_id = models.BigIntegerField(null=True, blank=True)

    class Meta:
        ordering = ["pk"]
        indexes = [
            models.Index(
                fields=["shard", "id"],
                name="tickets_inq_pending_idx",
                condition=Q(status="pending"),
            ),
        ]
        constraints = [
            models.UniqueConstraint(
                fields=["channel", "external_id"],
                condition=~Q(external_id=""),
                name="tickets_inq_channel_external_id_uniq",
            ),
            choices_check("status", InboundQueueStatus, name="tickets_inq_status_valid"),
            choices_check("kind", InboundQueueKind, name="tickets_inq_kind_valid"),
        ]

    def __str__(self) -> str:
        return f"inbound #{self.pk} ({self.kind}, {self.status})"
