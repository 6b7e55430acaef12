"""QA rubrics, samples and reviews; customer ideas; cancellation reasons; check-ins; agent pulse.

Every write goes through ``quality.services``; reads with joins are in ``quality.selectors``. The
tables keep the names they had when these models lived in the metrics app (``db_table``): the move
was a change of Django's state only (quality/migrations/0001_initial.py), no row was copied.
"""

from __future__ import annotations

import uuid

from django.conf import settings
from django.db import models
from django.db.models import F, Q
from django.utils import timezone

from supportdesk.models import User, choices_check

# --- QA rubrics ---------------------------------------------------------------------------------


class Rubric(models.Model):
    """One version of a rubric. Editing publishes a new version; old reviews keep theirs."""

    name = models.CharField(max_length=100)
    version = models.PositiveIntegerField()
    is_current = models.BooleanField(default=True)
    created_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.PROTECT, related_name="+"
    )
    created_at = models.DateTimeField(default=timezone.now)

    class Meta:
        db_table = "metrics_rubric"  # the table it had in the metrics app
        ordering = ["name", "-version"]
        constraints = [
            models.UniqueConstraint(
                fields=["name", "version"], name="metrics_rubric_unique_version"
            ),
            # rubric_current: exactly one live version per rubric name.
            models.UniqueConstraint(
                fields=["name"], condition=Q(is_current=True), name="metrics_rubric_one_current"
            ),
        ]

    def __str__(self) -> str:
        return f"{self.name} v{self.version}"


class CriterionScale(models.TextChoices):
    YES_NO = "yes_no", "Yes / no"
    ONE_TO_THREE = "1_3", "1 to 3"
    ONE_TO_FIVE = "1_5", "1 to 5"


class Criterion(models.Model):
    Scale = CriterionScale

    # The lowest and highest value of each scale (yes/no is stored as 0/1).
    BOUNDS = {Scale.YES_NO: (0, 1), Scale.ONE_TO_THREE: (1, 3), Scale.ONE_TO_FIVE: (1, 5)}

    rubric = models.ForeignKey(Rubric, on_delete=models.PROTECT, related_name="criteria")
    position = models.PositiveSmallIntegerField(default=0)
    name = models.CharField(max_length=120)
    description = models.CharField(max_length=500, blank=True)
    weight = models.PositiveSmallIntegerField(default=1)
    scale = models.CharField(max_length=6, choices=Scale.choices, default=Scale.YES_NO)
    allow_na = models.BooleanField(default=True)
    # A failed critical criterion (no, or the lowest value) makes the whole review score 0.
    critical = models.BooleanField(default=False)

    class Meta:
        db_table = "metrics_criterion"  # the table it had in the metrics app
        ordering = ["rubric", "position", "id"]
        constraints = [
            models.CheckConstraint(
                condition=Q(weight__gte=1) & Q(weight__lte=100),
                name="metrics_criterion_weight_range",
            ),
            models.UniqueConstraint(
                fields=["rubric", "name"], name="metrics_criterion_unique_name_per_rubric"
            ),
            choices_check("scale", CriterionScale, name="metrics_criterion_scale_valid"),
        ]

    def __str__(self) -> str:
        return self.name

    @property
    def bounds(self) -> tuple[int, int]:
        return self.BOUNDS[self.Scale(self.scale)]

    @property
    def choices(self) -> list[tuple[int, str]]:
        if self.scale == self.Scale.YES_NO:
            return [(1, "Yes"), (0, "No")]
        low, high = self.bounds
        return [(value, str(value)) for value in range(high, low - 1, -1)]


# --- QA samples and reviews -----------------------------------------------------------------------


class QASample(models.Model):
    """The weekly draw: which solved conversations of each agent get reviewed, from which seed."""

    week_start = models.DateField()
    seed = models.CharField(max_length=100)
    size_per_agent = models.PositiveSmallIntegerField()
    created_at = models.DateTimeField(default=timezone.now)

    class Meta:
        db_table = "metrics_qasample"  # the table it had in the metrics app
        ordering = ["-week_start"]
        constraints = [
            # The beat task may run twice: the second run finds the week already drawn.
            models.UniqueConstraint(fields=["week_start"], name="metrics_qasample_unique_week"),
        ]

    def __str__(self) -> str:
        return f"QA sample of {self.week_start}"


