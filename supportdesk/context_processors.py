from typing import Any

from django.http import HttpRequest

from supportdesk.selectors import notification_unread_count


def notifications(request: HttpRequest) -> dict[str, Any]:
    """``unread_notifications`` for the top bar: one COUNT on the partial index, staff only."""
    user = getattr(request, "user", None)
    if user is None or not user.is_authenticated:
        return {}
    return {"unread_notifications": lambda: notification_unread_count(user=user)}
