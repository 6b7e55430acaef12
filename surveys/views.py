"""The customer's survey page (no login, by signed link) and the staff pages of surveys."""

from __future__ import annotations

from datetime import date
from typing import Any

from django.conf import settings
from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.core.exceptions import PermissionDenied
from django.core.paginator import Paginator
from django.http import Http404, HttpRequest, HttpResponse
from django.shortcuts import redirect, render
from django.urls import reverse
from django.utils import translation
from django.utils.translation import gettext
from django.utils.translation import gettext_lazy as _
from django.views.decorators.csrf import csrf_exempt
from django.views.decorators.http import require_GET, require_http_methods, require_POST
from django_ratelimit.core import is_ratelimited

from supportdesk.errors import ApplicationError
from supportdesk.http import StaffRequest
from supportdesk.languages import (
    customer_language,
    default_page_language,
    language_choices,
    request_language,
    supported_language,
)
from supportdesk.models import Team, User
from supportdesk.replicas import replica_reads
from supportdesk.security import allow_framing_by
from surveys import selectors, services
from surveys.models import Survey, SurveyResponse
from surveys.services import Answer, SurveyExpired, SurveyNotFound
from tickets.services import customer_language_detected

RESOLVED_CHOICES = [
    ("yes", _("Yes")),
    ("partly", _("Partly")),
    ("no", _("No")),
]
CONTACT_CHOICES = [(1, "1"), (2, "2"), (3, "3"), (4, "4"), (5, _("5 or more"))]
CSAT_CHOICES = [
    (1, _("Very dissatisfied")),
    (2, _("Dissatisfied")),
    (3, _("Neutral")),
    (4, _("Satisfied")),
    (5, _("Very satisfied")),
]


def _limited(request: HttpRequest, group: str) -> bool:
    """Public survey endpoints: per client address, GET and POST counted separately."""
    limited: bool = is_ratelimited(
        request,
        group=f"surveys.{group}.{request.method}",
        key="ip",
        rate=settings.SURVEY_RATE_LIMIT,
        method=["GET", "HEAD", "POST"],
        increment=True,
    )
    return limited


def _too_many(request: HttpRequest) -> HttpResponse:
    response = render(request, "surveys/too_many.html", status=429)
    response["Retry-After"] = "60"
    return response


def _survey_or_error(request: HttpRequest, token: str) -> Survey | HttpResponse:
    try:
        return services.survey_from_token(token)
    except SurveyExpired:
        return render(request, "surveys/expired.html", status=410)
    except SurveyNotFound:
        raise Http404 from None


def _int_or_none(value: str | None) -> int | None:
    value = (value or "").strip()
    if not value:
        return None
    if not value.isdigit() or len(value) > 3:
        raise ValueError(value)
    return int(value)


def _answer_from_post(data: Any) -> Answer:
    """The form's fields (docs/api.md): resolved, contacts, csat, nps, comment, shout_out."""
    errors: dict[str, str] = {}
    parsed: dict[str, int | None] = {}
    for field in ("contacts", "csat", "nps"):
        try:
            parsed[field] = _int_or_none(data.get(field))
        except ValueError:
            errors[field] = gettext("Choose one of the options.")
    if errors:
        raise ApplicationError(gettext("Please check your answers."), extra={"errors": errors})
    return Answer(
        resolved=(data.get("resolved") or "").strip(),
        contacts_declared=parsed["contacts"],
        csat=parsed["csat"],
        nps=parsed["nps"],
        comment=(data.get("comment") or "")[:6000],
        shout_out=data.get("shout_out") == "on",
        needs_nothing_more=data.get("needs_nothing_more") == "on",
    )


