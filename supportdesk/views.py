from django.contrib.auth.decorators import login_required
from django.core.exceptions import PermissionDenied
from django.core.paginator import Paginator
from django.db import connection
from django.http import HttpRequest, HttpResponse, JsonResponse
from django.shortcuts import redirect, render
from django.views import defaults
from django.views.decorators.http import require_GET

from supportdesk.http import StaffRequest
from supportdesk.models import AuditEntry
from supportdesk.selectors import audit_list_for_user, notification_list_for_user
from supportdesk.services import notifications_mark_read


@require_GET
def healthz(request: HttpRequest) -> JsonResponse:
    with connection.cursor() as cursor:
        cursor.execute("SELECT 1")
    return JsonResponse({"status": "ok"})


@login_required
def notifications(request: StaffRequest) -> HttpResponse:
    """The caller's notifications, newest first; POST marks them read."""
    if request.method == "POST":
        ids = [int(i) for i in request.POST.getlist("id") if i.isdigit()]
        notifications_mark_read(recipient=request.user, ids=ids or None)
        return redirect("notifications")
    items = list(notification_list_for_user(user=request.user))
    return render(request, "notifications.html", {"notifications": items})


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
