from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.core.exceptions import PermissionDenied
from django.core.paginator import Paginator
from django.db import connection
from django.http import Http404, HttpRequest, HttpResponse, JsonResponse
from django.shortcuts import redirect, render
from django.urls import reverse
from django.views import defaults
from django.views.decorators.http import require_GET, require_http_methods, require_POST

from supportdesk import mailtemplates
from supportdesk.errors import ApplicationError
from supportdesk.forms import MailTemplateForm, SignatureForm
from supportdesk.http import StaffRequest
from supportdesk.models import AuditEntry, MailTemplate, User
from supportdesk.selectors import (
    audit_list_for_user,
    mail_template_get,
    mail_template_list_all,
)
from supportdesk.services import (
    mail_template_reset,
    mail_template_save,
    user_signature_update,
)


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


# --- Email wording: templates (admins) and the agent's own signature ----------------------------

# What the preview fills the variables with: recognisable sample values, never real data.
PREVIEW_VALUES = {
    "customer.name": "Jane Doe",
    "customer.first_name": "Jane",
    "conversation.id": "1042",
    "conversation.subject": "My order has not arrived",
    "channel.name": "Support inbox",
    "channel.address": "help@example.com",
    "agent.name": "Alice Archer",
    "agent.first_name": "Alice",
    "agent.email": "alice@example.com",
    "notification.title": "A customer answered “not resolved”",
    "notification.body": "Conversation #1042: “still waiting for the parcel”",
    "notification.link": "https://desk.example.com/conversations/1042/",
    "recipient.name": "Mia Manager",
}


def _preview_values(user: User) -> dict[str, str]:
    values = {**PREVIEW_VALUES, "desk.name": mailtemplates.desk_name()}
    if user.full_name:
        values["agent.name"] = user.full_name
        values["agent.first_name"] = mailtemplates.first_word(user.full_name)
    values["agent.email"] = user.email
    return values


def _admin_only(request: StaffRequest) -> None:
    if not request.user.is_admin:
        raise PermissionDenied("Only admins edit the desk's email templates.")


@login_required
@require_GET
def mail_template_list(request: StaffRequest) -> HttpResponse:
    """Every template the desk sends, with the languages an admin has written it in."""
    _admin_only(request)
    stored = mail_template_list_all()
    rows = [
        {
            "key": key,
            "label": label,
            "languages": [t for t in stored if t.key == key],
        }
        for key, label in MailTemplate.Key.choices
    ]
    return render(
        request,
        "settings/mail_templates.html",
        {"rows": rows, "default_language": mailtemplates.default_language()},
    )


@login_required
@require_http_methods(["GET", "POST"])
def mail_template_edit(request: StaffRequest, key: str) -> HttpResponse:
    """Edit one template in one language (``?language=``); POST saves, or resets with
    ``reset=1``. The preview (``mail_template_preview``) renders what is typed."""
    _admin_only(request)
    if key not in MailTemplate.Key.values:
        raise Http404("No such template.")
    default = mailtemplates.DEFAULTS[key]
    language = (request.GET.get("language") or mailtemplates.default_language()).lower()[:10]
    status = 200
    if request.method == "POST":
        form = MailTemplateForm(request.POST)
        if request.POST.get("reset") == "1" and form.is_bound:
            mail_template_reset(
                key=key, language=request.POST.get("language", ""), actor=request.user
            )
            messages.success(request, "Back to the fallback wording.")
            return redirect(f"{reverse('mail-template-edit', args=[key])}?language={language}")
        if form.is_valid():
            try:
                template = mail_template_save(
                    key=key,
                    language=form.cleaned_data["language"],
                    subject=form.cleaned_data["subject"],
                    body=form.cleaned_data["body"],
                    actor=request.user,
                )
            except ApplicationError as exc:
                form.add_error(None, str(exc))
                status = 400
            else:
                messages.success(request, f"Saved ({template.language}).")
                return redirect(
                    f"{reverse('mail-template-edit', args=[key])}?language={template.language}"
                )
        else:
            status = 400
    else:
        subject, body = mailtemplates.mail_template_for(key=key, language=language)
        form = MailTemplateForm(initial={"language": language, "subject": subject, "body": body})
    stored = mail_template_get(key=key, language=language)
    subject_value = str(form["subject"].value() or "")
    body_value = str(form["body"].value() or "")
    context = {
        "key": key,
        "label": MailTemplate.Key(key).label,
        "form": form,
        "stored": stored,
        "language": language,
        "variables": sorted(default.variables.items()),
        "preview": mailtemplates.mail_render(
            subject=subject_value, body=body_value, variables=_preview_values(request.user)
        ),
    }
    return render(request, "settings/mail_template_edit.html", context, status=status)


@login_required
@require_POST
def mail_template_preview(request: StaffRequest, key: str) -> HttpResponse:
    """The htmx preview: subject, text and HTML as the recipient would get them."""
    _admin_only(request)
    if key not in MailTemplate.Key.values:
        raise Http404("No such template.")
    preview = mailtemplates.mail_render(
        subject=request.POST.get("subject", "")[:300],
        body=request.POST.get("body", "")[:20_000],
        variables=_preview_values(request.user),
    )
    return render(request, "settings/_mail_preview.html", {"preview": preview})


@login_required
@require_http_methods(["GET", "POST"])
def signature_edit(request: StaffRequest) -> HttpResponse:
    """The signature under the caller's own email replies (each agent edits their own)."""
    status = 200
    if request.method == "POST":
        form = SignatureForm(request.POST)
        if form.is_valid():
            user_signature_update(
                user=request.user, signature=form.cleaned_data["signature"], actor=request.user
            )
            messages.success(request, "Signature saved.")
            return redirect("signature")
        status = 400
    else:
        form = SignatureForm(initial={"signature": request.user.signature})
    text = str(form["signature"].value() or "")
    context = {
        "form": form,
        "variables": sorted(mailtemplates.SIGNATURE_VARIABLES.items()),
        "preview": mailtemplates.mail_render(
            subject="", body=text, variables=_preview_values(request.user)
        ),
    }
    return render(request, "settings/signature.html", context, status=status)


@login_required
@require_POST
def signature_preview(request: StaffRequest) -> HttpResponse:
    preview = mailtemplates.mail_render(
        subject="",
        body=request.POST.get("signature", "")[:2000],
        variables=_preview_values(request.user),
    )
    return render(request, "settings/_mail_preview.html", {"preview": preview})
