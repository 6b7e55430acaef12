"""Resolution surveys: one per solve event, the customer's answer, unsubscribes and follow-ups.

Field names here are read by ``metrics`` (branch mx); keep them stable.
"""

from __future__ import annotations

import secrets

from django.conf import settings
from django.core.exceptions import ValidationError
from django.db import models
from django.db.models import Q
from django.utils import timezone

from supportdesk.models import choices_check


def _new_token_key() -> str:
    return secrets.token_urlsafe(24)


class SurveySettings(models.Model):
    """The admin's overrides of the environment defaults (a singleton, pk=1).

    A null field means "use the environment's value" (``SURVEY_*`` settings, docs/api.md).
    """

    delay_minutes = models.PositiveIntegerField(
        null=True, blank=True, help_text="Minutes after a solve before the survey goes out."
    )
    min_days_between = models.PositiveIntegerField(
        null=True, blank=True, help_text="No survey when the customer had one in this many days."
    )
    window_days = models.PositiveIntegerField(
        null=True, blank=True, help_text="Days a survey link stays valid."
    )
    reminder_days = models.PositiveIntegerField(
        null=True, blank=True, help_text="Days without an answer before the single reminder."
    )
    reminders_enabled = models.BooleanField(default=True)
    # Channel kinds (of the solve's last contact) whose solves are surveyed; empty = all.
    channels = models.JSONField(default=list, blank=True)
    # Fraction of eligible solves that get a survey (1.0 = every one).
    sampling_rate = models.FloatField(default=1.0)
    nps_interval_days = models.PositiveIntegerField(
        default=90, help_text="The NPS question is asked of a customer at most this often."
    )
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        verbose_name = "survey settings"
        verbose_name_plural = "survey settings"
        constraints = [
            models.CheckConstraint(condition=Q(pk=1), name="surveys_surveysettings_singleton"),
            models.CheckConstraint(
                condition=Q(sampling_rate__gte=0) & Q(sampling_rate__lte=1),
                name="surveys_surveysettings_sampling_rate_range",
            ),
            models.CheckConstraint(
                condition=Q(window_days__isnull=True) | Q(window_days__gte=1),
                name="surveys_surveysettings_window_days_min",
            ),
        ]

    def __str__(self) -> str:
        return "Survey settings"

    def clean(self) -> None:
        kinds = {"email", "chat", "social", "phone"}
        if not isinstance(self.channels, list) or not set(self.channels) <= kinds:
            raise ValidationError(
                {"channels": f"A list of channel kinds among {', '.join(sorted(kinds))}."}
            )


class SurveyStatus(models.TextChoices):
    SCHEDULED = "scheduled", "Scheduled"
    SENT = "sent", "Sent"
    CANCELLED = "cancelled", "Cancelled (the customer wrote again)"
    SKIPPED = "skipped", "Skipped"
    BOUNCED = "bounced", "Bounced"


class SurveySkipReason(models.TextChoices):
    NONE = "", "—"
    THROTTLED = "throttled", "Surveyed recently"
    UNSUBSCRIBED = "unsubscribed", "Unsubscribed"
    BOUNCED = "bounced", "Address bounced"
    AUTO_REPLY = "auto_reply", "Last contact was an auto-reply"
    NO_EMAIL = "no_email", "Customer has no email address"
    CHANNEL = "channel", "Channel not surveyed"
    SAMPLED_OUT = "sampled_out", "Not in the sample"
    STALE = "stale", "Solve older than the survey window"
    REOPENED = "reopened", "Reopened before the send"
    MAIL_CAP = "mail_cap", "Too much automatic mail to this address"


class SurveyVia(models.TextChoices):
    EMAIL = "email", "Email"
    CHAT = "chat", "Chat transcript"
    SOCIAL = "social", "Social message"


