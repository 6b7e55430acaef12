from __future__ import annotations

import pytest


@pytest.fixture
def carl(team_a):
    """A second agent of Team A (Alice's teammate)."""
    from tests.factories import make_staff

    return make_staff("carl@desk.example", role="agent", teams=["Team A"], full_name="Carl Cooper")


@pytest.fixture
def react(django_capture_on_commit_callbacks):
    """Runs the after-commit work of what the block does (outbox relay, eager reaction tasks)."""
    return lambda: django_capture_on_commit_callbacks(execute=True)
