"""The agent workspace around conversations: macros (saved replies and the actions they run),
saved queue views, and presence (who has a conversation open)."""

from __future__ import annotations

from django.conf import settings
from django.db import models
from django.utils import timezone

from supportdesk.models import TimeStampedModel, choices_check
from tickets.models import Conversation, ConversationPriority, Tag


class MacroStatus(models.TextChoices):
    KEEP = "", "Leave the status"
    PENDING = "pending", "Set pending"
    SOLVED = "solved", "Solve"


class MacroAssignee(models.TextChoices):
    KEEP = "", "Leave the assignee"
    ME = "me", "Assign to whoever runs it"
    NOBODY = "nobody", "Unassign"


class SavedReply(TimeStampedModel):
    """A macro: a reply agents insert into the composer; ``{customer_first_name}`` and
    ``{agent_first_name}`` are filled in for the open conversation (see ``saved_reply_render``).

    Run in one click (``saved_reply_apply``) it also sends the reply and may set tags, priority,
    assignee and status. A macro without a body only sets those.
    """

    Status = MacroStatus

    Assignee = MacroAssignee

    title = models.CharField(max_length=100, unique=True)
    body = models.TextField(blank=True)
    is_active = models.BooleanField(default=True)
    add_tags = models.ManyToManyField(Tag, blank=True, related_name="+")
    set_priority = models.CharField(
        max_length=10, choices=ConversationPriority.choices, blank=True, default=""
    )
    set_status = models.CharField(
        max_length=10, choices=MacroStatus.choices, blank=True, default=MacroStatus.KEEP
    )
    set_assignee = models.CharField(
        max_length=10, choices=MacroAssignee.choices, blank=True, default=MacroAssignee.KEEP
    )

    class Meta:
        ordering = ["title"]
        verbose_name_plural = "saved replies"
        constraints = [
            choices_check(
                "set_priority",
                ConversationPriority,
                name="tickets_savedreply_set_priority_valid",
                blank=True,
            ),
            choices_check("set_status", MacroStatus, name="tickets_savedreply_set_status_valid"),
            choices_check(
                "set_assignee", MacroAssignee, name="tickets_savedreply_set_assignee_valid"
            ),
        ]

    def __str__(self) -> str:
        return self.title

    @property
    def actions_summary(self) -> str:
        """What the macro sets besides its reply, in words ("tags billing; priority high; solve").
        Reads ``add_tags`` (prefetch it: ``saved_reply_list``)."""
        parts = []
        tags = [tag.name for tag in self.add_tags.all()]
        if tags:
            parts.append("tags " + ", ".join(tags))
        if self.set_priority:
            parts.append(f"priority {self.set_priority}")
        if self.set_assignee:
            parts.append(str(self.get_set_assignee_display()).lower())
        if self.set_status:
            parts.append(str(self.get_set_status_display()).lower())
        return "; ".join(parts)


class SavedView(TimeStampedModel):
    """An agent's named queue filters ("My urgent billing"), shown above their queue."""

    user = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="+")
    name = models.CharField(max_length=60)
    # The queue's query string (view, q, channel, status, team, assignee, tag, priority), as
    # QueueFilterForm validated it.
    query = models.CharField(max_length=500)

    class Meta:
        ordering = ["name"]
        constraints = [
            models.UniqueConstraint(fields=["user", "name"], name="tickets_savedview_unique_name"),
        ]

    def __str__(self) -> str:
        return self.name


class ConversationViewer(models.Model):
    """Presence for collision warnings: who has a conversation open, and whether they are typing.

    One row per (conversation, user), refreshed by the page's heartbeat; a row older than
    ``PRESENCE_TTL_SECONDS`` means the agent left.
    """

    conversation = models.ForeignKey(Conversation, on_delete=models.CASCADE, related_name="viewers")
    user = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="+")
    last_seen_at = models.DateTimeField(default=timezone.now)
    replying_at = models.DateTimeField(null=True, blank=True)
    # Not a column: selectors.conversation_viewers sets it on the rows it returns.
    is_replying: bool

    class Meta:
        constraints = [
            models.UniqueConstraint(
                fields=["conversation", "user"], name="tickets_conversationviewer_unique_user"
            ),
        ]
        indexes = [
            # conversation_viewers: the other agents seen recently on one conversation.
            models.Index(fields=["conversation", "-last_seen_at"], name="tickets_viewer_conv_seen"),
        ]

    def __str__(self) -> str:
        return f"{self.user_id} on #{self.conversation_id}"
