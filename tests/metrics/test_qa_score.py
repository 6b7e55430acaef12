"""qa_score on the scorecard: the mean of the reviews that count, as quality defines them."""

from __future__ import annotations

from datetime import date

import pytest
import time_machine

from metrics.services import facts_compute
from quality.models import QAReview
from quality.selectors import qa_scores
from quality.services import qa_review_submit, rubric_ensure_default
from tests.conftest import client_for
from tests.factories import make_staff
from tests.metrics.desk import NOW

pytestmark = pytest.mark.django_db


def review(solve, reviewer, *, top: bool) -> QAReview:
    """A sampled review of a solve, scored through the QA service: every criterion at its top
    (100) or at its bottom (0)."""
    rubric = rubric_ensure_default()
    pending = QAReview.objects.create(
        kind=QAReview.Kind.SAMPLE,
        conversation=solve.conversation,
        solve_event=solve,
        solved_at=solve.occurred_at,
        channel_kind=solve.channel_kind,
        team=solve.team,
        agent=solve.agent,
        reviewer=reviewer,
        rubric=rubric,
    )
    values = {c.pk: (c.bounds[1] if top else c.bounds[0]) for c in rubric.criteria.all()}
    return qa_review_submit(review=pending, reviewer=reviewer, values=values)


def test_qa_score_is_the_mean_of_counted_reviews(desk, manager_a, admin_user):
    reviewer = make_staff("rex@desk.example", role="manager", teams=["Team A"])
    with time_machine.travel(NOW, tick=False):
        review(desk.solves["s1"], reviewer, top=True)
        review(desk.solves["s4"], reviewer, top=False)
        facts_compute(day_from=date(2026, 11, 2), day_to=date(2026, 11, 9))
        response = client_for(admin_user).get("/api/v1/scorecards/?from=2026-11-02&to=2026-11-09")
    # (100 + 0) / 2 reviews.
    assert response.json()["groups"][0]["metrics"]["qa_score"] == {"value": 50.0, "n": 2}
    # The same figure as the QA pages' own selector (both reviews are Alice's).
    assert qa_scores(start=date(2026, 11, 2), end=date(2026, 11, 9), group_by="agent") == [
        {"agent_id": desk.alice.pk, "value": 50.0, "n": 2}
    ]
