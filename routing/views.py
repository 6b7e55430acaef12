"""Pages: business hours and promises, team routing, availability, rules (with a dry run)."""

from __future__ import annotations

from decimal import Decimal

from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.core.exceptions import PermissionDenied
from django.http import HttpResponse
from django.shortcuts import get_object_or_404, redirect, render
from django.utils.http import url_has_allowed_host_and_scheme
from django.views.decorators.http import require_http_methods, require_POST

from routing import rules, selectors, services
from routing.forms import (
    AvailabilityForm,
    ExceptionForm,
    HoursForm,
    PromiseForm,
    RuleForm,
    TeamRoutingForm,
    rule_initial,
    week_to_text,
)
from routing.models import AvailabilityStatus, BusinessHours, BusinessHoursException, Rule
from supportdesk.errors import ApplicationError
from supportdesk.http import StaffRequest
from supportdesk.models import Team, User


def _manager(request: StaffRequest) -> None:
    if not request.user.is_manager:
        raise PermissionDenied("Only managers and admins set this up.")


def _hours_context(request: StaffRequest) -> dict[str, object]:
    teams = list(selectors.teams_for_manager(request.user).select_related("routing"))
    hours = {h.team_id: h for h in selectors.hours_list()}
    blocks = []
    # An admin starts with the desk's hours; a manager with their teams' (the desk's are read-only).
    order: list[Team | None] = [None, *teams] if request.user.is_admin else [*teams, None]
    for team in order:
        own = hours.get(team.pk if team else None)
        shown = own or hours.get(None)
        blocks.append(
            {
                "team": team,
                "own": own,
                "form": HoursForm(
                    prefix=f"h{team.pk if team else 0}",
                    initial={
                        "time_zone": shown.time_zone if shown else "UTC",
                        **(week_to_text(shown.week) if shown else {}),
                    },
                ),
                "editable": request.user.is_admin or team is not None,
                "routing": getattr(team, "routing", None) if team else None,
                "routing_form": TeamRoutingForm(
                    prefix=f"r{team.pk}",
                    initial={
                        "mode": team.routing.mode,
                        "cap": team.routing.cap,
                        "return_when_away": team.routing.return_when_away,
                    }
                    if team is not None and hasattr(team, "routing")
                    else None,
                )
                if team
                else None,
            }
        )
    return {
        "blocks": blocks,
        "promises": selectors.promise_list(),
        "promise_form": PromiseForm(),
        "exception_form": ExceptionForm(),
    }


@login_required
@require_http_methods(["GET", "POST"])
def hours_page(request: StaffRequest) -> HttpResponse:
    """Business hours (desk and teams), holidays, promises and each team's routing."""
    _manager(request)
    if request.method == "POST":
        try:
            message = _hours_post(request)
        except ApplicationError as exc:
            messages.error(request, str(exc))
            return render(request, "routing/hours.html", _hours_context(request), status=exc.status)
        messages.success(request, message)
        return redirect("routing:hours")
    return render(request, "routing/hours.html", _hours_context(request))


def _team_from(request: StaffRequest) -> Team | None:
    raw = request.POST.get("team") or ""
    if not raw or raw == "0":
        return None
    team = Team.objects.filter(pk=raw if raw.isdigit() else 0).first()
    if team is None:
        raise ApplicationError("No such team.")
    return team


def _hours_post(request: StaffRequest) -> str:
    action = request.POST.get("action", "")
    user = request.user
    if action == "hours":
        team = _team_from(request)
        form = HoursForm(request.POST, prefix=f"h{team.pk if team else 0}")
        if not form.is_valid():
            raise ApplicationError("Check the time zone and the hours.")
        services.business_hours_save(
            team=team, time_zone=form.cleaned_data["time_zone"], week=form.week(), actor=user
        )
        return f"Hours of {team or 'the desk'} saved."
    if action == "hours-desk" and (team := _team_from(request)) is not None:
        services.business_hours_delete(team=team, actor=user)
        return f"{team} follows the desk's hours."
    if action == "exception":
        hours = get_object_or_404(BusinessHours, pk=request.POST.get("hours") or 0)
        eform = ExceptionForm(request.POST)
        if not eform.is_valid():
            raise ApplicationError("Give a date (and both times, or none for a holiday).")
        d = eform.cleaned_data
        services.business_hours_exception_save(
            hours=hours, date=d["date"], name=d["name"], opens=d["opens"], closes=d["closes"],
            actor=user,
        )  # fmt: skip
        return f"{d['date']:%d %b %Y} saved."
    if action == "exception-delete":
        exception = get_object_or_404(BusinessHoursException, pk=request.POST.get("exception") or 0)
        services.business_hours_exception_delete(exception=exception, actor=user)
        return "Exception removed."
    if action == "promise":
        pform = PromiseForm(request.POST)
        if not pform.is_valid():
            raise ApplicationError("Choose a channel and give the reply time in business hours.")
        p = pform.cleaned_data
        hours_value: Decimal | None = p["hours"]
        services.promise_set(
            channel_kind=p["channel_kind"],
            priority=p["priority"] or "",
            reply_seconds=None if not hours_value else int(hours_value * 3600),
            actor=user,
        )
        return "Promise saved."
    if action == "routing":
        team = _team_from(request)
        if team is None:
            raise ApplicationError("Choose a team.")
        rform = TeamRoutingForm(request.POST, prefix=f"r{team.pk}")
        if not rform.is_valid():
            raise ApplicationError("Choose a routing mode and a cap between 0 and 1000.")
        r = rform.cleaned_data
        services.team_routing_save(
            team=team, mode=r["mode"], cap=r["cap"], return_when_away=r["return_when_away"],
            actor=user,
        )  # fmt: skip
        return f"Routing of {team} saved."
    raise ApplicationError("Unknown action.")


