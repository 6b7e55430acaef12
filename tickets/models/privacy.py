"""Retention: how long raw mail and files are kept, when closed conversations are anonymised,
and the nightly run that applies it (``tickets.services.privacy``)."""

from __future__ import annotations

from django.conf import settings
from django.db import models
from django.utils import timezone

from supportdesk.models import choices_check


class RetentionPolicy(models.Model):
    """The desk's retention settings: one row (pk 1), changed by admins on /privacy/retention/.

    A number of days counts from a message's arrival (raw MIME, attachments) or a conversation's
    close (anonymisation); empty keeps for ever. Figures never change: only text and files go.
    """

    raw_mime_days = models.PositiveIntegerField(null=True, blank=True)
    attachment_days = models.PositiveIntegerField(null=True, blank=True)
    anonymise_closed_days = models.PositiveIntegerField(null=True, blank=True)
    updated_at = models.DateTimeField(default=timezone.now)
    updated_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )

    class Meta:
        verbose_name_plural = "retention policy"

    def __str__(self) -> str:
        return "Retention policy"


class RetentionPhase(models.TextChoices):
    RAW_MIME = "raw_mime", "Raw mail"
    ATTACHMENTS = "attachments", "Attachments"
    ANONYMISE = "anonymise", "Closed conversations"
    DONE = "done", "Done"


class RetentionRunState(models.TextChoices):
    RUNNING = "running", "Running"
    DONE = "done", "Done"
    FAILED = "failed", "Failed"


class RetentionRun(models.Model):
    """One nightly application of the policy, resumable: it works in batches, in id order, and
    records after each batch where it is; a run cut short carries on from there next time."""

    Phase = RetentionPhase
    State = RetentionRunState

    started_at = models.DateTimeField(default=timezone.now)
    finished_at = models.DateTimeField(null=True, blank=True)
    state = models.CharField(
        max_length=10, choices=RetentionRunState.choices, default=RetentionRunState.RUNNING
    )
    phase = models.CharField(
        max_length=12, choices=RetentionPhase.choices, default=RetentionPhase.RAW_MIME
    )
    # The cut-offs are fixed when the run starts, so a resumed run finishes the same work.
    raw_mime_before = models.DateTimeField(null=True, blank=True)
    attachments_before = models.DateTimeField(null=True, blank=True)
    closed_before = models.DateTimeField(null=True, blank=True)
    # The last row id done in the current phase.
    cursor = models.BigIntegerField(default=0)
    # Rows to do in each phase when the run started, and rows done.
    total = models.PositiveIntegerField(default=0)
    done = models.PositiveIntegerField(default=0)
    raw_mime_cleared = models.PositiveIntegerField(default=0)
    attachments_deleted = models.PositiveIntegerField(default=0)
    conversations_anonymised = models.PositiveIntegerField(default=0)
    error = models.TextField(blank=True)

    class Meta:
        ordering = ["-started_at", "-id"]
        constraints = [
            choices_check("state", RetentionRunState, name="tickets_retentionrun_state_valid"),
            choices_check("phase", RetentionPhase, name="tickets_retentionrun_phase_valid"),
            # At most one run at a time.
            models.UniqueConstraint(
                fields=["state"],
                condition=models.Q(state="running"),
                name="tickets_retentionrun_one_running",
            ),
        ]

    def __str__(self) -> str:
        return f"Retention run {self.started_at:%Y-%m-%d %H:%M} ({self.state})"

    @property
    def progress(self) -> float:
        if self.state == RetentionRunState.DONE:
            return 1.0
        return round(self.done / self.total, 3) if self.total else 0.0
