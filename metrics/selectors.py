"""Reads of the metrics app, with their joins; permission-scoped getters raise Http404."""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass
from datetime import date, timedelta
from typing import Any

from django.conf import settings
from django.core.cache import cache
from django.db.models import Q, QuerySet
from django.http import Http404

from metrics.facts import day_bounds
from metrics.models import (
    DailyFact,
    DurationBucket,
    RecomputeJob,
    Target,
    TopicFact,
    WeeklyDuration,
    WeeklyFact,
)
from metrics.scorecards import build_metrics, histogram_durations
from metrics.sums import (
    cache_key,
    count_rows,
    facts_state,
    facts_version,
    loose_days_q,
    period_sums,
    rows_by_part,
    sum_rows,
)
from metrics.sums import sums as fact_sums
from quality.selectors import ideas_captured, pulse_means, scored_reviews, visible_review_q
from supportdesk.models import Team, User
from surveys.models import SurveyResponse
from tickets.models import ChannelKind, Tag
from tickets.selectors import visible_conversations_q

GROUPINGS = ("desk", "team", "agent", "channel", "tag")
# Figures reported for the desk, teams and channels only, never per agent.
DESK_ONLY_METRICS = frozenset({"promises_kept_rate"})
AGENT_GROUPINGS = frozenset({"agent"})
# What outcomes by topic (group_by=tag) report: outcome keys only, from ``TopicFact`` rows.
TOPIC_METRIC_KEYS = (
    "resolution_rate",
    "partial_resolution_rate",
    "customer_fcr",
    "internal_fcr",
    "resolution_gap",
    "reopen_rate",
    "repeat_contact_rate",
)
PK_MAX = 2**63 - 1  # ids beyond bigint are no id at all (PostgreSQL would raise, not miss)


def _pk(value: Any) -> int | None:
    try:
        pk = int(value)
    except (TypeError, ValueError):
        return None
    return pk if 0 < pk <= PK_MAX else None


_GROUP_FIELD = {
    "desk": None,
    "team": "team_id",
    "agent": "agent_id",
    "channel": "channel_kind",
    "tag": "tag_id",
}


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
    if kind == "team" and (team_id := _pk(value)) is not None:
        team = Team.objects.filter(pk=team_id).first()
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


def manager_scopes(*, user: User) -> dict[str, list[Any]]:
    """The teams, agents and channels a manager can pick on the dashboard (3 queries)."""
    teams = list(Team.objects.all() if user.is_admin else user.teams.all())
    agents = User.objects.filter(is_active=True).order_by("full_name", "email")
    if not user.is_admin:
        agents = agents.filter(teams__in=teams).distinct()
    return {"teams": teams, "agents": list(agents), "channels": list(ChannelKind.choices)}


def _cells_q(user: User, scope: Scope | None, visible: Q | None = None) -> Q:
    """The fact cells (team, agent, channel) the user may read (``visible`` replaces the user's
    visibility), narrowed to ``scope``: a filter of daily rows and of weekly roll-ups alike."""
    where = visible if visible is not None else visible_facts_q(user)
    return where & scope.fact_q() if scope is not None else where


def _facts_q(
    user: User, date_from: date, date_to: date, scope: Scope | None, visible: Q | None = None
) -> Q:
    """The facts of ``[date_from, date_to)`` the user may read (``visible`` replaces the user's
    visibility), narrowed to ``scope``."""
    return Q(day__gte=date_from, day__lt=date_to) & _cells_q(user, scope, visible)


