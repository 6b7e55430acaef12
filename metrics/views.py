"""Pages of the metrics app: the managers' dashboard, integrity panel, agent pages, recompute
progress and targets. The drill-downs and CSV exports are in ``metrics.views_drill``.

The dashboard reads only facts (``metrics.selectors.scorecard_*``, ``weekly_trend``); the
drill-down, integrity panel and the exports of drill-downs read the source rows behind a figure.
"""

from __future__ import annotations

from datetime import date, timedelta
from functools import partial
from typing import Any, TypedDict

from django.conf import settings
from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.db.models import Q
from django.http import Http404, HttpRequest, HttpResponse
from django.shortcuts import redirect, render
from django.urls import reverse
from django.utils.http import urlencode
from django.views.decorators.http import require_GET, require_POST

from metrics.catalogue import BY_KEY, QUADRANTS
from metrics.drill import DRILLABLE, drill_down, format_seconds
from metrics.integrity import (
    integrity_opened_not_answered,
    integrity_reassigned_after_bad_rating,
    integrity_surveys_not_sent,
)
from metrics.models import TARGETABLE_METRICS
from metrics.scorecards import SMALL_N
from metrics.selectors import (
    Scope,
    agent_get_for_user,
    agent_qa_feedback,
    agent_teams_for_viewer,
    agent_voices,
    facts_cache_key,
    manager_scopes,
    recompute_job_get_for_user,
    scope_get_for_user,
    scorecard_for_scope,
    scorecard_groups,
    targets_for_scope,
    weekly_trend,
)
from metrics.services import local_today, recompute_job_create, target_set
from supportdesk.errors import ApplicationError
from supportdesk.http import StaffRequest
from supportdesk.models import User
from supportdesk.replicas import replica_reads

PERIODS = (
    ("week", "This week"),
    ("4w", "Last 4 weeks"),
    ("quarter", "This quarter"),
    ("custom", "Custom"),
)
MAX_PERIOD_DAYS = 400

# The comparison table sorts by outcome and connection figures only: never by speed alone.
SORTABLE = (
    "resolution_rate",
    "customer_fcr",
    "resolution_gap",
    "reopen_rate",
    "repeat_contact_rate",
    "csat",
    "survey_response_rate",
)


class BadPeriod(Exception):
    pass


