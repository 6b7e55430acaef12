"""Staff side: the responses API and pages, panels, the outcome annotator, merges, the seeder."""

from __future__ import annotations

import io
import random
from datetime import timedelta

import pytest
import time_machine
from django.http import HttpRequest
from django.test import Client
from django.test.utils import CaptureQueriesContext

from supportdesk import extensions
from surveys import panels
from surveys.models import FollowUp, Survey, SurveyResponse
from surveys.services import Answer, survey_answer
from tests.factories import TEST_PASSWORD, make_staff, send_email
from tests.surveys.conftest import SOLVED_AT
from tickets.models import Conversation, Event
from tickets.services import conversation_solve, customer_merge

pytestmark = pytest.mark.django_db


def _answer(survey: Survey, **values) -> SurveyResponse:
    with time_machine.travel(survey.sent_at + timedelta(hours=1), tick=False):
        return survey_answer(survey=survey, answer=Answer(**values))


@pytest.fixture
def three_answers(sent):
    """Three answered surveys of Team A's Alice, on 2, 3 and 4 March."""
    surveys = []
    for day, values in enumerate(
        [
            {"resolved": "yes", "csat": 5, "shout_out": True, "comment": "Lovely"},
            {"resolved": "partly", "csat": 3, "needs_nothing_more": True},
            {"resolved": "no", "csat": 1, "comment": "Still broken"},
        ]
    ):
        survey = sent(
            at=SOLVED_AT + timedelta(days=day),
            sender=f"Customer {day} <c{day}@example.com>",
            subject=f"Question {day}",
        )
        _answer(survey, **values)
        surveys.append(survey)
    return surveys


def test_api_lists_responses_newest_first_with_the_contract_keys(
    three_answers, api_a, django_assert_num_queries
):
    with django_assert_num_queries(2):  # token and user, the page (teams in a subquery)
        page = api_a.get("/api/v1/surveys/responses/")

    assert page.status_code == 200
    body = page.json()
    assert set(body) >= {"results", "next"}
    assert [r["resolved"] for r in body["results"]] == ["no", "partly", "yes"]
    first = body["results"][2]
    assert first["csat"] == 5
    assert first["shout_out"] is True
    assert first["comment"] == "Lovely"
    assert first["contacts_counted"] == 1
    assert first["conversation"] == three_answers[0].conversation_id
    assert first["agent"] == three_answers[0].agent_id
    assert first["channel"] == "email"


def test_api_filters_by_solve_dates_half_open_and_by_agent(three_answers, api_a, agent_a):
    page = api_a.get("/api/v1/surveys/responses/?from=2026-03-03&to=2026-03-04")
    assert [r["survey"] for r in page.json()["results"]] == [three_answers[1].pk]
    page = api_a.get(f"/api/v1/surveys/responses/?agent={agent_a.email}")
    assert len(page.json()["results"]) == 3
    page = api_a.get("/api/v1/surveys/responses/?agent=nobody@desk.example")
    assert page.status_code == 400
    assert page.json()["detail"]
    page = api_a.get("/api/v1/surveys/responses/?from=2026-03-05&to=2026-03-01")
    assert page.status_code == 400
    page = api_a.get("/api/v1/surveys/responses/?from=yesterday")
    assert page.status_code == 400


def test_api_shows_other_teams_nothing_and_needs_a_token(three_answers, api_b, api):
    assert api_b.get("/api/v1/surveys/responses/").json()["results"] == []
    assert api.get("/api/v1/surveys/responses/").status_code == 401


def test_api_paginates(three_answers, api_a):
    page = api_a.get("/api/v1/surveys/responses/?page_size=2").json()
    assert len(page["results"]) == 2
    rest = api_a.get(page["next"]).json()
    assert len(rest["results"]) == 1
    assert rest["next"] is None


def _logged_in(user) -> Client:
    client = Client()
    assert client.login(request=HttpRequest(), username=user.email, password=TEST_PASSWORD)
    return client


def test_responses_page_lists_and_filters_in_constant_queries(
    three_answers, agent_a, django_assert_max_num_queries
):
    client = _logged_in(agent_a)
    with CaptureQueriesContext(__import__("django.db").db.connection) as one:
        client.get("/surveys/responses/?agent=999")
    with django_assert_max_num_queries(len(one.captured_queries) + 1):
        page = client.get("/surveys/responses/")
    html = page.content.decode()
    assert page.status_code == 200
    assert html.count('class="card sv-item"') == 3
    assert "Still broken" in html
    filtered = client.get("/surveys/responses/?from=2026-03-04").content.decode()
    assert filtered.count('class="card sv-item"') == 1


