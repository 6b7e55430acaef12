"""Hostile content outside the browser (security: hostile content): attachment downloads and CSV exports."""

from __future__ import annotations

import csv
import io
from datetime import timedelta

import pytest
from django.utils import timezone

from tests.helpers import web
from tests.hostile import hostile_desk
from tickets.models import Attachment

pytestmark = pytest.mark.django_db(transaction=True)


@pytest.fixture
def desk(channels, agent_a, manager_a, settings):
    settings.QA_PEER_REVIEW = False
    return hostile_desk(channels=channels, agent=agent_a, manager=manager_a)


def test_attachments_are_downloads_with_safe_headers_for_the_team_only(desk, agent_a, agent_b):
    attachments = {a.filename: a for a in Attachment.objects.filter(pk__in=desk.attachments)}
    assert set(attachments) == {'"><img src=x onerror=alert(1)>.html', "logo.svg", "C calc'!A0.xml"}

    for name, attachment in attachments.items():
        response = web(agent_a).get(f"/attachments/{attachment.pk}/")

        assert response.status_code == 200, name
        assert response["Content-Type"] == "application/octet-stream"
        assert response["X-Content-Type-Options"] == "nosniff"
        assert response["Content-Security-Policy"] == (
            "sandbox; default-src 'none'; frame-ancestors 'none'"
        )
        disposition = response["Content-Disposition"]
        assert disposition.startswith("attachment; filename")
        assert "\r" not in disposition
        assert "\n" not in disposition
        assert b"".join(response.streaming_content) == attachment.file.open("rb").read()
        assert web(agent_b).get(f"/attachments/{attachment.pk}/").status_code == 404
    html = attachments['"><img src=x onerror=alert(1)>.html']
    disposition = web(agent_a).get(f"/attachments/{html.pk}/")["Content-Disposition"]
    # The quote is escaped inside the quoted filename: it cannot end the parameter early.
    assert disposition == 'attachment; filename="\\"><img src=x onerror=alert(1)>.html"'


def _rows(response) -> list[list[str]]:
    text = b"".join(response.streaming_content).decode()
    return list(csv.reader(io.StringIO(text)))


FORMULA_START = ("=", "+", "-", "@", "\t", "\r")


def _assert_neutral(rows: list[list[str]]) -> None:
    for row in rows[1:]:
        for cell in row:
            if cell.startswith(FORMULA_START):
                # Numbers are ours (a negative gap keeps its sign); text never starts a formula.
                float(cell)


def test_every_csv_export_neutralises_formulas(desk, manager_a):
    from metrics.views import DRILLABLE

    # Given: the hostile desk (subjects, names and comments starting like formulas)
    client = web(manager_a)
    today = timezone.localdate()
    period = {"from": str(today - timedelta(days=30)), "to": str(today + timedelta(days=1))}
    exports = {
        f"drill {metric}": client.get(
            "/dashboard/drill.csv", {"metric": metric, "all": "1", **period}
        )
        for metric in sorted(DRILLABLE)
    }
    for group_by in ("desk", "team", "agent", "channel"):
        exports[f"scorecard {group_by}"] = client.get(
            "/dashboard/export.csv", {"group_by": group_by, **period}
        )

    # Then: every export is a CSV download whose text cells cannot start a formula
    cells: list[str] = []
    for name, response in exports.items():
        assert response.status_code == 200, (name, response.content[:300])
        assert response["Content-Type"] == "text/csv; charset=utf-8"
        assert response["Content-Disposition"].startswith('attachment; filename="')
        rows = _rows(response)
        _assert_neutral(rows)
        cells += [cell for row in rows[1:] for cell in row]
    assert '\'=HYPERLINK ("http://evil.example")' in cells  # a customer's name, neutralised
    assert any(cell.startswith("Order <script>") for cell in cells)  # shown as text
