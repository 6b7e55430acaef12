"""The hand-worked desk: a desk built by hand, every metric worked out on paper, returned exactly by the API.

The desk (tests/metrics/desk.py), week of Mon 2026-11-02, all times UTC:

| solve | day | team | agent | channel | contacts | public msgs | reopened ≤7d | repeat ≤7d | dropped |
| S1  c1 | Mon 2  | A | Alice | email  | 1 | 2 | no  | no  | no  |
| S2  c2 | Mon 2  | A | Alice | chat   | 1 | 4 | no  | no  | no  |
| S3a c3 | Tue 3  | A | Alice | phone  | 2 | 2 | yes (Thu 10:00) | no | no (call talked 300 s) |
| S4  c4 | Wed 4  | A | Alice | social | 1 | 1 | no  | yes (c5 Fri) | yes (never answered) |
| S6  c6 | Wed 4  | B | Bob   | phone  | 2 | 2 | no  | no  | no (2nd call talked) |
| S3b c3 | Thu 5  | A | Alice | phone  | 2 | 3 | no  | no  | no (email reply after the call) |
| S5  c5 | Fri 6  | A | Alice | social | 1 | 2 | no  | no  | no  |

Surveys (S3b skipped as throttled, so 6 delivered; windows all over at NOW = Nov 20):

| solve | resolved | declared | csat | nps | comment | shout-out |
| S1  | yes    | 1 | 5 | 10 | yes | yes |
| S2  | yes    | 2 | 4 | -  | -   | -   |
| S3a | no     | 3 | 2 | 3  | yes | -   |
| S4  | (no answer: unconfirmed)                   |
| S5  | partly | - | 4 | -  | -   | -   |
| S6  | yes    | - (counted 2) | 3 | 8 | yes | - |

Durations (medians/p90 interpolate between closest ranks; stored histograms are within 2%):
first response (written contacts with a reply): c1 1800 s, c2 120 s, c3 email Tue 09:00 -> Thu
10:30 = 178200 s, c5 1200 s; c4 never answered, calls excluded. Desk [120, 1200, 1800, 178200]:
median 1500, p90 = 1800 + 0.7 * 176400 = 125280.
handle time: c2 chat session 11:00 -> 11:10 = 600 s; calls talk + hold 10 + wrap 45: c3 355 s,
c6 55 s and 255 s. Desk [55, 255, 355, 600]: median 305, p90 = 355 + 0.7 * 245 = 526.5.
time to resolution (confirmed solves, from the first inbound message): S1 3600, S2 900, S6 1200.
Desk median 1200, p90 = 1200 + 0.8 * 2400 = 3120.
"""

from __future__ import annotations

from datetime import date

import pytest
import time_machine

from metrics.services import facts_compute
from tests.conftest import client_for
from tests.metrics.desk import NOW, WEEK_FROM, WEEK_TO

pytestmark = pytest.mark.django_db


def r(value, n, low, high):
    """A rate object, compared to 6 decimals (the API rounds to 6)."""
    return {
        "value": pytest.approx(value, abs=1e-6),
        "n": n,
        "ci95": [pytest.approx(low, abs=1e-6), pytest.approx(high, abs=1e-6)],
    }


def d(median, p90, n):
    return {"median": pytest.approx(median, rel=0.02), "p90": pytest.approx(p90, rel=0.02), "n": n}


EMPTY = {"value": None, "n": 0, "ci95": None}


def scorecards(user, group_by):
    with time_machine.travel(NOW, tick=False):
        response = client_for(user).get(
            f"/api/v1/scorecards/?from={WEEK_FROM}&to={WEEK_TO}&group_by={group_by}"
        )
    assert response.status_code == 200, response.content
    return {group["key"]: group["metrics"] for group in response.json()["groups"]}


