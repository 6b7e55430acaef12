"""The drill-down behind a figure (the conversations it counts) and the CSV exports: the rows of a
drill-down, and the scorecard of every group of a period.

Both exports stream their rows and pass every text cell through ``csv_safe``.
"""

from __future__ import annotations

import csv
from collections.abc import Iterable, Iterator
from datetime import date, timedelta
from typing import Any

from django.contrib.auth.decorators import login_required
from django.http import Http404, HttpResponse, StreamingHttpResponse
from django.shortcuts import render
from django.urls import reverse
from django.views.decorators.http import require_GET

from metrics.catalogue import BY_KEY, CATALOGUE
from metrics.drill import DRILLABLE, drill_down, drill_rows
from metrics.selectors import (
    Scope,
    scope_get_for_user,
    scorecard_groups,
)
from metrics.views import (
    BadPeriod,
    bad_request,
    period_from_request,
    query_string,
)
from supportdesk.http import StaffRequest
from supportdesk.replicas import replica_reads


def _drill_scope(request: StaffRequest) -> Scope:
    """Managers: any scope they may see. Agents: only their own figures (their own page)."""
    ref = request.GET.get("scope")
    if request.user.is_manager:
        return scope_get_for_user(user=request.user, ref=ref)
    if ref == f"agent:{request.user.pk}":
        return Scope("agent", agent=request.user)
    raise Http404("No such dashboard.")


def _drill_request(
    request: StaffRequest,
) -> tuple[Scope, str, date, date, bool] | HttpResponse:
    """The scope, metric, period and flagged-only switch of a drill-down (page or CSV), or the
    400 page saying what is wrong with them. Lower-is-better figures list the flagged
    conversations unless ``all=1``."""
    scope = _drill_scope(request)
    metric = request.GET.get("metric", "")
    if metric not in DRILLABLE:
        return bad_request(request, "That figure has no list of conversations behind it.")
    try:
        _period, date_from, date_to = period_from_request(request)
    except BadPeriod as exc:
        return bad_request(request, str(exc))
    only_flagged = request.GET.get("all") != "1" and not BY_KEY[metric].higher_is_better
    return scope, metric, date_from, date_to, only_flagged


@login_required
@require_GET
@replica_reads
def drill(request: StaffRequest) -> HttpResponse:
    """The conversations behind one figure."""
    parsed = _drill_request(request)
    if isinstance(parsed, HttpResponse):
        return parsed
    scope, metric, date_from, date_to, only_flagged = parsed
    info = BY_KEY[metric]
    bucket = request.GET.get("bucket", "")
    rows = drill_down(
        user=request.user,
        metric=metric,
        scope=scope,
        date_from=date_from,
        date_to=date_to,
        only_flagged=only_flagged,
        bucket=bucket,
        limit=500,
    )
    query = query_string(
        scope=scope.key,
        metric=metric,
        bucket=bucket,
        **{"from": date_from.isoformat(), "to": date_to.isoformat()},
    )
    context = {
        "scope": scope,
        "info": info,
        "rows": rows,
        "date_from": date_from,
        "last_day": date_to - timedelta(days=1),
        "only_flagged": only_flagged,
        "can_toggle": not info.higher_is_better,
        "query": query,
        "bucket": bucket,
        "back": (
            reverse("metrics:agent", args=[scope.agent.pk])
            if not request.user.is_manager and scope.agent
            else reverse("metrics:dashboard")
        )
        + "?"
        + query_string(
            scope=scope.key,
            period="custom",
            **{"from": date_from.isoformat(), "to": date_to.isoformat()},
        ),
    }
    return render(request, "metrics/drill.html", context)


FORMULA_TRIGGERS = ("=", "+", "-", "@", "\t", "\r")


def csv_safe(value: Any) -> str:
    """A cell a spreadsheet will not run: text starting like a formula gets a leading quote.

    Numbers are ours, not user input, and stay numbers (a negative gap keeps its minus sign).
    """
    if isinstance(value, int | float) and not isinstance(value, bool):
        return str(value)
    text = "" if value is None else str(value)
    if text.startswith(FORMULA_TRIGGERS):
        return "'" + text
    return text


