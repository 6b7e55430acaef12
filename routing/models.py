"""Business hours, promises to customers, agent availability, routing and rules.

``BusinessInterval`` is derived data: the opening intervals of every team's effective hours,
rebuilt by ``routing.services.business_intervals_rebuild`` whenever hours change, so that the
scorecards can count business seconds in SQL (``routing.business_time.business_clock``).
"""

from __future__ import annotations

from django.conf import settings
from django.db import models
from django.db.models import Q
from django.utils import timezone

from supportdesk.models import TimeStampedModel, choices_check
from tickets.models import ChannelKind, ConversationPriority

WEEKDAYS = ("mon", "tue", "wed", "thu", "fri", "sat", "sun")


def default_week() -> dict[str, list[list[str]]]:
    """Monday to Friday, 09:00 to 17:00."""
    return {day: ([["09:00", "17:00"]] if day not in ("sat", "sun") else []) for day in WEEKDAYS}


class BusinessHours(TimeStampedModel):
    """A team's opening hours (``team`` empty: the desk's, for teams without their own).

    ``week``: ``{"mon": [["09:00", "17:00"]], ...}``, local times in ``time_zone``; a day with no
    interval is closed. Holidays and exceptions are ``BusinessHoursException`` rows.
    """

    team = models.OneToOneField(
        "supportdesk.Team",
        null=True,
        blank=True,
        on_delete=models.CASCADE,
        related_name="business_hours",
    )
    time_zone = models.CharField(max_length=64, default="UTC")
    week = models.JSONField(default=default_week)

    class Meta:
        constraints = [
            # business_hours_for: one desk schedule (team empty).
            models.UniqueConstraint(
                fields=["time_zone"],
                condition=Q(team__isnull=True),
                name="routing_businesshours_one_desk",
            ),
        ]

    def __str__(self) -> str:
        return f"Hours of {self.team or 'the desk'}"


class BusinessHoursException(models.Model):
    """A holiday (closed all day) or a day with other hours than the week's."""

    hours = models.ForeignKey(BusinessHours, on_delete=models.CASCADE, related_name="exceptions")
    date = models.DateField()
    name = models.CharField(max_length=100, blank=True)
    # Empty: closed all day (a holiday). Otherwise open from ``opens`` to ``closes``.
    opens = models.TimeField(null=True, blank=True)
    closes = models.TimeField(null=True, blank=True)

    class Meta:
        ordering = ["date"]
        constraints = [
            models.UniqueConstraint(fields=["hours", "date"], name="routing_exception_one_per_day"),
            models.CheckConstraint(
                condition=Q(opens__isnull=True, closes__isnull=True)
                | Q(opens__isnull=False, closes__isnull=False, opens__lt=models.F("closes")),
                name="routing_exception_hours_valid",
            ),
        ]

    def __str__(self) -> str:
        return f"{self.date} {self.name}"


class BusinessInterval(models.Model):
    """One opening interval of a team's effective hours (``team_key`` 0: conversations without
    a team), with the business seconds of that team's earlier intervals (``before_seconds``)."""

    team_key = models.IntegerField()
    opens_at = models.DateTimeField()
    closes_at = models.DateTimeField()
    before_seconds = models.BigIntegerField()

    class Meta:
        indexes = [
            # business_clock: the last interval of a team opening at or before an instant.
            models.Index(fields=["team_key", "-opens_at"], name="routing_interval_clock"),
        ]

    def __str__(self) -> str:
        return f"{self.team_key}: {self.opens_at:%Y-%m-%d %H:%M}-{self.closes_at:%H:%M}"


# A promise's priority: one of the conversation priorities, or "" for any other.
PROMISE_PRIORITY_CHOICES = [("", "Any priority"), *ConversationPriority.choices]


class Promise(TimeStampedModel):
    """The reply time promised to customers on a channel, for a priority ("" = any other)."""

    channel_kind = models.CharField(max_length=10, choices=ChannelKind.choices)
    priority = models.CharField(max_length=10, choices=ConversationPriority.choices, blank=True)
    # Business seconds within which the customer is answered.
    reply_seconds = models.PositiveIntegerField()

    class Meta:
        ordering = ["channel_kind", "priority"]
        constraints = [
            models.UniqueConstraint(
                fields=["channel_kind", "priority"], name="routing_promise_one_per_pair"
            ),
            choices_check("channel_kind", ChannelKind, name="routing_promise_channel_valid"),
            choices_check(
                "priority", ConversationPriority, name="routing_promise_priority_valid", blank=True
            ),
        ]

    def __str__(self) -> str:
        return f"{self.channel_kind}/{self.priority or 'any'}: {self.reply_seconds}s"