def facts_cache_key(
    *, user: User, scope: Scope, date_from: date, date_to: date, extra: str = ""
) -> str:
    """A cache key for a fragment rendered from ``scope``'s facts over ``[date_from, date_to)``
    and staff names: it changes with every recompute of those days and every rename (2 queries,
    3 for a manager)."""
    where = _facts_q(user, date_from, date_to, scope)
    names = list(User.objects.order_by("pk").values_list("pk", "full_name", "email"))
    return cache_key("fragment", where, facts_version(date_from, date_to)[1], names, extra)


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
    adds the 2 fact sums. Those read the period's whole weeks from their weekly roll-ups where
    they are current (``facts_state``) and the other days from the daily rows.
    """
    cells = _cells_q(user, scope, visible)
    where = Q(day__gte=date_from, day__lt=date_to) & cells
    group_field = _GROUP_FIELD[group_by]
    state = facts_state(date_from, date_to)
    computed_at = state.computed_at
    key = cache_key("scorecard", where, group_field, state.token)
    built: dict[Any, dict[str, Any]] | None = cache.get(key)
    if built is None and group_by == "tag":
        built = {
            tag: topic_metrics(topic_sums)
            for tag, topic_sums in fact_sums(TopicFact.objects.filter(where), group_field).items()
        }
        cache.set(key, built, settings.SCORECARD_CACHE_SECONDS)
    if built is None:
        sums, durations = period_sums(cells, date_from, date_to, state, group_field)
        keys = {"desk"} if group_by == "desk" else set(sums) | set(durations)
        built = {k: build_metrics(sums.get(k, {}), durations.get(k, {})) for k in keys}
        cache.set(key, built, settings.SCORECARD_CACHE_SECONDS)
    labels = _labels(group_by, set(built))
    if group_by in AGENT_GROUPINGS or (scope is not None and scope.kind == "agent"):
        # A promise is the desk's to the customer: never an agent's figure (docs/metrics.md).
        built = {
            k: {m: v for m, v in metrics.items() if m not in DESK_ONLY_METRICS}
            for k, metrics in built.items()
        }
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

    They come from the quality app's tables through its one-query selectors, not from daily facts:
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
        pulse_row = pulse.get(group["key"])
        group["metrics"]["agent_pulse"] = (
            {"value": pulse_row["value"], "n": pulse_row["n"]}
            if pulse_row is not None
            else empty_pulse
        )


def topic_metrics(sums: dict[str, tuple[int, int]]) -> dict[str, Any]:
    """A topic's outcome keys (``TOPIC_METRIC_KEYS``) and its ``solves`` count."""
    built = build_metrics(sums, {})
    metrics = {key: built[key] for key in TOPIC_METRIC_KEYS}
    metrics["solves"] = {"value": sums.get("solves", (0, 0))[0]}
    return metrics


def _labels(group_by: str, keys: set[Any]) -> dict[Any, str]:
    labels: dict[Any, str] = {None: "Unattributed", "": "No channel"}
    if group_by == "tag":
        ids = [k for k in keys if k is not None]
        labels |= dict(Tag.objects.filter(pk__in=ids).values_list("pk", "name")) if ids else {}
        return labels
    if group_by == "team":
        ids = [k for k in keys if k is not None]
        labels |= dict(Team.objects.filter(pk__in=ids).values_list("pk", "name")) if ids else {}
        labels[None] = "No team"
    elif group_by == "agent":
        ids = [k for k in keys if k is not None]
        # As ``str(user)``, from the two columns it shows (the desk's agents: 200 whole rows).
        rows = (
            User.objects.filter(pk__in=ids).values_list("pk", "full_name", "email") if ids else []
        )
        labels |= {pk: full_name or email for pk, full_name, email in rows}
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
    cells = _cells_q(user, scope)
    where = Q(day__gte=first, day__lt=stop) & cells
    state = facts_state(first, stop)
    key = cache_key("trend", where, weeks, state.token)
    trend: dict[str, Any] | None = cache.get(key)
    if trend is None:
        trend = _weekly_trend(cells, first, weeks, state.rolled, state.rolled_token)
        cache.set(key, trend, settings.SCORECARD_CACHE_SECONDS)
    return trend


