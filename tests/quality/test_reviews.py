"""Acknowledge, dispute and second review; calibration spread; qa_score; QA versus customer."""

from datetime import date
from decimal import Decimal

import pytest

from quality.models import QAReview
from quality.selectors import calibration_spread, qa_disagreements, qa_scores
from quality.services import (
    calibration_create,
    qa_review_acknowledge,
    qa_review_dispute,
    qa_review_submit,
    qa_sample_draw,
)
from supportdesk.errors import ApplicationError, Conflict
from tests.factories import make_staff
from tests.quality.conftest import WEEK, answer_survey, full_marks, marks

pytestmark = pytest.mark.django_db


@pytest.fixture
def reviewed(week_solves, agent_a, manager_a, settings):
    """Alice's 2 sampled conversations, reviewed by Mia (peer review off)."""
    settings.QA_PEER_REVIEW = False
    sample = qa_sample_draw(week_start=WEEK, size_per_agent=2, seed="x")
    reviews = list(sample.reviews.filter(agent=agent_a).order_by("conversation_id"))
    first = qa_review_submit(review=reviews[0], reviewer=manager_a, values=full_marks(reviews[0]))
    # c1 tone 3 of 5 (w1 -> .5), c3 connection 1 of 3 (w1 -> 0): (3 + .5 + 2 + 0 + 1)/8 = 81.25
    second = qa_review_submit(
        review=reviews[1], reviewer=manager_a, values=marks(reviews[1], c1=3, c3=1)
    )
    return first, second


def test_agent_acknowledges_a_review(reviewed, agent_a):
    review = reviewed[0]

    qa_review_acknowledge(review=review, agent=agent_a, comment="Thanks")

    review.refresh_from_db()
    assert (review.state, review.agent_comment) == ("acknowledged", "Thanks")
    with pytest.raises(Conflict):
        qa_review_dispute(review=review, agent=agent_a, comment="changed my mind")


def test_someone_else_cannot_answer_for_the_agent(reviewed, manager_a):
    with pytest.raises(ApplicationError):
        qa_review_acknowledge(review=reviewed[0], agent=manager_a)

    reviewed[0].refresh_from_db()
    assert reviewed[0].state == "submitted"


def test_a_dispute_needs_a_comment_and_goes_to_a_second_reviewer(reviewed, agent_a, manager_a):
    boss = make_staff("boss@desk.example", role="manager", teams=["Team A"], full_name="Bo Boss")
    review = reviewed[1]

    with pytest.raises(ApplicationError, match="disagree"):
        qa_review_dispute(review=review, agent=agent_a, comment=" ")
    assert QAReview.objects.filter(kind="second").count() == 0

    second = qa_review_dispute(review=review, agent=agent_a, comment="The customer asked for it")

    review.refresh_from_db()
    assert review.state == "disputed"
    assert (second.kind, second.reviewer, second.second_of, second.state) == (
        "second",
        boss,
        review,
        "pending",
    )
    assert boss.notifications.get(kind="qa.disputed").body == "The customer asked for it"


def test_the_second_review_replaces_the_first_in_qa_score(reviewed, agent_a):
    boss = make_staff("boss@desk.example", role="manager", teams=["Team A"])
    _first, disputed = reviewed
    assert qa_scores(start=WEEK, end=date(2026, 11, 9), group_by="agent") == [
        {"agent_id": agent_a.pk, "value": 90.62, "n": 2}  # (100 + 81.25) / 2
    ]

    second = qa_review_dispute(review=disputed, agent=agent_a, comment="Unfair")
    # pending second review: the first still counts
    assert qa_scores(start=WEEK, end=date(2026, 11, 9))[0]["n"] == 2
    qa_review_submit(review=second, reviewer=boss, values=full_marks(second))

    assert qa_scores(start=WEEK, end=date(2026, 11, 9), group_by="agent") == [
        {"agent_id": agent_a.pk, "value": 100.0, "n": 2}
    ]


