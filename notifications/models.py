"""What an agent hears about their conversations, and how they want to hear it.

The notification itself is ``supportdesk.Notification`` (the top bar's bell, /notifications/,
the API): every app's notifications live there. This app adds the conversation notifications
(a customer wrote, assigned to you, reopened by the customer, mentioned in a note), each tied to
the event that caused it so that an event notifies a person once, and the agent's email choice.
"""

from __future__ import annotations

from django.conf import settings
from django.db import models
from django.db.models import Q
from django.utils import timezone

from supportdesk.models import choices_check


class Reason(models.TextChoices):
    CUSTOMER_WROTE = "customer_wrote", "A customer wrote on your conversation"
    ASSIGNED = "assigned", "A conversation was assigned to you"
    REOPENED = "reopened", "A customer reopened your conversation"
    MENTIONED = "mentioned", "A teammate mentioned you in an internal note"


class ConversationNotification(models.Model):
    """The link between a ``tickets.Event`` and the notification it caused for one person.

    The unique constraints make the reaction idempotent: a retried task or a re-delivered event
    inserts nothing more (the insert of the second copy fails and its savepoint rolls back the
    notification with it). A mention notifies each person named once; every other reason has
    one recipient per event, whoever the assignee is by the time a retry runs.
    """

    Reason = Reason

    notification = models.OneToOneField(
        "supportdesk.Notification", on_delete=models.CASCADE, related_name="conversation_link"
    )
    event = models.ForeignKey("tickets.Event", on_delete=models.CASCADE, related_name="+")
    recipient = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="+"
    )
    conversation = models.ForeignKey(
        "tickets.Conversation", on_delete=models.CASCADE, related_name="+"
    )
    reason = models.CharField(max_length=20, choices=Reason.choices)
    created_at = models.DateTimeField(default=timezone.now)

    class Meta:
        constraints = [
            models.UniqueConstraint(
                fields=["event", "recipient"], name="notifications_convnotif_once_per_person"
            ),
            models.UniqueConstraint(
                fields=["event"],
                condition=~Q(reason="mentioned"),
                name="notifications_convnotif_once_per_event",
            ),
            choices_check("reason", Reason, name="notifications_convnotif_reason_valid"),
        ]

    def __str__(self) -> str:
        return f"{self.reason} #{self.conversation_id} for {self.recipient_id}"


class EmailMode(models.TextChoices):
    IMMEDIATE = "immediate", "At once, one email per notification"
    HOURLY = "hourly", "An hourly digest"
    DAILY = "daily", "A daily digest"
    OFF = "off", "Never: in the app only"


class NotificationPreference(models.Model):
    """One agent's choice of how conversation notifications reach them by email.

    No row means the default (``EmailMode.IMMEDIATE``). ``last_digest_at`` is when the digest
    task last went through this agent's pending notifications (hourly and daily modes).
    """

    EmailMode = EmailMode

    user = models.OneToOneField(
        settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="notification_preference"
    )
    email = models.CharField(max_length=10, choices=EmailMode.choices, default=EmailMode.IMMEDIATE)
    last_digest_at = models.DateTimeField(null=True, blank=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        constraints = [
            choices_check("email", EmailMode, name="notifications_pref_email_valid"),
        ]
        indexes = [
            # Used by notification_digests_send: the agents on a digest.
            models.Index(
                fields=["email"],
                condition=Q(email__in=["hourly", "daily"]),
                name="notifications_pref_digest",
            ),
        ]

    def __str__(self) -> str:
        return f"{self.user_id}: email {self.email}"