def test_desk_scorecard_matches_the_paper(desk, admin_user):
    m = scorecards(admin_user, "desk")["desk"]

    # Outcome. Wilson 95% (z = 1.96): 4/7 -> [0.250458, 0.841776]; 1/7 -> [0.02568, 0.513128];
    # 3/5 -> [0.230724, 0.882379]; 1/5 -> [0.036224, 0.624465]; 1/6 -> [0.030053, 0.563503].
    assert m["internal_fcr"] == r(4 / 7, 7, 0.250458, 0.84178)  # S1 S2 S4 S5 of 7
    assert m["reopen_rate"] == r(1 / 7, 7, 0.02568, 0.513128)  # S3a
    assert m["repeat_contact_rate"] == r(1 / 7, 7, 0.02568, 0.513128)  # S4 (Pat came back)
    assert m["resolution_rate"] == r(3 / 5, 5, 0.230724, 0.882379)  # yes: S1 S2 S6 of 5 answers
    assert m["partial_resolution_rate"] == r(1 / 5, 5, 0.036224, 0.624465)  # S5
    assert m["customer_fcr"] == r(1 / 5, 5, 0.036224, 0.624465)  # only S1 (yes and declared 1)
    assert m["unconfirmed_rate"] == r(1 / 6, 6, 0.030053, 0.563503)  # S4 of 6 delivered
    # Gap over the 5 answered solves: internal 3/5 (S1 S2 S5 had one contact) - customer 1/5.
    # Newcombe: 0.4 - sqrt((0.6-0.230724)^2 + (0.624465-0.2)^2) = -0.162615;
    #           0.4 + sqrt((0.882379-0.6)^2 + (0.2-0.036224)^2) = 0.726437.
    assert m["resolution_gap"] == {
        "value": pytest.approx(0.4, abs=1e-6),
        "n": 5,
        "ci95": [pytest.approx(-0.162615, abs=1e-5), pytest.approx(0.726437, abs=1e-5)],
        "internal_fcr": pytest.approx(0.6, abs=1e-6),
        "customer_fcr": pytest.approx(0.2, abs=1e-6),
    }

    # Connection. csat answers 5 4 2 4 3: good 3/5, mean 18/5; nps 10, 3, 8: (1 - 1)/3 = 0.
    assert m["csat"] == r(3 / 5, 5, 0.230724, 0.882379)
    assert m["csat_mean"] == {"value": 3.6, "n": 5}
    assert m["nps"] == {"value": 0.0, "n": 3}
    assert m["survey_response_rate"] == r(5 / 6, 6, 0.436497, 0.969947)
    assert m["comment_rate"] == r(3 / 5, 5, 0.230724, 0.882379)  # S1 S3a S6
    assert m["shout_outs"] == {"value": 1, "n": 5}
    ipc = m["interactions_per_conversation"]
    assert ipc["n"] == 7
    assert [(b["bucket"], b["count"]) for b in ipc["buckets"]] == [
        ("1", 1),  # S4
        ("2-4", 6),
        ("5-9", 0),
        ("10+", 0),
    ]
    assert ipc["buckets"][0]["csat"] == EMPTY  # S4 gave no CSAT
    assert ipc["buckets"][1]["csat"] == r(3 / 5, 5, 0.230724, 0.882379)

    # Quality. Calls: c3 (agent hung up), c6 dropped by the system, c6 again: 1/3.
    assert m["dropped_rate"] == r(1 / 7, 7, 0.02568, 0.513128)  # S4
    assert m["system_disconnect_rate"] == r(1 / 3, 3, 0.061492, 0.79234)
    # 5 agent messages; Alice's "please rate us 10 in the survey" asks for a score.
    assert m["survey_solicitation_flags"] == {"value": 1, "n": 5}
    assert m["qa_score"] == {"value": None, "n": 0}

    # Speed, within 2% of the exact values worked out above.
    assert m["first_response_time"] == d(1500, 125280, 4)
    assert m["handle_time"] == d(305, 526.5, 4)
    assert m["time_to_resolution"] == d(1200, 3120, 3)


def test_team_and_agent_scorecards_match_the_paper(desk, admin_user):
    teams = scorecards(admin_user, "team")
    agents = scorecards(admin_user, "agent")
    team_a, team_b = desk.alice.teams.get().pk, desk.bob.teams.get().pk
    # Alice is all of Team A and Bob all of Team B: the same figures by team and by agent,
    # but for the promises, which are the team's and never an agent's (docs/metrics.md).
    for team in (team_a, team_b):
        assert teams[team].pop("promises_kept_rate") == {"value": None, "n": 0, "ci95": None}
    assert teams[team_a] == agents[desk.alice.pk]
    assert teams[team_b] == agents[desk.bob.pk]
    a, b = teams[team_a], teams[team_b]

    # Team A: 6 solves (all but S6), FCR S1 S2 S4 S5; 5 delivered (S3b skipped), 4 responses.
    assert a["internal_fcr"] == r(4 / 6, 6, 0.299993, 0.903229)
    assert a["reopen_rate"] == r(1 / 6, 6, 0.030053, 0.563503)
    assert a["resolution_rate"] == r(2 / 4, 4, 0.150039, 0.849961)  # S1 S2 of S1 S2 S3a S5
    assert a["customer_fcr"] == r(1 / 4, 4, 0.045587, 0.699358)
    assert a["resolution_gap"]["value"] == pytest.approx(0.5)  # 3/4 - 1/4
    assert a["survey_response_rate"] == r(4 / 5, 5, 0.375535, 0.963776)
    assert a["unconfirmed_rate"] == r(1 / 5, 5, 0.036224, 0.624465)
    assert a["csat"] == r(3 / 4, 4, 0.300642, 0.954413)  # 5 4 2 4
    assert a["csat_mean"] == {"value": 3.75, "n": 4}
    assert a["nps"] == {"value": 0.0, "n": 2}  # 10 and 3
    assert a["system_disconnect_rate"] == r(0.0, 1, 0.0, 0.793451)
    assert a["first_response_time"] == d(1500, 125280, 4)  # all four replies were Alice's
    assert a["handle_time"] == d(477.5, 575.5, 2)  # c3 355, c2 600
    assert a["time_to_resolution"] == d(2250, 3330, 2)  # S2 900, S1 3600

    # Team B: S6 alone; a phone customer who answered "yes" without counting contacts, so the
    # fallback is our count (2): not a customer FCR.
    assert b["internal_fcr"] == r(0.0, 1, 0.0, 0.793451)
    assert b["resolution_rate"] == r(1.0, 1, 0.206549, 1.0)
    assert b["customer_fcr"] == r(0.0, 1, 0.0, 0.793451)
    assert b["resolution_gap"]["value"] == pytest.approx(0.0)
    assert b["system_disconnect_rate"] == r(1 / 2, 2, 0.094531, 0.905469)
    assert b["nps"] == {"value": 0.0, "n": 1}  # a passive 8
    assert b["first_response_time"] == {"median": None, "p90": None, "n": 0}
    assert b["handle_time"] == d(155, 235, 2)  # 55 and 255


