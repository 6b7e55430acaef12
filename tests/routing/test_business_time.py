"""Business time on its own: intervals, holidays, exceptions, DST, and bad hours refused."""

from __future__ import annotations

from datetime import UTC, date, datetime
from zoneinfo import ZoneInfo

import pytest

from routing.business_time import Schedule, day_hours
from routing.models import BusinessHours, BusinessInterval
from tests.conftest import client_for

LISBON = ZoneInfo("Europe/Lisbon")
WEEK = (*(day_hours([["09:00", "12:00"], ["13:00", "17:00"]]) for _ in range(5)), (), ())


def utc(month: int, day: int, hour: int, minute: int = 0) -> datetime:
    return datetime(2026, month, day, hour, minute, tzinfo=UTC)


def test_lunch_breaks_weekends_and_partial_days():
    schedule = Schedule(
        tz=ZoneInfo("UTC"),
        week=WEEK,
        exceptions={date(2026, 11, 4): day_hours([["10:00", "11:00"]])},
    )
    # Mon 11:00 -> Mon 14:00: 1 h before lunch, 1 h after.
    assert schedule.seconds_between(utc(11, 2, 11), utc(11, 2, 14)) == 7200
    # Fri 16:00 -> Mon 10:00: 1 h on Friday, 1 h on Monday.
    assert schedule.seconds_between(utc(11, 6, 16), utc(11, 9, 10)) == 7200
    # Wednesday 4th is open 10:00-11:00 only.
    assert schedule.seconds_between(utc(11, 4, 0), utc(11, 5, 0)) == 3600
    assert schedule.add(utc(11, 3, 16, 30), 3600) == utc(11, 4, 10, 30)
    assert schedule.is_open(utc(11, 2, 9)) is True
    assert schedule.is_open(utc(11, 2, 12, 30)) is False


def test_a_day_across_a_dst_change_counts_its_real_hours():
    # Lisbon goes from UTC+1 to UTC+0 on Sunday 25 October 2026; open all day, every day.
    schedule = Schedule(tz=LISBON, week=tuple(day_hours([["00:00", "24:00"]]) for _ in range(7)))
    assert schedule.seconds_between(utc(10, 24, 23), utc(10, 25, 23)) == 25 * 3600 - 3600
    assert schedule.seconds_between(utc(10, 24, 23), utc(10, 26, 0)) == 25 * 3600


def test_never_open_gives_no_due_time():
    closed = Schedule(tz=ZoneInfo("UTC"), week=((),) * 7)
    assert closed.add(utc(11, 2, 9), 60) is None


@pytest.mark.parametrize(
    ("week", "zone", "error"),
    [
        ({"mon": [["09:00", "08:00"]]}, "UTC", "ends before it starts"),
        ({"mon": [["09:00", "12:00"], ["11:00", "13:00"]]}, "UTC", "overlap"),
        ({"mon": [["9am", "5pm"]]}, "UTC", "HH:MM"),
        ({"monday": [["09:00", "17:00"]]}, "UTC", "week takes the days"),
        ({"mon": [["09:00", "17:00"]]}, "Mars/Olympus", "not a time zone"),
    ],
)
@pytest.mark.django_db
def test_bad_hours_are_refused_and_nothing_is_stored(admin_user, week, zone, error):
    response = client_for(admin_user).put(
        "/api/v1/hours/", {"time_zone": zone, "week": week}, format="json"
    )
    assert response.status_code == 400
    assert error in str(response.json())
    assert BusinessHours.objects.count() == 0
    assert BusinessInterval.objects.count() == 0


@pytest.mark.django_db
def test_only_an_admin_sets_the_desk_s_hours_and_managers_their_own_teams(
    manager_a, team_b, agent_a
):
    week = {"mon": [["09:00", "17:00"]]}
    for user, team in ((manager_a, None), (manager_a, team_b.pk), (agent_a, None)):
        response = client_for(user).put(
            "/api/v1/hours/", {"team": team, "time_zone": "UTC", "week": week}, format="json"
        )
        assert response.status_code == 403
    assert BusinessHours.objects.count() == 0
    team_a = manager_a.teams.get()
    response = client_for(manager_a).put(
        "/api/v1/hours/", {"team": team_a.pk, "time_zone": "UTC", "week": week}, format="json"
    )
    assert response.status_code == 200
    assert BusinessInterval.objects.filter(team_key=team_a.pk).exists()