def _form_values(
    survey: Survey, response: SurveyResponse | None, request: HttpRequest
) -> dict[str, str | bool]:
    if request.method == "POST":
        data = request.POST
        return {
            "resolved": data.get("resolved", ""),
            "contacts": data.get("contacts", ""),
            "csat": data.get("csat", ""),
            "nps": data.get("nps", ""),
            "comment": data.get("comment", ""),
            "shout_out": data.get("shout_out") == "on",
            "needs_nothing_more": data.get("needs_nothing_more") == "on",
        }
    values: dict[str, str | bool]
    if response is not None:
        values = {
            "resolved": response.resolved,
            "contacts": str(response.contacts_declared or ""),
            "csat": str(response.csat or ""),
            "nps": "" if response.nps is None else str(response.nps),
            "comment": response.comment,
            "shout_out": response.shout_out,
            "needs_nothing_more": response.needs_nothing_more,
        }
    else:
        values = {
            "resolved": "",
            # Pre-filled with our own count; the customer can change it.
            "contacts": str(min(max(survey.contacts_counted, 1), 5)),
            "csat": "",
            "nps": "",
            "comment": "",
            "shout_out": False,
            "needs_nothing_more": False,
        }
    chosen = request.GET.get("resolved", "")
    if chosen in {"yes", "partly", "no"}:
        values["resolved"] = chosen
    return values


@require_http_methods(["GET", "HEAD", "POST"])
@customer_language
def survey_page(request: HttpRequest, token: str) -> HttpResponse:
    """GET (and HEAD) shows the form and records nothing; POST records or replaces the answer."""
    if _limited(request, "page"):
        return _too_many(request)
    survey = _survey_or_error(request, token)
    if isinstance(survey, HttpResponse):
        return survey
    return _survey_form(request, survey, token, inline=False)


# The signed link is the authorisation (as for unsubscribe): the chat widget frames this page on
# the company's own site, where the desk's CSRF cookie is a third-party cookie.
@csrf_exempt
@require_http_methods(["GET", "HEAD", "POST"])
@customer_language
def survey_inline(request: HttpRequest, token: str) -> HttpResponse:
    """The same questions inside the chat page or widget, under the survey's chat message.

    Only a survey that went out in a chat transcript has it; it may be framed by this site and
    by the origins allowed to embed that chat channel's widget (every other page: DENY).
    """
    if _limited(request, "page"):
        return _too_many(request)
    survey = _survey_or_error(request, token)
    if isinstance(survey, HttpResponse):
        return survey
    message = survey.channel_message
    if survey.via != Survey.Via.CHAT or message is None or message.channel is None:
        raise Http404
    response = _survey_form(request, survey, token, inline=True)
    return allow_framing_by(response, list(message.channel.widget_origins or []))


def _survey_form(request: HttpRequest, survey: Survey, token: str, *, inline: bool) -> HttpResponse:
    page = "surveys:inline" if inline else "surveys:survey"
    lang_param = supported_language(request.GET.get("lang", ""))
    response = SurveyResponse.objects.filter(survey=survey).first()
    errors: dict[str, str] = {}
    error = ""
    status = 200
    if request.method == "POST":
        try:
            services.survey_answer(survey=survey, answer=_answer_from_post(request.POST))
            # GET records nothing; an answer tells us the language the customer reads.
            customer_language_detected(
                customer_id=survey.customer_id, language=request_language(request)
            )
        except SurveyExpired:
            return render(request, "surveys/expired.html", status=410)
        except SurveyNotFound:
            raise Http404 from None
        except ApplicationError as exc:
            error, status = exc.message, 400
            field_errors = exc.extra.get("errors", {})
            if isinstance(field_errors, dict):  # {field: message} (surveys.services.answers)
                errors = dict(field_errors)
        else:
            lang = supported_language(request.GET.get("lang", ""))
            saved_url = f"{reverse(page, kwargs={'token': token})}?saved=1"
            return redirect(f"{saved_url}&lang={lang}" if lang else saved_url)
    context = {
        "survey": survey,
        "token": token,
        "response": response,
        "values": _form_values(survey, response, request),
        "errors": errors,
        "error": error,
        "saved": request.method == "GET" and request.GET.get("saved") == "1" and response,
        "agent_first_name": survey.agent.first_name if survey.agent else "",
        "resolved_choices": RESOLVED_CHOICES,
        "contact_choices": CONTACT_CHOICES,
        "csat_choices": CSAT_CHOICES,
        "nps_choices": list(range(11)),
        "lang_param": lang_param,
        "inline": inline,
        "embedded": inline,
        "form_action": reverse(page, kwargs={"token": token})
        + (f"?lang={lang_param}" if lang_param else ""),
        **_wording_context(survey),
    }
    return render(request, "surveys/survey.html", context, status=status)


