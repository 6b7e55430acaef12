"""The agent pulse: anonymous, and never shown for a group smaller than 5."""

from datetime import date

import pytest

from quality.models import PulseAnswer, PulseResponse, PulseWeek
from quality.selectors import pulse_means, pulse_summary
from quality.services import pulse_answer, pulse_week_open
from quality.tasks import pulse_week_open_task
from supportdesk.errors import ApplicationError, Conflict
from tests.factories import make_staff

pytestmark = pytest.mark.django_db

WEEK = date(2026, 11, 2)


def _agents(n, team, start=0):
    return [
        make_staff(f"agent{start + i}@desk.example", role="agent", teams=[team]) for i in range(n)
    ]


def _answer(agents, week, rating=4, need="yes", comment=""):
    for agent in agents:
        pulse_answer(
            user=agent, week=week, week_rating=rating, has_what_needed=need, comment=comment
        )


def _row(summary, team_name):
    return next(r for r in summary if (r["team"].name if r["team"] else None) == team_name)


def test_opening_the_week_asks_every_agent_once(team_a, agent_a, manager_a):
    week, created = pulse_week_open(week_start=WEEK)
    again, created_again = pulse_week_open(week_start=WEEK)

    assert (created, created_again, week) == (True, False, again)
    assert agent_a.notifications.filter(kind="pulse.open").count() == 1
    assert manager_a.notifications.filter(kind="pulse.open").count() == 0


def test_answers_are_stored_without_who_answered(team_a, team_b):
    week, _ = pulse_week_open(week_start=WEEK)
    both = make_staff("both@desk.example", role="agent", teams=["Team A", "Team B"])

    pulse_answer(user=both, week=week, week_rating=2, has_what_needed="partly", comment="Tired")

    assert {f.name for f in PulseAnswer._meta.get_fields()} == {
        "id",
        "week",
        "team",
        "week_rating",
        "has_what_needed",
        "comment",
    }
    assert sorted(
        (a.team_id or 0, a.week_rating, a.comment) for a in PulseAnswer.objects.all()
    ) == [(0, 2, "Tired"), (team_a.pk, 2, "Tired"), (team_b.pk, 2, "Tired")]
    assert PulseResponse.objects.filter(user=both, week=week).exists()


def test_one_answer_per_week_and_valid_values(team_a, agent_a):
    week, _ = pulse_week_open(week_start=WEEK)

    with pytest.raises(ApplicationError):
        pulse_answer(user=agent_a, week=week, week_rating=6, has_what_needed="yes")
    with pytest.raises(ApplicationError):
        pulse_answer(user=agent_a, week=week, week_rating=3, has_what_needed="maybe")
    pulse_answer(user=agent_a, week=week, week_rating=3, has_what_needed="no")
    with pytest.raises(Conflict):
        pulse_answer(user=agent_a, week=week, week_rating=5, has_what_needed="yes")

    assert PulseAnswer.objects.count() == 2  # desk + Team A, once
    assert PulseResponse.objects.count() == 1


def test_four_answers_reveal_nothing_five_do(team_a):
    week, _ = pulse_week_open(week_start=WEEK)
    agents = _agents(5, "Team A")
    _answer(agents[:4], week, rating=2, need="no", comment="Too many tickets")

    summary = pulse_summary(week=week)
    for name in (None, "Team A"):
        row = _row(summary, name)
        assert (row["n"], row["shown"], row["mean"], row["need"], row["comments"]) == (
            4,
            False,
            None,
            None,
            [],
        )
    assert pulse_means(start=WEEK, end=date(2026, 11, 9)) == [
        {"team_id": None, "n": 0, "value": None},
        {"team_id": team_a.pk, "n": 0, "value": None},
    ]

    _answer(agents[4:], week, rating=5, need="yes")

    row = _row(pulse_summary(week=week), "Team A")
    assert (row["n"], row["shown"], row["mean"]) == (5, True, 2.6)
    assert row["need"] == {"yes": 1, "partly": 0, "no": 4}
    assert row["comments"] == ["Too many tickets"] * 4
    assert pulse_means(start=WEEK, end=date(2026, 11, 9)) == [
        {"team_id": None, "n": 5, "value": 2.6},
        {"team_id": team_a.pk, "n": 5, "value": 2.6},
    ]