class QAReviewKind(models.TextChoices):
    SAMPLE = "sample", "Weekly sample"
    CALIBRATION = "calibration", "Calibration"
    SECOND = "second", "Second review (dispute)"


class QAReviewState(models.TextChoices):
    PENDING = "pending", "To review"
    SUBMITTED = "submitted", "Reviewed"
    ACKNOWLEDGED = "acknowledged", "Acknowledged"
    DISPUTED = "disputed", "Disputed"
    REPLACED = "replaced", "Replaced"


class QAReview(models.Model):
    """One reviewer scoring one conversation of one agent against one rubric version."""

    Kind = QAReviewKind

    State = QAReviewState

    kind = models.CharField(max_length=12, choices=Kind.choices, default=Kind.SAMPLE)
    state = models.CharField(max_length=12, choices=State.choices, default=State.PENDING)
    sample = models.ForeignKey(
        QASample, null=True, blank=True, on_delete=models.PROTECT, related_name="reviews"
    )
    calibration = models.ForeignKey(
        "Calibration", null=True, blank=True, on_delete=models.PROTECT, related_name="reviews"
    )
    conversation = models.ForeignKey(
        "tickets.Conversation", on_delete=models.PROTECT, related_name="qa_reviews"
    )
    # The solve this review is about; its date, channel and team attribute the score.
    solve_event = models.ForeignKey(
        "tickets.Event", null=True, blank=True, on_delete=models.PROTECT, related_name="+"
    )
    solved_at = models.DateTimeField()
    channel_kind = models.CharField(max_length=10, blank=True)
    team = models.ForeignKey(
        "supportdesk.Team", null=True, blank=True, on_delete=models.PROTECT, related_name="+"
    )
    agent = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.PROTECT, related_name="qa_reviews_received"
    )
    reviewer = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.PROTECT, related_name="qa_reviews_given"
    )
    rubric = models.ForeignKey(Rubric, on_delete=models.PROTECT, related_name="reviews")
    # 0-100, NULL until submitted or when every criterion was N/A.
    score = models.DecimalField(max_digits=5, decimal_places=2, null=True, blank=True)
    critical_failed = models.BooleanField(default=False)
    comment = models.TextField(blank=True)
    submitted_at = models.DateTimeField(null=True, blank=True)
    # The agent's answer.
    agent_comment = models.TextField(blank=True)
    responded_at = models.DateTimeField(null=True, blank=True)
    # A dispute creates a second review pointing here; once submitted it replaces this one's score.
    second_of = models.OneToOneField(
        "self", null=True, blank=True, on_delete=models.PROTECT, related_name="second_review"
    )
    # Replacement log: why this sampled conversation was swapped, by whom, for which review.
    replaced_reason = models.CharField(max_length=500, blank=True)
    replaced_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.PROTECT, related_name="+"
    )
    replaced_at = models.DateTimeField(null=True, blank=True)
    replacement = models.OneToOneField(
        "self", null=True, blank=True, on_delete=models.PROTECT, related_name="replaces"
    )
    created_at = models.DateTimeField(default=timezone.now)
    # Not a column: selectors.qa_disagreements sets the customer's word ("resolved", ...).
    customer_outcome: str | None

    class Meta:
        db_table = "metrics_qareview"  # the table it had in the metrics app
        ordering = ["-created_at", "-id"]
        indexes = [
            # qa_review_list_to_do: a reviewer's pending reviews.
            models.Index(fields=["reviewer", "state"], name="metrics_qareview_reviewer"),
            # qa_review_list_for_agent and the agent.home panel.
            models.Index(fields=["agent", "state"], name="metrics_qareview_agent"),
            # qa_scores: submitted reviews by solve date.
            models.Index(
                fields=["solved_at"],
                condition=Q(submitted_at__isnull=False),
                name="metrics_qareview_scored",
            ),
            # The conversation.sidebar panel.
            models.Index(fields=["conversation"], name="metrics_qareview_conversation"),
        ]
        constraints = [
            # Never review yourself.
            models.CheckConstraint(
                condition=~Q(agent=F("reviewer")), name="metrics_qareview_not_self"
            ),
            models.CheckConstraint(
                condition=Q(score__isnull=True) | (Q(score__gte=0) & Q(score__lte=100)),
                name="metrics_qareview_score_range",
            ),
            # A conversation is drawn once per sample (replacements draw another one).
            models.UniqueConstraint(
                fields=["sample", "conversation"],
                condition=Q(sample__isnull=False),
                name="metrics_qareview_unique_sample_conversation",
            ),
            models.UniqueConstraint(
                fields=["calibration", "reviewer"],
                condition=Q(calibration__isnull=False),
                name="metrics_qareview_unique_calibration_reviewer",
            ),
            choices_check("kind", QAReviewKind, name="metrics_qareview_kind_valid"),
            choices_check("state", QAReviewState, name="metrics_qareview_state_valid"),
        ]

    def __str__(self) -> str:
        return f"QA review #{self.pk} of #{self.conversation_id}"

    @property
    def is_submitted(self) -> bool:
        return self.submitted_at is not None


