"""The pages of the quality app and the slots they fill in other apps' pages."""

from datetime import date

import pytest
from django.test import RequestFactory
from django.urls import reverse

from quality import panels as panels_qa
from quality.models import Cancellation, Idea, IdeaMention, PulseAnswer, QAReview
from quality.services import (
    cancellation_reasons_ensure_default,
    idea_create,
    pulse_week_open,
    qa_review_submit,
    qa_sample_draw,
)
from tests.factories import send_email
from tests.quality.conftest import WEEK, full_marks
from tickets.models import Message

pytestmark = pytest.mark.django_db


@pytest.fixture
def sample(week_solves, settings):
    settings.QA_PEER_REVIEW = False
    return qa_sample_draw(week_start=WEEK, size_per_agent=3, seed="x")


def _login(client, user):
    client.force_login(user)
    return client


def test_qa_home_lists_reviews_without_n_plus_one(
    client, sample, manager_a, django_assert_max_num_queries
):
    _login(client, manager_a)

    # session, user, unread badge, to-do, received, teams, sample, sample reviews, plus the
    # top bar's nav: a fixed count whatever the number of rows (5 reviews here)
    with django_assert_max_num_queries(10):
        response = client.get(reverse("quality:qa_home"))

    assert response.status_code == 200
    assert response.content.decode().count('href="/qa/reviews/') == 10  # to-do + sample list


def test_review_page_shows_the_timeline_next_to_the_rubric(client, sample, manager_a):
    review = sample.reviews.order_by("pk").first()
    _login(client, manager_a)

    response = client.get(reverse("quality:qa_review", args=[review.pk]))

    html = response.content.decode()
    assert response.status_code == 200
    assert "Timeline" in html
    assert review.conversation.messages.first().body_text in html
    assert "Accurate product information" in html
    assert 'name="criterion_' in html


def test_another_teams_agent_gets_404(client, sample, agent_b):
    review = sample.reviews.first()
    _login(client, agent_b)

    assert client.get(reverse("quality:qa_review", args=[review.pk])).status_code == 404
    assert client.post(reverse("quality:qa_review_submit", args=[review.pk])).status_code == 404


def test_incomplete_review_is_a_400_and_stores_nothing(client, sample, manager_a):
    review = sample.reviews.first()
    _login(client, manager_a)

    response = client.post(reverse("quality:qa_review_submit", args=[review.pk]), {"comment": "x"})

    assert response.status_code == 400
    assert "Answer" in response.content.decode()
    review.refresh_from_db()
    assert (review.state, review.answers.count()) == ("pending", 0)


def test_submit_then_agent_disputes_through_the_pages(client, sample, manager_a, agent_a, peer_a):
    review = sample.reviews.filter(agent=agent_a).first()
    data = {f"criterion_{pk}": value for pk, value in full_marks(review).items()}
    data[f"criterion_{review.rubric.criteria.get(position=3).pk}"] = "na"
    _login(client, manager_a)
    response = client.post(reverse("quality:qa_review_submit", args=[review.pk]), data)
    assert response.status_code == 302
    review.refresh_from_db()
    assert review.answers.get(criterion__position=3).value is None

    _login(client, agent_a)
    empty = client.post(
        reverse("quality:qa_review_respond", args=[review.pk]), {"action": "dispute"}
    )
    assert empty.status_code == 400
    response = client.post(
        reverse("quality:qa_review_respond", args=[review.pk]),
        {"action": "dispute", "comment": "I followed the macro"},
    )

    assert response.status_code == 302
    review.refresh_from_db()
    assert review.state == "disputed"
    assert QAReview.objects.get(second_of=review).reviewer == peer_a  # the only other person


def test_rubric_page_is_for_managers(client, manager_a, agent_a):
    _login(client, agent_a)
    assert client.get(reverse("quality:qa_rubric")).status_code == 403

    _login(client, manager_a)
    response = client.post(
        reverse("quality:qa_rubric"),
        {
            "rows": "2",
            "name_0": "Solved it",
            "weight_0": "3",
            "scale_0": "1_5",
            "critical_0": "on",
            "name_1": "",
            "weight_1": "1",
            "scale_1": "yes_no",
        },
    )
    assert response.status_code == 302
    bad = client.post(reverse("quality:qa_rubric"), {"rows": "1", "name_0": "X", "weight_0": "0"})
    assert bad.status_code == 400
    page = client.get(reverse("quality:qa_rubric")).content.decode()
    assert "version 2" in page
    assert 'value="Solved it"' in page


