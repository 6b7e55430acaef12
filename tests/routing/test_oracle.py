"""The oracle: a desk built through the API, with messages on a Friday evening, on a holiday
and on a Monday morning, whose business-time and calendar-time figures are worked out by hand.

Team A works Monday to Friday, 09:00-17:00 in Europe/Berlin (UTC+1 in November), and is closed
on Wednesday 11 November 2026 (a holiday). Social messages are promised a reply within 2
business hours. Times below are Berlin time, then UTC.

| contact | customer wrote          | answered                | calendar  | business | promise |
| ------- | ----------------------- | ----------------------- | --------- | -------- | ------- |
| friday  | Fri 6 Nov 18:30 (17:30) | Mon 9 Nov 10:00 (09:00) | 228,600 s | 3,600 s  | kept    |
| monday  | Mon 9 Nov 08:00 (07:00) | Mon 9 Nov 13:00 (12:00) | 18,000 s  | 14,400 s | broken  |
| holiday | Wed 11 Nov 11:00 (10:00)| Thu 12 Nov 09:30 (08:30)| 81,000 s  | 1,800 s  | kept    |
| silent  | Fri 13 Nov 16:30 (15:30)| never (as of 20 Nov)    | -         | -        | broken  |

First response, business time: 1,800, 3,600, 14,400 -> median 3,600 s. Calendar time:
18,000, 81,000, 228,600 -> median 81,000 s. Promises kept: 2 of 4 (the silent contact's 2
hours ran out on Mon 16 Nov at 09:30), 0.5.
"""

from __future__ import annotations

from datetime import UTC, date, datetime

import pytest
import time_machine

from metrics.facts import first_response_source, promise_source
from metrics.services import facts_compute
from routing.business_time import annotate_business_seconds
from routing.selectors import schedule_for_team
from tests.conftest import client_for
from tickets.models import Conversation

pytestmark = pytest.mark.django_db

NOW = datetime(2026, 11, 20, 12, 0, tzinfo=UTC)


def utc(day: int, hour: int, minute: int = 0) -> datetime:
    return datetime(2026, 11, day, hour, minute, tzinfo=UTC)


def approx(value):
    # Scorecard medians come from 2 % histogram buckets (docs/metrics.md).
    return pytest.approx(value, rel=0.02)


@pytest.fixture
def hand_desk(api, channels, agent_a, admin_user, team_a):
    admin = client_for(admin_user)
    week = {day: [["09:00", "17:00"]] for day in ("mon", "tue", "wed", "thu", "fri")}
    response = admin.put(
        "/api/v1/hours/",
        {
            "team": team_a.pk,
            "time_zone": "Europe/Berlin",
            "week": week,
            "exceptions": [{"date": "2026-11-11", "name": "Holiday"}],
        },
        format="json",
    )
    assert response.status_code == 200, response.content
    assert response.json()["exceptions"] == [
        {"date": "2026-11-11", "name": "Holiday", "opens": None, "closes": None}
    ]
    response = admin.put(
        "/api/v1/promises/", {"channel": "social", "reply_seconds": 7200}, format="json"
    )
    assert response.status_code == 200, response.content

    def write(handle: str, when: datetime) -> int:
        with time_machine.travel(when, tick=False):
            response = api.post(
                "/api/v1/inbound/social/",
                {
                    "external_id": f"x-{handle}",
                    "network": "x",
                    "handle": handle,
                    "body": f"Hello from {handle}",
                    "thread_id": handle,
                    "sent_at": when.isoformat(),
                },
                format="json",
                HTTP_X_CHANNEL_TOKEN=channels["social"].secret,
            )
        assert response.status_code in (200, 201), response.content
        return int(response.json()["conversation"])

    def answer(conversation_id: int, when: datetime) -> None:
        with time_machine.travel(when, tick=False):
            response = client_for(agent_a).post(
                f"/api/v1/conversations/{conversation_id}/replies/",
                {"body": "Thanks, on it."},
                format="json",
            )
        assert response.status_code == 201, response.content

    ids = {
        "friday": write("@friday", utc(6, 17, 30)),
        "monday": write("@monday", utc(9, 7)),
        "holiday": write("@holiday", utc(11, 10)),
        "silent": write("@silent", utc(13, 15, 30)),
    }
    due = {key: Conversation.objects.get(pk=pk).due_at for key, pk in ids.items()}
    answer(ids["friday"], utc(9, 9))
    answer(ids["monday"], utc(9, 12))
    answer(ids["holiday"], utc(12, 8, 30))
    with time_machine.travel(NOW, tick=False):
        facts_compute(day_from=date(2026, 11, 2), day_to=date(2026, 11, 16))
    return ids, due


def test_due_times_count_business_hours_and_are_cleared_by_the_answer(hand_desk):
    ids, due = hand_desk
    # 2 business hours after each message, Berlin time: Mon 11:00, Mon 11:00, Thu 11:00 (the
    # holiday is closed), Mon 16 Nov 10:30 (30 minutes left on Friday 13th, 90 on Monday).
    assert due == {
        "friday": utc(9, 10),
        "monday": utc(9, 10),
        "holiday": utc(12, 10),
        "silent": utc(16, 9, 30),
    }
    answered = Conversation.objects.filter(pk__in=[ids["friday"], ids["monday"], ids["holiday"]])
    assert [c.due_at for c in answered] == [None, None, None]
    assert Conversation.objects.get(pk=ids["silent"]).due_at == utc(16, 9, 30)