class QAAnswer(models.Model):
    """One criterion's value in a review; NULL value means N/A."""

    review = models.ForeignKey(QAReview, on_delete=models.CASCADE, related_name="answers")
    criterion = models.ForeignKey(Criterion, on_delete=models.PROTECT, related_name="answers")
    value = models.SmallIntegerField(null=True, blank=True)

    class Meta:
        db_table = "metrics_qaanswer"  # the table it had in the metrics app
        ordering = ["criterion__position", "criterion_id"]
        constraints = [
            models.UniqueConstraint(
                fields=["review", "criterion"], name="metrics_qaanswer_unique_criterion"
            ),
            models.CheckConstraint(
                condition=Q(value__isnull=True) | (Q(value__gte=0) & Q(value__lte=5)),
                name="metrics_qaanswer_value_range",
            ),
        ]

    def __str__(self) -> str:
        return f"{self.criterion_id}={self.value}"


class Calibration(models.Model):
    """Several reviewers score the same conversation to compare how they apply the rubric."""

    conversation = models.ForeignKey(
        "tickets.Conversation", on_delete=models.PROTECT, related_name="+"
    )
    rubric = models.ForeignKey(Rubric, on_delete=models.PROTECT, related_name="+")
    created_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.PROTECT, related_name="+"
    )
    created_at = models.DateTimeField(default=timezone.now)

    class Meta:
        db_table = "metrics_calibration"  # the table it had in the metrics app
        ordering = ["-created_at", "-id"]

    def __str__(self) -> str:
        return f"Calibration #{self.pk} on #{self.conversation_id}"


# --- Ideas ----------------------------------------------------------------------------------------


class IdeaStatus(models.TextChoices):
    NEW = "new", "New"
    UNDER_REVIEW = "under_review", "Under review"
    PLANNED = "planned", "Planned"
    SHIPPED = "shipped", "Shipped"
    DECLINED = "declined", "Declined"


class Idea(models.Model):
    Status = IdeaStatus

    OPEN_STATUSES = (Status.NEW, Status.UNDER_REVIEW, Status.PLANNED)

    title = models.CharField(max_length=200)
    status = models.CharField(max_length=12, choices=Status.choices, default=Status.NEW)
    created_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.PROTECT, related_name="ideas_created"
    )
    created_at = models.DateTimeField(default=timezone.now)
    status_changed_at = models.DateTimeField(default=timezone.now)
    # Not a column: the ideas page sets it from selectors.idea_credits (the agents who found it).
    credited: list[User]

    class Meta:
        db_table = "metrics_idea"  # the table it had in the metrics app
        ordering = ["-created_at", "-id"]
        indexes = [
            # idea_list: the board filtered by status.
            models.Index(fields=["status", "-created_at"], name="metrics_idea_status"),
        ]
        constraints = [
            choices_check("status", IdeaStatus, name="metrics_idea_status_valid"),
        ]

    def __str__(self) -> str:
        return self.title


