"""Reads of the metrics app, with their joins; permission-scoped getters raise Http404."""

from __future__ import annotations

import hashlib
from collections import defaultdict
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from datetime import date, datetime, timedelta
from typing import Any

from django.conf import settings
from django.core.cache import cache
from django.db.models import Count, Max, Q, QuerySet, Sum
from django.http import Http404

from metrics import facts as source
from metrics.catalogue import BY_KEY, INTERACTION_BUCKETS
from metrics.models import DailyFact, DurationBucket, FactDay, RecomputeJob, Target
from metrics.scorecards import build_metrics
from quality.selectors import ideas_captured, pulse_means
from supportdesk.models import Team, User
from tickets.models import ChannelKind

# --- Scorecards, facts and the dashboard (issue 5) ----------------------------------------

GROUPINGS = ("desk", "team", "agent", "channel")
PK_MAX = 2**63 - 1  # ids beyond bigint are no id at all (PostgreSQL would raise, not miss)


def _pk(value: Any) -> int | None:
    try:
        pk = int(value)
    except (TypeError, ValueError):
        return None
    return pk if 0 < pk <= PK_MAX else None


_GROUP_FIELD = {"desk": None, "team": "team_id", "agent": "agent_id", "channel": "channel_kind"}


@dataclass(frozen=True)
class Scope:
    """What a scorecard or dashboard is about: the desk, a team, an agent or a channel."""

    kind: str  # desk, team, agent, channel
    team: Team | None = None
    agent: User | None = None
    channel: str = ""

    @property
    def key(self) -> str:
        if self.kind == "team" and self.team:
            return f"team:{self.team.pk}"
        if self.kind == "agent" and self.agent:
            return f"agent:{self.agent.pk}"
        if self.kind == "channel":
            return f"channel:{self.channel}"
        return "desk"

    @property
    def label(self) -> str:
        if self.kind == "team" and self.team:
            return f"Team {self.team.name}"
        if self.kind == "agent" and self.agent:
            return str(self.agent)
        if self.kind == "channel":
            return f"{ChannelKind(self.channel).label} channel"
        return "Whole desk"

    def fact_q(self) -> Q:
        if self.kind == "team" and self.team:
            return Q(team_id=self.team.pk)
        if self.kind == "agent" and self.agent:
            return Q(agent_id=self.agent.pk)
        if self.kind == "channel":
            return Q(channel_kind=self.channel)
        return Q()


def visible_facts_q(user: User) -> Q:
    """Admins read every fact; managers their teams' and unrouted ones; agents their own."""
    if user.is_admin:
        return Q()
    if user.is_manager:
        team_ids = list(user.teams.order_by("pk").values_list("pk", flat=True))
        return Q(team_id__in=team_ids) | Q(team_id__isnull=True)
    return Q(agent_id=user.pk)


def scope_get_for_user(*, user: User, ref: str | None) -> Scope:
    """Parse ``desk``, ``team:<id>``, ``agent:<id>`` or ``channel:<kind>`` for a manager.

    Anything the user may not look at is a 404 (an agent asking for a team's dashboard, a
    manager for another team's): no oracle, as everywhere else.
    """
    if not user.is_manager:
        raise Http404("Dashboards are for managers.")
    ref = (ref or "desk").strip()
    kind, _, value = ref.partition(":")
    if kind == "desk":
        return Scope("desk")
    if kind == "channel" and value in ChannelKind.values:
        return Scope("channel", channel=value)
    if kind == "team" and _pk(value) is not None:
        team = Team.objects.filter(pk=_pk(value)).first()
        if team is not None and (user.is_admin or user.teams.filter(pk=team.pk).exists()):
            return Scope("team", team=team)
    if kind == "agent" and _pk(value) is not None:
        agent = agent_get_for_user(user=user, pk=value)
        return Scope("agent", agent=agent)
    raise Http404("No such dashboard.")