def test_calibration_pages(client, sample, manager_a, peer_a, agent_a):
    conversation = sample.reviews.filter(agent=agent_a).first().conversation
    _login(client, manager_a)
    response = client.post(
        reverse("quality:qa_calibrations"),
        {"conversation": conversation.pk, "reviewers": [manager_a.pk, peer_a.pk]},
    )
    assert response.status_code == 302
    calibration_url = response["Location"]
    for review in QAReview.objects.filter(kind="calibration"):
        qa_review_submit(review=review, reviewer=review.reviewer, values=full_marks(review))

    page = client.get(calibration_url).content.decode()

    assert "Spread per criterion" in page
    assert client.post(reverse("quality:qa_calibrations"), {"conversation": "x"}).status_code == 400


def test_disagreement_page(client, manager_a, agent_a):
    _login(client, manager_a)
    assert client.get(reverse("quality:qa_disagreements")).status_code == 200
    _login(client, agent_a)
    assert client.get(reverse("quality:qa_disagreements")).status_code == 403


@pytest.fixture
def inbound(channels):
    def make(sender, body="Please add a CSV export of invoices."):
        return Message.objects.get(
            pk=send_email(channels["email"], sender=sender, body=body).message_id
        )

    return make


def test_log_an_idea_and_attach_another_message_through_the_pages(client, inbound, agent_a):
    first, second = inbound("Jane <jane@example.com>"), inbound("Omar <omar@example.net>")
    _login(client, agent_a)

    assert client.get(reverse("quality:idea_log", args=[first.pk])).status_code == 200
    response = client.post(
        reverse("quality:idea_log", args=[first.pk]), {"title": "CSV export", "quote": "CSV please"}
    )
    idea = Idea.objects.get()
    assert response["Location"] == reverse("quality:idea_detail", args=[idea.pk])

    search = client.get(
        reverse("quality:idea_log", args=[second.pk]),
        {"q": "csv", "partial": "matches"},
        headers={"HX-Request": "true"},
    )
    assert "<html" not in search.content.decode()
    assert "CSV export" in search.content.decode()
    client.post(reverse("quality:idea_log", args=[second.pk]), {"idea": idea.pk})

    assert IdeaMention.objects.filter(idea=idea).count() == 2
    detail = client.get(reverse("quality:idea_detail", args=[idea.pk])).content.decode()
    assert 'data-testid="customer-count">2<' in detail
    again = client.post(reverse("quality:idea_log", args=[second.pk]), {"idea": idea.pk})
    assert again.status_code == 409


def test_idea_from_another_teams_message_is_404(client, inbound, agent_b):
    message = inbound("Jane <jane@example.com>")
    _login(client, agent_b)

    response = client.post(reverse("quality:idea_log", args=[message.pk]), {"title": "x"})

    assert response.status_code == 404
    assert Idea.objects.count() == 0


def test_idea_board_query_count(client, inbound, agent_a, django_assert_max_num_queries):
    for i in range(5):
        idea_create(message=inbound(f"C{i} <c{i}@example.com>"), actor=agent_a, title=f"Idea {i}")
    _login(client, agent_a)

    # session, user, unread badge, the board, the credits: not one per idea
    with django_assert_max_num_queries(6):
        response = client.get(reverse("quality:ideas"), {"status": "new"})

    assert response.content.decode().count("Found by Alice Archer") == 5


def test_cancellation_form_and_report(client, channels, agent_a, manager_a):
    cancellation_reasons_ensure_default()
    conversation_id = send_email(channels["email"]).conversation_id
    _login(client, agent_a)
    url = reverse("quality:cancellation_record", args=[conversation_id])

    assert client.post(url, {"reason": "", "outcome": "saved"}).status_code == 400
    assert client.post(url, {"reason": "1", "outcome": "nope"}).status_code == 400
    reason_id = Cancellation._meta.get_field("reason").related_model.objects.first().pk
    assert client.post(url, {"reason": reason_id, "outcome": "saved"}).status_code == 302
    assert Cancellation.objects.get().outcome == "saved"
    assert client.get(reverse("quality:cancellations")).status_code == 403

    _login(client, manager_a)
    page = client.get(reverse("quality:cancellations")).content.decode()
    assert "Too expensive" in page


def test_pulse_page_answers_anonymously(client, team_a, agent_a, manager_a):
    pulse_week_open(week_start=date(2026, 11, 2))
    _login(client, agent_a)

    assert (
        client.post(
            reverse("quality:pulse"), {"week_rating": "9", "has_what_needed": "yes"}
        ).status_code
        == 400
    )
    assert (
        client.post(
            reverse("quality:pulse"), {"week_rating": "4", "has_what_needed": "yes"}
        ).status_code
        == 302
    )
    assert (
        client.post(
            reverse("quality:pulse"), {"week_rating": "4", "has_what_needed": "yes"}
        ).status_code
        == 409
    )

    assert PulseAnswer.objects.count() == 2
    _login(client, manager_a)
    page = client.get(reverse("quality:pulse")).content.decode()
    assert "Hidden: shown once at least 5" not in page  # the week is still open: nothing yet
    pulse_week_open(week_start=date(2026, 11, 9))
    page = client.get(reverse("quality:pulse")).content.decode()
    assert "Hidden: shown once at least 5" in page


