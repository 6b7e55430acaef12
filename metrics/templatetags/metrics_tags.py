"""Template helpers of the metrics pages."""

from __future__ import annotations

from collections.abc import Mapping

from django import template
from django.urls import reverse

register = template.Library()


@register.simple_tag
def conversation_url(pk: int) -> str:
    """The workspace's page of a conversation (tickets/web_urls.py)."""
    return reverse("workspace:conversation", args=[pk])


@register.filter
def percent(value: float | None) -> str:
    return "—" if value is None else f"{value * 100:.0f}%"


@register.filter
def get_item(mapping: Mapping[str, object], key: str) -> object:
    return mapping.get(key)