class Survey(models.Model):
    """The resolution survey of one solve event (at most one per solve event)."""

    Status = SurveyStatus

    SkipReason = SurveySkipReason

    Via = SurveyVia

    event = models.OneToOneField("tickets.Event", on_delete=models.PROTECT, related_name="survey")
    conversation = models.ForeignKey(
        "tickets.Conversation", on_delete=models.PROTECT, related_name="surveys"
    )
    # Follows customer merges (surveys.services.surveys_move_customer).
    customer = models.ForeignKey(
        "tickets.Customer", on_delete=models.PROTECT, related_name="surveys"
    )
    # Attribution copied from the solve event (docs/metrics.md, "Attribution").
    agent = models.ForeignKey(
        settings.AUTH_USER_MODEL,
        null=True,
        blank=True,
        on_delete=models.PROTECT,
        related_name="surveys",
    )
    team = models.ForeignKey(
        "supportdesk.Team", null=True, blank=True, on_delete=models.PROTECT, related_name="surveys"
    )
    channel_kind = models.CharField(max_length=10, blank=True)
    solved_at = models.DateTimeField()
    contacts_counted = models.PositiveIntegerField(default=0)

    status = models.CharField(max_length=10, choices=Status.choices, default=Status.SCHEDULED)
    skip_reason = models.CharField(
        max_length=20, choices=SkipReason.choices, blank=True, default=SkipReason.NONE
    )
    due_at = models.DateTimeField()
    # Where it went: the customer's email identity at send time.
    identity = models.ForeignKey(
        "tickets.Identity", null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    email = models.EmailField(blank=True)
    # How it reached the customer: by email, or (no deliverable email) as an outbound message on
    # the channel they wrote on, ``channel_message`` (its body holds the survey link).
    via = models.CharField(max_length=10, choices=Via.choices, blank=True)
    channel_message = models.ForeignKey(
        "tickets.Message", null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    # Whether the relationship (NPS) question is on this survey (decided when sent).
    asks_nps = models.BooleanField(default=False)
    # Exactly-once sending: a worker claims the send by a conditional UPDATE of this lease.
    send_claimed_at = models.DateTimeField(null=True, blank=True)
    send_attempts = models.PositiveIntegerField(default=0)
    sent_at = models.DateTimeField(null=True, blank=True)
    message_id = models.CharField(max_length=255, blank=True)
    reminder_claimed_at = models.DateTimeField(null=True, blank=True)
    reminded_at = models.DateTimeField(null=True, blank=True)
    # Set by the page's script (a browser a person uses), never by a plain GET: scanners open links.
    opened_at = models.DateTimeField(null=True, blank=True)
    bounced_at = models.DateTimeField(null=True, blank=True)
    cancelled_at = models.DateTimeField(null=True, blank=True)
    # Token data: the signed link carries (id, token_key); it expires at expires_at.
    token_key = models.CharField(max_length=64, unique=True, default=_new_token_key)
    expires_at = models.DateTimeField(null=True, blank=True)
    created_at = models.DateTimeField(default=timezone.now)

    class Meta:
        ordering = ["-solved_at", "-id"]
        indexes = [
            # surveys_send_due (beat): scheduled surveys whose due time has come.
            models.Index(
                fields=["due_at"], condition=Q(status="scheduled"), name="surveys_survey_due"
            ),
            # surveys_remind_due (beat): sent, unanswered, not reminded yet, by send time.
            models.Index(
                fields=["sent_at"],
                condition=Q(status="sent", reminded_at__isnull=True),
                name="surveys_survey_remind",
            ),
            # Throttle and NPS cadence: a customer's last sent surveys; latest response.
            models.Index(fields=["customer", "-sent_at"], name="surveys_survey_customer_sent"),
            # Message inbound cancels: the conversation's scheduled survey.
            models.Index(fields=["conversation", "status"], name="surveys_survey_conv_status"),
            # Responses per agent / team by solve date (selectors, metrics).
            models.Index(fields=["agent", "-solved_at"], name="surveys_survey_agent_solved"),
            models.Index(fields=["team", "-solved_at"], name="surveys_survey_team_solved"),
            # perf: facts_mark_dirty_from_sources (beat): surveys sent, bounced or cancelled since
            # its watermark.
            models.Index(fields=["sent_at"], name="surveys_survey_sent"),
            models.Index(
                fields=["bounced_at"],
                condition=Q(bounced_at__isnull=False),
                name="surveys_survey_bounced",
            ),
            models.Index(
                fields=["cancelled_at"],
                condition=Q(cancelled_at__isnull=False),
                name="surveys_survey_cancelled",
            ),
        ]
        constraints = [
            # A skipped survey says why; no other status carries a reason.
            models.CheckConstraint(
                condition=(Q(status="skipped") & ~Q(skip_reason=""))
                | (~Q(status="skipped") & Q(skip_reason="")),
                name="surveys_survey_skip_reason_iff_skipped",
            ),
            models.CheckConstraint(
                condition=~Q(status="sent") | Q(sent_at__isnull=False),
                name="surveys_survey_sent_has_sent_at",
            ),
            choices_check("status", SurveyStatus, name="surveys_survey_status_valid"),
            choices_check("skip_reason", SurveySkipReason, name="surveys_survey_skip_reason_valid"),
            choices_check("via", SurveyVia, name="surveys_survey_via_valid", blank=True),
        ]

    def __str__(self) -> str:
        return f"Survey #{self.pk} ({self.status}) of conversation #{self.conversation_id}"

    @property
    def is_expired(self) -> bool:
        return self.expires_at is not None and timezone.now() >= self.expires_at


class SurveyResolved(models.TextChoices):
    YES = "yes", "Yes"
    PARTLY = "partly", "Partly"
    NO = "no", "No"


class SurveyResponse(models.Model):
    """The customer's answer to one survey; answering again replaces it (one per survey)."""

    Resolved = SurveyResolved

    survey = models.ForeignKey(Survey, on_delete=models.CASCADE, related_name="responses")
    resolved = models.CharField(max_length=10, choices=Resolved.choices, blank=True)
    # "How many times did you contact us about it?" 1-5, 5 meaning five or more; null: no answer.
    contacts_declared = models.PositiveSmallIntegerField(null=True, blank=True)
    # Our own count at the solve (copied from the survey) for customer_fcr's fallback.
    contacts_counted = models.PositiveIntegerField(default=0)
    csat = models.PositiveSmallIntegerField(null=True, blank=True)
    nps = models.PositiveSmallIntegerField(null=True, blank=True)
    comment = models.TextField(blank=True)
    shout_out = models.BooleanField(default=False)
    needs_nothing_more = models.BooleanField(default=False)
    first_answered_at = models.DateTimeField(default=timezone.now)
    answered_at = models.DateTimeField(default=timezone.now)
    times_answered = models.PositiveIntegerField(default=1)
    # Once per survey, whatever the customer changes later: when an answer reopened the
    # conversation and told the agent, and when a shout-out reached the agent.
    escalated_at = models.DateTimeField(null=True, blank=True)
    shout_out_notified_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["-answered_at", "-id"]
        indexes = [
            # The responses list (API, staff pages) by answer time.
            models.Index(fields=["-answered_at"], name="surveys_response_answered"),
            # The agent's home panels: latest shout-outs and latest comments (rare rows).
            models.Index(
                fields=["-answered_at", "-id"],
                condition=Q(shout_out=True),
                name="surveys_response_shout_outs",
            ),
            models.Index(
                fields=["-answered_at", "-id"],
                condition=~Q(comment=""),
                name="surveys_response_comments",
            ),
        ]
        constraints = [
            models.UniqueConstraint(
                fields=["survey"], name="surveys_surveyresponse_one_per_survey"
            ),
            models.CheckConstraint(
                condition=Q(csat__isnull=True) | (Q(csat__gte=1) & Q(csat__lte=5)),
                name="surveys_surveyresponse_csat_range",
            ),
            models.CheckConstraint(
                condition=Q(nps__isnull=True) | Q(nps__lte=10),
                name="surveys_surveyresponse_nps_range",
            ),
            models.CheckConstraint(
                condition=Q(contacts_declared__isnull=True)
                | (Q(contacts_declared__gte=1) & Q(contacts_declared__lte=5)),
                name="surveys_surveyresponse_contacts_declared_range",
            ),
            choices_check(
                "resolved", SurveyResolved, name="surveys_surveyresponse_resolved_valid", blank=True
            ),
        ]

    def __str__(self) -> str:
        return f"Response to survey #{self.survey_id}: {self.resolved or '—'}"


class SurveyUnsubscribe(models.Model):
    """An address that asked for no more surveys (by the link or the List-Unsubscribe header).

    A customer surveyed on their chat or social channel (no email) unsubscribes with ``email``
    blank: the customer is not surveyed again on any channel."""

    email = models.EmailField(blank=True)
    customer = models.ForeignKey(
        "tickets.Customer", on_delete=models.PROTECT, related_name="survey_unsubscribes"
    )
    survey = models.ForeignKey(
        Survey, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    created_at = models.DateTimeField(default=timezone.now)

    class Meta:
        ordering = ["-created_at"]
        indexes = [
            # Skip rule: does this customer have any unsubscribe?
            models.Index(fields=["customer"], name="surveys_unsub_customer"),
        ]
        constraints = [
            models.UniqueConstraint(
                fields=["email"],
                condition=~Q(email=""),
                name="surveys_surveyunsubscribe_unique_email",
            ),
        ]

    def __str__(self) -> str:
        return self.email


class FollowUpReason(models.TextChoices):
    LOW_CSAT = "low_csat", "CSAT 1 to 2"
    DETRACTOR = "detractor", "NPS 0 to 6"


class FollowUpStatus(models.TextChoices):
    OPEN = "open", "Open"
    DONE = "done", "Done"


class FollowUp(models.Model):
    """Close the loop: a manager calls back a customer who gave a low CSAT or NPS."""

    Reason = FollowUpReason

    Status = FollowUpStatus

    survey = models.ForeignKey(Survey, on_delete=models.CASCADE, related_name="follow_ups")
    team = models.ForeignKey(
        "supportdesk.Team", null=True, blank=True, on_delete=models.PROTECT, related_name="+"
    )
    assignee = models.ForeignKey(
        settings.AUTH_USER_MODEL,
        null=True,
        blank=True,
        on_delete=models.PROTECT,
        related_name="survey_follow_ups",
    )
    reason = models.CharField(max_length=20, choices=Reason.choices)
    status = models.CharField(max_length=10, choices=Status.choices, default=Status.OPEN)
    note = models.TextField(blank=True)
    created_at = models.DateTimeField(default=timezone.now)
    closed_at = models.DateTimeField(null=True, blank=True)
    closed_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.PROTECT, related_name="+"
    )

    class Meta:
        ordering = ["-created_at", "-id"]
        indexes = [
            # A manager's open follow-ups, newest first.
            models.Index(
                fields=["assignee", "-created_at"],
                condition=Q(status="open"),
                name="surveys_followup_open",
            ),
        ]
        constraints = [
            # One follow-up per survey (answering again does not add another).
            models.UniqueConstraint(fields=["survey"], name="surveys_followup_one_per_survey"),
            choices_check("reason", FollowUpReason, name="surveys_followup_reason_valid"),
            choices_check("status", FollowUpStatus, name="surveys_followup_status_valid"),
        ]

    def __str__(self) -> str:
        return f"Follow-up of survey #{self.survey_id} ({self.status})"


class SurveyWording(models.Model):
    """An admin's wording of the survey page in one language (``surveys.services.wording``).

    Only the introduction under the title and the thank-you line are editable: the questions and
    their answers are the measuring instrument of every survey metric, and stay as built in
    (translated). Wording that asks for a score is refused when saved.
    """

    language = models.CharField(max_length=20, unique=True)
    intro = models.TextField(max_length=1000)
    thanks = models.TextField(max_length=1000, blank=True)
    updated_at = models.DateTimeField(auto_now=True)
    updated_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )

    class Meta:
        ordering = ["language"]

    def __str__(self) -> str:
        return f"Survey page wording ({self.language})"
