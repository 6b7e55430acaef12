"""Outcomes by topic (group_by=tag) and spam, which changes no figure, on the hand-worked desk
(tests/metrics/desk.py; the solves' flags are tabled in test_hand_desk.py)."""

from __future__ import annotations

from datetime import date

import pytest
import time_machine

from metrics.services import facts_compute
from tests.conftest import client_for
from tests.factories import email_bytes
from tests.metrics.desk import NOW, WEEK_FROM, WEEK_TO, at, record_survey
from tests.metrics.test_hand_desk import r
from tickets.models import Conversation
from tickets.services import (
    conversation_mark_spam,
    conversation_reply,
    conversation_solve,
    conversation_triage,
    conversation_unmark_spam,
    inbound_email_raw,
    tag_create,
)

pytestmark = pytest.mark.django_db

GROUPINGS = ("desk", "team", "agent", "channel", "tag")


def recompute() -> None:
    with time_machine.travel(NOW, tick=False):
        facts_compute(day_from=date(2026, 11, 2), day_to=date(2026, 11, 9))


def scorecards(user, group_by: str) -> dict:
    with time_machine.travel(NOW, tick=False):
        response = client_for(user).get(
            f"/api/v1/scorecards/?from={WEEK_FROM}&to={WEEK_TO}&group_by={group_by}"
        )
    assert response.status_code == 200, response.content
    return {group["key"]: group for group in response.json()["groups"]}


def everything(user) -> dict:
    return {group_by: scorecards(user, group_by) for group_by in GROUPINGS}


@pytest.fixture
def topics(desk, manager_a):
    """billing: c1 and c2; shipping: c1 and c4; refunds: c3 (two solves, S3a and S3b)."""
    made = {
        name: tag_create(name=name, actor=manager_a) for name in ("billing", "shipping", "refunds")
    }
    c = desk.conversations
    with time_machine.travel(NOW, tick=False):
        for key, names in (
            ("c1", ["billing", "shipping"]),
            ("c2", ["billing"]),
            ("c4", ["shipping"]),
            ("c3", ["refunds"]),
        ):
            conversation_triage(
                conversation=Conversation.objects.get(pk=c[key].pk),
                actor=manager_a,
                tags=[made[n] for n in names],
            )
    recompute()
    return made


def test_outcomes_by_topic_match_the_paper(topics, admin_user):
    groups = scorecards(admin_user, "tag")
    assert [g["label"] for g in groups.values()] == ["billing", "refunds", "shipping"]
    billing = groups[topics["billing"].pk]["metrics"]
    shipping = groups[topics["shipping"].pk]["metrics"]
    refunds = groups[topics["refunds"].pk]["metrics"]
    assert set(billing) == {
        "resolution_rate",
        "partial_resolution_rate",
        "customer_fcr",
        "internal_fcr",
        "resolution_gap",
        "reopen_rate",
        "repeat_contact_rate",
        "solves",
    }
    # billing = S1 (yes, declared 1, 1 contact) + S2 (yes, declared 2, 1 contact).
    assert billing["solves"] == {"value": 2}
    assert billing["resolution_rate"] == r(1.0, 2, 0.34238, 1.0)
    assert billing["customer_fcr"] == r(0.5, 2, 0.094531, 0.905469)
    assert billing["resolution_gap"]["value"] == pytest.approx(0.5)
    assert billing["resolution_gap"]["internal_fcr"] == pytest.approx(1.0)
    assert billing["resolution_gap"]["customer_fcr"] == pytest.approx(0.5)
    assert billing["repeat_contact_rate"] == r(0.0, 2, 0.0, 0.65762)
    # shipping = S1 + S4 (no answer, Pat came back: a repeat contact). S1 counts in both rows.
    assert shipping["solves"] == {"value": 2}
    assert shipping["resolution_rate"] == r(1.0, 1, 0.206549, 1.0)
    assert shipping["customer_fcr"] == r(1.0, 1, 0.206549, 1.0)
    assert shipping["resolution_gap"]["value"] == pytest.approx(0.0)
    assert shipping["repeat_contact_rate"] == r(0.5, 2, 0.094531, 0.905469)
    assert shipping["internal_fcr"] == r(1.0, 2, 0.34238, 1.0)
    # refunds = S3a (no, 2 contacts, reopened) + S3b (survey skipped).
    assert refunds["solves"] == {"value": 2}
    assert refunds["resolution_rate"] == r(0.0, 1, 0.0, 0.793451)
    assert refunds["customer_fcr"] == r(0.0, 1, 0.0, 0.793451)
    assert refunds["reopen_rate"] == r(0.5, 2, 0.094531, 0.905469)
    assert refunds["internal_fcr"] == r(0.0, 2, 0.0, 0.65762)