def test_checkins_page(client, agent_a):
    _login(client, agent_a)
    assert client.get(reverse("quality:checkins")).status_code == 200


def test_message_action_runs_no_query(channels, agent_a, django_assert_num_queries):
    message = Message.objects.get(pk=send_email(channels["email"]).message_id)
    request = RequestFactory().get("/")
    request.user = agent_a
    conversation = message.conversation

    with django_assert_num_queries(0):
        html = panels_qa.message_actions(request, conversation=conversation, message=message)

    assert html == f'<a class="qa-action" href="/ideas/log/{message.pk}/">Log idea</a>'


def test_sidebar_and_home_panels_run_a_fixed_number_of_queries(
    sample, manager_a, agent_a, django_assert_num_queries
):
    review = sample.reviews.filter(agent=agent_a).first()
    qa_review_submit(review=review, reviewer=manager_a, values=full_marks(review))
    request = RequestFactory().get("/")
    request.user = agent_a
    conversation = review.conversation
    customer = conversation.customer

    # reviews, ideas (only through mentions they may open: the user's teams a subquery),
    # cancellation, reasons
    with django_assert_num_queries(4):
        html = panels_qa.conversation_sidebar(request, conversation=conversation, customer=customer)
    assert "100/100" in html

    # reviews to answer, to do, check-ins (they follow the conversations the user may see, not
    # who solved them: the user's teams a subquery), pulse week with the user's answer (an
    # EXISTS: one query, not two, once a week is open)
    with django_assert_num_queries(4):
        home = panels_qa.agent_home(request, user=agent_a)
    assert f"Your conversation #{conversation.pk} was reviewed: 100/100" in home


def test_home_panel_lists_reviews_in_order_and_the_pulse_until_answered(
    sample, manager_a, agent_a, django_assert_num_queries
):
    from quality.selectors import qa_review_list_to_do
    from quality.services import pulse_answer, pulse_week_open

    # Given: two of agent A's sampled reviews submitted, the rest waiting for the manager
    reviews = list(sample.reviews.filter(agent=agent_a).order_by("pk"))
    for review in reviews[:2]:
        qa_review_submit(review=review, reviewer=manager_a, values=full_marks(review))
    request = RequestFactory().get("/")

    # When: each opens the start page's panel
    request.user = agent_a
    agent_home = panels_qa.agent_home(request, user=agent_a)
    request.user = manager_a
    manager_home = panels_qa.agent_home(request, user=manager_a)

    # Then: the agent's newest submitted review first; the manager's to-do oldest first
    assert [
        f"Your conversation #{r.conversation_id} was reviewed" in agent_home for r in reviews
    ] == [
        True,
        True,
        False,
    ]
    assert agent_home.index(f"#{reviews[1].conversation_id} was") < agent_home.index(
        f"#{reviews[0].conversation_id} was"
    )
    to_do = [
        f"Review conversation #{r.conversation_id} ("
        for r in qa_review_list_to_do(user=manager_a)[:10]
    ]
    assert to_do
    assert [manager_home.index(line) for line in to_do] == sorted(
        manager_home.index(line) for line in to_do
    )
    assert "pulse" not in agent_home

    # A pulse week opens: the link shows; once answered it is gone at once.
    week, _ = pulse_week_open(week_start=WEEK)
    request.user = agent_a
    with django_assert_num_queries(4):  # as without a week: the answer is an EXISTS
        assert "Answer this week's pulse" in panels_qa.agent_home(request, user=agent_a)
    pulse_answer(user=agent_a, week=week, week_rating=4, has_what_needed="yes", comment="")
    assert "Answer this week's pulse" not in panels_qa.agent_home(request, user=agent_a)


def test_home_panel_lists_the_agents_own_due_checkins(channels, agent_a, agent_b):
    from datetime import UTC, datetime

    from quality.services import checkins_create_due
    from tests.quality.conftest import answer_survey, solve_one

    # Given: agent A solved a conversation the customer says is not resolved; a check-in is due
    at = datetime(2026, 11, 3, 10, 0, tzinfo=UTC)
    conversation = solve_one(channels, agent_a, at=at, sender="Ann <ann@example.com>")
    answer_survey(conversation, "no", answered_at=at)
    checkins_create_due(now=datetime(2026, 11, 7, tzinfo=UTC))
    request = RequestFactory().get("/")

    # When/Then: it is on agent A's start page, not on agent B's
    request.user = agent_a
    assert f"Check in on #{conversation.pk}</a>" in panels_qa.agent_home(request, user=agent_a)
    request.user = agent_b
    assert "Check in on" not in panels_qa.agent_home(request, user=agent_b)


