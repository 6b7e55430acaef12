"""The review score: weighted mean on 0-100, N/A left out, a failed critical criterion zeroes it."""

from decimal import Decimal

import pytest

from quality.models import Criterion, QAReview, Rubric
from quality.services import (
    DEFAULT_CRITERIA,
    qa_review_submit,
    qa_sample_draw,
    review_score,
    rubric_ensure_default,
    rubric_publish,
)
from supportdesk.errors import ApplicationError, Conflict
from tests.quality.conftest import WEEK

pytestmark = pytest.mark.django_db


def _c(weight, scale="1_5", critical=False):
    return Criterion(name="x", weight=weight, scale=scale, critical=critical)


def test_score_is_the_weighted_mean_on_0_to_100():
    # yes (1.0) weight 3, 4 of 5 (0.75) weight 1, 2 of 3 (0.5) weight 2
    answers = [(_c(3, "yes_no"), 1), (_c(1, "1_5"), 4), (_c(2, "1_3"), 2)]

    score, critical = review_score(answers)

    # (3*1 + 1*0.75 + 2*0.5) / 6 * 100 = 79.1666...
    assert score == Decimal("79.17")
    assert critical is False


def test_na_criteria_leave_numerator_and_weights():
    answers = [(_c(3, "yes_no"), None), (_c(1, "1_5"), 5), (_c(1, "1_3"), 1)]

    score, _ = review_score(answers)

    assert score == Decimal("50.00")  # (1*1 + 1*0) / 2


def test_all_na_has_no_score():
    assert review_score([(_c(1), None), (_c(2, "yes_no"), None)]) == (None, False)


def test_a_failed_critical_criterion_zeroes_the_review():
    answers = [(_c(3, "yes_no", critical=True), 0), (_c(1, "1_5"), 5), (_c(5, "1_5"), 5)]

    assert review_score(answers) == (Decimal("0.00"), True)


def test_critical_on_a_scale_fails_only_at_its_lowest_value():
    assert review_score([(_c(1, "1_5", critical=True), 2)]) == (Decimal("25.00"), False)
    assert review_score([(_c(1, "1_5", critical=True), 1)]) == (Decimal("0.00"), True)


def test_critical_na_does_not_fail():
    answers = [(_c(1, "yes_no", critical=True), None), (_c(1, "1_3"), 3)]

    assert review_score(answers) == (Decimal("100.00"), False)


def test_default_rubric_has_the_five_seeded_criteria():
    rubric = rubric_ensure_default()

    assert [c.name for c in rubric.criteria.all()] == [
        "Accurate product information",
        "Conversational tone",
        "Understood the real issue",
        "Created connection",
        "Left the door open",
    ]
    assert [c[0] for c in DEFAULT_CRITERIA] == [c.name for c in rubric.criteria.all()]
    assert rubric.criteria.get(name="Accurate product information").critical is True


def _sampled_review(week_solves):
    sample = qa_sample_draw(week_start=WEEK, size_per_agent=1, seed="s")
    return sample.reviews.get(agent__email="pia@desk.example")


def test_submit_stores_answers_and_score(week_solves):
    review = _sampled_review(week_solves)
    crit = {c.name: c.pk for c in review.rubric.criteria.all()}
    values = {
        crit["Accurate product information"]: 1,  # w3 -> 1
        crit["Conversational tone"]: 3,  # w1 -> 0.5
        crit["Understood the real issue"]: 5,  # w2 -> 1
        crit["Created connection"]: None,  # N/A
        crit["Left the door open"]: 0,  # w1 -> 0
    }

    review = qa_review_submit(review=review, reviewer=review.reviewer, values=values, comment="ok")

    review.refresh_from_db()
    assert review.score == Decimal("78.57")  # (3 + 0.5 + 2 + 0) / 7
    assert review.state == QAReview.State.SUBMITTED
    assert review.answers.count() == 5
    assert review.agent.notifications.filter(kind="qa.reviewed").count() == 1


def test_submit_refuses_missing_or_out_of_range_values_and_stores_nothing(week_solves):
    review = _sampled_review(week_solves)
    crit = [c.pk for c in review.rubric.criteria.all()]

    with pytest.raises(ApplicationError, match="Answer"):
        qa_review_submit(review=review, reviewer=review.reviewer, values={crit[0]: 1})
    with pytest.raises(ApplicationError, match="from 1 to 5"):
        qa_review_submit(
            review=review, reviewer=review.reviewer, values={**dict.fromkeys(crit, 1), crit[1]: 9}
        )

    review.refresh_from_db()
    assert review.state == QAReview.State.PENDING
    assert review.answers.count() == 0
    assert review.score is None


def test_only_the_assigned_reviewer_submits_once(week_solves, agent_b):
    review = _sampled_review(week_solves)
    values = {c.pk: c.bounds[1] for c in review.rubric.criteria.all()}

    with pytest.raises(ApplicationError):
        qa_review_submit(review=review, reviewer=agent_b, values=values)
    qa_review_submit(review=review, reviewer=review.reviewer, values=values)
    with pytest.raises(Conflict):
        qa_review_submit(review=review, reviewer=review.reviewer, values=values)

    review.refresh_from_db()
    assert review.score == Decimal("100.00")


def test_publishing_a_new_rubric_version_keeps_old_reviews_on_theirs(week_solves, manager_a):
    review = _sampled_review(week_solves)
    old = review.rubric

    new = rubric_publish(
        actor=manager_a,
        criteria=[{"name": "Solved the problem", "weight": 2, "scale": "1_3", "critical": True}],
    )

    review.refresh_from_db()
    assert review.rubric == old
    assert next(c.name for c in review.rubric.criteria.all()) == "Accurate product information"
    assert (new.version, old.version) == (2, 1)
    assert list(Rubric.objects.filter(is_current=True)) == [new]


def test_agents_cannot_edit_the_rubric(agent_a):
    rubric_ensure_default()

    with pytest.raises(ApplicationError):
        rubric_publish(actor=agent_a, criteria=[{"name": "x"}])

    assert Rubric.objects.count() == 1
