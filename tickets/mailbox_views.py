"""Admin pages for mailboxes: health, connect, edit, test the connection, OAuth2 connect flow.

Admins only (403 for other staff, like the Django admin). Credentials typed here go straight to
the services, which seal them; no page ever renders a stored one back.
"""

from __future__ import annotations

import secrets

from django.conf import settings
from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.core.exceptions import PermissionDenied, ValidationError
from django.http import HttpResponse, HttpResponseRedirect
from django.shortcuts import redirect, render
from django.urls import reverse
from django.views.decorators.http import require_GET, require_http_methods, require_POST

from supportdesk.errors import ApplicationError
from supportdesk.http import StaffRequest
from tickets import selectors, services
from tickets.forms import MailboxForm, MailboxNewForm
from tickets.mailbox_transport import oauth_authorize_url
from tickets.models import Mailbox

OAUTH_SESSION_KEY = "mailbox_oauth"


def _admin_only(request: StaffRequest) -> None:
    if not request.user.is_admin:
        raise PermissionDenied("Only admins manage mailboxes.")


@login_required
@require_GET
def mailbox_list(request: StaffRequest) -> HttpResponse:
    """Every mailbox and its health."""
    _admin_only(request)
    return render(
        request,
        "tickets/mailboxes.html",
        {
            "mailboxes": list(selectors.mailbox_list()),
            "alert_minutes": settings.MAILBOX_ALERT_MINUTES,
            "poll_seconds": settings.MAILBOX_POLL_SECONDS,
        },
    )


def _initial(mailbox: Mailbox) -> dict[str, object]:
    return {name: getattr(mailbox, name) for name in services.MAILBOX_FIELDS}


@login_required
@require_http_methods(["GET", "POST"])
def mailbox_new(request: StaffRequest) -> HttpResponse:
    """Connect a mailbox (and create its email channel when the name is new)."""
    _admin_only(request)
    form = MailboxNewForm(request.POST if request.method == "POST" else None)
    if request.method == "POST" and form.is_valid():
        team = form.cleaned_data["team"]
        try:
            mailbox = services.mailbox_create(
                channel_name=form.cleaned_data["channel_name"].strip(),
                team_name=team.name if team else None,
                address=form.cleaned_data["address"],
                values=form.values(),
                credentials=form.credentials(),
                actor=request.user,
            )
        except (ApplicationError, ValidationError) as exc:
            form.add_error(None, exc.message if isinstance(exc, ApplicationError) else exc)
        else:
            messages.success(request, _saved_message(mailbox))
            return redirect("mailbox-edit", pk=mailbox.pk)
    status = 400 if form.errors else 200
    return render(
        request,
        "tickets/mailbox_form.html",
        {"form": form, "mailbox": None, "redirect_uri": _redirect_uri()},
        status=status,
    )


def _saved_message(mailbox: Mailbox) -> str:
    if mailbox.auth == Mailbox.Auth.OAUTH2 and not mailbox.oauth_refresh_token_sealed:
        return "Saved. Now connect the account with the provider (OAuth2)."
    return "Saved. Test the connection to see what the first poll will import."


@login_required
@require_http_methods(["GET", "POST"])
def mailbox_edit(request: StaffRequest, pk: int) -> HttpResponse:
    """Change a mailbox; blank credential fields keep what is stored."""
    _admin_only(request)
    mailbox = selectors.mailbox_get(pk=pk)
    form = MailboxForm(
        request.POST if request.method == "POST" else None, initial=_initial(mailbox)
    )
    if request.method == "POST" and form.is_valid():
        try:
            mailbox = services.mailbox_save(
                channel=mailbox.channel,
                values=form.values(),
                credentials=form.credentials(),
                actor=request.user,
            )
        except ApplicationError as exc:
            form.add_error(None, exc.message)
        else:
            messages.success(request, _saved_message(mailbox))
            return redirect("mailbox-edit", pk=mailbox.pk)
    status = 400 if form.errors else 200
    return render(
        request,
        "tickets/mailbox_form.html",
        {
            "form": form,
            "mailbox": mailbox,
            "stored": _stored(mailbox),
            "redirect_uri": _redirect_uri(),
        },
        status=status,
    )