def test_outcomes_by_topic_are_for_managers_of_their_teams(topics, agent_a, manager_a):
    with time_machine.travel(NOW, tick=False):
        denied = client_for(agent_a).get(
            f"/api/v1/scorecards/?from={WEEK_FROM}&to={WEEK_TO}&group_by=tag"
        )
    assert denied.status_code == 403
    # Every tagged solve is Team A's: the manager of Team A sees the same three topics.
    assert len(scorecards(manager_a, "tag")) == 3


def test_a_tag_change_is_followed_by_the_next_recompute(topics, manager_a, admin_user, desk):
    c2 = Conversation.objects.get(pk=desk.conversations["c2"].pk)
    with time_machine.travel(NOW, tick=False):
        conversation_triage(conversation=c2, actor=manager_a, tags=[])
    recompute()
    billing = scorecards(admin_user, "tag")[topics["billing"].pk]["metrics"]
    assert billing["solves"] == {"value": 1}
    assert billing["customer_fcr"] == r(1.0, 1, 0.206549, 1.0)


def test_the_dashboard_shows_the_topic_table(topics, manager_a):
    from tests.helpers import web

    with time_machine.travel(NOW, tick=False):
        response = web(manager_a).get("/dashboard/?period=custom&from=2026-11-02&to=2026-11-09")
    assert response.status_code == 200
    html = response.content.decode()
    assert "Outcomes by topic" in html
    rows = [row["label"] for row in response.context["topics"]]
    # Largest resolution gap first: billing (+50 pts), then the two at 0.
    assert rows == ["billing", "refunds", "shipping"]
    assert "+50 pts" in html


def test_a_spam_conversation_changes_no_scorecard_figure(
    desk, topics, admin_user, agent_a, channels
):
    before = everything(admin_user)
    # A spammer writes on Monday, Alice answers and solves; the "customer" answers the survey.
    with time_machine.travel(at(2, 15), tick=False):
        result = inbound_email_raw(
            channel=channels["email"],
            raw=email_bytes(sender="spam@example.net", subject="Cheap watches", body="Buy now"),
            received_at=at(2, 15),
        )
    spam = Conversation.objects.get(pk=result.conversation_id)
    conversation_reply(
        conversation=spam, author=agent_a, body="No thanks", at=at(2, 15, 5), deliver=False
    )
    conversation_triage(conversation=spam, actor=agent_a, tags=[topics["billing"]])
    solve = conversation_solve(conversation=spam, actor=agent_a, at=at(2, 15, 10))
    record_survey(
        solve,
        sent_at=at(2, 16),
        answered_at=at(2, 17),
        resolved="yes",
        csat=5,
        nps=10,
        contacts_declared=1,
    )
    recompute()
    counted = everything(admin_user)
    assert counted["desk"]["desk"]["metrics"]["internal_fcr"]["n"] == 8  # it counts, until...
    assert counted["tag"][topics["billing"].pk]["metrics"]["solves"] == {"value": 3}
    with time_machine.travel(NOW, tick=False):
        conversation_mark_spam(conversation=spam, actor=agent_a)
    recompute()
    after = everything(admin_user)
    for group_by in GROUPINGS:
        assert {k: g["metrics"] for k, g in after[group_by].items()} == {
            k: g["metrics"] for k, g in before[group_by].items()
        }, group_by
    # Not spam after all: it counts again.
    with time_machine.travel(NOW, tick=False):
        conversation_unmark_spam(conversation=Conversation.objects.get(pk=spam.pk), actor=agent_a)
    recompute()
    assert everything(admin_user)["desk"]["desk"]["metrics"]["internal_fcr"]["n"] == 8


def test_the_set_based_topic_query_gives_the_orm_rows(topics):
    from django.db import connection

    from metrics.facts import topic_fact_rows

    def rows(**kwargs):
        with time_machine.travel(NOW, tick=False):
            found = topic_fact_rows(date(2026, 11, 2), date(2026, 11, 9), **kwargs)
        return sorted((sorted(cell.items()), metric, n, d) for cell, metric, n, d in found)

    orm = rows()
    assert len(orm) > 10
    assert rows(connection=connection) == orm