def test_my_feedback_page_shows_the_agents_shout_outs_and_comments(three_answers, agent_a):
    html = _logged_in(agent_a).get("/surveys/me/").content.decode()
    assert "Shout-out" in html
    assert "Lovely" in html
    assert "Still broken" in html


def test_follow_ups_page_is_for_managers_who_close_them(three_answers, agent_a, manager_a):
    assert _logged_in(agent_a).get("/surveys/follow-ups/").status_code == 404
    follow_up = FollowUp.objects.get()
    assert _logged_in(agent_a).post(f"/surveys/follow-ups/{follow_up.pk}/close/").status_code == 404
    client = _logged_in(manager_a)
    html = client.get("/surveys/follow-ups/").content.decode()
    assert "Still broken" in html
    done = client.post(f"/surveys/follow-ups/{follow_up.pk}/close/", {"note": "Called her."})
    assert done.status_code == 302
    follow_up.refresh_from_db()
    assert (follow_up.status, follow_up.closed_by, follow_up.note) == (
        "done",
        manager_a,
        "Called her.",
    )


def test_a_manager_of_another_team_cannot_close_a_follow_up(three_answers, team_b):
    other = make_staff("max@desk.example", role="manager", teams=["Team B"])
    follow_up = FollowUp.objects.get()
    assert _logged_in(other).post(f"/surveys/follow-ups/{follow_up.pk}/close/").status_code == 404
    follow_up.refresh_from_db()
    assert follow_up.status == "open"


def test_outcome_annotator_answers_for_many_conversations_in_one_query(
    three_answers, solve, sent, django_assert_num_queries
):
    bounced = sent(at=SOLVED_AT + timedelta(days=10), sender="B <b@example.com>", subject="B")
    Survey.objects.filter(pk=bounced.pk).update(status="bounced")
    scheduled = solve(at=SOLVED_AT + timedelta(days=11), sender="New <new@example.com>")
    unanswered = three_answers[0]
    SurveyResponse.objects.filter(survey=unanswered).delete()
    ids = [s.conversation_id for s in three_answers] + [
        scheduled.conversation_id,
        bounced.conversation_id,
        999999,
    ]

    # The surveys of the conversations with their answers joined
    with django_assert_num_queries(1):
        outcomes = extensions.annotate("conversation.outcome", ids)

    assert outcomes == {
        three_answers[0].conversation_id: "no_answer",
        three_answers[1].conversation_id: "partly",
        three_answers[2].conversation_id: "not_resolved",
        scheduled.conversation_id: "no_survey",
        bounced.conversation_id: "no_survey",
        999999: "no_survey",
    }


def test_sidebar_panel_shows_this_survey_and_the_customers_latest(
    three_answers, agent_a, rf, django_assert_num_queries
):
    survey = three_answers[2]
    request = rf.get("/")
    request.user = agent_a
    conversation = Conversation.objects.select_related("customer").get(pk=survey.conversation_id)
    # This survey, the customer's latest answer (scoped to the agent's teams in a subquery), the
    # answer.
    with django_assert_num_queries(3):
        html = panels.conversation_sidebar(
            request, conversation=conversation, customer=conversation.customer
        )
    assert "Not resolved" in html
    assert "CSAT 1" in html
    assert "Still broken" in html


def test_agent_home_panel_shows_the_agents_own_shout_outs(three_answers, agent_a, agent_b, rf):
    request = rf.get("/")
    request.user = agent_a
    html = panels.agent_home(request, user=agent_a)
    assert "Shout-out" in html
    assert "Lovely" in html
    request.user = agent_b
    other = panels.agent_home(request, user=agent_b)
    assert "Lovely" not in other


def test_survey_history_follows_a_customer_merge(
    sent, solve, channels, agent_a, django_capture_on_commit_callbacks
):
    first = sent(sender="Jane <jane@example.com>")
    # The same person writes from another address: a second customer, until an agent merges them.
    second = solve(
        at=first.sent_at + timedelta(days=2), sender="Jane <jane.doe@example.org>", subject="Again"
    )
    assert second.customer_id != first.customer_id
    with django_capture_on_commit_callbacks(execute=True):
        customer_merge(target=second.customer, other=first.customer, actor=agent_a)

    first.refresh_from_db()
    assert first.customer_id == second.customer_id
    # So the throttle now sees the survey the merged customer got two days ago.
    from surveys.services import surveys_send_due

    with time_machine.travel(second.due_at, tick=False):
        surveys_send_due()
    second.refresh_from_db()
    assert (second.status, second.skip_reason) == ("skipped", "throttled")


