from django.contrib.auth.decorators import login_required
from django.db import connection
from django.http import HttpRequest, HttpResponse, JsonResponse
from django.shortcuts import render
from django.views.decorators.http import require_GET

from tickets.selectors import conversation_list_for_user


@login_required
@require_GET
def home(request: HttpRequest) -> HttpResponse:
    """The staff start page: the caller's queue, newest activity first."""
    conversations = conversation_list_for_user(user=request.user, status="new,open,pending")[:50]
    return render(request, "home.html", {"conversations": conversations})


@require_GET
def healthz(request: HttpRequest) -> JsonResponse:
    with connection.cursor() as cursor:
        cursor.execute("SELECT 1")
    return JsonResponse({"status": "ok"})
