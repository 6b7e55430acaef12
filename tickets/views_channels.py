"""The Channels admin page: each channel's survey switch, where chat and social replies are
delivered (webhook URL), its secret (rotated here) and, for a chat channel, the sites that may
embed its chat widget with the snippet to paste. Every change goes through a service in
``tickets.services.channels`` (the URL and origin checks, the audit)."""

from __future__ import annotations

from typing import Any

from django.conf import settings
from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.core.exceptions import PermissionDenied
from django.http import Http404, HttpResponse
from django.shortcuts import redirect, render
from django.urls import reverse
from django.views.decorators.http import require_GET, require_POST

from supportdesk.errors import ApplicationError
from supportdesk.http import StaffRequest
from tickets import selectors, services
from tickets.models import Channel, ChannelKind

# Chat and social channels deliver agent replies (and survey links) through a webhook.
WEBHOOK_KINDS = (ChannelKind.CHAT, ChannelKind.SOCIAL)


def _require_admin(request: StaffRequest) -> None:
    if not request.user.is_admin:
        raise PermissionDenied("Only admins change channels.")


def _channel(pk: int) -> Channel:
    channel = next((c for c in selectors.channel_list_for_settings() if c.pk == pk), None)
    if channel is None:
        raise Http404("No such channel.")
    return channel


def _page(
    request: StaffRequest,
    *,
    status: int = 200,
    new_secret: tuple[int, str] | None = None,
    posted: tuple[int, dict[str, Any]] | None = None,
) -> HttpResponse:
    rows = []
    for channel in selectors.channel_list_for_settings():
        row: dict[str, Any] = {
            "channel": channel,
            "webhook": channel.kind in WEBHOOK_KINDS,
            "webhook_url": channel.webhook_url,
            "origins": "\n".join(channel.widget_origins or []),
            "surveyed": channel.surveyed,
            "snippet": (
                f'<script src="{settings.SITE_URL}/widget/{channel.widget_key}.js" async></script>'
                if channel.widget_key
                else ""
            ),
            "new_secret": new_secret[1] if new_secret and new_secret[0] == channel.pk else "",
        }
        if posted and posted[0] == channel.pk:
            row.update(posted[1])  # a refused save shows what was typed
        rows.append(row)
    response = render(request, "tickets/channel_widgets.html", {"rows": rows}, status=status)
    if new_secret:
        response["Cache-Control"] = "no-store"
    return response


@login_required
@require_GET
def channel_widget_list(request: StaffRequest) -> HttpResponse:
    """Every channel with its survey switch and webhook; chat channels with their widget's
    sites and snippet."""
    _require_admin(request)
    return _page(request)


@login_required
@require_POST
def channel_widget_edit(request: StaffRequest, pk: int) -> HttpResponse:
    """Saves one channel's settings. A bad webhook URL or site changes nothing (400 with the
    reason, the form keeps what was typed)."""
    _require_admin(request)
    channel = _channel(pk)
    surveyed = request.POST.get("surveyed") == "on"
    webhook_url = (
        request.POST.get("webhook_url", "").strip()[:500] if channel.kind in WEBHOOK_KINDS else None
    )
    raw_origins = request.POST.get("origins", "")[:5000]
    origins = raw_origins.split() if channel.kind == ChannelKind.CHAT else None
    try:
        services.channel_settings_update(
            channel=channel,
            surveyed=surveyed,
            webhook_url=webhook_url,
            origins=origins,
            actor=request.user,
        )
    except ApplicationError as exc:
        messages.error(request, f"{channel.name}: {exc.message}")
        typed = {"surveyed": surveyed, "origins": raw_origins, "webhook_url": webhook_url or ""}
        return _page(request, status=exc.status, posted=(channel.pk, typed))
    messages.success(request, f"Settings of {channel.name} saved.")
    return redirect(f"{_list_url()}#channel-{channel.pk}")


@login_required
@require_POST
def channel_secret_rotate(request: StaffRequest, pk: int) -> HttpResponse:
    """Gives the channel a new secret (the old one stops working at once) and shows it once."""
    _require_admin(request)
    channel = services.channel_rotate_secret(channel=_channel(pk), actor=request.user)
    messages.success(
        request,
        f"{channel.name} has a new secret: copy it now, it is not shown again. "
        "The old secret no longer works.",
    )
    return _page(request, new_secret=(channel.pk, channel.secret))


def _list_url() -> str:
    return reverse("workspace:channel-widgets")