def test_send_a_checkin_from_the_page(
    client, channels, agent_a, agent_b, django_capture_on_commit_callbacks
):
    from datetime import UTC, datetime

    from quality.models import CheckIn
    from quality.services import checkins_create_due
    from tests.quality.conftest import answer_survey, solve_one

    at = datetime(2026, 11, 3, 10, 0, tzinfo=UTC)
    conversation = solve_one(channels, agent_a, at=at, sender="Ann <ann@example.com>")
    answer_survey(conversation, "no", answered_at=at)
    checkins_create_due(now=datetime(2026, 11, 7, tzinfo=UTC))
    checkin = CheckIn.objects.get()
    url = reverse("quality:checkin_act", args=[checkin.pk])

    _login(client, agent_b)
    assert client.post(url, {"body": "Hi"}).status_code == 404
    _login(client, agent_a)
    assert "Check in with" not in client.get(reverse("quality:checkins")).content.decode()
    assert client.post(url, {"action": "send", "body": "  "}).status_code == 400
    with django_capture_on_commit_callbacks(execute=True):
        assert client.post(url, {"action": "send", "body": "All good now, Ann?"}).status_code == 302

    checkin.refresh_from_db()
    assert checkin.state == "sent"
    assert checkin.message.body_text == "All good now, Ann?"
    assert "All good now" not in client.get(reverse("quality:checkins")).content.decode()
    assert "Sent" in client.get(reverse("quality:checkins"), {"state": "sent"}).content.decode()


def test_bad_form_input_is_a_4xx_not_a_5xx(client, manager_a, agent_a):
    cancellation_reasons_ensure_default()
    _login(client, manager_a)

    huge = client.post(reverse("quality:qa_rubric"), {"rows": "100000000", "name_0": "x"})
    negative = client.post(
        reverse("quality:cancellation_reasons"), {"name": "New", "position": "-3"}
    )
    missing = client.post(reverse("quality:cancellation_reasons"), {"pk": "999999", "name": "x"})
    rule = client.post(reverse("quality:checkin_rule", args=[999]), {"days_after": "3"})

    assert huge.status_code == 302  # one criterion "x" published, the rest ignored
    assert (negative.status_code, missing.status_code, rule.status_code) == (400, 404, 404)


def test_replace_from_the_review_page(client, sample, manager_a, agent_a):
    review = sample.reviews.filter(agent=agent_a, channel_kind="email").first()
    url = reverse("quality:qa_review_replace", args=[review.pk])
    _login(client, manager_a)

    assert client.post(url, {"reason": ""}).status_code == 400
    response = client.post(url, {"reason": "Internal test conversation"})

    review.refresh_from_db()
    assert response["Location"] == reverse("quality:qa_review", args=[review.replacement_id])
    home = client.get(reverse("quality:qa_home")).content.decode()
    assert "“Internal test conversation” (Mia Manager)" in home


def test_manager_tells_customers_from_the_idea_page(
    client, inbound, agent_a, manager_a, django_capture_on_commit_callbacks
):
    from django.core import mail

    from quality.services import idea_set_status

    idea = idea_create(message=inbound("Jane <jane@example.com>"), actor=agent_a, title="CSV")
    url = reverse("quality:idea_notify", args=[idea.pk])
    _login(client, agent_a)
    assert client.post(url, {"body": "Shipped!"}).status_code == 403
    _login(client, manager_a)
    assert client.post(url, {"body": "Shipped!"}).status_code == 400  # not shipped yet
    idea_set_status(idea=idea, actor=manager_a, status="shipped")

    with django_capture_on_commit_callbacks(execute=True):
        response = client.post(url, {"body": "Shipped!"}, follow=True)

    assert "Told 1 customer." in response.content.decode()
    assert [m.to for m in mail.outbox] == [["jane@example.com"]]


def test_second_reviewer_sees_the_dispute_and_the_agent_cannot_dispute_twice(
    client, sample, manager_a, agent_a, peer_a
):
    from quality.services import qa_review_dispute

    review = sample.reviews.filter(agent=agent_a).first()
    qa_review_submit(review=review, reviewer=manager_a, values=full_marks(review))
    second = qa_review_dispute(review=review, agent=agent_a, comment="The refund was approved")

    _login(client, second.reviewer)
    page = client.get(reverse("quality:qa_review", args=[second.pk])).content.decode()
    assert "“The refund was approved”" in page
    assert "Submit review" in page

    qa_review_submit(review=second, reviewer=second.reviewer, values=full_marks(second))
    _login(client, agent_a)
    page = client.get(reverse("quality:qa_review", args=[second.pk])).content.decode()
    assert "Acknowledge" in page
    assert ">Dispute</button>" not in page