def agent_get_for_user(*, user: User, pk: Any) -> User:
    """A staff member whose scorecard ``user`` may open: themselves; for managers, members of
    their teams; for admins, anyone. Http404 otherwise."""
    pk = _pk(pk)
    if pk is None:
        raise Http404("No such agent.")
    if pk == user.pk:
        return user
    if not user.is_manager:
        raise Http404("No such agent.")
    qs = User.objects.filter(pk=pk, is_active=True)
    if not user.is_admin:
        qs = qs.filter(teams__in=user.teams.all()).distinct()
    agent = qs.first()
    if agent is None:
        raise Http404("No such agent.")
    return agent


def manager_scopes(*, user: User) -> dict[str, list]:
    """The teams, agents and channels a manager can pick on the dashboard (3 queries)."""
    teams = list(Team.objects.all() if user.is_admin else user.teams.all())
    agents = User.objects.filter(is_active=True).order_by("full_name", "email")
    if not user.is_admin:
        agents = agents.filter(teams__in=teams).distinct()
    return {"teams": teams, "agents": list(agents), "channels": list(ChannelKind.choices)}


def _sums(
    qs: QuerySet[DailyFact], group_field: str | None
) -> dict[Any, dict[str, tuple[int, int]]]:
    fields = [group_field, "metric"] if group_field else ["metric"]
    result: dict[Any, dict[str, tuple[int, int]]] = defaultdict(dict)
    rows = qs.values(*fields).annotate(n=Sum("numerator"), d=Sum("denominator")).order_by()
    for *cell, n, d in rows.values_list(*fields, "n", "d"):
        key = cell[0] if group_field else "desk"
        result[key][cell[-1]] = (int(n or 0), int(d or 0))
    return result


def _histograms(
    qs: QuerySet[DurationBucket], group_field: str | None
) -> dict[Any, dict[str, dict[int, int]]]:
    fields = [group_field, "metric", "bucket"] if group_field else ["metric", "bucket"]
    result: dict[Any, dict[str, dict[int, int]]] = defaultdict(lambda: defaultdict(dict))
    rows = qs.values(*fields).annotate(c=Sum("count")).order_by().values_list(*fields, "c")
    for *cell, c in rows:
        key = cell[0] if group_field else "desk"
        result[key][cell[-2]][cell[-1]] = int(c)
    return result


def facts_version(date_from: date, date_to: date) -> tuple[Any, str]:
    """When the facts of ``[date_from, date_to)`` were last computed, and a token that changes
    with every recompute of any of those days (1 query).

    ``facts_compute`` bumps each day's ``FactDay.version``; versions only grow, so the count,
    sum and latest ``computed_at`` of the period's days change whenever one of them is recomputed,
    even twice within one clock tick.
    """
    row = FactDay.objects.filter(day__gte=date_from, day__lt=date_to).aggregate(
        last=Max("computed_at"), versions=Sum("version"), days=Count("pk")
    )
    last = row["last"]
    token = f"{row['days']}.{row['versions'] or 0}.{last.isoformat() if last else '-'}"
    return last, token


def _cache_key(kind: str, *parts: Any) -> str:
    digest = hashlib.blake2b("|".join(map(str, parts)).encode(), digest_size=16).hexdigest()
    return f"metrics:{kind}:v2:{digest}"


def _facts_q(
    user: User, date_from: date, date_to: date, scope: Scope | None, visible: Q | None = None
) -> Q:
    """The facts of ``[date_from, date_to)`` the user may read (``visible`` replaces the user's
    visibility), narrowed to ``scope``."""
    where = Q(day__gte=date_from, day__lt=date_to)
    where &= visible if visible is not None else visible_facts_q(user)
    return where & scope.fact_q() if scope is not None else where


def facts_cache_key(
    *, user: User, scope: Scope, date_from: date, date_to: date, extra: str = ""
) -> str:
    """A cache key for a fragment rendered from ``scope``'s facts over ``[date_from, date_to)``
    and staff names: it changes with every recompute of those days and every rename (2 queries,
    3 for a manager)."""
    where = _facts_q(user, date_from, date_to, scope)
    names = list(User.objects.order_by("pk").values_list("pk", "full_name", "email"))
    return _cache_key("fragment", where, facts_version(date_from, date_to)[1], names, extra)


