from django.contrib.auth.decorators import login_required
from django.db import connection
from django.http import HttpRequest, HttpResponse, JsonResponse
from django.shortcuts import redirect, render
from django.views import defaults
from django.views.decorators.http import require_GET

from supportdesk.selectors import notification_list_for_user
from supportdesk.services import notifications_mark_read


@require_GET
def healthz(request: HttpRequest) -> JsonResponse:
    with connection.cursor() as cursor:
        cursor.execute("SELECT 1")
    return JsonResponse({"status": "ok"})


@login_required
def notifications(request: HttpRequest) -> HttpResponse:
    """The caller's notifications, newest first; POST marks them read."""
    if request.method == "POST":
        ids = [int(i) for i in request.POST.getlist("id") if i.isdigit()]
        notifications_mark_read(recipient=request.user, ids=ids or None)
        return redirect("notifications")
    items = list(notification_list_for_user(user=request.user))
    return render(request, "notifications.html", {"notifications": items})


def page_not_found(request: HttpRequest, exception: Exception) -> HttpResponse:
    """404 for a URL no route matches: JSON under /api/ (API.md: errors are JSON), a page
    elsewhere."""
    if request.path.startswith("/api/"):
        return JsonResponse({"detail": "Not found."}, status=404)
    return defaults.page_not_found(request, exception)