class IdeaMention(models.Model):
    """A customer's message behind an idea, with the quote the agent picked."""

    idea = models.ForeignKey(Idea, on_delete=models.PROTECT, related_name="mentions")
    message = models.ForeignKey("tickets.Message", on_delete=models.PROTECT, related_name="+")
    conversation = models.ForeignKey(
        "tickets.Conversation", on_delete=models.PROTECT, related_name="+"
    )
    customer = models.ForeignKey("tickets.Customer", on_delete=models.PROTECT, related_name="+")
    quote = models.TextField()
    logged_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.PROTECT, related_name="idea_mentions"
    )
    created_at = models.DateTimeField(default=timezone.now)
    # Set when the customer was told the idea shipped (the reply that told them).
    notified_message = models.ForeignKey(
        "tickets.Message", null=True, blank=True, on_delete=models.PROTECT, related_name="+"
    )

    class Meta:
        db_table = "metrics_ideamention"  # the table it had in the metrics app
        ordering = ["created_at", "id"]
        indexes = [
            # ideas_for_customer: the conversation.sidebar panel.
            models.Index(fields=["customer"], name="metrics_ideamention_customer"),
            # ideas_captured: mentions logged in a period.
            models.Index(fields=["created_at"], name="metrics_ideamention_created"),
        ]
        constraints = [
            models.UniqueConstraint(
                fields=["idea", "message"], name="metrics_ideamention_unique_message"
            ),
        ]

    def __str__(self) -> str:
        return f"{self.customer_id} on idea {self.idea_id}"


# --- Cancellations -----------------------------------------------------------------------------------


class CancellationReason(models.Model):
    """The managed list of reasons a customer wants to cancel."""

    name = models.CharField(max_length=100, unique=True)
    is_active = models.BooleanField(default=True)
    position = models.PositiveSmallIntegerField(default=0)

    class Meta:
        db_table = "metrics_cancellationreason"  # the table it had in the metrics app
        ordering = ["position", "name"]

    def __str__(self) -> str:
        return self.name


class CancellationOutcome(models.TextChoices):
    PENDING = "pending", "Pending"
    SAVED = "saved", "Saved"
    CANCELLED = "cancelled", "Cancelled"


class Cancellation(models.Model):
    Outcome = CancellationOutcome

    conversation = models.OneToOneField(
        "tickets.Conversation", on_delete=models.PROTECT, related_name="+"
    )
    customer = models.ForeignKey("tickets.Customer", on_delete=models.PROTECT, related_name="+")
    reason = models.ForeignKey(CancellationReason, on_delete=models.PROTECT, related_name="+")
    note = models.TextField(blank=True)
    # The conversation's latest inbound channel when it was recorded (the report's channel).
    channel_kind = models.CharField(max_length=10, blank=True)
    team = models.ForeignKey(
        "supportdesk.Team", null=True, blank=True, on_delete=models.PROTECT, related_name="+"
    )
    outcome = models.CharField(max_length=10, choices=Outcome.choices, default=Outcome.PENDING)
    recorded_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.PROTECT, related_name="+"
    )
    created_at = models.DateTimeField(default=timezone.now)
    outcome_at = models.DateTimeField(null=True, blank=True)
    outcome_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.PROTECT, related_name="+"
    )

    class Meta:
        db_table = "metrics_cancellation"  # the table it had in the metrics app
        ordering = ["-created_at", "-id"]
        indexes = [
            # cancellation_report: rows of a period.
            models.Index(fields=["created_at"], name="metrics_cancellation_created"),
            # checkins_create_due: saved cancellations by the time they were saved.
            models.Index(
                fields=["outcome_at"], condition=Q(outcome="saved"), name="metrics_cancel_saved"
            ),
        ]
        constraints = [
            choices_check(
                "outcome", CancellationOutcome, name="metrics_cancellation_outcome_valid"
            ),
        ]

    def __str__(self) -> str:
        return f"{self.reason} ({self.outcome})"


# --- Check-ins -----------------------------------------------------------------------------------------


class CheckInTrigger(models.TextChoices):
    NOT_RESOLVED = "not_resolved", "Customer said not or partly resolved"
    HIGH_EFFORT = "high_effort", "High effort (3 contacts or more)"
    SAVED = "saved", "Cancellation saved"


class CheckInRule(models.Model):
    Trigger = CheckInTrigger

    trigger = models.CharField(max_length=15, choices=Trigger.choices, unique=True)
    days_after = models.PositiveSmallIntegerField(default=3)
    is_active = models.BooleanField(default=True)

    class Meta:
        constraints = [
            choices_check("trigger", CheckInTrigger, name="metrics_checkinrule_trigger_valid"),
        ]
        db_table = "metrics_checkinrule"  # the table it had in the metrics app
        ordering = ["trigger"]

    def __str__(self) -> str:
        return f"{self.get_trigger_display()} +{self.days_after}d"