def test_channel_scorecards_match_the_paper(desk, admin_user):
    channels = scorecards(admin_user, "channel")
    assert set(channels) == {"email", "chat", "phone", "social"}
    # Phone: S3a, S6, S3b. None on one contact; answers: S3a no, S6 yes.
    assert channels["phone"]["internal_fcr"] == r(0.0, 3, 0.0, 0.561497)
    assert channels["phone"]["reopen_rate"] == r(1 / 3, 3, 0.061492, 0.79234)
    assert channels["phone"]["resolution_rate"] == r(1 / 2, 2, 0.094531, 0.905469)
    assert channels["phone"]["survey_response_rate"] == r(1.0, 2, 0.34238, 1.0)
    # Social: S4 (dropped, unconfirmed, came back), S5 (partly).
    assert channels["social"]["dropped_rate"] == r(1 / 2, 2, 0.094531, 0.905469)
    assert channels["social"]["repeat_contact_rate"] == r(1 / 2, 2, 0.094531, 0.905469)
    assert channels["social"]["partial_resolution_rate"] == r(1.0, 1, 0.206549, 1.0)
    assert channels["social"]["unconfirmed_rate"] == r(1 / 2, 2, 0.094531, 0.905469)
    # Chat: S2 said yes but counted 2 contacts: internal FCR yes, customer FCR no (a gap of 1).
    assert channels["chat"]["internal_fcr"] == r(1.0, 1, 0.206549, 1.0)
    assert channels["chat"]["customer_fcr"] == r(0.0, 1, 0.0, 0.793451)
    assert channels["chat"]["resolution_gap"]["value"] == pytest.approx(1.0)
    assert channels["chat"]["handle_time"] == d(600, 600, 1)
    # Email: S1, the one the customer too calls first-contact.
    assert channels["email"]["customer_fcr"] == r(1.0, 1, 0.206549, 1.0)
    assert channels["email"]["first_response_time"] == d(90000, 160560, 2)  # 1800, 178200


def test_a_period_sums_its_days(desk, admin_user):
    # Tue to Thu only: S3a, S4, S6 -> FCR 1/3 (S4).
    with time_machine.travel(NOW, tick=False):
        response = client_for(admin_user).get("/api/v1/scorecards/?from=2026-11-03&to=2026-11-05")
    m = response.json()["groups"][0]["metrics"]
    assert m["internal_fcr"] == r(1 / 3, 3, 0.061492, 0.79234)


def test_recomputing_gives_the_same_rows(desk, admin_user):
    from metrics.models import DailyFact, DurationBucket

    def snapshot():
        return sorted(
            DailyFact.objects.values_list(
                "day", "metric", "team_id", "agent_id", "channel_kind", "numerator", "denominator"
            )
        ), sorted(
            DurationBucket.objects.values_list(
                "day", "metric", "team_id", "agent_id", "bucket", "count"
            )
        )

    before = snapshot()
    with time_machine.travel(NOW, tick=False):
        facts_compute(day_from=date(2026, 11, 2), day_to=date(2026, 11, 9))
        facts_compute(day_from=date(2026, 11, 4), day_to=date(2026, 11, 5))
    assert snapshot() == before
