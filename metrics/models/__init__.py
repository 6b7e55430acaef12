"""Metrics models, one module per area; each module's models are imported here.

- ``facts.py``: daily facts, scorecards, targets, recompute jobs (issue 5).
- ``qa.py``: QA rubrics, samples and reviews; ideas; cancellation reasons; check-ins; agent pulse
  (issue 6).
"""

from metrics.models.qa import (  # noqa: F401
    Calibration,
    Cancellation,
    CancellationReason,
    CheckIn,
    CheckInRule,
    Criterion,
    Idea,
    IdeaMention,
    PulseAnswer,
    PulseResponse,
    PulseWeek,
    QAAnswer,
    QAReview,
    QASample,
    Rubric,
)
