from functools import cache
from typing import Any

from django.conf import settings
from django.http import HttpRequest

from supportdesk.selectors import notification_unread_summary


def notifications(request: HttpRequest) -> dict[str, Any]:
    """``notification_bell`` for the top bar: one aggregate on the partial index, staff only, and
    only when a page renders the bell (the template calls it lazily)."""
    user = getattr(request, "user", None)
    if user is None or not user.is_authenticated:
        return {}

    @cache
    def bell() -> dict[str, int]:
        return notification_unread_summary(user=user)

    return {
        "notification_bell": bell,
        "notification_poll_seconds": settings.NOTIFICATION_POLL_SECONDS,
    }