def test_each_contact_s_business_and_calendar_seconds_are_the_hand_figures(hand_desk, team_a):
    ids, _due = hand_desk
    rows = {
        row.conversation_id: (row.seconds, row.business_seconds)
        for row in annotate_business_seconds(
            first_response_source(utc(1, 0), utc(20, 0)),
            name="business_seconds",
            team="reply_team",
            start="started_at",
            end="reply_at",
        )
    }
    assert rows == {
        ids["friday"]: (228_600.0, 3_600.0),
        ids["monday"]: (18_000.0, 14_400.0),
        ids["holiday"]: (81_000.0, 1_800.0),
    }
    # The Python schedule (due times, no-reply rules) says the same.
    schedule = schedule_for_team(team_a)
    assert schedule is not None
    assert schedule.seconds_between(utc(6, 17, 30), utc(9, 9)) == 3_600
    assert schedule.seconds_between(utc(11, 10), utc(12, 8, 30)) == 1_800
    with time_machine.travel(NOW, tick=False):
        promises = {
            row.conversation_id: (row.kept, row.decided)
            for row in promise_source(utc(1, 0), utc(20, 0))
        }
    assert promises == {
        ids["friday"]: (True, True),
        ids["monday"]: (False, True),
        ids["holiday"]: (True, True),
        ids["silent"]: (False, True),
    }


def test_the_scorecards_show_business_time_beside_calendar_time_and_promises_kept(
    hand_desk, admin_user, team_a
):
    url = "/api/v1/scorecards/?from=2026-11-02&to=2026-11-16&group_by="
    with time_machine.travel(NOW, tick=False):
        desk = client_for(admin_user).get(url + "desk").json()["groups"][0]["metrics"]
        teams = client_for(admin_user).get(url + "team").json()["groups"]
        agents = client_for(admin_user).get(url + "agent").json()["groups"]
        channel = client_for(admin_user).get(url + "channel").json()["groups"]
    assert desk["first_response_business_time"]["median"] == approx(3_600)
    assert desk["first_response_business_time"]["n"] == 3
    assert desk["first_response_time"]["median"] == approx(81_000)
    assert desk["first_response_time"]["n"] == 3
    assert desk["promises_kept_rate"]["value"] == 0.5
    assert desk["promises_kept_rate"]["n"] == 4
    team = next(g for g in teams if g["key"] == team_a.pk)["metrics"]
    assert (team["promises_kept_rate"]["value"], team["promises_kept_rate"]["n"]) == (0.5, 4)
    social = next(g for g in channel if g["key"] == "social")["metrics"]
    assert (social["promises_kept_rate"]["value"], social["promises_kept_rate"]["n"]) == (0.5, 4)
    # Never per agent: the key is not there at all.
    assert agents
    assert all("promises_kept_rate" not in g["metrics"] for g in agents)
    assert all("first_response_business_time" in g["metrics"] for g in agents)


def test_a_priority_change_moves_the_reply_due_to_the_new_promise(hand_desk, admin_user, agent_a):
    ids, _ = hand_desk
    admin = client_for(admin_user)
    response = admin.put(
        "/api/v1/promises/",
        {"channel": "social", "priority": "urgent", "reply_seconds": 1800},
        format="json",
    )
    assert response.status_code == 200, response.content
    silent = Conversation.objects.get(pk=ids["silent"])
    version = silent.version

    # The silent customer wrote on Fri 13 Nov 15:30 UTC (16:30 Berlin): 30 business minutes
    # after that is 17:00 Berlin, 16:00 UTC, the same day.
    with time_machine.travel(NOW, tick=False):
        response = client_for(agent_a).patch(
            f"/api/v1/conversations/{silent.pk}/",
            {"priority": "urgent"},
            format="json",
        )
    assert response.status_code == 200, response.content
    silent.refresh_from_db()
    assert (silent.priority, silent.due_at, silent.version) == ("urgent", utc(13, 16), version + 1)

    # Back to normal: the 2-hour promise for any priority again
    with time_machine.travel(NOW, tick=False):
        response = client_for(agent_a).patch(
            f"/api/v1/conversations/{silent.pk}/", {"priority": "normal"}, format="json"
        )
    assert response.status_code == 200, response.content
    silent.refresh_from_db()
    assert (silent.priority, silent.due_at) == ("normal", utc(16, 9, 30))

    # An answered conversation has nothing due, whatever its priority
    answered = Conversation.objects.get(pk=ids["friday"])
    response = client_for(agent_a).patch(
        f"/api/v1/conversations/{answered.pk}/", {"priority": "urgent"}, format="json"
    )
    assert response.status_code == 200, response.content
    answered.refresh_from_db()
    assert (answered.priority, answered.due_at) == ("urgent", None)
