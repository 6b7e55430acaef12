"""Retention: settings an admin changes (audited), and the nightly run that removes raw mail, files
and closed conversations' text past them, in resumable batches, never touching a figure."""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path

import pytest
from django.conf import settings
from django.test import TestCase
from django.utils import timezone

from metrics.models import DailyFact
from metrics.services import facts_compute, local_today
from supportdesk.models import AuditEntry
from surveys.models import SurveyResponse
from tests.conftest import client_for
from tests.factories import send_email
from tests.helpers import web
from tests.tickets.privacy_data import customer_with_everything
from tickets.models import Attachment, Conversation, Message, RetentionRun
from tickets.services import retention_policy_update, retention_run
from tickets.tasks import retention_run_task

pytestmark = pytest.mark.django_db


def _facts() -> list[tuple[object, ...]]:
    today = local_today()
    facts_compute(day_from=today - timedelta(days=60), day_to=today + timedelta(days=2))
    return sorted(
        DailyFact.objects.values_list(
            "day", "metric", "team_id", "agent_id", "channel_kind", "numerator", "denominator"
        ),
        key=repr,
    )


@pytest.fixture
def old_and_new(channels, agent_a):
    """An email conversation closed 20 days ago with mail of 40 days ago (a file, raw MIME), and
    the same customer's new conversation of today."""
    customer = customer_with_everything(channels, agent_a)
    (old,) = customer.conversations.all()
    assert old.status == Conversation.Status.CLOSED
    now = timezone.now()
    Message.objects.filter(conversation=old).update(created_at=now - timedelta(days=40))
    Conversation.objects.filter(pk=old.pk).update(closed_at=now - timedelta(days=20))
    later = send_email(
        channels["email"],
        sender="Jane Roe <jane.roe@example.org>",
        subject="Another question",
        body="Can I change my delivery address?",
    )
    recent = Conversation.objects.get(pk=later.conversation_id)
    assert recent.pk != old.pk
    return customer, old, recent


def test_admin_sets_the_retention_policy_and_it_is_audited(admin_user, agent_a):
    page = web(admin_user)
    assert page.get("/privacy/retention/").status_code == 200

    saved = page.post(
        "/privacy/retention/",
        {"raw_mime_days": "30", "attachment_days": "90", "anonymise_closed_days": ""},
    )

    assert saved.status_code == 302
    entry = AuditEntry.objects.get(action="retention.changed")
    assert entry.actor == admin_user
    assert entry.details == {
        "raw_mime_days": {"from": None, "to": 30},
        "attachment_days": {"from": None, "to": 90},
    }
    bad = page.post("/privacy/retention/", {"raw_mime_days": "0"})
    assert bad.status_code == 400
    # Agents may not even look; nothing changes.
    assert web(agent_a).get("/privacy/retention/").status_code == 403
    assert web(agent_a).post("/privacy/retention/", {"raw_mime_days": "1"}).status_code == 403
    assert AuditEntry.objects.filter(action="retention.changed").count() == 1


def test_nightly_run_works_in_resumable_batches_and_keeps_every_figure(old_and_new, admin_user):
    customer, old, recent = old_and_new
    retention_policy_update(
        actor=admin_user, raw_mime_days=30, attachment_days=30, anonymise_closed_days=10
    )
    attachment = Attachment.objects.get(message__conversation=old)
    stored = Path(settings.MEDIA_ROOT) / attachment.file.name
    assert stored.exists()
    recent_bodies = sorted(
        Message.objects.filter(conversation=recent).values_list("body_text", flat=True)
    )
    figures = _facts()
    raw_count = Message.objects.filter(conversation=old).exclude(raw=b"").count()
    assert raw_count == 1

    first = retention_run(batch_size=1, max_batches=1)

    assert first.state == RetentionRun.State.RUNNING
    assert first.total == 3  # one raw mail, one attachment, one closed conversation
    assert first.done == 1
    assert first.progress == pytest.approx(0.333)
    assert first.raw_mime_cleared == 1

    with TestCase.captureOnCommitCallbacks(execute=True):
        retention_run_task.delay()  # the nightly task resumes the same run

    run = RetentionRun.objects.get()
    assert run.pk == first.pk
    assert run.state == RetentionRun.State.DONE
    assert (run.raw_mime_cleared, run.attachments_deleted, run.conversations_anonymised) == (
        1,
        1,
        1,
    )
    assert run.progress == 1.0
    assert not Attachment.objects.filter(pk=attachment.pk).exists()
    assert not stored.exists()
    old.refresh_from_db()
    assert old.subject == ""
    assert old.anonymised_at is not None
    assert set(Message.objects.filter(conversation=old).values_list("body_text", flat=True)) == {""}
    assert not Message.objects.filter(conversation=old).exclude(raw=b"").exists()
    response = SurveyResponse.objects.get(survey__conversation=old)
    assert (response.comment, response.csat, response.nps, response.resolved) == (
        "[erased]",
        5,
        9,
        "yes",
    )
    # The recent conversation and the customer are untouched; every figure is the same.
    assert (
        sorted(Message.objects.filter(conversation=recent).values_list("body_text", flat=True))
        == recent_bodies
    )
    customer.refresh_from_db()
    assert customer.name == "Jane Roe"
    assert customer.identities.count() == 2
    assert _facts() == figures
    # A second night finds nothing more to do.
    again = retention_run()
    assert again.pk != run.pk
    assert (again.total, again.done, again.state) == (0, 0, RetentionRun.State.DONE)
    page = web(admin_user).get("/privacy/retention/")
    assert b"0 of 0" in page.content


def test_the_api_and_policy_refuse_nonsense(admin_user):
    from supportdesk.errors import ApplicationError

    with pytest.raises(ApplicationError):
        retention_policy_update(
            actor=admin_user, raw_mime_days=0, attachment_days=None, anonymise_closed_days=None
        )
    assert not AuditEntry.objects.filter(action="retention.changed").exists()
    assert client_for(admin_user).get("/api/v1/customers/999999/export/").status_code == 404
