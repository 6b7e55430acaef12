"""Metrics models, one module per area; each module's models are imported here.

- ``facts.py``: daily facts, scorecards, targets, recompute jobs (issue 5).
- ``qa.py``: QA rubrics, samples and reviews; ideas; cancellation reasons; check-ins; agent pulse
  (issue 6).
"""

from metrics.models.facts import (
    TARGETABLE_METRICS,
    DailyFact,
    DirtyDay,
    DurationBucket,
    FactDay,
    RecomputeJob,
    SourceWatermark,
    Target,
)
from metrics.models.qa import (
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

__all__ = [
    "TARGETABLE_METRICS",
    "Calibration",
    "Cancellation",
    "CancellationReason",
    "CheckIn",
    "CheckInRule",
    "Criterion",
    "DailyFact",
    "DirtyDay",
    "DurationBucket",
    "FactDay",
    "Idea",
    "IdeaMention",
    "PulseAnswer",
    "PulseResponse",
    "PulseWeek",
    "QAAnswer",
    "QAReview",
    "QASample",
    "RecomputeJob",
    "Rubric",
    "SourceWatermark",
    "Target",
]