def _wording_context(survey: Survey) -> dict[str, str]:
    """The admin's introduction and thank-you line in the page's language, as safe HTML."""
    wording = selectors.survey_wording_for(language=translation.get_language() or "")
    if wording is None:
        return {}
    variables = {
        "agent.first_name": survey.agent.first_name if survey.agent else "",
        "conversation.subject": survey.conversation.subject,
        "desk.name": str(settings.DESK_NAME),
    }
    return {
        "intro_html": services.survey_wording_html(text=wording.intro, variables=variables),
        "thanks_html": services.survey_wording_html(text=wording.thanks, variables=variables),
    }


@require_POST
def survey_opened(request: HttpRequest, token: str) -> HttpResponse:
    """The page's script reports that a person's browser showed the survey (204)."""
    if _limited(request, "opened"):
        return _too_many(request)
    survey = _survey_or_error(request, token)
    if isinstance(survey, HttpResponse):
        return survey
    services.survey_mark_opened(survey=survey)
    return HttpResponse(status=204)


# The signed link is the authorisation; mail providers' one-click unsubscribe (RFC 8058) POSTs
# "List-Unsubscribe=One-Click" without a CSRF token.
@csrf_exempt
@require_http_methods(["GET", "HEAD", "POST"])
@customer_language
def survey_unsubscribe(request: HttpRequest, token: str) -> HttpResponse:
    """GET asks for confirmation (records nothing); POST unsubscribes the address."""
    if _limited(request, "unsubscribe"):
        return _too_many(request)
    survey = _survey_or_error(request, token)
    if isinstance(survey, HttpResponse):
        return survey
    done = False
    if request.method == "POST":
        services.survey_unsubscribe(survey=survey)
        done = True
    return render(request, "surveys/unsubscribe.html", {"survey": survey, "done": done})


# --- Staff pages ----------------------------------------------------------------------------------


def _date_param(value: str | None) -> date | None:
    try:
        return date.fromisoformat(value) if value else None
    except ValueError:
        return None


def _id_param(value: str | None) -> int | None:
    return int(value) if value and value.isdigit() and len(value) < 18 else None


@login_required
@require_GET
@replica_reads
def response_list(request: StaffRequest) -> HttpResponse:
    """Responses of the caller's teams, filtered by agent, team and solve dates."""
    user = request.user
    responses = selectors.response_list_for_user(
        user=user,
        from_date=_date_param(request.GET.get("from")),
        to_date=_date_param(request.GET.get("to")),
        agent_id=_id_param(request.GET.get("agent")),
        team_id=_id_param(request.GET.get("team")),
    )
    page = Paginator(responses, 50).get_page(request.GET.get("page"))
    teams = Team.objects.all() if user.is_admin else user.teams.all()
    agents = User.objects.filter(teams__in=teams).distinct().order_by("full_name", "email")
    return render(
        request,
        "surveys/responses.html",
        {
            "page": page,
            "filters": request.GET,
            "teams": list(teams),
            "agents": list(agents),
        },
    )


@login_required
@require_GET
def my_feedback(request: StaffRequest) -> HttpResponse:
    """The agent's own page: shout-outs, comments and answers about their solves."""
    user = request.user
    return render(
        request,
        "surveys/my_feedback.html",
        {
            "shout_outs": selectors.shout_outs_for_agent(agent_id=user.pk, limit=20),
            "comments": selectors.comments_for_agent(agent_id=user.pk, limit=20),
            "responses": list(selectors.responses_for_agent(agent_id=user.pk)[:50]),
        },
    )


