"""seed_demo's "qa" seeder fills reviews, ideas, cancellations and the pulse through the services."""

import pytest
from django.core.management import call_command
from django.db.models import F

from quality.models import Cancellation, Idea, PulseAnswer, PulseWeek, QAReview, Rubric

pytestmark = pytest.mark.django_db


def test_seed_demo_includes_qa_ideas_cancellations_and_pulse(settings):
    settings.PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]

    call_command(
        "seed_demo",
        "--customers",
        "20",
        "--conversations",
        "60",
        "--days",
        "30",
        "--seed",
        "3",
        stdout=open("/dev/null", "w"),  # noqa: SIM115
    )

    assert Rubric.objects.get(is_current=True).criteria.count() == 5
    reviews = QAReview.objects.exclude(kind="calibration")
    assert reviews.filter(submitted_at__isnull=False).exists()
    assert reviews.filter(state="pending").exists()
    assert not QAReview.objects.filter(agent_id=F("reviewer_id")).exists()
    assert QAReview.objects.filter(kind="calibration", submitted_at__isnull=False).count() >= 2
    assert Idea.objects.filter(mentions__isnull=False).distinct().count() == 5
    assert Idea.objects.filter(status="shipped").count() == 1
    assert Cancellation.objects.count() >= 10
    # the demo desk has 4 agents: their pulse stays hidden (fewer than 5)
    assert PulseWeek.objects.count() == 2
    assert PulseAnswer.objects.filter(team__isnull=True).count() == 4