def _stored(mailbox: Mailbox) -> dict[str, bool]:
    """Which credentials are stored: shown as "stored", never their value."""
    return {
        "password": bool(mailbox.password_sealed),
        "oauth_client_secret": bool(mailbox.oauth_client_secret_sealed),
        "smtp_password": bool(mailbox.smtp_password_sealed),
        "oauth_refresh_token": bool(mailbox.oauth_refresh_token_sealed),
    }


@login_required
@require_POST
def mailbox_test(request: StaffRequest, pk: int) -> HttpResponse:
    """Log in and count what would be imported; htmx swaps the answer in, otherwise a message."""
    _admin_only(request)
    mailbox = selectors.mailbox_get(pk=pk)
    ok, text = services.mailbox_test_connection(mailbox=mailbox)
    if request.htmx:
        return render(
            request, "tickets/_mailbox_test.html", {"ok": ok, "text": text, "mailbox": mailbox}
        )
    (messages.success if ok else messages.error)(request, text)
    return redirect("mailbox-edit", pk=mailbox.pk)


@login_required
@require_POST
def mailbox_poll_now(request: StaffRequest, pk: int) -> HttpResponse:
    """Queue a poll of this mailbox now (the worker runs it; the page shows its progress)."""
    _admin_only(request)
    mailbox = selectors.mailbox_get(pk=pk)
    from tickets.tasks import mailbox_poll_task

    mailbox_poll_task.delay(mailbox.pk)
    messages.success(request, f"A poll of {mailbox.channel.name!r} is queued.")
    return redirect("mailboxes")


def _redirect_uri() -> str:
    return f"{settings.SITE_URL.rstrip('/')}{reverse('mailbox-oauth-callback')}"


@login_required
@require_POST
def mailbox_oauth_start(request: StaffRequest, pk: int) -> HttpResponse:
    """Send the admin to the provider to allow access (authorization-code grant)."""
    _admin_only(request)
    mailbox = selectors.mailbox_get(pk=pk)
    if mailbox.auth != Mailbox.Auth.OAUTH2:
        messages.error(request, "This mailbox signs in with a password, not OAuth2.")
        return redirect("mailbox-edit", pk=mailbox.pk)
    authorize, _, scope, extra = services.mailbox_oauth_endpoints(mailbox)
    state = secrets.token_urlsafe(32)
    request.session[OAUTH_SESSION_KEY] = {"state": state, "mailbox": mailbox.pk}
    return HttpResponseRedirect(
        oauth_authorize_url(
            authorize_url=authorize,
            client_id=mailbox.oauth_client_id,
            redirect_uri=_redirect_uri(),
            scope=scope,
            state=state,
            extra=extra,
        )
    )


@login_required
@require_GET
def mailbox_oauth_callback(request: StaffRequest) -> HttpResponse:
    """The provider sends the admin back here with a code; store the refresh token it buys."""
    _admin_only(request)
    pending = request.session.pop(OAUTH_SESSION_KEY, None)
    state = request.GET.get("state", "")
    if not pending or not state or not secrets.compare_digest(str(pending["state"]), state):
        return render(
            request,
            "error.html",
            {
                "title": "Connection not completed",
                "text": "This link is stale or was not started here. Start again with "
                "“Connect” on the mailbox page.",
            },
            status=400,
        )
    mailbox = selectors.mailbox_get(pk=pending["mailbox"])
    if request.GET.get("error"):
        messages.error(
            request,
            f"The provider did not allow access: {request.GET.get('error_description') or request.GET['error']}",
        )
        return redirect("mailbox-edit", pk=mailbox.pk)
    code = request.GET.get("code", "")
    if not code:
        messages.error(request, "The provider sent no authorization code; connect again.")
        return redirect("mailbox-edit", pk=mailbox.pk)
    try:
        services.mailbox_oauth_complete(
            mailbox=mailbox, code=code, redirect_uri=_redirect_uri(), actor=request.user
        )
    except ApplicationError as exc:
        messages.error(request, exc.message)
    else:
        messages.success(request, "Connected: the refresh token is stored. Test the connection.")
    return redirect("mailbox-edit", pk=mailbox.pk)
