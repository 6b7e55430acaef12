"""Metrics models: daily facts, scorecards, targets, recompute jobs (``facts.py``).

QA, ideas, cancellations, check-ins and the pulse are the quality app's (``quality.models``).
"""

from metrics.models.facts import (
    TARGETABLE_METRICS,
    DailyFact,
    DirtyDay,
    DurationBucket,
    FactDay,
    FactWeek,
    RecomputeJob,
    SourceWatermark,
    Target,
    TopicFact,
    WeeklyDuration,
    WeeklyFact,
)

__all__ = [
    "TARGETABLE_METRICS",
    "DailyFact",
    "DirtyDay",
    "DurationBucket",
    "FactDay",
    "FactWeek",
    "RecomputeJob",
    "SourceWatermark",
    "Target",
    "TopicFact",
    "WeeklyDuration",
    "WeeklyFact",
]
