from django.contrib.auth.decorators import login_required
from django.core.exceptions import PermissionDenied
from django.core.paginator import Paginator
from django.db import connection
from django.http import HttpRequest, HttpResponse, JsonResponse
from django.shortcuts import render
from django.views import defaults
from django.views.decorators.http import require_GET

from supportdesk.http import StaffRequest
from supportdesk.models import AuditEntry
from supportdesk.selectors import audit_list_for_user


@require_GET
def healthz(request: HttpRequest) -> JsonResponse:
    with connection.cursor() as cursor:
        cursor.execute("SELECT 1")
    return JsonResponse({"status": "ok"})


AUDIT_PAGE_SIZE = 50


@login_required
@require_GET
def audit_log(request: StaffRequest) -> HttpResponse:
    """Who changed what: merges, roles and teams, secrets and tokens, settings, recomputes."""
    if not request.user.is_manager:
        raise PermissionDenied("Only managers and admins see the audit log.")
    action = request.GET.get("action", "")
    if action not in AuditEntry.Action.values:
        action = ""
    entries = audit_list_for_user(user=request.user, action=action)
    page = Paginator(entries, AUDIT_PAGE_SIZE).get_page(request.GET.get("page"))
    return render(
        request,
        "audit.html",
        {"page": page, "actions": AuditEntry.Action.choices, "action": action},
    )


def page_not_found(request: HttpRequest, exception: Exception) -> HttpResponse:
    """404 for a URL no route matches: JSON under /api/ (docs/api.md: errors are JSON), a page
    elsewhere."""
    if request.path.startswith("/api/"):
        return JsonResponse({"detail": "Not found."}, status=404)
    return defaults.page_not_found(request, exception)