def scorecard_groups(
    *,
    user: User,
    date_from: date,
    date_to: date,
    group_by: str,
    scope: Scope | None = None,
    visible: Q | None = None,
) -> dict[str, Any]:
    """The API's scorecard: ``{"computed_at", "groups": [{"key", "label", "metrics"}]}``.

    Reads facts only. The built metrics are cached (``SCORECARD_CACHE_SECONDS``) under the
    filter and the facts' version (``facts_version``), so any recompute of one of the period's
    days is read at once: a warm read is 2 queries plus one for team or agent labels, a cold one
    adds the 2 fact sums.
    """
    where = _facts_q(user, date_from, date_to, scope, visible)
    group_field = _GROUP_FIELD[group_by]
    computed_at, version = facts_version(date_from, date_to)
    key = _cache_key("scorecard", where, group_field, version)
    built: dict[Any, dict] | None = cache.get(key)
    if built is None:
        sums = _sums(DailyFact.objects.filter(where), group_field)
        histograms = _histograms(DurationBucket.objects.filter(where), group_field)
        keys = {"desk"} if group_by == "desk" else set(sums) | set(histograms)
        built = {k: build_metrics(sums.get(k, {}), histograms.get(k, {})) for k in keys}
        cache.set(key, built, settings.SCORECARD_CACHE_SECONDS)
    labels = _labels(group_by, set(built))
    groups = [
        {"key": key, "label": labels.get(key, key), "metrics": metrics}
        for key, metrics in sorted(
            built.items(), key=lambda kv: (kv[0] is None, str(labels.get(kv[0], kv[0])).lower())
        )
    ]
    return {"computed_at": computed_at, "groups": groups}


def agent_experience_add(
    *,
    user: User,
    groups: list[dict[str, Any]],
    group_by: str,
    date_from: date,
    date_to: date,
    narrowed: bool = False,
) -> None:
    """Add ``agent_pulse`` and ``ideas_captured`` (docs/metrics.md, agent experience) to API groups.

    They come from issue 6's own tables through its one-query selectors, not from daily facts:
    they hold distinct counts (ideas, customers) and pulse weeks, which do not add up over days.
    The pulse is never per agent, and a group is shown only when enough agents answered;
    ideas per channel are not attributed (null). A manager's desk row, which covers only their
    teams, gets null: a desk-wide figure would include other teams; so does any ``narrowed``
    view (a scope parameter), whose groups these tables cannot split.
    """
    empty_pulse = {"value": None, "n": 0}
    if narrowed:
        group_by = "none"
    if group_by in {"team", "agent"} or (group_by == "desk" and user.is_admin):
        ideas = {
            row.get("team_id" if group_by == "team" else "agent_id", "desk"): row
            for row in ideas_captured(start=date_from, end=date_to, group_by=group_by)
        }
    else:
        ideas = {}
    pulse: dict[Any, dict[str, Any]] = {}
    if group_by == "team" or (group_by == "desk" and user.is_admin):
        for row in pulse_means(start=date_from, end=date_to):
            pulse["desk" if row["team_id"] is None else row["team_id"]] = row
    for group in groups:
        idea = ideas.get(group["key"])
        group["metrics"]["ideas_captured"] = (
            {
                "value": idea["mentions"] or 0,
                "ideas": idea["ideas"] or 0,
                "customers": idea["customers"] or 0,
            }
            if idea is not None
            else {"value": 0 if ideas else None, "ideas": 0, "customers": 0}
        )
        row = pulse.get(group["key"])
        group["metrics"]["agent_pulse"] = (
            {"value": row["value"], "n": row["n"]} if row is not None else empty_pulse
        )


