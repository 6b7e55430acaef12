"""The retention page (admins): how long raw mail and files are kept, when closed conversations
are anonymised, and how the nightly run is doing. Erasure and export live on the customer page
(``tickets.customer_views``)."""

from __future__ import annotations

from django import forms
from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.core.exceptions import PermissionDenied
from django.http import HttpResponse
from django.shortcuts import redirect, render
from django.views.decorators.http import require_http_methods

from supportdesk.errors import ApplicationError
from supportdesk.http import StaffRequest
from tickets import services


class RetentionForm(forms.Form):
    raw_mime_days = forms.IntegerField(min_value=1, max_value=36500, required=False)
    attachment_days = forms.IntegerField(min_value=1, max_value=36500, required=False)
    anonymise_closed_days = forms.IntegerField(min_value=1, max_value=36500, required=False)


@login_required
@require_http_methods(["GET", "POST"])
def retention_page(request: StaffRequest) -> HttpResponse:
    if not request.user.is_admin:
        raise PermissionDenied("Only admins change the retention settings.")
    policy = services.retention_policy_get()
    status = 200
    if request.method == "POST":
        form = RetentionForm(request.POST)
        if form.is_valid():
            try:
                services.retention_policy_update(actor=request.user, **form.cleaned_data)
            except ApplicationError as exc:
                messages.error(request, str(exc))
                status = exc.status
            else:
                messages.success(request, "Retention settings saved; the nightly run applies them.")
                return redirect("workspace:retention")
        else:
            messages.error(request, "Give a number of days from 1 to 36500, or leave it empty.")
            status = 400
    else:
        form = RetentionForm(
            initial={
                "raw_mime_days": policy.raw_mime_days,
                "attachment_days": policy.attachment_days,
                "anonymise_closed_days": policy.anonymise_closed_days,
            }
        )
    context = {"form": form, "policy": policy, "run": services.retention_latest_run()}
    return render(request, "tickets/retention.html", context, status=status)