def _weekly_trend(
    cells: Q, first: date, weeks: int, rolled: tuple[date, ...] = (), rolled_token: str = ""
) -> dict[str, Any]:
    """The trend's figures: each week's sums from its roll-up if current (``rolled``), else
    from its daily rows (2 queries, each a ``UNION ALL`` of the two when some week is rolled).

    The rolled weeks' rows are cached under the versions their roll-ups were built from
    (``rolled_token``, as ``metrics.sums.period_sums`` does): after a recompute of a recent day
    only the loose days are read.
    """
    stop = first + timedelta(weeks=weeks)
    loose = loose_days_q(first, stop, rolled)
    frt = "first_response_time"
    key = cache_key("trend-rolled", cells, rolled_token)
    cached: tuple[list[Any], list[Any]] | None = cache.get(key) if rolled else ([], [])
    fact_parts: list[QuerySet[Any]] = []
    count_parts: list[QuerySet[Any]] = []
    if cached is None:
        week_q = cells & Q(week__in=rolled)
        fact_parts.append(sum_rows(WeeklyFact.objects.filter(week_q), ["week", "metric"]))
        count_parts.append(
            count_rows(WeeklyDuration.objects.filter(week_q, metric=frt), ["week", "bucket"])
        )
    if loose is not None:
        fact_parts.append(sum_rows(DailyFact.objects.filter(cells & loose), ["day", "metric"]))
        count_parts.append(
            count_rows(DurationBucket.objects.filter(cells & loose, metric=frt), ["day", "bucket"])
        )
    fact_rows = rows_by_part(fact_parts) if fact_parts else []
    bucket_rows = rows_by_part(count_parts) if count_parts else []
    if cached is None:
        cached = (fact_rows.pop(0), bucket_rows.pop(0))
        cache.set(key, cached, settings.SCORECARD_CACHE_SECONDS)
    weekly: dict[int, dict[str, list[int]]] = defaultdict(lambda: defaultdict(lambda: [0, 0]))
    for day, metric, n, d in [*cached[0], *(fact_rows[0] if fact_rows else [])]:
        cell = weekly[(day - first).days // 7][metric]
        cell[0] += int(n or 0)
        cell[1] += int(d or 0)
    buckets: dict[int, dict[int, int]] = defaultdict(lambda: defaultdict(int))
    for day, bucket, c in [*cached[1], *(bucket_rows[0] if bucket_rows else [])]:
        buckets[(day - first).days // 7][bucket] += int(c)
    series: dict[str, list[float | None]] = {}
    counts: dict[str, list[int]] = {}
    built = [
        build_metrics(
            {k: (v[0], v[1]) for k, v in weekly[i].items()},
            histogram_durations({"first_response_time": buckets[i]}),
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
    job_id = _pk(pk)
    job = RecomputeJob.objects.filter(pk=job_id).first() if job_id else None
    if job is None:
        raise Http404("No such task.")
    if job.requested_by_id != user.pk and not user.is_manager:
        raise Http404("No such task.")
    return job


# --- The agent page ------------------------------------------------------------------------------
# Everything on it is read with the viewer's visibility, not the agent's: a manager of team A
# looking at an agent who also works in team B sees only the team A part.


def agent_teams_for_viewer(*, viewer: User, agent: User) -> QuerySet[Team]:
    """The agent's teams the viewer may see (all of them for an admin or the agent), by name."""
    teams = agent.teams.order_by("name")
    if not viewer.is_admin and viewer.pk != agent.pk:
        teams = teams.filter(pk__in=viewer.teams.values("pk"))
    return teams


def agent_voices(
    *, viewer: User, agent: User, date_from: date, date_to: date, limit: int = 50
) -> list[SurveyResponse]:
    """Answers with a comment or a shout-out about the agent's solves in ``[date_from, date_to)``,
    in conversations the viewer may open, newest first."""
    start, end = day_bounds(date_from, date_to)
    return list(
        SurveyResponse.objects.filter(
            visible_conversations_q(viewer, prefix="survey__conversation__"),
            survey__agent=agent,
            survey__solved_at__gte=start,
            survey__solved_at__lt=end,
            survey__conversation__spam_at__isnull=True,
        )
        .exclude(comment="", shout_out=False)
        .select_related("survey__conversation")
        .order_by("-answered_at")[:limit]
    )


def agent_qa_feedback(
    *, viewer: User, agent: User, date_from: date, date_to: date, limit: int = 20
) -> list[Any]:
    """The agent's reviews that count in qa_score, solved in the period, that the viewer may
    open, newest first."""
    start, end = day_bounds(date_from, date_to)
    return list(
        scored_reviews()
        .filter(visible_review_q(viewer), agent=agent, solved_at__gte=start, solved_at__lt=end)
        .order_by("-submitted_at")[:limit]
    )
