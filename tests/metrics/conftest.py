from __future__ import annotations

from datetime import date

import pytest
import time_machine

from metrics.services import facts_compute
from tests.metrics.desk import NOW, answer_surveys, build_desk


@pytest.fixture
def desk(agent_a, agent_b, channels, channels_b):
    """The hand-built desk of tests/metrics/desk.py, its facts computed."""
    with time_machine.travel(NOW, tick=False):
        built = build_desk(channels=channels, channels_b=channels_b)
        answer_surveys(built)
        facts_compute(day_from=date(2026, 11, 2), day_to=date(2026, 11, 9))
    return built
