"""Daily facts behind every scorecard, and the bookkeeping of their recomputation.

A scorecard for a period ``[from, to)`` is assembled by summing daily rows; nothing is computed
from the source tables on request. Each fact row holds one metric's numerator and denominator for
one local day and one finest-grain attribution cell (team, agent, channel kind), so any grouping
(desk, team, agent, channel) is a ``SUM ... GROUP BY`` over it and rates come out exact. Durations
are stored as log-spaced histograms (``DurationBucket``) whose buckets are 2% wide, so medians and
p90s assembled from them are within 1% of the exact value.
"""

from __future__ import annotations

from django.conf import settings
from django.db import models
from django.db.models import Q
from django.utils import timezone

from supportdesk.models import TimeStampedModel, choices_check


class FactCell(models.Model):
    """The attribution cell every fact row is counted in: a metric for a team, an agent and a
    channel kind (any of them empty). The rows differ in their period (a day, a week) and in
    what they count (a numerator and denominator, or a histogram bucket)."""

    metric = models.CharField(max_length=40)
    team = models.ForeignKey(
        "supportdesk.Team", null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    agent = models.ForeignKey(
        settings.AUTH_USER_MODEL,
        null=True,
        blank=True,
        on_delete=models.SET_NULL,
        related_name="+",
    )
    channel_kind = models.CharField(max_length=10, blank=True)

    class Meta:
        abstract = True


class DailyFact(FactCell):
    """One metric's counts for a day and an attribution cell. See ``metrics.facts`` for metrics."""

    day = models.DateField()
    numerator = models.BigIntegerField(default=0)
    denominator = models.BigIntegerField(default=0)

    class Meta:
        ordering = ["day", "metric"]
        indexes = [
            # scorecard_assemble / trend reads: every fact of a period, grouped by the caller.
            models.Index(fields=["day", "metric"], name="metrics_fact_day_metric"),
            # Agent pages: one agent's facts over a period.
            models.Index(fields=["agent", "day"], name="metrics_fact_agent_day"),
            # Team scorecards and a manager's dashboard: the team's facts over a period.
            models.Index(fields=["team", "day"], name="metrics_fact_team_day"),
        ]
        constraints = [
            models.CheckConstraint(
                condition=Q(denominator__gte=0), name="metrics_dailyfact_denominator_nonneg"
            ),
        ]

    def __str__(self) -> str:
        return f"{self.day} {self.metric} {self.numerator}/{self.denominator}"


class TopicFact(FactCell):
    """One outcome metric's counts for a day, a topic (tag) and an attribution cell.

    The outcomes by topic (``group_by=tag``): computed with the daily facts from the same solve
    flags, one row per tag the solved conversation carries, so a conversation with two tags
    counts in both topics (and the topics do not add up to the desk).
    """

    day = models.DateField()
    tag = models.ForeignKey("tickets.Tag", on_delete=models.CASCADE, related_name="+")
    numerator = models.BigIntegerField(default=0)
    denominator = models.BigIntegerField(default=0)

    class Meta:
        ordering = ["day", "metric"]
        indexes = [
            # scorecard_groups(group_by="tag") and the dashboard's topic table: a period's rows.
            models.Index(fields=["day", "metric"], name="metrics_topicfact_day_metric"),
        ]
        constraints = [
            models.CheckConstraint(
                condition=Q(denominator__gte=0), name="metrics_topicfact_denominator_nonneg"
            ),
        ]

    def __str__(self) -> str:
        return f"{self.day} {self.metric} tag {self.tag_id} {self.numerator}/{self.denominator}"


class DurationBucket(FactCell):
    """How many samples of a duration metric fell into one 2%-wide bucket on a day."""

    day = models.DateField()
    # 0 holds durations under one second; bucket b >= 1 holds [1.02**(b-1), 1.02**b) seconds.
    bucket = models.PositiveIntegerField()
    count = models.PositiveIntegerField()

    class Meta:
        ordering = ["day", "metric", "bucket"]
        indexes = [
            # scorecard_assemble: the histogram of each duration metric over a period.
            models.Index(fields=["day", "metric"], name="metrics_duration_day_metric"),
            models.Index(fields=["team", "day"], name="metrics_duration_team_day"),
        ]

    def __str__(self) -> str:
        return f"{self.day} {self.metric} b{self.bucket} x{self.count}"


class FactDay(models.Model):
    """One row per computed day: its lock (concurrent recomputes of a day run one after the
    other) and when it was last computed (the scorecard's ``computed_at``)."""

    day = models.DateField(unique=True)
    computed_at = models.DateTimeField(null=True, blank=True)
    # Bumped by every recompute of the day: cached scorecards are keyed by the versions of
    # their days, so two recomputes within one clock tick still invalidate them.
    version = models.PositiveBigIntegerField(default=0)

    class Meta:
        ordering = ["day"]

    def __str__(self) -> str:
        return f"{self.day} computed {self.computed_at}"


class WeeklyFact(FactCell):
    """The ``DailyFact`` rows of one settled Monday-to-Sunday week, summed per cell.

    Built by ``facts_roll_up_weeks`` from the week's 7 days; read in their place only while the
    week's ``FactWeek.days_version`` still equals the sum of its days' ``FactDay.version`` (see
    ``metrics.selectors``), so a roll-up that a recompute made stale is never read.
    """

    week = models.DateField()  # the Monday
    numerator = models.BigIntegerField(default=0)
    denominator = models.BigIntegerField(default=0)

    class Meta:
        ordering = ["week", "metric"]
        indexes = [
            # scorecard_groups / weekly_trend: the rolled weeks of a period; facts_roll_up_weeks'
            # DELETE of a week.
            models.Index(fields=["week", "metric"], name="metrics_weekfact_week_metric"),
            # Agent pages: one agent's rolled weeks.
            models.Index(fields=["agent", "week"], name="metrics_weekfact_agent_week"),
            # Team scorecards and a manager's dashboard: the team's rolled weeks.
            models.Index(fields=["team", "week"], name="metrics_weekfact_team_week"),
        ]
        constraints = [
            models.CheckConstraint(
                condition=Q(denominator__gte=0), name="metrics_weeklyfact_denominator_nonneg"
            ),
        ]

    def __str__(self) -> str:
        return f"week {self.week} {self.metric} {self.numerator}/{self.denominator}"


class WeeklyDuration(FactCell):
    """The ``DurationBucket`` rows of one settled week, summed per cell and bucket (see
    ``WeeklyFact``)."""

    week = models.DateField()  # the Monday
    bucket = models.PositiveIntegerField()
    count = models.BigIntegerField()

    class Meta:
        ordering = ["week", "metric", "bucket"]
        indexes = [
            # scorecard_groups / weekly_trend: the histograms of a period's rolled weeks.
            models.Index(fields=["week", "metric"], name="metrics_weekdur_week_metric"),
            models.Index(fields=["team", "week"], name="metrics_weekdur_team_week"),
        ]

    def __str__(self) -> str:
        return f"week {self.week} {self.metric} b{self.bucket} x{self.count}"


class FactWeek(models.Model):
    """One row per rolled week: the sum of the 7 ``FactDay.version`` values its ``WeeklyFact``
    and ``WeeklyDuration`` rows were built from. Versions only grow, so the sum changes with
    any recompute of one of the days: the readers use the roll-up only while it is equal."""

    week = models.DateField(unique=True)  # the Monday
    days_version = models.BigIntegerField()
    rolled_at = models.DateTimeField()

    class Meta:
        ordering = ["week"]

    def __str__(self) -> str:
        return f"week {self.week} rolled at {self.rolled_at} (days version {self.days_version})"


class DirtyDay(models.Model):
    """A day whose facts an event changed; beat's ``facts_recompute_dirty_task`` claims it.

    A burst of events on one day keeps a single row (unique day): the day is recomputed once,
    after the burst settles (``marked_at`` older than the debounce), or at the latest
    ``DIRTY_MAX_WAIT`` after ``first_marked_at``.
    """

    day = models.DateField(unique=True)
    first_marked_at = models.DateTimeField(default=timezone.now)
    marked_at = models.DateTimeField(default=timezone.now)

    class Meta:
        ordering = ["day"]

    def __str__(self) -> str:
        return f"dirty {self.day}"


class RecomputeJobState(models.TextChoices):
    QUEUED = "queued", "Queued"
    RUNNING = "running", "Running"
    DONE = "done", "Done"
    FAILED = "failed", "Failed"


class RecomputeJob(TimeStampedModel):
    """An on-demand or nightly recompute of a range of days; its progress is shown in the page
    and by ``GET /api/v1/tasks/{id}/``."""

    State = RecomputeJobState

    requested_by = models.ForeignKey(
        settings.AUTH_USER_MODEL,
        null=True,
        blank=True,
        on_delete=models.SET_NULL,
        related_name="+",
    )
    date_from = models.DateField()
    date_to = models.DateField()
    # The first day not yet computed; the job runs in chunks and chains itself.
    next_day = models.DateField()
    state = models.CharField(max_length=10, choices=State.choices, default=State.QUEUED)
    days_total = models.PositiveIntegerField()
    days_done = models.PositiveIntegerField(default=0)
    error = models.TextField(blank=True)
    finished_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["-created_at"]
        constraints = [
            models.CheckConstraint(
                condition=Q(date_to__gt=models.F("date_from")),
                name="metrics_recomputejob_range_not_empty",
            ),
            choices_check("state", RecomputeJobState, name="metrics_recomputejob_state_valid"),
        ]

    def __str__(self) -> str:
        return f"recompute {self.date_from}..{self.date_to} {self.state}"

    @property
    def progress(self) -> float:
        if self.state == self.State.DONE:
            return 1.0
        return round(self.days_done / self.days_total, 4) if self.days_total else 0.0


# Targets may be set on these keys only (docs/metrics.md: outcome and connection, never speed).
TARGETABLE_METRICS = (
    "resolution_rate",
    "partial_resolution_rate",
    "customer_fcr",
    "internal_fcr",
    "resolution_gap",
    "reopen_rate",
    "repeat_contact_rate",
    "unconfirmed_rate",
    "csat",
    "csat_mean",
    "nps",
    "survey_response_rate",
    "comment_rate",
)


class Target(TimeStampedModel):
    """A manager's target for an outcome or connection metric, desk-wide or for one team."""

    metric = models.CharField(max_length=40)
    team = models.ForeignKey(
        "supportdesk.Team", null=True, blank=True, on_delete=models.CASCADE, related_name="+"
    )
    value = models.FloatField()
    set_by = models.ForeignKey(
        settings.AUTH_USER_MODEL,
        null=True,
        blank=True,
        on_delete=models.SET_NULL,
        related_name="+",
    )

    class Meta:
        ordering = ["metric"]
        constraints = [
            models.CheckConstraint(
                condition=Q(metric__in=TARGETABLE_METRICS), name="metrics_target_not_speed"
            ),
            models.UniqueConstraint(
                fields=["metric", "team"], name="metrics_target_unique_metric_team"
            ),
            models.UniqueConstraint(
                fields=["metric"],
                condition=Q(team__isnull=True),
                name="metrics_target_unique_desk_metric",
            ),
        ]

    def __str__(self) -> str:
        return f"{self.metric} target {self.value}"


class SourceWatermark(models.Model):
    """How far ``facts_mark_dirty_from_sources`` has looked into a source table that records no
    tickets event (survey sends and answers, QA reviews): rows changed after ``seen_until``
    mark their solve's day dirty."""

    name = models.CharField(max_length=40, unique=True)
    seen_until = models.DateTimeField()

    class Meta:
        ordering = ["name"]

    def __str__(self) -> str:
        return f"{self.name} seen until {self.seen_until}"