def _labels(group_by: str, keys: set[Any]) -> dict[Any, str]:
    labels: dict[Any, str] = {None: "Unattributed", "": "No channel"}
    if group_by == "team":
        ids = [k for k in keys if k is not None]
        labels |= {t.pk: t.name for t in Team.objects.filter(pk__in=ids)} if ids else {}
        labels[None] = "No team"
    elif group_by == "agent":
        ids = [k for k in keys if k is not None]
        labels |= {u.pk: str(u) for u in User.objects.filter(pk__in=ids)} if ids else {}
        labels[None] = "No agent"
    elif group_by == "channel":
        labels |= dict(ChannelKind.choices)
    elif group_by == "desk":
        labels["desk"] = "Whole desk"
    return labels


def scorecard_for_scope(
    *, user: User, scope: Scope, date_from: date, date_to: date, visible: Q | None = None
) -> dict[str, Any]:
    """One scope's metrics (``{"computed_at", "metrics"}``), 3 queries. ``visible`` replaces
    the user's visibility (the agent page's team total)."""
    data = scorecard_groups(
        user=user,
        date_from=date_from,
        date_to=date_to,
        group_by="desk",
        scope=scope,
        visible=visible,
    )
    return {"computed_at": data["computed_at"], "metrics": data["groups"][0]["metrics"]}


TREND_METRICS = (
    "resolution_rate",
    "customer_fcr",
    "internal_fcr",
    "reopen_rate",
    "repeat_contact_rate",
    "unconfirmed_rate",
    "csat",
    "survey_response_rate",
)


def weekly_trend(*, user: User, scope: Scope, end: date, weeks: int = 12) -> dict[str, Any]:
    """The last ``weeks`` Monday-to-Sunday weeks up to ``end``: rates per week.

    ``{"weeks": ["2026-09-07", ...], "series": {key: [value|None, ...]},
    "n": {key: [n, ...]}, "first_response_time": [median|None, ...]}``. Cached like
    ``scorecard_groups`` (1 query when warm, 3 when the facts changed).
    """
    last_monday = end - timedelta(days=end.weekday())
    first = last_monday - timedelta(weeks=weeks - 1)
    stop = last_monday + timedelta(days=7)
    where = _facts_q(user, first, stop, scope)
    key = _cache_key("trend", where, weeks, facts_version(first, stop)[1])
    trend: dict[str, Any] | None = cache.get(key)
    if trend is None:
        trend = _weekly_trend(where, first, weeks)
        cache.set(key, trend, settings.SCORECARD_CACHE_SECONDS)
    return trend


