"""Pure arithmetic of scorecards: Wilson intervals, histogram quantiles, the metric objects.

No database here: ``metrics.selectors`` reads summed facts and hands them to ``build_metrics``.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import Any

from metrics.catalogue import INTERACTION_BUCKETS
from metrics.facts import bucket_value, interactions_fact

Z95 = 1.959963984540054
SMALL_N = 10  # below this a figure is greyed and never coloured


def wilson(successes: int, n: int, z: float = Z95) -> tuple[float, float] | None:
    """The 95% Wilson score interval of a proportion; None when ``n == 0``."""
    if n <= 0:
        return None
    p = successes / n
    denominator = 1 + z * z / n
    centre = (p + z * z / (2 * n)) / denominator
    half = z * math.sqrt(p * (1 - p) / n + z * z / (4 * n * n)) / denominator
    return (round(max(0.0, centre - half), 6), round(min(1.0, centre + half), 6))


def rate(numerator: int, denominator: int) -> dict[str, Any]:
    """``{"value", "n", "ci95"}`` as docs/metrics.md shows every rate."""
    return {
        "value": round(numerator / denominator, 6) if denominator else None,
        "n": denominator,
        "ci95": list(ci) if (ci := wilson(numerator, denominator)) else None,
    }


def difference(a: int, b: int, n: int) -> dict[str, Any]:
    """``a/n - b/n`` with Newcombe's square-and-add interval from the two Wilson intervals.

    The two proportions are over the same solves (positively correlated), so treating them as
    independent makes the interval a little wider than the paired one: conservative.
    """
    if not n:
        return {"value": None, "n": 0, "ci95": None, "internal_fcr": None, "customer_fcr": None}
    p1, p2 = a / n, b / n
    l1, u1 = wilson(a, n) or (0.0, 0.0)
    l2, u2 = wilson(b, n) or (0.0, 0.0)
    d = p1 - p2
    low = d - math.sqrt((p1 - l1) ** 2 + (u2 - p2) ** 2)
    high = d + math.sqrt((u1 - p1) ** 2 + (p2 - l2) ** 2)
    return {
        "value": round(d, 6),
        "n": n,
        "ci95": [round(max(-1.0, low), 6), round(min(1.0, high), 6)],
        "internal_fcr": round(p1, 6),
        "customer_fcr": round(p2, 6),
    }


def quantile(histogram: Mapping[int, int], q: float) -> float | None:
    """The ``q`` quantile (linear interpolation between closest ranks, like numpy's default)
    of the durations a histogram holds, each taken at its bucket's representative value."""
    total = sum(histogram.values())
    if total == 0:
        return None
    position = (total - 1) * q
    lower_rank, upper_rank = math.floor(position), math.ceil(position)
    lower = upper = None
    seen = 0
    for bucket in sorted(histogram):
        count = histogram[bucket]
        if lower is None and lower_rank < seen + count:
            lower = bucket_value(bucket)
        if upper_rank < seen + count:
            upper = bucket_value(bucket)
            break
        seen += count
    assert lower is not None
    assert upper is not None
    value = lower + (upper - lower) * (position - lower_rank)
    return round(value, 1)


def duration(histogram: Mapping[int, int]) -> dict[str, Any]:
    """A duration metric's ``{"median", "p90", "n"}`` from its histogram."""
    return {
        "median": quantile(histogram, 0.5),
        "p90": quantile(histogram, 0.9),
        "n": sum(histogram.values()),
    }


# The quantiles a duration metric reports (``duration``), in the order of ``ranked_duration``'s
# bucket pairs.
DURATION_QUANTILES = (0.5, 0.9)


def ranked_duration(n: int, ranks: tuple[int | None, ...]) -> dict[str, Any]:
    """``duration`` of a histogram of ``n`` samples, from the buckets holding the ranks each
    quantile interpolates between: ``(lower, upper)`` for the median, then for the p90 (the
    database finds them without sending the histogram: ``metrics.selectors._durations``).
    Equal to ``duration`` of the whole histogram."""
    if n <= 0:
        return {"median": None, "p90": None, "n": 0}
    values: list[float | None] = []
    for i, q in enumerate(DURATION_QUANTILES):
        lower_bucket, upper_bucket = ranks[2 * i], ranks[2 * i + 1]
        assert lower_bucket is not None
        assert upper_bucket is not None
        position = (n - 1) * q
        lower, upper = bucket_value(lower_bucket), bucket_value(upper_bucket)
        values.append(round(lower + (upper - lower) * (position - math.floor(position)), 1))
    return {"median": values[0], "p90": values[1], "n": n}


def histogram_durations(
    histograms: Mapping[str, Mapping[int, int]],
) -> dict[str, dict[str, Any]]:
    """``{metric: duration}`` of duration histograms ``{metric: {bucket: count}}``."""
    return {metric: duration(histogram) for metric, histogram in histograms.items()}


DURATION_METRICS = (
    "first_response_time",
    "handle_time",
    "time_to_resolution",
    "first_response_business_time",
    "time_to_resolution_business_time",
)
NO_DURATION: dict[str, Any] = {"median": None, "p90": None, "n": 0}


def build_metrics(
    sums: Mapping[str, tuple[int, int]], durations: Mapping[str, Mapping[str, Any]]
) -> dict[str, Any]:
    """Every docs/metrics.md key from summed facts ``{fact: (numerator, denominator)}`` and
    duration metrics ``{metric: {"median", "p90", "n"}}`` (``duration`` of each histogram, or
    ``ranked_duration``)."""

    def num(key: str) -> int:
        return sums.get(key, (0, 0))[0]

    def den(key: str) -> int:
        return sums.get(key, (0, 0))[1]

    def as_rate(key: str) -> dict[str, Any]:
        return rate(num(key), den(key))

    metrics: dict[str, Any] = {}
    for key in (
        "resolution_rate",
        "partial_resolution_rate",
        "customer_fcr",
        "internal_fcr",
        "reopen_rate",
        "repeat_contact_rate",
        "unconfirmed_rate",
        "csat",
        "survey_response_rate",
        "survey_reach_rate",
        "comment_rate",
        "dropped_rate",
        "system_disconnect_rate",
        "promises_kept_rate",
    ):
        metrics[key] = as_rate(key)
    metrics["resolution_gap"] = difference(
        num("gap_internal_fcr"), num("customer_fcr"), den("customer_fcr")
    )
    n = den("csat_mean")
    metrics["csat_mean"] = {"value": round(num("csat_mean") / n, 4) if n else None, "n": n}
    n = den("nps")
    metrics["nps"] = {"value": round(100 * num("nps") / n, 2) if n else None, "n": n}
    n = den("qa_score")
    # qa_score facts hold the sum of scores in hundredths, to stay integers.
    metrics["qa_score"] = {"value": round(num("qa_score") / n / 100, 2) if n else None, "n": n}
    metrics["shout_outs"] = {"value": num("shout_outs"), "n": den("shout_outs")}
    # Whose voice the customer-declared figures carry: of the solves, how many surveys reached
    # the customer (email or their own channel), how many were answered, and how many could not
    # reach them at all (no deliverable email and no chat or social channel).
    metrics["survey_coverage"] = {
        "solves": den("survey_reach_rate"),
        "surveyed": num("survey_reach_rate"),
        "answered": num("survey_response_rate"),
        "not_reachable": num("survey_not_reachable"),
    }
    metrics["survey_solicitation_flags"] = {
        "value": num("survey_solicitation_flags"),
        "n": den("survey_solicitation_flags"),
    }
    solved = sum(num(interactions_fact(b)) for b in INTERACTION_BUCKETS)
    metrics["interactions_per_conversation"] = {
        "n": solved,
        "buckets": [
            {
                "bucket": bucket,
                "count": num(interactions_fact(bucket)),
                "share": rate(num(interactions_fact(bucket)), solved)["value"],
                "csat": as_rate("csat_" + interactions_fact(bucket)),
            }
            for bucket in INTERACTION_BUCKETS
        ],
    }
    for key in DURATION_METRICS:
        metrics[key] = dict(durations.get(key, NO_DURATION))
    return metrics