class _Echo:
    def write(self, value: str) -> str:
        return value


def _stream_csv(
    filename: str, header: list[str], rows: Iterable[list[Any]]
) -> StreamingHttpResponse:
    writer = csv.writer(_Echo())

    def lines() -> Iterator[str]:
        yield writer.writerow(header)
        for row in rows:
            yield writer.writerow([csv_safe(cell) for cell in row])

    response = StreamingHttpResponse(lines(), content_type="text/csv; charset=utf-8")
    response["Content-Disposition"] = f'attachment; filename="{filename}"'
    return response


@login_required
@require_GET
@replica_reads
def drill_csv(request: StaffRequest) -> HttpResponse | StreamingHttpResponse:
    parsed = _drill_request(request)
    if isinstance(parsed, HttpResponse):
        return parsed
    scope, metric, date_from, date_to, only_flagged = parsed
    rows = drill_rows(
        user=request.user,
        metric=metric,
        scope=scope,
        date_from=date_from,
        date_to=date_to,
        only_flagged=only_flagged,
        bucket=request.GET.get("bucket", ""),
    )
    return _stream_csv(
        f"{metric}-{date_from}-{date_to}.csv",
        [
            "conversation",
            "subject",
            "customer",
            "team",
            "agent",
            "channel",
            "at",
            "counted",
            "detail",
        ],
        (
            [
                r.conversation_id,
                r.subject,
                r.customer,
                r.team,
                r.agent,
                r.channel,
                r.at.isoformat(),
                "yes" if r.flagged else "no",
                r.detail,
            ]
            for r in rows
        ),
    )


def _flatten(metrics: dict[str, Any]) -> list[Any]:
    cells: list[Any] = []
    for info in CATALOGUE:
        # A figure the grouping never has (promises per agent) leaves its columns empty.
        m = metrics.get(info.key) or {}
        if info.kind == "duration":
            cells += [m.get("median"), m.get("p90"), m.get("n")]
        elif info.kind == "distribution":
            cells += [m.get("n")]
        elif info.kind in {"rate", "gap"}:
            ci = m.get("ci95") or [None, None]
            cells += [m.get("value"), m.get("n"), ci[0], ci[1]]
        else:
            cells += [m.get("value"), m.get("n")]
    return cells


def _flat_header() -> list[str]:
    header: list[str] = []
    for info in CATALOGUE:
        if info.kind == "duration":
            header += [f"{info.key}_median_s", f"{info.key}_p90_s", f"{info.key}_n"]
        elif info.kind == "distribution":
            header += [f"{info.key}_n"]
        elif info.kind in {"rate", "gap"}:
            header += [info.key, f"{info.key}_n", f"{info.key}_ci_low", f"{info.key}_ci_high"]
        else:
            header += [info.key, f"{info.key}_n"]
    return header


@login_required
@require_GET
@replica_reads
def scorecard_csv(request: StaffRequest) -> HttpResponse | StreamingHttpResponse:
    """The scorecard of a view, one row per group (``group_by``), every metric in columns."""
    scope = scope_get_for_user(user=request.user, ref=request.GET.get("scope"))
    try:
        _period, date_from, date_to = period_from_request(request)
    except BadPeriod as exc:
        return bad_request(request, str(exc))
    group_by = request.GET.get("group_by", "desk")
    if group_by not in {"desk", "team", "agent", "channel"}:
        return bad_request(request, "group_by is desk, team, agent or channel.")
    groups = scorecard_groups(
        user=request.user, date_from=date_from, date_to=date_to, group_by=group_by, scope=scope
    )["groups"]
    label = scope.label if group_by == "desk" else None
    return _stream_csv(
        f"scorecard-{scope.key.replace(':', '-')}-{group_by}-{date_from}-{date_to}.csv",
        ["group", "from", "to", *_flat_header()],
        (
            [
                label or g["label"],
                date_from.isoformat(),
                date_to.isoformat(),
                *_flatten(g["metrics"]),
            ]
            for g in groups
        ),
    )
