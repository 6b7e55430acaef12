"""A customer shared by two teams and an agent who works in two teams: each team reads its own.

The visibility rule is "conversations of my teams". These cases are where a read that follows
the customer or the agent instead of the conversation leaks: the customer's latest survey answer
in the sidebar, and an agent's scorecard page as a manager of one of the agent's teams sees it.
"""

from __future__ import annotations

from datetime import timedelta

import pytest
from django.utils import timezone

from tests.factories import make_staff, send_email
from tests.helpers import web
from tickets.models import Conversation, Event
from tickets.services import conversation_solve

pytestmark = pytest.mark.django_db


def _solve_with_answer(conversation: Conversation, agent, comment: str) -> None:
    from surveys.services import Answer, survey_record_past

    conversation_solve(conversation=conversation, actor=agent)
    solve = Event.objects.filter(conversation=conversation, kind=Event.Kind.SOLVED).latest("pk")
    survey_record_past(
        event=solve,
        sent_at=solve.occurred_at,
        answer=Answer(resolved="no", csat=2, comment=comment),
        answered_at=solve.occurred_at + timedelta(minutes=5),
    )


def test_the_sidebar_shows_a_shared_customers_latest_answer_only_from_my_team(
    channels, channels_b, agent_a, agent_b
):
    # given: Jane wrote to both teams; team B solved hers and she commented, later than A's
    mine = send_email(channels["email"], sender="jane@example.com", subject="A question")
    theirs = send_email(channels_b["email"], sender="jane@example.com", subject="B question")
    assert mine.customer_id == theirs.customer_id
    _solve_with_answer(Conversation.objects.get(pk=mine.conversation_id), agent_a, "A-comment")
    _solve_with_answer(
        Conversation.objects.get(pk=theirs.conversation_id), agent_b, "B-secret-comment"
    )

    # when
    page_a = web(agent_a).get(f"/conversations/{mine.conversation_id}/").content.decode()
    page_b = web(agent_b).get(f"/conversations/{theirs.conversation_id}/").content.decode()

    # then: each team sees its own answer as the latest, never the other's
    assert "A-comment" in page_a
    assert "B-secret-comment" not in page_a
    assert "B-secret-comment" in page_b
    assert "A-comment" not in page_b


def test_an_agent_in_two_teams_shows_a_manager_only_the_managers_team(
    channels, channels_b, manager_a
):
    from metrics.services import facts_compute

    # given: Pat works in both teams and solved one conversation in each, both commented on
    pat = make_staff("pat@desk.example", role="agent", teams=["Team A", "Team B"], full_name="Pat")
    in_a = send_email(channels["email"], sender="ann@example.com", subject="A")
    in_b = send_email(channels_b["email"], sender="ben@example.com", subject="B")
    _solve_with_answer(Conversation.objects.get(pk=in_a.conversation_id), pat, "Pat-A-comment")
    _solve_with_answer(Conversation.objects.get(pk=in_b.conversation_id), pat, "Pat-B-comment")
    today = timezone.localdate()
    facts_compute(day_from=today - timedelta(days=2), day_to=today + timedelta(days=1))

    # when: Team A's manager and Pat open Pat's scorecard page
    as_manager = web(manager_a).get(f"/dashboard/agents/{pat.pk}/?period=week")
    as_pat = web(pat).get(f"/dashboard/agents/{pat.pk}/?period=week")

    # then: the manager reads Team A's part only; Pat reads both
    assert as_manager.status_code == 200
    manager_page = as_manager.content.decode()
    assert "Pat-A-comment" in manager_page
    assert "Pat-B-comment" not in manager_page
    assert "Team B" not in manager_page
    pat_page = as_pat.content.decode()
    assert "Pat-A-comment" in pat_page
    assert "Pat-B-comment" in pat_page
