"""The bell (polled), the notifications page, opening one, the agent's settings, @-mention lookup."""

from __future__ import annotations

from django.conf import settings
from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.core.paginator import Paginator
from django.http import HttpResponse, HttpResponseBadRequest, JsonResponse
from django.shortcuts import get_object_or_404, redirect, render
from django.views.decorators.cache import never_cache
from django.views.decorators.http import require_GET, require_http_methods

from notifications import selectors, services
from notifications.forms import PreferenceForm
from notifications.mentions import mention_handles
from supportdesk.http import StaffRequest
from supportdesk.models import Notification
from supportdesk.services import notifications_mark_read
from tickets.selectors import conversation_get_for_user

PAGE_SIZE = 50
ID_MAX = 2**63 - 1


@login_required
@require_http_methods(["GET", "POST"])
def notification_list(request: StaffRequest) -> HttpResponse:
    """The caller's notifications, newest first (``?unread=1``: unread only).

    POST marks read: the ``id`` values given, or every unread one when none is given.
    """
    if request.method == "POST":
        raw = request.POST.getlist("id")
        if any(not value.isdigit() or int(value) > ID_MAX for value in raw):
            return HttpResponseBadRequest("id must be a notification id.")
        ids = [int(value) for value in raw]
        marked = notifications_mark_read(recipient=request.user, ids=ids or None)
        if not ids:
            messages.success(
                request, f"{marked} notification{'s' if marked != 1 else ''} marked as read."
            )
        if request.POST.get("next") == "unread":
            return redirect("/notifications/?unread=1")
        return redirect("notifications")
    unread_only = request.GET.get("unread") == "1"
    notifications = selectors.notification_page_for_user(user=request.user, unread_only=unread_only)
    page = Paginator(notifications, PAGE_SIZE).get_page(request.GET.get("page"))
    return render(
        request,
        "notifications.html",
        {
            "page": page,
            "notifications": page.object_list,
            "unread_only": unread_only,
        },
    )


@never_cache
@login_required
@require_GET
def notification_badge(request: StaffRequest) -> HttpResponse:
    """The bell in the top bar, re-rendered by its own htmx poll: one query."""
    bell = selectors.notification_bell(user=request.user)
    return render(
        request,
        "notifications/_bell.html",
        {
            "bell": bell,
            "unread": bell.unread,
            "latest_id": bell.latest_id,
            "items": bell.items,
            "poll_seconds": settings.NOTIFICATION_POLL_SECONDS,
        },
    )


@login_required
@require_GET
def notification_open(request: StaffRequest, pk: int) -> HttpResponse:
    """Marks one of the caller's notifications read and goes where it points (404: not theirs)."""
    notification = get_object_or_404(Notification, pk=pk, recipient=request.user)
    notifications_mark_read(recipient=request.user, ids=[notification.pk])
    return redirect(notification.url or "notifications")


@login_required
@require_http_methods(["GET", "POST"])
def notification_settings(request: StaffRequest) -> HttpResponse:
    """How the agent hears about their conversations: email at once, hourly or daily, or never;
    desktop notifications are switched on in the browser (static/js/notifications.js)."""
    preference = selectors.notification_preference_for(user=request.user)
    form = PreferenceForm(request.POST or None, initial={"email": preference.email})
    context: dict[str, object] = {
        "form": form,
        "digest_hour": f"{settings.NOTIFICATION_DIGEST_HOUR:02d}",
    }
    if request.method == "POST":
        if not form.is_valid():
            return render(request, "notifications/settings.html", context, status=400)
        services.notification_preference_set(user=request.user, email=form.cleaned_data["email"])
        messages.success(request, "Notification settings saved.")
        return redirect("notifications-settings")
    return render(request, "notifications/settings.html", context)


@login_required
@require_GET
def mention_candidates(request: StaffRequest, pk: int) -> JsonResponse:
    """``?q=``: teammates who may open conversation ``pk`` (404 if the caller may not), for the
    internal note's @-mention autocomplete."""
    conversation = conversation_get_for_user(user=request.user, pk=pk)
    search = request.GET.get("q", "")[:100]
    people = selectors.mention_candidates(
        conversation=conversation, user=request.user, search=search
    )
    return JsonResponse(
        {
            "results": [
                {
                    "id": person.pk,
                    "name": person.full_name or person.email,
                    "email": person.email,
                    "handle": mention_handles(person)[0],
                }
                for person in people
            ]
        }
    )
