"""Template helpers of the metrics pages."""

from __future__ import annotations

from django import template
from django.urls import NoReverseMatch, reverse

register = template.Library()

# The workspace's conversation page (tickets/web_urls.py); names tried in order.
CONVERSATION_URL_NAMES = ("workspace:conversation", "workspace:conversation_detail")


@register.simple_tag
def conversation_url(pk: int) -> str:
    """The staff page of a conversation, or the API's when the workspace page is not there."""
    for name in CONVERSATION_URL_NAMES:
        try:
            return reverse(name, args=[pk])
        except NoReverseMatch:
            continue
    return f"/api/v1/conversations/{pk}/"


@register.filter
def percent(value: float | None) -> str:
    return "—" if value is None else f"{value * 100:.0f}%"


@register.filter
def get_item(mapping: dict, key: str) -> object:
    return mapping.get(key)