@login_required
@require_http_methods(["GET", "POST"])
def availability_page(request: StaffRequest) -> HttpResponse:
    """Everyone sets their own availability (POST); managers see their teams' (GET)."""
    if request.method == "POST":
        form = AvailabilityForm(request.POST)
        if not form.is_valid():
            messages.error(request, "Choose available, busy or away.")
            return redirect("routing:availability")
        target: User = request.user
        if form.cleaned_data.get("user"):
            target = get_object_or_404(User, pk=form.cleaned_data["user"], is_active=True)
        try:
            services.availability_set(
                user=target,
                status=form.cleaned_data["status"],
                follows_hours=form.cleaned_data["follows_hours"]
                if "follows_hours_present" in request.POST
                else None,
                actor=request.user,
            )
        except ApplicationError as exc:
            messages.error(request, str(exc))
        else:
            who = "You are" if target.pk == request.user.pk else f"{target} is"
            messages.success(request, f"{who} now {form.cleaned_data['status']}.")
        back = request.POST.get("next") or ""
        if back and url_has_allowed_host_and_scheme(back, {request.get_host()}):
            return redirect(back)
        return redirect("routing:availability" if request.user.is_manager else "home")
    _manager(request)
    teams = list(selectors.teams_for_manager(request.user))
    return render(
        request,
        "routing/availability.html",
        {
            "teams": [(team, selectors.team_availability(team)) for team in teams],
            "mine": selectors.availability_of(request.user),
            "statuses": AvailabilityStatus.choices,
        },
    )


@login_required
@require_http_methods(["GET", "POST"])
def rules_page(request: StaffRequest, pk: int | None = None) -> HttpResponse:
    """The ordered rules; a form to write one (or change ``pk``), and its dry run."""
    _manager(request)
    rule = get_object_or_404(Rule, pk=pk) if pk else None
    matched = None
    status = 200
    if request.method == "POST":
        form = RuleForm(request.POST)
        if form.is_valid():
            data = form.data_for_service()
            try:
                if "dry_run" in request.POST:
                    matched = rules.rule_dry_run(data=data)
                else:
                    saved = rules.rule_save(actor=request.user, data=data, rule=rule)
                    messages.success(request, f"Rule “{saved.name}” saved.")
                    return redirect("routing:rules")
            except ApplicationError as exc:
                messages.error(request, str(exc))
                status = exc.status
        else:
            status = 400
    else:
        form = RuleForm(initial=rule_initial(rule) if rule else None)
    return render(
        request,
        "routing/rules.html",
        {
            "rules": selectors.rule_summaries(selectors.rule_list()),
            "form": form,
            "editing": rule,
            "matched": matched,
            "dry_run_days": rules.DRY_RUN_DAYS,
        },
        status=status,
    )


@login_required
@require_POST
def rule_action(request: StaffRequest, pk: int) -> HttpResponse:
    _manager(request)
    rule = get_object_or_404(Rule, pk=pk)
    action = request.POST.get("action", "")
    try:
        if action == "up":
            rules.rule_move(rule=rule, direction=-1, actor=request.user)
        elif action == "down":
            rules.rule_move(rule=rule, direction=1, actor=request.user)
        elif action == "delete":
            rules.rule_delete(rule=rule, actor=request.user)
            messages.success(request, f"Rule “{rule.name}” deleted.")
        else:
            raise ApplicationError("Unknown action.")
    except ApplicationError as exc:
        messages.error(request, str(exc))
    return redirect("routing:rules")
