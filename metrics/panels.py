"""What the metrics app adds to other apps' pages (registered in MetricsConfig.ready)."""

from __future__ import annotations

from typing import Any

from django.template.loader import render_to_string


def agent_home_panel(request: Any, **context: Any) -> str:
    """A link from the start page to the user's own scorecard; no query."""
    user = context.get("user") or request.user
    if not getattr(user, "is_authenticated", False):
        return ""
    return render_to_string("metrics/_agent_home_panel.html", {"agent": user}, request=request)
