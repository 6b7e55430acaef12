"""What routing adds to other apps' pages and mail (``supportdesk.extensions``)."""

from __future__ import annotations

from typing import Any
from zoneinfo import ZoneInfo

from django.template.loader import render_to_string
from django.utils import formats, timezone

from routing.models import AvailabilityStatus
from routing.selectors import availability_of, business_hours_for
from tickets.models import Conversation


def promise_texts(ids: list[int]) -> dict[int, str]:
    """``conversation.promise``: "Monday 7 December 2026, 11:00 (Europe/Lisbon)" for the
    conversations with a due time, in their team's time zone (the acknowledgement states it)."""
    texts: dict[int, str] = {}
    for conversation in Conversation.objects.filter(
        pk__in=ids, due_at__isnull=False
    ).select_related("team"):
        if conversation.due_at is None:
            continue
        hours = business_hours_for(conversation.team)
        zone = hours.time_zone if hours else "UTC"
        local = conversation.due_at.astimezone(ZoneInfo(zone))
        texts[conversation.pk] = f"{local:%A} {local.day} {local:%B %Y, %H:%M} ({zone})"
    return texts


def availability_home(request: Any, *, user: Any, **_: Any) -> str:
    """The agent's start page: their availability, one click to change it."""
    availability = availability_of(user)
    return render_to_string(
        "routing/panel_home.html",
        {
            "availability": availability,
            "statuses": AvailabilityStatus.choices,
            "changed": formats.date_format(availability.changed_at, "DATETIME_FORMAT")
            if availability.pk
            else "",
        },
        request=request,
    )


def conversation_due(request: Any, *, conversation: Any, **_: Any) -> str:
    """The conversation page's sidebar: when the customer was promised an answer (one query,
    only when there is a due time)."""
    if getattr(conversation, "due_at", None) is None or not conversation.is_active:
        return ""
    text = promise_texts([conversation.pk]).get(conversation.pk, "")
    return render_to_string(
        "routing/panel_due.html",
        {"due_at": conversation.due_at, "text": text, "now": timezone.now()},
        request=request,
    )
