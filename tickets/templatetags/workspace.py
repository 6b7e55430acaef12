"""Small display helpers of the workspace pages."""

from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime, timedelta
from typing import Any

from django import template
from django.utils import timezone
from django.utils.timesince import timesince

register = template.Library()


@register.filter
def ago(value: datetime | None) -> str:
    """ "just now" under a minute, else "3 hours, 5 minutes ago"."""
    if value is None:
        return ""
    if timezone.now() - value < timedelta(minutes=1):
        return "just now"
    return f"{timesince(value)} ago"


@register.filter
def since_short(value: datetime | None) -> str:
    """A compact elapsed time for narrow columns: "12 min", "3 h 5 min", "2 d 4 h"."""
    if value is None:
        return ""
    seconds = max(0, int((timezone.now() - value).total_seconds()))
    minutes, hours, days = seconds // 60, seconds // 3600, seconds // 86400
    if minutes < 1:
        return "just now"
    if hours < 1:
        return f"{minutes} min"
    if days < 1:
        rest = minutes - hours * 60
        return f"{hours} h {rest} min" if rest else f"{hours} h"
    rest = hours - days * 24
    return f"{days} d {rest} h" if rest else f"{days} d"


@register.filter
def get_item(mapping: Mapping[Any, Any] | None, key: Any) -> Any:
    """``mapping[key]``, or None (a missing key or no mapping)."""
    return mapping.get(key) if mapping else None


@register.filter
def ago_short(value: datetime | None) -> str:
    """``since_short`` as a past time: "just now", "12 min ago", "2 d 4 h ago"."""
    text = since_short(value)
    return text if text in ("", "just now") else f"{text} ago"