def test_seeder_records_past_surveys_and_answers_without_mailing_anyone(
    channels, agent_a, manager_a, mailoutbox, django_capture_on_commit_callbacks
):
    now = SOLVED_AT + timedelta(days=40)
    events = []
    for day in range(12):
        at = SOLVED_AT + timedelta(days=day * 3)
        with time_machine.travel(at - timedelta(hours=1), tick=False):
            result = send_email(
                channels["email"], sender=f"C{day} <c{day}@example.com>", subject=f"Seeded {day}"
            )
        conversation = Conversation.objects.get(pk=result.conversation_id)
        # seed_demo replays history: the solve reactions run "now", long after the solve.
        with (
            time_machine.travel(now, tick=False),
            django_capture_on_commit_callbacks(execute=True),
        ):
            events.append(conversation_solve(conversation=conversation, actor=agent_a, at=at))
    assert Survey.objects.count() == 0  # older than the window: the live handler skips them

    out = io.StringIO()
    with time_machine.travel(now, tick=False):
        seed = dict(extensions.seeders())["surveys"]
        seed(rng=random.Random(7), stdout=out)
        seed(rng=random.Random(7), stdout=io.StringIO())  # a second run adds nothing

    assert Survey.objects.count() == 12
    assert set(Survey.objects.values_list("status", flat=True)) == {"sent"}
    assert all(s.sent_at == s.solved_at + timedelta(minutes=60) for s in Survey.objects.all())
    answered = SurveyResponse.objects.count()
    assert 0 < answered < 12
    assert "12 sent" in out.getvalue()
    assert mailoutbox == []
    assert not Event.objects.filter(kind="conversation.reopened").exists()


def test_undoing_a_merge_gives_each_survey_back_to_its_conversations_customer(
    sent, solve, agent_a, django_capture_on_commit_callbacks
):
    from tickets.services import customer_merge_undo

    first = sent(sender="Jane <jane@example.com>")
    second = solve(at=first.sent_at + timedelta(days=2), sender="J <j@example.org>", subject="B")
    original = first.customer_id
    with django_capture_on_commit_callbacks(execute=True):
        merge = customer_merge(target=second.customer, other=first.customer, actor=agent_a)
    with django_capture_on_commit_callbacks(execute=True):
        customer_merge_undo(merge=merge, actor=agent_a)

    first.refresh_from_db()
    second.refresh_from_db()
    assert first.customer_id == original
    assert second.customer_id != original


def test_survey_settings_are_validated_and_editable_in_the_admin(admin_user):
    from django.core.exceptions import ValidationError

    from surveys.services import survey_policy, survey_settings_update

    with pytest.raises(ValidationError):
        survey_settings_update(channels=["fax"])
    with pytest.raises(ValidationError):
        survey_settings_update(sampling_rate=1.5)
    assert survey_policy().channels == ()
    client = _logged_in(admin_user)
    page = client.get("/admin/surveys/surveysettings/add/")
    assert page.status_code == 200
    saved = client.post(
        "/admin/surveys/surveysettings/add/",
        {
            "delay_minutes": "30",
            "min_days_between": "",
            "window_days": "",
            "reminder_days": "",
            "reminders_enabled": "on",
            "channels": '["email"]',
            "sampling_rate": "0.5",
            "nps_interval_days": "90",
        },
    )
    assert saved.status_code == 302
    policy = survey_policy()
    assert (policy.delay, policy.channels, policy.sampling_rate) == (
        timedelta(minutes=30),
        ("email",),
        0.5,
    )
    assert policy.min_days_between == 7  # unset: the environment's default
    for url in (
        "/admin/surveys/survey/",
        "/admin/surveys/surveyresponse/",
        "/admin/surveys/followup/",
    ):
        assert client.get(url).status_code == 200


@pytest.mark.parametrize("url", ["/surveys/me/", "/surveys/responses/", "/surveys/follow-ups/"])
def test_staff_pages_run_a_constant_number_of_queries(sent, manager_a, url):
    from django.db import connection

    from supportdesk.services import team_get_or_create

    def answer(day: int) -> None:
        survey = sent(
            at=SOLVED_AT + timedelta(days=day * 8),
            sender=f"C{day} <c{day}@example.com>",
            subject=f"Question {day}",
        )
        # Manager Mia solved these (so they are on her own feedback page too).
        Survey.objects.filter(pk=survey.pk).update(agent=manager_a)
        survey.refresh_from_db()
        _answer(survey, resolved="no", csat=1, shout_out=True, comment=f"Comment {day}")

    team_get_or_create(name="Team A")
    client = _logged_in(manager_a)
    answer(0)
    with CaptureQueriesContext(connection) as one:
        assert client.get(url).status_code == 200
    for day in range(1, 4):
        answer(day)
    with CaptureQueriesContext(connection) as four:
        page = client.get(url)
    assert page.status_code == 200
    assert page.content.decode().count("Comment ") >= 4
    assert len(four.captured_queries) == len(one.captured_queries)
