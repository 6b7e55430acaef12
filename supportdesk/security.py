"""Login protection, rate-limit answers and error pages that reveal nothing.

- ``login``: Django's login view behind two rate limits (per client address, and per username
  from that address; django-ratelimit on the cache) and django-axes (``AxesStandaloneBackend`` first in
  AUTHENTICATION_BACKENDS locks a username+address pair out after AXES_FAILURE_LIMIT failures).
- ``handler403`` answers django-ratelimit's ``Ratelimited`` with 429 and ``Retry-After``.
- ``handler500`` answers with a plain page, or JSON under /api/, carrying only the
  request id to quote: no traceback, settings or SQL, whatever DEBUG says elsewhere.
"""

from __future__ import annotations

import sys
from collections.abc import Callable
from typing import Any, Protocol, TypeVar

from allauth.account import views as allauth_views
from django.conf import settings
from django.http import HttpRequest, HttpResponse, HttpResponseBase, JsonResponse
from django.shortcuts import render
from django.template.loader import render_to_string
from django.views import defaults
from django_ratelimit import decorators as ratelimit_decorators
from django_ratelimit.core import is_ratelimited
from django_ratelimit.exceptions import Ratelimited

from supportdesk import request_context
from supportdesk.outage import database_unavailable_response, is_database_outage

RATE_PERIODS = {"s": 1, "m": 60, "h": 3600, "d": 86400}


def _period_seconds(rate: str) -> int:
    """``"10/m"`` -> 60, ``"5/15m"`` -> 900 (django-ratelimit's syntax)."""
    _, _, period = rate.partition("/")
    digits = "".join(ch for ch in period if ch.isdigit())
    unit = period[len(digits) :] or "s"
    return int(digits or 1) * RATE_PERIODS.get(unit[0], 1)


# --- django-axes callables ------------------------------------------------------------------------


def axes_username(request: HttpRequest, credentials: dict[str, Any] | None) -> str:
    """The login as the account stores it: emails are compared lower-cased and trimmed."""
    raw = ""
    if credentials:
        raw = credentials.get("username") or credentials.get("email") or ""
    if not raw and request is not None and request.method == "POST":
        # "login" is allauth's sign-in field, "username" the Django admin's.
        raw = request.POST.get("login", "") or request.POST.get("username", "")
    return str(raw).strip().lower()


def axes_client_ip(request: HttpRequest) -> str | None:
    """The client's address, through TRUSTED_PROXIES (see ``request_context.client_ip``)."""
    return request_context.client_ip(request)


# --- Login ---------------------------------------------------------------------------------------


def _login_username_key(group: str, request: HttpRequest) -> str:
    # Per username *and* address: a stranger posting someone's login from elsewhere slows down
    # only their own address, never the owner's (who would otherwise be kept at 429).
    username = axes_username(request, None) or "-"
    return f"{username}|{request_context.client_ip(request) or '-'}"


def _login_limited(request: HttpRequest) -> str | None:
    """The rate that the login POST exceeds, if any (both counters always advance)."""
    exceeded = None
    checks = [
        ("ip", settings.LOGIN_RATE_LIMIT_IP),
        (_login_username_key, settings.LOGIN_RATE_LIMIT_USERNAME),
    ]
    for key, rate in checks:
        if is_ratelimited(
            request, group="login", key=key, rate=rate, method="POST", increment=True
        ):
            exceeded = exceeded or rate
    return exceeded


def too_many_requests(request: HttpRequest, *, retry_after: int) -> HttpResponse:
    if _wants_json(request):
        response: HttpResponse = JsonResponse(
            {"detail": f"Too many requests. Try again in {retry_after} seconds."}, status=429
        )
    else:
        response = render(
            request, "too_many_requests.html", {"retry_after": retry_after}, status=429
        )
    response["Retry-After"] = str(retry_after)
    return response


