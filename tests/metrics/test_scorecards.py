"""The arithmetic of scorecards: Wilson intervals and medians/p90 from stored histograms."""

from __future__ import annotations

import math
from array import array
from collections import Counter
from itertools import accumulate

import pytest
from hypothesis import given
from hypothesis import strategies as st

from metrics.facts import bucket_of, bucket_value
from metrics.scorecards import duration, quantile, rate, wilson
from metrics.sums import merged_duration


def exact_quantile(values: list[float], q: float) -> float:
    """Linear interpolation between closest ranks (numpy's default)."""
    ordered = sorted(values)
    position = (len(ordered) - 1) * q
    low, high = math.floor(position), math.ceil(position)
    return ordered[low] + (ordered[high] - ordered[low]) * (position - low)


def test_wilson_known_values():
    # 4/7 by hand: centre 0.546118, half-width 0.295660.
    assert wilson(4, 7) == (0.250458, 0.84178)
    assert wilson(0, 10) == (0.0, 0.277533)
    assert wilson(10, 10) == (0.722467, 1.0)
    assert wilson(0, 0) is None


def test_rate_object():
    assert rate(0, 0) == {"value": None, "n": 0, "ci95": None}
    assert rate(1, 4) == {"value": 0.25, "n": 4, "ci95": [0.045587, 0.699358]}


def test_bucket_representative_is_within_one_percent():
    for seconds in (1, 2, 7, 59, 60, 61, 3599, 86400, 400 * 86400):
        assert bucket_value(bucket_of(seconds)) == pytest.approx(seconds, rel=0.0101)
    assert bucket_of(0) == 0
    assert bucket_value(0) == 0.0


@given(
    st.lists(st.integers(min_value=1, max_value=40 * 86400), min_size=1, max_size=300),
    st.sampled_from([0.5, 0.9]),
)
def test_histogram_quantiles_are_within_two_percent_of_exact(values, q):
    histogram = Counter(bucket_of(v) for v in values)
    assert quantile(histogram, q) == pytest.approx(exact_quantile(values, q), rel=0.02, abs=0.05)


def _cumulative(histogram: dict[int, int]) -> tuple[array, array]:
    buckets = sorted(histogram)
    return array("q", buckets), array("q", accumulate(histogram[b] for b in buckets))


@given(
    st.lists(
        st.dictionaries(
            st.integers(min_value=0, max_value=900),
            st.integers(min_value=1, max_value=50),
            max_size=60,
        ),
        min_size=1,
        max_size=3,
    )
)
def test_quantiles_of_histograms_taken_together_equal_those_of_their_sum(histograms):
    """``merged_duration`` (the rolled weeks' cached histogram with the loose days') finds the
    quantiles of the summed histogram by bisection: exactly ``duration`` of the sum."""
    total: Counter[int] = Counter()
    for histogram in histograms:
        total.update(histogram)
    assert merged_duration([_cumulative(h) for h in histograms]) == duration(total)