def test_a_team_is_hidden_when_the_rest_of_the_desk_is_smaller_than_5(team_a, team_b):
    # Team A: 5 answers, Team B: 2. Desk (7) minus Team A would reveal Team B's two answers.
    week, _ = pulse_week_open(week_start=WEEK)
    _answer(_agents(5, "Team A"), week, rating=4)
    _answer(_agents(2, "Team B", start=10), week, rating=1)

    summary = pulse_summary(week=week)

    assert (_row(summary, None)["shown"], _row(summary, None)["mean"]) == (True, 3.14)
    assert _row(summary, "Team A")["shown"] is False
    assert _row(summary, "Team B")["shown"] is False
    means = {row["team_id"]: row["value"] for row in pulse_means(start=WEEK, end=date(2026, 11, 9))}
    assert means == {None: 3.14, team_a.pk: None, team_b.pk: None}


def test_two_teams_of_five_are_both_shown(team_a, team_b):
    week, _ = pulse_week_open(week_start=WEEK)
    _answer(_agents(5, "Team A"), week, rating=4)
    _answer(_agents(5, "Team B", start=10), week, rating=2)

    means = {row["team_id"]: row["value"] for row in pulse_means(start=WEEK, end=date(2026, 11, 9))}

    assert means == {None: 3.0, team_a.pk: 4.0, team_b.pk: 2.0}


def test_pulse_means_skip_weeks_with_too_few_answers(team_a, django_assert_num_queries):
    agents = _agents(5, "Team A")
    first, _ = pulse_week_open(week_start=WEEK)
    _answer(agents, first, rating=4)
    second, _ = pulse_week_open(week_start=date(2026, 11, 9))
    _answer(agents[:2], second, rating=1)

    with django_assert_num_queries(1):
        means = pulse_means(start=WEEK, end=date(2026, 11, 16))

    assert means == [
        {"team_id": None, "n": 5, "value": 4.0},
        {"team_id": team_a.pk, "n": 5, "value": 4.0},
    ]


def test_weekly_task_opens_this_week(team_a, agent_a, time_machine):
    time_machine.move_to("2026-11-06T14:00:00+00:00", tick=False)

    pulse_week_open_task()
    pulse_week_open_task()

    assert list(PulseWeek.objects.values_list("week_start", flat=True)) == [WEEK]
    assert agent_a.notifications.filter(kind="pulse.open").count() == 1


def test_the_page_shows_a_weeks_results_only_after_the_week_has_closed(team_a):
    from datetime import timedelta

    from django.test import Client

    # given: five agents answered this week, one with a comment
    agents = _agents(5, "Team A")
    this_week, _ = pulse_week_open(week_start=WEEK)
    _answer(agents[:4], this_week, rating=4)
    _answer(agents[4:], this_week, rating=2, comment="Too many tickets on Mondays")
    client = Client()
    client.force_login(agents[0])

    # when: they look while the week is open
    open_page = client.get("/pulse/").content.decode()

    # then: no figure and no comment of the open week
    assert "Too many tickets on Mondays" not in open_page
    assert "appear here once its pulse has closed" in open_page
    assert '<td class="num">3.6</td>' not in open_page

    # when: the next week opens, the first one is closed and shown
    pulse_week_open(week_start=WEEK + timedelta(days=7))
    closed_page = client.get("/pulse/").content.decode()

    assert "Results of the week of 2 Nov 2026" in closed_page
    assert "Too many tickets on Mondays" in closed_page
    assert '<td class="num">3.6</td>' in closed_page