class LoginView(allauth_views.LoginView):
    """allauth's sign-in (password, then the second factor) behind the project's rate limits."""

    def post(self, request: HttpRequest, *args: Any, **kwargs: Any) -> HttpResponse:
        rate = _login_limited(request)
        if rate is not None:
            return too_many_requests(request, retry_after=_period_seconds(rate))
        response: HttpResponse = super().post(request, *args, **kwargs)
        return response


login = LoginView.as_view()


class AdminLoginView(Protocol):
    """``AdminSite.login``."""

    def __call__(
        self, request: HttpRequest, extra_context: dict[str, Any] | None = None
    ) -> HttpResponse: ...


def rate_limited_admin_login(view: AdminLoginView) -> AdminLoginView:
    """Wrap the Django admin's login (a second login form) in the same rate limits."""

    def admin_login(
        request: HttpRequest, extra_context: dict[str, Any] | None = None
    ) -> HttpResponse:
        if request.method == "POST":
            rate = _login_limited(request)
            if rate is not None:
                return too_many_requests(request, retry_after=_period_seconds(rate))
        return view(request, extra_context)

    return admin_login


_View = TypeVar("_View", bound=Callable[..., HttpResponseBase])
_Response = TypeVar("_Response", bound=HttpResponseBase)


def ratelimit(*, key: str, rate: str, method: str, block: bool) -> Callable[[_View], _View]:
    """django-ratelimit's view decorator, typed (the package ships no type hints)."""
    decorator: Callable[[_View], _View] = ratelimit_decorators.ratelimit(
        key=key, rate=rate, method=method, block=block
    )
    return decorator


def keep_own_csp(response: _Response) -> _Response:
    """Have django-csp's middleware leave the (stricter) policy this response sets alone.

    This is the attribute django-csp's ``csp_exempt()`` decorator sets; the decorator itself is
    typed for views of one argument only.
    """
    setattr(response, "_csp_exempt", True)  # noqa: B010 (HttpResponse declares no such attribute)
    return response


# --- Error handlers ------------------------------------------------------------------------------


def _wants_json(request: HttpRequest) -> bool:
    return request.path.startswith("/api/") or "application/json" in request.headers.get(
        "Accept", ""
    )


def _error(request: HttpRequest, status: int, title: str, text: str) -> HttpResponse:
    request_id = getattr(request, "request_id", "") or request_context.current().request_id
    if _wants_json(request):
        return JsonResponse({"detail": text, "request_id": request_id}, status=status)
    # No request context: nothing that touches the database or the session (which may be what
    # failed) and nothing about the user.
    html = render_to_string(
        "error.html", {"status": status, "title": title, "text": text, "request_id": request_id}
    )
    return HttpResponse(html, status=status)


def handler403(request: HttpRequest, exception: Exception) -> HttpResponse:
    if isinstance(exception, Ratelimited):
        # Views decorated with @ratelimit(block=True) (the customer chat): a minute's window.
        return too_many_requests(request, retry_after=60)
    return defaults.permission_denied(request, exception)


def handler500(request: HttpRequest) -> HttpResponse:
    # A database outage outside a view (sessions, middleware) answers 503 + Retry-After, so that
    # providers retry (faults: supportdesk.outage).
    if is_database_outage(sys.exc_info()[1]):
        return database_unavailable_response(request)
    # Only static text: the template gets no exception, settings or request data.
    return _error(
        request,
        500,
        "Something went wrong",
        "The error was recorded. If it keeps happening, tell your administrator "
        "and quote the request id.",
    )


def allow_framing_by(response: _Response, origins: list[str]) -> _Response:
    """Let these origins (and this site) frame the response: ``Content-Security-Policy:
    frame-ancestors 'self' <origins>`` and no ``X-Frame-Options`` (which cannot list origins).
    Every other page keeps ``frame-ancestors 'none'`` and ``X-Frame-Options: DENY``."""
    setattr(response, "xframe_options_exempt", True)  # noqa: B010
    setattr(  # noqa: B010 (django-csp's csp_replace attribute)
        response, "_csp_replace", {"frame-ancestors": ["'self'", *origins]}
    )
    return response