class CheckInState(models.TextChoices):
    DUE = "due", "Due"
    SENT = "sent", "Sent"
    DISMISSED = "dismissed", "Dismissed"


class CheckIn(models.Model):
    State = CheckInState

    conversation = models.ForeignKey(
        "tickets.Conversation", on_delete=models.PROTECT, related_name="+"
    )
    trigger = models.CharField(max_length=15, choices=CheckInRule.Trigger.choices)
    agent = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.PROTECT, related_name="checkins"
    )
    due_at = models.DateTimeField()
    state = models.CharField(max_length=10, choices=State.choices, default=State.DUE)
    message = models.ForeignKey(
        "tickets.Message", null=True, blank=True, on_delete=models.PROTECT, related_name="+"
    )
    done_at = models.DateTimeField(null=True, blank=True)
    created_at = models.DateTimeField(default=timezone.now)

    class Meta:
        db_table = "metrics_checkin"  # the table it had in the metrics app
        ordering = ["due_at", "id"]
        indexes = [
            # checkin_list_for_agent and the agent.home panel: an agent's due check-ins.
            models.Index(fields=["agent", "state", "due_at"], name="metrics_checkin_agent_due"),
        ]
        constraints = [
            # The rules task runs every day over overlapping windows: one check-in per cause.
            models.UniqueConstraint(
                fields=["conversation", "trigger"], name="metrics_checkin_unique_trigger"
            ),
            choices_check("trigger", CheckInTrigger, name="metrics_checkin_trigger_valid"),
            choices_check("state", CheckInState, name="metrics_checkin_state_valid"),
        ]

    def __str__(self) -> str:
        return f"Check-in on #{self.conversation_id} ({self.trigger})"


# --- Agent pulse -------------------------------------------------------------------------------------


class PulseWeek(models.Model):
    """A week's pulse, opened by the weekly task (once: unique week)."""

    week_start = models.DateField(unique=True)
    opened_at = models.DateTimeField(default=timezone.now)

    class Meta:
        db_table = "metrics_pulseweek"  # the table it had in the metrics app
        ordering = ["-week_start"]

    def __str__(self) -> str:
        return f"Pulse of {self.week_start}"


class PulseResponse(models.Model):
    """Who answered a week (so they are asked once); holds no answer."""

    week = models.ForeignKey(PulseWeek, on_delete=models.CASCADE, related_name="responses")
    user = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="+")

    class Meta:
        db_table = "metrics_pulseresponse"  # the table it had in the metrics app
        constraints = [
            models.UniqueConstraint(fields=["week", "user"], name="metrics_pulseresponse_once"),
        ]

    def __str__(self) -> str:
        return f"{self.user_id} answered {self.week_id}"


class PulseNeed(models.TextChoices):
    YES = "yes", "Yes"
    PARTLY = "partly", "Partly"
    NO = "no", "No"


class PulseAnswer(models.Model):
    """An anonymous answer: no user, no timestamp, a random key (no insertion order to match).

    One row for the desk (``team`` NULL) and one per team the agent belonged to when answering.
    """

    Need = PulseNeed

    id = models.UUIDField(primary_key=True, default=uuid.uuid4, editable=False)
    week = models.ForeignKey(PulseWeek, on_delete=models.CASCADE, related_name="answers")
    team = models.ForeignKey(
        "supportdesk.Team", null=True, blank=True, on_delete=models.CASCADE, related_name="+"
    )
    week_rating = models.PositiveSmallIntegerField()
    has_what_needed = models.CharField(max_length=6, choices=Need.choices)
    comment = models.TextField(blank=True)

    class Meta:
        db_table = "metrics_pulseanswer"  # the table it had in the metrics app
        ordering = ["id"]
        indexes = [
            # pulse_summary: a week's answers per team.
            models.Index(fields=["week", "team"], name="metrics_pulseanswer_week_team"),
        ]
        constraints = [
            models.CheckConstraint(
                condition=Q(week_rating__gte=1) & Q(week_rating__lte=5),
                name="metrics_pulseanswer_rating_range",
            ),
            choices_check("has_what_needed", PulseNeed, name="metrics_pulseanswer_need_valid"),
        ]

    def __str__(self) -> str:
        return f"pulse answer {self.id}"
