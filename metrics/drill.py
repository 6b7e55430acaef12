"""Drill-down: the conversations behind a figure, as rows on the page and in drill.csv (streamed)."""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from datetime import date, datetime
from typing import TYPE_CHECKING, Any

from django.db.models import Q, QuerySet
from django.http import Http404

from metrics import facts as source
from metrics.catalogue import BY_KEY, INTERACTION_BUCKETS
from metrics.selectors import Scope
from supportdesk.models import User

if TYPE_CHECKING:
    from django_stubs_ext import WithAnnotations

    from tickets.models import Contact


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


def scope_filter(scope: Scope, *, team: str, agent: str, channel: str = "channel_kind") -> Q:
    if scope.kind == "team" and scope.team:
        return Q(**{team: scope.team.pk})
    if scope.kind == "agent" and scope.agent:
        return Q(**{agent: scope.agent.pk})
    if scope.kind == "channel":
        return Q(**{channel: scope.channel})
    return Q()


def visible_rows_q(user: User, *, team: str, agent: str) -> Q:
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
        solves = (
            source.solve_source(start, end)
            .filter(visible_rows_q(user, team="team_id", agent="agent_id"))
            .filter(scope_filter(scope, team="team_id", agent="agent_id"))
            .filter(population)
            .annotate(flagged=source._flag(numerator))
            .select_related("conversation__customer", "team", "agent")
            .order_by("-occurred_at", "-id")
        )
        if metric == "interactions_per_conversation" and bucket in INTERACTION_BUCKETS:
            solves = solves.filter(interactions_bucket=bucket)
        elif only_flagged:
            solves = solves.filter(flagged=True)
        for event in _take(solves, limit):
            yield (_row(event.conversation, event.team, event.agent, event, _solve_detail(event)))
        return
    if metric == "system_disconnect_rate":
        calls = (
            source.calls_source(start, end)
            .filter(visible_rows_q(user, team="conversation__team_id", agent="agent_id"))
            .filter(scope_filter(scope, team="conversation__team_id", agent="agent_id"))
            .select_related("conversation__customer", "conversation__team", "agent")
            .order_by("-started_at")
        )
        if only_flagged:
            calls = calls.filter(ended_by="system")
        for call in _take(calls, limit):
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
        messages = (
            source.solicitation_source(start, end)
            .filter(visible_rows_q(user, team="conversation__team_id", agent="author_id"))
            .filter(scope_filter(scope, team="conversation__team_id", agent="author_id"))
            .select_related("conversation__customer", "conversation__team", "author")
            .order_by("-sent_at")
        )
        if only_flagged:
            messages = messages.filter(solicits=True)
        for message in _take(messages, limit):
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
        reviews = (
            source.qa_source(start, end)
            .filter(visible_rows_q(user, team="team_id", agent="agent_id"))
            .filter(scope_filter(scope, team="team_id", agent="agent_id"))
            .select_related("conversation__customer", "team", "agent")
            .order_by("score", "-solved_at")
        )
        for review in _take(reviews, limit):
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
        contacts: (
            QuerySet[WithAnnotations[Contact, source.ReplyTiming]]
            | QuerySet[WithAnnotations[Contact, source.HandleTiming]]
        )
        if metric == "first_response_time":
            contacts = (
                source.first_response_source(start, end)
                .filter(visible_rows_q(user, team="reply_team", agent="reply_agent"))
                .filter(scope_filter(scope, team="reply_team", agent="reply_agent"))
            )
        else:
            contacts = (
                source.handle_source(start, end)
                .filter(seconds__isnull=False)
                .filter(visible_rows_q(user, team="conversation__team_id", agent="handler"))
                .filter(scope_filter(scope, team="conversation__team_id", agent="handler"))
            )
        contacts = contacts.select_related("conversation__customer", "conversation__team").order_by(
            "-seconds"
        )
        for contact in _take(contacts, limit):
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
