"""The admins' Settings index and the webhook hosts page (``supportdesk.urlguard``)."""

from __future__ import annotations

from django import forms
from django.conf import settings
from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.core.exceptions import PermissionDenied
from django.http import HttpResponse
from django.shortcuts import get_object_or_404, redirect, render
from django.urls import NoReverseMatch, reverse
from django.views.decorators.http import require_GET, require_http_methods, require_POST

from supportdesk import extensions, urlguard
from supportdesk.errors import ApplicationError
from supportdesk.http import StaffRequest
from supportdesk.models import WebhookAllowedHost
from supportdesk.selectors import webhook_allowed_host_list


class WebhookHostForm(forms.Form):
    host = forms.CharField(max_length=253, label="Host name or address")
    note = forms.CharField(max_length=200, required=False, label="Why (shown in the list)")


def _admin_only(request: StaffRequest) -> None:
    if not request.user.is_admin:
        raise PermissionDenied("Only admins change the desk's settings.")


@login_required
@require_GET
def settings_index(request: StaffRequest) -> HttpResponse:
    """Every administration page, with a line on what is set there."""
    _admin_only(request)
    pages = []
    for page in extensions.settings_pages():
        try:
            pages.append({"page": page, "url": reverse(page.url_name)})
        except NoReverseMatch:
            continue  # the app that registered it has no URLs in this deployment
    return render(request, "settings/index.html", {"pages": pages})


def _hosts_page(request: StaffRequest, form: WebhookHostForm, *, status: int = 200) -> HttpResponse:
    return render(
        request,
        "settings/webhook_hosts.html",
        {
            "form": form,
            "hosts": webhook_allowed_host_list(),
            "env_hosts": sorted({host.strip().lower() for host in settings.WEBHOOK_ALLOWED_HOSTS}),
        },
        status=status,
    )


@login_required
@require_http_methods(["GET", "POST"])
def webhook_hosts(request: StaffRequest) -> HttpResponse:
    _admin_only(request)
    if request.method == "GET":
        return _hosts_page(request, WebhookHostForm())
    form = WebhookHostForm(request.POST)
    if not form.is_valid():
        return _hosts_page(request, form, status=400)
    try:
        entry = urlguard.webhook_host_allow(
            host=form.cleaned_data["host"], note=form.cleaned_data["note"], actor=request.user
        )
    except ApplicationError as exc:
        form.add_error("host", exc.message)
        return _hosts_page(request, form, status=400)
    messages.success(request, f"Webhook URLs may now point at {entry.host}.")
    return redirect("webhook-hosts")


@login_required
@require_POST
def webhook_host_remove(request: StaffRequest, pk: int) -> HttpResponse:
    _admin_only(request)
    entry = get_object_or_404(WebhookAllowedHost, pk=pk)
    urlguard.webhook_host_remove(entry=entry, actor=request.user)
    messages.success(request, f"Webhook URLs on {entry.host} are checked again.")
    return redirect("webhook-hosts")