def period_from_request(request: HttpRequest) -> tuple[str, date, date]:
    """``(key, from, to)`` of ``?period=week|4w|quarter|custom&from=&to=``; [from, to)."""
    today = local_today()
    key = request.GET.get("period") or ("custom" if request.GET.get("from") else "4w")
    if key == "week":
        return key, today - timedelta(days=today.weekday()), today + timedelta(days=1)
    if key == "4w":
        return key, today - timedelta(days=27), today + timedelta(days=1)
    if key == "quarter":
        first = date(today.year, 3 * ((today.month - 1) // 3) + 1, 1)
        return key, first, today + timedelta(days=1)
    if key != "custom":
        raise BadPeriod("Choose this week, the last 4 weeks, this quarter or custom dates.")
    try:
        day_from = date.fromisoformat(request.GET.get("from", ""))
        day_to = date.fromisoformat(request.GET.get("to", ""))
    except ValueError as exc:
        raise BadPeriod("Give the custom period as two dates, YYYY-MM-DD.") from exc
    if day_to <= day_from:
        raise BadPeriod("The period's end must come after its start.")
    if (day_to - day_from).days > MAX_PERIOD_DAYS:
        raise BadPeriod(f"A period covers at most {MAX_PERIOD_DAYS} days.")
    return key, day_from, day_to


def bad_request(request: HttpRequest, message: str) -> HttpResponse:
    return render(request, "metrics/bad_request.html", {"message": message}, status=400)


# --- Figures --------------------------------------------------------------------------------------


def _percent(value: float | None, digits: int = 0) -> str:
    return "—" if value is None else f"{value * 100:.{digits}f}%"


def figure(
    key: str,
    metric: dict[str, Any],
    *,
    targets: dict[str, float],
    drill: str,
) -> dict[str, Any]:
    """What a tile shows for one metric: display value, n, interval, grey/colour, drill link."""
    info = BY_KEY[key]
    n = metric.get("n", 0)
    tile: dict[str, Any] = {
        "key": key,
        "label": info.label,
        "help": info.help,
        "n": n,
        "small": n < SMALL_N,
        "status": "",
        "ci": "",
        "target": "",
        "drill": f"{drill}&metric={key}" if key in DRILLABLE else "",
    }
    value = metric.get("value")
    if info.kind == "rate":
        tile["display"] = _percent(value)
        if metric.get("ci95"):
            low, high = metric["ci95"]
            tile["ci"] = f"{low * 100:.0f} to {high * 100:.0f}%"
    elif info.kind == "gap":
        tile["display"] = "—" if value is None else f"{value * 100:+.0f} pts"
        if metric.get("ci95"):
            low, high = metric["ci95"]
            tile["ci"] = f"{low * 100:+.0f} to {high * 100:+.0f} pts"
    elif info.kind == "mean":
        tile["display"] = "—" if value is None else f"{value:.2f}".rstrip("0").rstrip(".")
    elif info.kind == "nps":
        tile["display"] = "—" if value is None else f"{value:+.0f}"
    elif info.kind == "count":
        tile["display"] = str(value or 0)
        tile["small"] = False
        tile["n_label"] = "of" if key == "survey_solicitation_flags" else "in"
    elif info.kind == "duration":
        tile["display"] = format_seconds(metric.get("median"))
        tile["p90"] = format_seconds(metric.get("p90"))
    target = targets.get(key)
    if target is not None and key in TARGETABLE_METRICS:
        as_rate = info.kind in {"rate", "gap"}
        tile["target"] = _percent(target) if as_rate else f"{target:g}"
        # Never coloured with a small sample (docs/metrics.md).
        if value is not None and not tile["small"]:
            good = value >= target if info.higher_is_better else value <= target
            tile["status"] = "good" if good else "bad"
    return tile


def query_string(**params: Any) -> str:
    return urlencode({k: v for k, v in params.items() if v not in (None, "")})


BUSINESS_TWINS = {
    "first_response_time": "first_response_business_time",
    "time_to_resolution": "time_to_resolution_business_time",
}


def _quadrants(
    metrics: dict[str, Any], targets: dict[str, float], drill: str
) -> list[dict[str, Any]]:
    def tile(key: str) -> dict[str, Any]:
        return figure(key, metrics[key], targets=targets, drill=drill)

    outcome = [
        tile(k)
        for k in (
            "resolution_rate",
            "customer_fcr",
            "reopen_rate",
            "repeat_contact_rate",
            "unconfirmed_rate",
            "resolution_gap",
        )
    ]
    csat = tile("csat")
    # The survey response rate stands next to every CSAT.
    csat["beside"] = tile("survey_response_rate")
    connection = [
        csat,
        tile("csat_mean"),
        tile("nps"),
        tile("survey_response_rate"),
        tile("comment_rate"),
        tile("shout_outs"),
    ]
    quality = [
        tile(k)
        for k in ("qa_score", "dropped_rate", "system_disconnect_rate", "survey_solicitation_flags")
    ]
    speed = []
    for key in ("first_response_time", "handle_time", "time_to_resolution"):
        twin = BUSINESS_TWINS.get(key)
        # Business time first, calendar time beside it (docs/metrics.md, business hours).
        pair = tile(twin) if twin and twin in metrics else tile(key)
        if twin and twin in metrics:
            pair["calendar"] = format_seconds(metrics[key].get("median"))
            pair["calendar_p90"] = format_seconds(metrics[key].get("p90"))
        pair["beside"] = tile(BY_KEY[key].counterweight)
        speed.append(pair)
    if "promises_kept_rate" in metrics:
        # The desk's promise to customers, beside both its counterweights; never per agent.
        promises = tile("promises_kept_rate")
        promises["beside"] = tile("customer_fcr")
        promises["also"] = tile("resolution_rate")
        speed.append(promises)
    tiles = {"outcome": outcome, "connection": connection, "quality": quality, "speed": speed}
    return [
        {"key": key, "title": title, "subtitle": subtitle, "tiles": tiles[key]}
        for key, title, subtitle in QUADRANTS
    ]


TOPIC_COLUMNS = (
    ("resolution_rate", "Resolution rate"),
    ("customer_fcr", "Customer FCR"),
    ("resolution_gap", "Resolution gap"),
    ("repeat_contact_rate", "Repeat contact"),
)


def _topics(
    request: StaffRequest, scope: Scope, date_from: date, date_to: date
) -> list[dict[str, Any]]:
    """Outcomes by topic (group_by=tag): what the desk calls solved and the customers do not,
    per tag. A conversation with two tags counts in both rows. Worst resolution gap first."""
    groups = scorecard_groups(
        user=request.user, date_from=date_from, date_to=date_to, group_by="tag", scope=scope
    )["groups"]
    rows = []
    for group in groups:
        m = group["metrics"]
        cells = {}
        for key, _label in TOPIC_COLUMNS:
            metric = m[key]
            gap = key == "resolution_gap"
            value = metric["value"]
            cells[key] = {
                "display": (
                    "—" if value is None else f"{value * 100:+.0f} pts" if gap else _percent(value)
                ),
                "n": metric["n"],
                "small": metric["n"] < SMALL_N,
            }
        rows.append(
            {
                "key": group["key"],
                "label": group["label"],
                "solves": m["solves"]["value"],
                "cells": cells,
                "gap": m["resolution_gap"]["value"],
            }
        )
    rows.sort(key=lambda r: (r["gap"] is None, -(r["gap"] or 0), r["label"].lower()))
    return rows


def _comparison(
    request: StaffRequest, scope: Scope, date_from: date, date_to: date, sort: str
) -> list[dict[str, Any]]:
    groups = scorecard_groups(
        user=request.user, date_from=date_from, date_to=date_to, group_by="agent", scope=scope
    )["groups"]
    rows = []
    for group in groups:
        if group["key"] is None:
            continue
        m = group["metrics"]
        rows.append(
            {
                "agent_id": group["key"],
                "label": group["label"],
                "metrics": m,
                "cells": {
                    key: figure(key, m[key], targets={}, drill="")
                    for key in (*SORTABLE, "first_response_time", "handle_time")
                },
            }
        )

    def sort_key(row: dict[str, Any]) -> tuple[bool, bool, float, str]:
        metric = row["metrics"][sort]
        value = metric.get("value")
        small = metric.get("n", 0) < SMALL_N
        # Small samples sort after the others, whatever their value: a 1/1 is not a champion.
        higher = BY_KEY[sort].higher_is_better
        return (value is None, small, -(value or 0) if higher else (value or 0), row["label"])

    return sorted(rows, key=sort_key)


@login_required
@require_GET
@replica_reads
def dashboard(request: StaffRequest) -> HttpResponse:
    """Four quadrants, charts and the agents' comparison for a scope and a period."""
    scope = scope_get_for_user(user=request.user, ref=request.GET.get("scope"))
    try:
        period, date_from, date_to = period_from_request(request)
    except BadPeriod as exc:
        return bad_request(request, str(exc))
    sort = request.GET.get("sort", "resolution_rate")
    if sort not in SORTABLE:
        return bad_request(
            request,
            "The comparison sorts by outcome and connection figures only; speed is never a "
            "ranking on its own.",
        )
    card = scorecard_for_scope(user=request.user, scope=scope, date_from=date_from, date_to=date_to)
    # The agents' table is the page's biggest part: rendered once per facts version, sort and
    # staff names (a template fragment cache), computed only when that cache misses.
    comparison: Any = []
    comparison_key = ""
    if scope.kind != "agent":
        comparison = partial(_comparison, request, scope, date_from, date_to, sort)
        comparison_key = facts_cache_key(
            user=request.user, scope=scope, date_from=date_from, date_to=date_to, extra=sort
        )
    targets = targets_for_scope(scope=scope)
    base = query_string(
        scope=scope.key, **{"from": date_from.isoformat(), "to": date_to.isoformat()}
    )
    drill = reverse("metrics:drill") + "?" + base
    metrics = card["metrics"]
    trend = weekly_trend(user=request.user, scope=scope, end=date_to - timedelta(days=1))
    chart_data = {
        "trend": trend,
        "targets": {k: v for k, v in targets.items() if k in trend["series"]},
        "labels": {key: BY_KEY[key].label for key in trend["series"]},
        "interactions": metrics["interactions_per_conversation"],
        "coverage": _coverage(metrics),
        "drill": drill,
    }
    channel_coverage = _channel_coverage(
        scorecard_groups(
            user=request.user,
            date_from=date_from,
            date_to=date_to,
            group_by="channel",
            scope=scope,
        )["groups"]
    )
    context = {
        "scope": scope,
        "period": period,
        "periods": PERIODS,
        "date_from": date_from,
        "date_to": date_to,
        "last_day": date_to - timedelta(days=1),
        "computed_at": card["computed_at"],
        "quadrants": _quadrants(metrics, targets, drill),
        "comparison": comparison,
        "comparison_key": comparison_key,
        "channel_coverage": channel_coverage,
        "comparison_seconds": settings.SCORECARD_CACHE_SECONDS,
        "sortable": [(key, BY_KEY[key].label) for key in SORTABLE],
        "sort": sort,
        "base_query": base,
        "period_query": query_string(
            period=period,
            **(
                {"from": date_from.isoformat(), "to": date_to.isoformat()}
                if period == "custom"
                else {}
            ),
        ),
        "chart_data": chart_data,
        "topics": _topics(request, scope, date_from, date_to),
        "topic_columns": TOPIC_COLUMNS,
        "choices": manager_scopes(user=request.user),
        "targetable": [(key, BY_KEY[key].label) for key in TARGETABLE_METRICS],
        "targets": [
            (
                BY_KEY[key].label,
                _percent(value) if BY_KEY[key].kind in {"rate", "gap"} else f"{value:g}",
            )
            for key, value in targets.items()
        ],
        "small_n": SMALL_N,
    }
    return render(request, "metrics/dashboard.html", context)


def _channel_coverage(groups: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Per channel: solves, surveys that reached the customer, answered, not reachable, with
    the reach and response rates they qualify."""
    rows = []
    for group in groups:
        metrics = group["metrics"]
        coverage = metrics["survey_coverage"]
        if not coverage["solves"]:
            continue
        rows.append(
            {
                "key": group["key"],
                "channel": group["label"] or group["key"] or "—",
                **coverage,
                "reach_rate": metrics["survey_reach_rate"],
                "response_rate": metrics["survey_response_rate"],
                "resolution_rate": metrics["resolution_rate"],
            }
        )
    return rows


def _coverage(metrics: dict[str, Any]) -> dict[str, Any]:
    """Of the solves: surveyed and answered, surveyed without an answer, not surveyed."""
    solves = metrics["internal_fcr"]["n"]
    delivered = metrics["survey_response_rate"]["n"]
    responded = round((metrics["survey_response_rate"]["value"] or 0) * delivered)
    return {
        "solves": solves,
        "answered": responded,
        "unanswered": max(delivered - responded, 0),
        "not_surveyed": max(solves - delivered, 0),
    }


# --- Integrity panel ------------------------------------------------------------------------------


class _Window(TypedDict):
    """What every detector of the integrity panel is asked: whose view, which scope, when."""

    user: User
    scope: Scope
    date_from: date
    date_to: date


@login_required
@require_GET
def integrity(request: StaffRequest) -> HttpResponse:
    """The substitute-trap detectors, each with the conversations behind it."""
    scope = scope_get_for_user(user=request.user, ref=request.GET.get("scope"))
    try:
        period, date_from, date_to = period_from_request(request)
    except BadPeriod as exc:
        return bad_request(request, str(exc))
    user = request.user
    args: _Window = {"user": user, "scope": scope, "date_from": date_from, "date_to": date_to}
    gaps = [
        g
        for g in scorecard_groups(group_by="agent", **args)["groups"]
        if g["key"] is not None and g["metrics"]["resolution_gap"]["n"]
    ]
    gaps.sort(key=lambda g: -(g["metrics"]["resolution_gap"]["value"] or 0))
    base = query_string(
        scope=scope.key, **{"from": date_from.isoformat(), "to": date_to.isoformat()}
    )
    context = {
        "scope": scope,
        "period": period,
        "periods": PERIODS,
        "date_from": date_from,
        "date_to": date_to,
        "last_day": date_to - timedelta(days=1),
        "gaps": [
            {
                "label": g["label"],
                "agent_id": g["key"],
                "gap": figure(
                    "resolution_gap", g["metrics"]["resolution_gap"], targets={}, drill=""
                ),
                "internal": g["metrics"]["resolution_gap"]["internal_fcr"],
                "customer": g["metrics"]["resolution_gap"]["customer_fcr"],
            }
            for g in gaps
        ],
        "dropped": drill_down(metric="dropped_rate", limit=100, **args),
        "solicitations": drill_down(metric="survey_solicitation_flags", limit=100, **args),
        "not_sent": integrity_surveys_not_sent(**args),
        "reassigned": integrity_reassigned_after_bad_rating(**args),
        "opened": integrity_opened_not_answered(**args),
        "base_query": base,
        "drill": reverse("metrics:drill") + "?" + base,
        "choices": manager_scopes(user=user),
        "small_n": SMALL_N,
    }
    return render(request, "metrics/integrity.html", context)


# --- Agent pages ----------------------------------------------------------------------------------


@login_required
@require_GET
@replica_reads
def my_scorecard(request: StaffRequest) -> HttpResponse:
    """The top bar's "My scorecard": the user's own agent page, keeping the chosen period."""
    url = reverse("metrics:agent", args=[request.user.pk])
    query = request.GET.urlencode()
    return redirect(f"{url}?{query}" if query else url)


@login_required
@require_GET
@replica_reads
def agent_page(request: StaffRequest, pk: int) -> HttpResponse:
    """An agent's scorecard against their team's, their shout-outs, comments and QA feedback.

    No ranking against colleagues: the team figure is the team's total, never a list.
    """
    agent = agent_get_for_user(user=request.user, pk=pk)
    try:
        period, date_from, date_to = period_from_request(request)
    except BadPeriod as exc:
        return bad_request(request, str(exc))
    scope = Scope("agent", agent=agent)
    # Everything on the page is read with the viewer's visibility, not the agent's: a manager of
    # team A looking at an agent who also works in team B sees only the team A part.
    viewer = request.user
    mine = scorecard_for_scope(user=viewer, scope=scope, date_from=date_from, date_to=date_to)
    team = agent_teams_for_viewer(viewer=viewer, agent=agent).first()
    team_card = None
    if team is not None:
        # The team's total (never a list of colleagues), whoever is looking.
        team_card = scorecard_for_scope(
            user=agent,
            scope=Scope("team", team=team),
            date_from=date_from,
            date_to=date_to,
            visible=Q(team_id=team.pk),
        )
    targets = targets_for_scope(scope=Scope("team", team=team) if team else Scope("desk"))
    base = query_string(
        scope=scope.key, **{"from": date_from.isoformat(), "to": date_to.isoformat()}
    )
    drill_url = reverse("metrics:drill") + "?" + base
    rows = []
    for key in (
        "resolution_rate",
        "customer_fcr",
        "reopen_rate",
        "repeat_contact_rate",
        "unconfirmed_rate",
        "csat",
        "survey_response_rate",
        "nps",
        "comment_rate",
        "shout_outs",
        "dropped_rate",
        "first_response_business_time",
        "first_response_time",
        "handle_time",
        "time_to_resolution_business_time",
        "time_to_resolution",
    ):
        rows.append(
            {
                "mine": figure(key, mine["metrics"][key], targets=targets, drill=drill_url),
                "team": figure(key, team_card["metrics"][key], targets=targets, drill="")
                if team_card
                else None,
            }
        )
    voices = agent_voices(viewer=viewer, agent=agent, date_from=date_from, date_to=date_to)
    context = {
        "agent": agent,
        "team": team,
        "own": agent.pk == request.user.pk,
        "period": period,
        "periods": PERIODS,
        "date_from": date_from,
        "date_to": date_to,
        "last_day": date_to - timedelta(days=1),
        "computed_at": mine["computed_at"],
        "rows": rows,
        "shout_outs": [v for v in voices if v.shout_out],
        "comments": [v for v in voices if v.comment],
        "qa_reviews": agent_qa_feedback(
            viewer=viewer, agent=agent, date_from=date_from, date_to=date_to
        ),
        "small_n": SMALL_N,
    }
    return render(request, "metrics/agent.html", context)


# --- Recompute and targets ------------------------------------------------------------------------


@login_required
@require_POST
def recompute_start(request: StaffRequest) -> HttpResponse:
    """Queue a recompute of the period shown; answers with a progress fragment that polls."""
    if not request.user.is_manager:
        raise Http404("No such page.")
    try:
        day_from = date.fromisoformat(request.POST.get("from", ""))
        day_to = date.fromisoformat(request.POST.get("to", ""))
        job = recompute_job_create(day_from=day_from, day_to=day_to, requested_by=request.user)
    except (ValueError, ApplicationError) as exc:
        message = getattr(exc, "message", "Give the period as two dates, YYYY-MM-DD.")
        return render(request, "metrics/_job.html", {"error": message}, status=400)
    return render(request, "metrics/_job.html", {"job": job})


@login_required
@require_GET
def recompute_progress(request: StaffRequest, pk: int) -> HttpResponse:
    job = recompute_job_get_for_user(user=request.user, pk=pk)
    return render(request, "metrics/_job.html", {"job": job})


@login_required
@require_POST
def target_update(request: StaffRequest) -> HttpResponse:
    """Set or clear a target (outcome and connection metrics only)."""
    if not request.user.is_manager:
        raise Http404("No such page.")
    scope = scope_get_for_user(user=request.user, ref=request.POST.get("scope"))
    metric = request.POST.get("metric", "")
    raw = request.POST.get("value", "").strip().rstrip("%")
    info = BY_KEY.get(metric)
    value: float | None = None
    if raw:
        try:
            value = float(raw)
        except ValueError:
            return bad_request(request, "The target is a number, e.g. 80 for 80%.")
        if info is not None and info.kind in {"rate", "gap"}:
            value /= 100
    team = scope.team if scope.kind == "team" else None
    try:
        target_set(metric=metric, team=team, value=value, actor=request.user)
    except ApplicationError as exc:
        return bad_request(request, exc.message)
    messages.success(request, f"Target for {info.label if info else metric} saved.")
    return redirect(reverse("metrics:dashboard") + "?" + query_string(scope=scope.key))