def test_qa_scores_by_team_day_and_desk_exclude_calibration(
    reviewed, agent_a, manager_a, peer_a, team_a
):
    calibration = calibration_create(
        conversation=reviewed[0].conversation, actor=manager_a, reviewers=[manager_a, peer_a]
    )
    for review in calibration.reviews.all():
        qa_review_submit(review=review, reviewer=review.reviewer, values=marks(review, c0=0))

    assert qa_scores(start=WEEK, end=date(2026, 11, 9), group_by="desk") == [
        {"value": 90.62, "n": 2}
    ]
    assert qa_scores(start=WEEK, end=date(2026, 11, 9), group_by="team") == [
        {"team_id": team_a.pk, "value": 90.62, "n": 2}
    ]
    assert qa_scores(start=WEEK, end=date(2026, 11, 9), group_by="day") == [
        {"day": date(2026, 11, 3), "value": 90.62, "n": 2}
    ]
    assert qa_scores(start=date(2026, 11, 4), end=date(2026, 11, 9)) == []


def test_qa_scores_is_one_query(reviewed, django_assert_num_queries):
    with django_assert_num_queries(1):  # the grouped aggregate
        qa_scores(start=WEEK, end=date(2026, 11, 9), group_by="team")


def test_calibration_shows_the_spread_per_criterion(week_solves, manager_a, peer_a, agent_a):
    conversation = week_solves["alice_email"][0]
    calibration = calibration_create(
        conversation=conversation, actor=manager_a, reviewers=[manager_a, peer_a, agent_a]
    )
    reviews = {r.reviewer_id: r for r in calibration.reviews.all()}
    assert set(reviews) == {manager_a.pk, peer_a.pk}  # the agent who solved it is left out

    qa_review_submit(
        review=reviews[manager_a.pk], reviewer=manager_a, values=marks(reviews[manager_a.pk], c1=5)
    )
    qa_review_submit(
        review=reviews[peer_a.pk], reviewer=peer_a, values=marks(reviews[peer_a.pk], c1=2, c4=None)
    )

    spread = calibration_spread(calibration=calibration)
    rows = {row["criterion"].name: row for row in spread["rows"]}
    assert rows["Conversational tone"]["values"] == [5, 2]  # mia@, pia@ by email
    assert (rows["Conversational tone"]["spread"], rows["Conversational tone"]["stdev"]) == (
        75,
        37.5,
    )
    assert rows["Accurate product information"]["spread"] == 0
    assert rows["Left the door open"]["spread"] is None  # one value (the other N/A)
    assert spread["submitted"] == 2
    # calibration reviews do not notify the agent and never count
    assert not agent_a.notifications.filter(kind="qa.reviewed").exists()
    assert qa_scores(start=WEEK, end=date(2026, 11, 9)) == []


def test_calibration_needs_two_reviewers(week_solves, manager_a, agent_a):
    with pytest.raises(ApplicationError):
        calibration_create(
            conversation=week_solves["alice_email"][0], actor=manager_a, reviewers=[manager_a]
        )


def test_disagreements_list_both_directions(reviewed, agent_a, manager_a, settings):
    settings.QA_PASS_SCORE = 90  # 100 passes, 81.25 fails
    passed, failed_review = reviewed
    failed = qa_review_dispute(review=failed_review, agent=agent_a, comment="no")  # still counts
    answer_survey(passed.conversation, "no", answered_at=passed.solved_at)
    answer_survey(failed_review.conversation, "yes", answered_at=passed.solved_at)

    result = qa_disagreements(user=manager_a)

    assert [r.pk for r in result["passed_not_resolved"]] == [passed.pk]
    assert [r.pk for r in result["failed_resolved"]] == [failed_review.pk]
    assert failed.state == "pending"


def test_disagreements_ignore_agreement(reviewed, manager_a):
    answer_survey(reviewed[0].conversation, "yes", answered_at=reviewed[0].solved_at)
    answer_survey(reviewed[1].conversation, "partly", answered_at=reviewed[0].solved_at)

    assert qa_disagreements(user=manager_a) == {"passed_not_resolved": [], "failed_resolved": []}


def test_score_is_stored_exactly(reviewed):
    assert [r.score for r in reviewed] == [Decimal("100.00"), Decimal("81.25")]