def _weekly_trend(where: Q, first: date, weeks: int) -> dict[str, Any]:
    weekly: dict[int, dict[str, list[int]]] = defaultdict(lambda: defaultdict(lambda: [0, 0]))
    rows = (
        DailyFact.objects.filter(where)
        .values("day", "metric")
        .annotate(n=Sum("numerator"), d=Sum("denominator"))
        .order_by()
        .values_list("day", "metric", "n", "d")
    )
    for day, metric, n, d in rows:
        cell = weekly[(day - first).days // 7][metric]
        cell[0] += int(n or 0)
        cell[1] += int(d or 0)
    buckets: dict[int, dict[int, int]] = defaultdict(lambda: defaultdict(int))
    for day, bucket, c in (
        DurationBucket.objects.filter(where, metric="first_response_time")
        .values("day", "bucket")
        .annotate(c=Sum("count"))
        .order_by()
        .values_list("day", "bucket", "c")
    ):
        buckets[(day - first).days // 7][bucket] += int(c)
    series: dict[str, list] = {}
    counts: dict[str, list] = {}
    built = [
        build_metrics(
            {k: (v[0], v[1]) for k, v in weekly[i].items()},
            {"first_response_time": buckets[i]},
        )
        for i in range(weeks)
    ]
    for key in TREND_METRICS:
        series[key] = [week[key]["value"] for week in built]
        counts[key] = [week[key]["n"] for week in built]
    gap = [week["resolution_gap"] for week in built]
    return {
        "weeks": [(first + timedelta(weeks=i)).isoformat() for i in range(weeks)],
        "series": series,
        "n": counts,
        "gap": {
            "internal_fcr": [g["internal_fcr"] for g in gap],
            "customer_fcr": [g["customer_fcr"] for g in gap],
            "n": [g["n"] for g in gap],
        },
        "first_response_time": [week["first_response_time"]["median"] for week in built],
    }


def targets_for_scope(*, scope: Scope) -> dict[str, float]:
    """Targets that apply: the team's own, else the desk-wide one (1 query)."""
    team_id = scope.team.pk if scope.kind == "team" and scope.team else None
    result: dict[str, float] = {}
    for target in Target.objects.filter(Q(team__isnull=True) | Q(team_id=team_id)).order_by(
        "team_id"
    ):
        if target.team_id is None:
            result.setdefault(target.metric, target.value)
        else:
            result[target.metric] = target.value
    return result


def recompute_job_get_for_user(*, user: User, pk: Any) -> RecomputeJob:
    """A recompute job: its requester or any manager may follow it; Http404 otherwise."""
    job = RecomputeJob.objects.filter(pk=_pk(pk)).first() if _pk(pk) else None
    if job is None:
        raise Http404("No such task.")
    if job.requested_by_id != user.pk and not user.is_manager:
        raise Http404("No such task.")
    return job


# --- Drill-down ---------------------------------------------------------------------------------


@dataclass
class DrillRow:
    conversation_id: int
    subject: str
    customer: str
    team: str
    agent: str
    channel: str
    at: datetime
    detail: str
    flagged: bool


# Solve-based figures: (population, numerator) over ``metrics.facts.solve_source``.
SOLVE_DRILLS: dict[str, tuple[Q, Q]] = {
    "internal_fcr": (Q(), Q(contacts=1)),
    "reopen_rate": (Q(), Q(reopened=True)),
    "repeat_contact_rate": (Q(), Q(repeat=True)),
    "dropped_rate": (Q(), Q(dropped=True)),
    "interactions_per_conversation": (Q(), Q()),
    "resolution_rate": (Q(answered=True), Q(resolved="yes")),
    "partial_resolution_rate": (Q(answered=True), Q(resolved="partly")),
    "customer_fcr": (Q(answered=True), Q(customer_first=True)),
    # The gap's conversations: one contact by our count, not first-contact by the customer's.
    "resolution_gap": (Q(answered=True), Q(contacts=1, customer_first=False)),
    "unconfirmed_rate": (
        Q(delivered=True) & (Q(window_over=True) | Q(answered=True)),
        Q(delivered=True, window_over=True, resolution_in_window=False),
    ),
    "csat": (Q(csat_answer__isnull=False), Q(csat_answer__gte=4)),
    "csat_mean": (Q(csat_answer__isnull=False), Q(csat_answer__isnull=False)),
    "nps": (Q(nps_answer__isnull=False), Q(nps_answer__isnull=False)),
    "survey_response_rate": (Q(delivered=True), Q(responded=True)),
    "comment_rate": (Q(responded=True), Q(responded=True) & ~Q(comment="")),
    "shout_outs": (Q(responded=True), Q(shout_out=True)),
    "time_to_resolution": (Q(resolved="yes"), Q(resolved="yes")),
}
DRILLABLE = {*SOLVE_DRILLS, "system_disconnect_rate", "survey_solicitation_flags"}
DRILLABLE |= {"first_response_time", "handle_time", "qa_score"}


def _scope_filter(scope: Scope, *, team: str, agent: str, channel: str = "channel_kind") -> Q:
    if scope.kind == "team" and scope.team:
        return Q(**{team: scope.team.pk})
    if scope.kind == "agent" and scope.agent:
        return Q(**{agent: scope.agent.pk})
    if scope.kind == "channel":
        return Q(**{channel: scope.channel})
    return Q()


def _visible(user: User, *, team: str, agent: str) -> Q:
    if user.is_admin:
        return Q()
    if user.is_manager:
        team_ids = list(user.teams.values_list("pk", flat=True))
        return Q(**{f"{team}__in": team_ids}) | Q(**{f"{team}__isnull": True})
    return Q(**{agent: user.pk})


def drill_down(
    *,
    user: User,
    metric: str,
    scope: Scope,
    date_from: date,
    date_to: date,
    only_flagged: bool = True,
    bucket: str = "",
    limit: int | None = 500,
) -> list[DrillRow]:
    """The conversations behind a figure, newest first (speed: slowest first).

    ``only_flagged``: only the numerator (reopened, dropped...); otherwise the whole
    denominator with the flag shown. A constant number of queries.
    """
    return list(
        drill_rows(
            user=user,
            metric=metric,
            scope=scope,
            date_from=date_from,
            date_to=date_to,
            only_flagged=only_flagged,
            bucket=bucket,
            limit=limit,
        )
    )


def drill_rows(
    *,
    user: User,
    metric: str,
    scope: Scope,
    date_from: date,
    date_to: date,
    only_flagged: bool = True,
    bucket: str = "",
    limit: int | None = None,
) -> Iterator[DrillRow]:
    """``drill_down`` as a stream: without ``limit`` the rows are read in chunks from a cursor
    and never held in memory all at once (the CSV export of a whole quarter)."""
    if metric not in DRILLABLE:
        raise Http404("That figure has no drill-down.")
    return _drill_rows(
        user=user,
        metric=metric,
        scope=scope,
        date_from=date_from,
        date_to=date_to,
        only_flagged=only_flagged,
        bucket=bucket,
        limit=limit,
    )


DRILL_CHUNK = 2000


def _take(qs: QuerySet[Any], limit: int | None) -> Iterable[Any]:
    return qs[:limit] if limit else qs.iterator(chunk_size=DRILL_CHUNK)


def _drill_rows(
    *,
    user: User,
    metric: str,
    scope: Scope,
    date_from: date,
    date_to: date,
    only_flagged: bool,
    bucket: str,
    limit: int | None,
) -> Iterator[DrillRow]:
    start, end = source.day_bounds(date_from, date_to)
    if metric in SOLVE_DRILLS:
        population, numerator = SOLVE_DRILLS[metric]
        qs = (
            source.solve_source(start, end)
            .filter(_visible(user, team="team_id", agent="agent_id"))
            .filter(_scope_filter(scope, team="team_id", agent="agent_id"))
            .filter(population)
            .annotate(flagged=source._flag(numerator))
            .select_related("conversation__customer", "team", "agent")
            .order_by("-occurred_at", "-id")
        )
        if metric == "interactions_per_conversation" and bucket in INTERACTION_BUCKETS:
            qs = qs.filter(interactions_bucket=bucket)
        elif only_flagged:
            qs = qs.filter(flagged=True)
        for event in _take(qs, limit):
            yield (_row(event.conversation, event.team, event.agent, event, _solve_detail(event)))
        return
    if metric == "system_disconnect_rate":
        qs = (
            source.calls_source(start, end)
            .filter(_visible(user, team="conversation__team_id", agent="agent_id"))
            .filter(_scope_filter(scope, team="conversation__team_id", agent="agent_id"))
            .select_related("conversation__customer", "conversation__team", "agent")
            .order_by("-started_at")
        )
        if only_flagged:
            qs = qs.filter(ended_by="system")
        for call in _take(qs, limit):
            yield (
                DrillRow(
                    call.conversation_id,
                    call.conversation.subject,
                    str(call.conversation.customer),
                    str(call.conversation.team or ""),
                    str(call.agent or ""),
                    call.channel_kind,
                    call.started_at,
                    f"ended by {call.ended_by or 'unknown'}, talk {call.talk_seconds or 0}s",
                    call.ended_by == "system",
                )
            )
        return
    if metric == "survey_solicitation_flags":
        qs = (
            source.solicitation_source(start, end)
            .filter(_visible(user, team="conversation__team_id", agent="author_id"))
            .filter(_scope_filter(scope, team="conversation__team_id", agent="author_id"))
            .select_related("conversation__customer", "conversation__team", "author")
            .order_by("-sent_at")
        )
        if only_flagged:
            qs = qs.filter(solicits=True)
        for message in _take(qs, limit):
            yield (
                DrillRow(
                    message.conversation_id,
                    message.conversation.subject,
                    str(message.conversation.customer),
                    str(message.conversation.team or ""),
                    str(message.author or ""),
                    message.channel_kind,
                    message.sent_at,
                    message.body_text[:300],
                    message.solicits,
                )
            )
        return
    if metric == "qa_score":
        qs = (
            source.qa_source(start, end)
            .filter(_visible(user, team="team_id", agent="agent_id"))
            .filter(_scope_filter(scope, team="team_id", agent="agent_id"))
            .select_related("conversation__customer", "team", "agent")
            .order_by("score", "-solved_at")
        )
        for review in _take(qs, limit):
            yield (
                DrillRow(
                    review.conversation_id,
                    review.conversation.subject,
                    str(review.conversation.customer),
                    str(review.team or ""),
                    str(review.agent),
                    review.channel_kind,
                    review.solved_at,
                    f"QA score {review.score}"
                    + (f": {review.comment[:200]}" if review.comment else ""),
                    True,
                )
            )
        return
    if metric in {"first_response_time", "handle_time"}:
        if metric == "first_response_time":
            qs = (
                source.first_response_source(start, end)
                .filter(_visible(user, team="reply_team", agent="reply_agent"))
                .filter(_scope_filter(scope, team="reply_team", agent="reply_agent"))
            )
        else:
            qs = (
                source.handle_source(start, end)
                .filter(seconds__isnull=False)
                .filter(_visible(user, team="conversation__team_id", agent="handler"))
                .filter(_scope_filter(scope, team="conversation__team_id", agent="handler"))
            )
        qs = qs.select_related("conversation__customer", "conversation__team").order_by("-seconds")
        for contact in _take(qs, limit):
            yield (
                DrillRow(
                    contact.conversation_id,
                    contact.conversation.subject,
                    str(contact.conversation.customer),
                    str(contact.conversation.team or ""),
                    "",
                    contact.channel_kind,
                    contact.started_at,
                    format_seconds(contact.seconds),
                    True,
                )
            )
        return


def _solve_detail(event: Any) -> str:
    parts = [f"{event.contacts} contact(s)", f"{event.interactions} public message(s)"]
    if event.reopened:
        parts.append("reopened within 7 days")
    if event.repeat:
        parts.append("customer came back within 7 days")
    if event.dropped:
        parts.append("last message unanswered")
    if event.resolved:
        parts.append(f"customer: resolved {event.resolved}")
    elif event.delivered:
        parts.append("survey delivered, no resolution answer")
    if event.declared:
        parts.append(f"declared {event.declared} contact(s)")
    if event.csat_answer is not None:
        parts.append(f"CSAT {event.csat_answer}")
    if event.nps_answer is not None:
        parts.append(f"NPS {event.nps_answer}")
    if event.comment:
        parts.append(f"\u201c{event.comment[:140]}\u201d")
    return " · ".join(parts)


def _row(conversation: Any, team: Any, agent: Any, event: Any, detail: str) -> DrillRow:
    return DrillRow(
        conversation.pk,
        conversation.subject,
        str(conversation.customer),
        str(team or ""),
        str(agent or ""),
        event.channel_kind,
        event.occurred_at,
        detail,
        bool(event.flagged),
    )


def format_seconds(seconds: float | None) -> str:
    if seconds is None:
        return "—"
    seconds = round(seconds)
    if seconds < 120:
        return f"{seconds}s"
    minutes = seconds / 60
    if minutes < 120:
        return f"{minutes:.0f} min"
    hours = minutes / 60
    if hours < 48:
        return f"{hours:.1f} h"
    return f"{hours / 24:.1f} d"


def metric_label(key: str) -> str:
    info = BY_KEY.get(key)
    return info.label if info else key


# --- Integrity panel: the substitute-trap detectors -----------------------------------------------

BAD_RATING_REASSIGN_HOURS = 48


def _survey_scope(user: User, scope: Scope) -> Q:
    q = _visible(user, team="team_id", agent="agent_id")
    return q & _scope_filter(scope, team="team_id", agent="agent_id")


def integrity_surveys_not_sent(
    *, user: User, scope: Scope, date_from: date, date_to: date, limit: int = 200
) -> dict[str, Any]:
    """Surveys skipped, cancelled or bounced for solves in the period, with their reasons."""
    from surveys.models import Survey

    start, end = source.day_bounds(date_from, date_to)
    qs = (
        Survey.objects.filter(solved_at__gte=start, solved_at__lt=end)
        .filter(_survey_scope(user, scope))
        .exclude(status__in=[Survey.Status.SENT, Survey.Status.SCHEDULED])
        .select_related("conversation__customer", "agent", "team")
        .order_by("-solved_at", "-id")
    )
    surveys = list(qs[:limit])
    reasons: dict[str, int] = defaultdict(int)
    for survey in surveys:
        reasons[
            survey.get_skip_reason_display() if survey.skip_reason else survey.get_status_display()
        ] += 1
    return {"surveys": surveys, "reasons": sorted(reasons.items(), key=lambda kv: -kv[1])}


def integrity_reassigned_after_bad_rating(
    *, user: User, scope: Scope, date_from: date, date_to: date, limit: int = 200
) -> list[Any]:
    """Answers of CSAT 1-2 or resolved = no after which the conversation was reassigned within
    48 hours: the agent who earned the rating should not lose it to a colleague."""
    from django.db.models import DateTimeField, Exists, ExpressionWrapper, OuterRef

    from surveys.models import SurveyResponse
    from tickets.models import Event

    start, end = source.day_bounds(date_from, date_to)
    window = ExpressionWrapper(
        OuterRef("answered_at") + timedelta(hours=BAD_RATING_REASSIGN_HOURS),
        output_field=DateTimeField(),
    )
    reassigned = Event.objects.filter(
        kind=Event.Kind.ASSIGNED,
        conversation_id=OuterRef("survey__conversation_id"),
        occurred_at__gte=OuterRef("answered_at"),
        occurred_at__lte=window,
    )
    qs = (
        SurveyResponse.objects.filter(survey__solved_at__gte=start, survey__solved_at__lt=end)
        .filter(Q(csat__lte=2) | Q(resolved="no"))
        .filter(
            _visible(user, team="survey__team_id", agent="survey__agent_id")
            & _scope_filter(scope, team="survey__team_id", agent="survey__agent_id")
        )
        .annotate(reassigned=Exists(reassigned))
        .filter(reassigned=True)
        .order_by("-answered_at")
    )
    return list(
        qs.values(
            "pk",
            "answered_at",
            "csat",
            "resolved",
            "survey__conversation_id",
            "survey__conversation__subject",
            "survey__agent__full_name",
            "survey__agent__email",
        )[:limit]
    )


def integrity_opened_not_answered(
    *, user: User, scope: Scope, date_from: date, date_to: date, limit: int = 200
) -> list[Any]:
    """Survey pages a person opened (the page's script says so) that got no answer."""
    from surveys.models import Survey

    start, end = source.day_bounds(date_from, date_to)
    return list(
        Survey.objects.filter(
            solved_at__gte=start, solved_at__lt=end, opened_at__isnull=False, responses__isnull=True
        )
        .filter(_survey_scope(user, scope))
        .select_related("conversation__customer", "agent", "team")
        .order_by("-opened_at")[:limit]
    )