@login_required
@require_GET
def follow_up_list(request: StaffRequest) -> HttpResponse:
    """Managers: customers to call back after a low CSAT or NPS."""
    user = request.user
    if not user.is_manager:
        raise Http404
    status = request.GET.get("status", "open")
    status = status if status in {"open", "done"} else "open"
    follow_ups = list(selectors.follow_up_list_for_user(user=user, status=status)[:200])
    return render(request, "surveys/follow_ups.html", {"follow_ups": follow_ups, "status": status})


@login_required
@require_POST
def follow_up_close(request: StaffRequest, pk: int) -> HttpResponse:
    follow_up = selectors.follow_up_get_for_user(user=request.user, pk=pk)
    services.follow_up_close(
        follow_up=follow_up,
        actor=request.user,
        note=request.POST.get("note", ""),
    )
    messages.success(request, "Follow-up closed.")
    return redirect("surveys:follow_ups")


# --- The survey page's wording (admins) -----------------------------------------------------------

_PREVIEW_VALUES = {
    "agent.first_name": "Alice",
    "conversation.subject": "My order has not arrived",
    "desk.name": "",
}


def _wording_preview(intro: str, thanks: str) -> dict[str, str]:
    values = {**_PREVIEW_VALUES, "desk.name": str(settings.DESK_NAME)}
    return {
        "preview_intro": services.survey_wording_html(text=intro[:2000], variables=values),
        "preview_thanks": services.survey_wording_html(text=thanks[:2000], variables=values),
    }


@login_required
@require_http_methods(["GET", "POST"])
def survey_wording_edit(request: StaffRequest) -> HttpResponse:
    """The survey page's introduction and thank-you line, per language (``?language=``), with a
    preview; POST saves (400 with the reason when refused), ``reset=1`` removes."""
    if not request.user.is_admin:
        raise PermissionDenied("Only admins edit the survey page's wording.")
    language = supported_language(request.GET.get("language", "")) or default_page_language()
    stored = selectors.survey_wording_for(language=language)
    stored = stored if stored is not None and stored.language == language else None
    status, error = 200, ""
    if request.method == "POST":
        if request.POST.get("reset") == "1":
            services.survey_wording_reset(language=language, actor=request.user)
            messages.success(request, gettext("Back to the built-in wording."))
            return redirect(f"{reverse('surveys:wording')}?language={language}")
        intro = request.POST.get("intro", "")[:5000]
        thanks = request.POST.get("thanks", "")[:5000]
        try:
            services.survey_wording_save(
                language=language, intro=intro, thanks=thanks, actor=request.user
            )
        except ApplicationError as exc:
            status, error = 400, exc.message
        else:
            messages.success(request, gettext("Saved (%(language)s).") % {"language": language})
            return redirect(f"{reverse('surveys:wording')}?language={language}")
    else:
        intro = stored.intro if stored else ""
        thanks = stored.thanks if stored else ""
    with translation.override(language):
        built_in_intro = gettext(
            "%(name)s marked it as solved. A few short questions; only the ones you answer count."
        ) % {"name": _PREVIEW_VALUES["agent.first_name"]}
        built_in_question = gettext("Was your issue resolved?")
    context = {
        "language": language,
        "languages": language_choices(),
        "stored": stored,
        "written": {w.language for w in selectors.survey_wording_list()},
        "intro": intro,
        "thanks": thanks,
        "error": error,
        "built_in_intro": built_in_intro,
        "built_in_question": built_in_question,
        "variables": sorted(services.WORDING_VARIABLES.items()),
        **_wording_preview(intro, thanks),
    }
    return render(request, "surveys/wording.html", context, status=status)


@login_required
@require_POST
def survey_wording_preview(request: StaffRequest) -> HttpResponse:
    if not request.user.is_admin:
        raise PermissionDenied("Only admins edit the survey page's wording.")
    context = _wording_preview(request.POST.get("intro", ""), request.POST.get("thanks", ""))
    return render(request, "surveys/_wording_preview.html", context)