class AvailabilityStatus(models.TextChoices):
    AVAILABLE = "available", "Available"
    BUSY = "busy", "Busy"
    AWAY = "away", "Away"


class Availability(models.Model):
    """What an agent says about themself; no row means available."""

    Status = AvailabilityStatus

    user = models.OneToOneField(
        settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="availability"
    )
    status = models.CharField(
        max_length=10, choices=Status.choices, default=AvailabilityStatus.AVAILABLE
    )
    # Away outside the hours of their team (their first team with hours, else the desk's).
    follows_hours = models.BooleanField(default=True)
    changed_at = models.DateTimeField(default=timezone.now)

    class Meta:
        constraints = [
            choices_check("status", AvailabilityStatus, name="routing_availability_status_valid"),
        ]

    def __str__(self) -> str:
        return f"{self.user}: {self.status}"


class RoutingMode(models.TextChoices):
    MANUAL = "manual", "Manual (agents take the next one)"
    ROUND_ROBIN = "round_robin", "Round-robin among available agents"
    LEAST_LOADED = "least_loaded", "Least-loaded among available agents"


class TeamRouting(TimeStampedModel):
    """How a team's new conversations reach an agent. Its row is the lock every assignment of
    the team takes (``select_for_update``), so concurrent ingestion never over-assigns."""

    Mode = RoutingMode

    team = models.OneToOneField(
        "supportdesk.Team", on_delete=models.CASCADE, related_name="routing"
    )
    mode = models.CharField(max_length=20, choices=Mode.choices, default=RoutingMode.MANUAL)
    # Most open conversations an agent is given by routing (0: no cap).
    cap = models.PositiveIntegerField(default=0)
    # When an agent goes away, their new and open conversations go back to the pool.
    return_when_away = models.BooleanField(default=False)
    # Round-robin's pointer: the agent who was given the last one.
    last_agent = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )

    class Meta:
        constraints = [
            choices_check("mode", RoutingMode, name="routing_teamrouting_mode_valid"),
        ]

    def __str__(self) -> str:
        return f"{self.team}: {self.mode}"


class RuleTrigger(models.TextChoices):
    INGESTED = "ingested", "A new conversation arrives"
    REOPENED = "reopened", "A conversation is reopened"
    NO_REPLY = "no_reply", "No reply for some business hours"


class Rule(TimeStampedModel):
    """An ordered rule: when ``trigger`` happens and every condition holds, apply the actions.

    ``conditions`` (all optional, all must hold): ``channel_kinds``, ``mailbox_ids`` (channels),
    ``customer_ids``, ``organisation_ids``, ``tags`` (any of), ``priorities``, ``words`` (any of,
    in the subject or the customer's message), ``time_from``/``time_to`` ("HH:MM", the desk's
    time zone; across midnight when from > to).
    ``actions``: ``team_id``, ``add_tags``, ``priority``, ``assign_id``, ``note``.
    """

    Trigger = RuleTrigger

    name = models.CharField(max_length=100)
    position = models.PositiveIntegerField(default=0)
    is_active = models.BooleanField(default=True)
    trigger = models.CharField(max_length=20, choices=Trigger.choices, default=RuleTrigger.INGESTED)
    no_reply_hours = models.PositiveIntegerField(null=True, blank=True)
    conditions = models.JSONField(default=dict, blank=True)
    actions = models.JSONField(default=dict, blank=True)
    stop_after = models.BooleanField(default=False)
    created_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    applied_count = models.PositiveIntegerField(default=0)
    failed_count = models.PositiveIntegerField(default=0)
    last_error = models.TextField(blank=True)
    last_error_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["position", "id"]
        constraints = [
            choices_check("trigger", RuleTrigger, name="routing_rule_trigger_valid"),
            models.CheckConstraint(
                condition=~Q(trigger="no_reply") | Q(no_reply_hours__gte=1),
                name="routing_rule_no_reply_hours",
            ),
        ]

    def __str__(self) -> str:
        return self.name
