"""Survey fixtures: a customer who wrote by email, an agent who solved it, the scheduled survey."""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime, timedelta

import pytest
import time_machine
from django.core import mail

from surveys.models import Survey
from surveys.services import surveys_send_due
from tests.factories import send_email
from tickets.models import Conversation
from tickets.services import conversation_solve

SOLVED_AT = datetime.fromisoformat("2026-03-02T10:00:00+00:00")


@pytest.fixture
def solve(channels, agent_a, django_capture_on_commit_callbacks) -> Callable[..., Survey]:
    """``solve(at=..., sender=...)``: an email conversation solved by Alice at ``at``; returns the
    survey the solve scheduled (the solve's after-commit reactions run, as in production)."""

    def _solve(
        *,
        at: datetime = SOLVED_AT,
        sender: str = "Jane Doe <jane@example.com>",
        subject: str = "My order has not arrived",
        conversation: Conversation | None = None,
    ) -> Survey:
        with time_machine.travel(at - timedelta(hours=1), tick=False):
            if conversation is None:
                result = send_email(channels["email"], sender=sender, subject=subject)
                conversation = Conversation.objects.get(pk=result.conversation_id)
        with (
            time_machine.travel(at, tick=False),
            django_capture_on_commit_callbacks(execute=True),
        ):
            event = conversation_solve(conversation=conversation, actor=agent_a, at=at)
        return Survey.objects.get(event=event)

    return _solve


@pytest.fixture
def sent(solve, django_capture_on_commit_callbacks) -> Callable[..., Survey]:
    """``sent(at=...)``: a solved conversation whose survey went out an hour later."""

    def _sent(*, at: datetime = SOLVED_AT, **kwargs) -> Survey:
        survey = solve(at=at, **kwargs)
        with time_machine.travel(survey.due_at, tick=False):
            surveys_send_due()
        survey.refresh_from_db()
        assert survey.status == Survey.Status.SENT, (survey.status, survey.skip_reason)
        return survey

    return _sent


def survey_mails() -> list[mail.EmailMessage]:
    return [m for m in mail.outbox if "X-Supportdesk-Survey" in m.extra_headers]


@pytest.fixture(autouse=True)
def _fresh_rate_limits():
    """Rate-limit counters live in the cache; tests freeze time at the same moments, so each
    test starts with empty counters."""
    from django.core.cache import cache

    cache.clear()
    yield
    cache.clear()
