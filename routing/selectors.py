"""Reads of routing: schedules, promises, who is available, rules."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

from django.db import connection
from django.db.models import Count, Q, QuerySet
from django.utils import timezone

from routing.business_time import WEEKDAYS, DayHours, Schedule, day_hours
from routing.models import (
    Availability,
    AvailabilityStatus,
    BusinessHours,
    Promise,
    RoutingMode,
    Rule,
    TeamRouting,
)
from supportdesk.models import Team, User
from tickets.models import Conversation

# What counts towards an agent's cap: conversations waiting on them (pending waits on the
# customer, so it does not).
LOAD_STATUSES = (Conversation.Status.NEW, Conversation.Status.OPEN)


def schedule_from_hours(hours: BusinessHours) -> Schedule:
    exceptions: dict[Any, DayHours] = {}
    for exception in hours.exceptions.all():
        if exception.opens is None or exception.closes is None:
            exceptions[exception.date] = ()
        else:
            opens = exception.opens.hour * 60 + exception.opens.minute
            closes = exception.closes.hour * 60 + exception.closes.minute
            exceptions[exception.date] = ((opens, closes),)
    return Schedule(
        tz=ZoneInfo(hours.time_zone),
        week=tuple(day_hours(hours.week.get(day, [])) for day in WEEKDAYS),
        exceptions=exceptions,
    )


def business_hours_for(team: Team | None) -> BusinessHours | None:
    """The hours that apply to ``team``: its own, else the desk's; None: always open."""
    rows = {
        row.team_id: row
        for row in BusinessHours.objects.filter(Q(team__isnull=True) | Q(team=team))
        .prefetch_related("exceptions")
        .select_related("team")
    }
    return rows.get(team.pk if team else None) or rows.get(None)


def schedule_for_team(team: Team | None) -> Schedule | None:
    hours = business_hours_for(team)
    return schedule_from_hours(hours) if hours is not None else None


def hours_list() -> list[BusinessHours]:
    """The desk's hours and every team's own, for the hours page."""
    return list(
        BusinessHours.objects.select_related("team")
        .prefetch_related("exceptions")
        .order_by("team__name")
    )


def promise_seconds(channel_kind: str, priority: str) -> int | None:
    """The reply time promised on ``channel_kind`` for ``priority`` (else its "any" row)."""
    rows = {
        row.priority: row.reply_seconds
        for row in Promise.objects.filter(channel_kind=channel_kind, priority__in=[priority, ""])
    }
    return rows.get(priority, rows.get(""))


def promise_list() -> list[Promise]:
    return list(Promise.objects.all())


def team_routing(team: Team) -> TeamRouting:
    """The team's routing settings (unsaved defaults when it has none)."""
    return TeamRouting.objects.filter(team=team).first() or TeamRouting(team=team)


@dataclass(frozen=True)
class AgentAvailability:
    user: User
    status: str  # what the agent set
    effective: str  # what routing uses: away outside their hours
    outside_hours: bool
    load: int
    changed_at: datetime | None


def availability_of(user: User) -> Availability:
    return Availability.objects.filter(user=user).first() or Availability(user=user)


def effective_status(
    availability: Availability | None, schedule: Schedule | None, now: datetime
) -> tuple[str, bool]:
    """(status routing uses, whether it is outside the agent's hours)."""
    status = availability.status if availability else AvailabilityStatus.AVAILABLE
    follows = availability.follows_hours if availability else True
    outside = bool(follows and schedule is not None and not schedule.is_open(now))
    return (AvailabilityStatus.AWAY if outside else status), outside


def team_availability(team: Team, *, now: datetime | None = None) -> list[AgentAvailability]:
    """Every active member of ``team`` with their status and open load (3 queries + hours)."""
    now = now or timezone.now()
    schedule = schedule_for_team(team)
    members = list(
        User.objects.filter(teams=team, is_active=True)
        .select_related("availability")
        .order_by("full_name", "email")
    )
    loads = open_loads([m.pk for m in members])
    rows = []
    for member in members:
        availability = getattr(member, "availability", None)
        effective, outside = effective_status(availability, schedule, now)
        rows.append(
            AgentAvailability(
                user=member,
                status=availability.status if availability else AvailabilityStatus.AVAILABLE,
                effective=effective,
                outside_hours=outside,
                load=loads.get(member.pk, 0),
                changed_at=availability.changed_at if availability else None,
            )
        )
    return rows


def open_loads(agent_ids: list[int]) -> dict[int, int]:
    """Conversations waiting on each agent (new or open, not spam)."""
    rows = (
        Conversation.objects.filter(
            assignee_id__in=agent_ids, status__in=LOAD_STATUSES, spam_at__isnull=True
        )
        .values("assignee_id")
        .annotate(n=Count("pk"))
        .order_by()
    )
    return {row["assignee_id"]: row["n"] for row in rows}


def teams_for_manager(user: User) -> QuerySet[Team]:
    """The teams a manager may set up: an admin's are all of them."""
    if user.is_admin:
        return Team.objects.all()
    return Team.objects.filter(members=user)


def rule_list() -> list[Rule]:
    return list(Rule.objects.all())


def due_soon_window() -> timedelta:
    """What the queue calls "due soon": due within the next hour."""
    return timedelta(hours=1)


def rule_summaries(rules: list[Rule]) -> list[tuple[Rule, list[str], list[str]]]:
    """Each rule with its conditions and actions in words (team, agent, mailbox and
    organisation names looked up once for all rules: 4 queries at most)."""
    from tickets.models import Channel, Organisation

    def ids(section: str, key: str) -> set[int]:
        found: set[int] = set()
        for rule in rules:
            value = getattr(rule, section).get(key)
            found |= set(value if isinstance(value, list) else [value] if value else [])
        return found

    teams = dict(Team.objects.filter(pk__in=ids("actions", "team_id")).values_list("pk", "name"))
    agents = {u.pk: str(u) for u in User.objects.filter(pk__in=ids("actions", "assign_id"))}
    mailboxes = dict(
        Channel.objects.filter(pk__in=ids("conditions", "mailbox_ids")).values_list("pk", "name")
    )
    organisations = dict(
        Organisation.objects.filter(pk__in=ids("conditions", "organisation_ids")).values_list(
            "pk", "name"
        )
    )
    out = []
    for rule in rules:
        c, a = rule.conditions, rule.actions
        conditions = [
            text
            for text in (
                c.get("channel_kinds") and "Channel: " + ", ".join(c["channel_kinds"]),
                c.get("mailbox_ids")
                and "Mailbox: " + ", ".join(mailboxes.get(i, f"#{i}") for i in c["mailbox_ids"]),
                c.get("customer_ids")
                and "Customer: " + ", ".join(f"#{i}" for i in c["customer_ids"]),
                c.get("organisation_ids")
                and "Organisation: "
                + ", ".join(organisations.get(i, f"#{i}") for i in c["organisation_ids"]),
                c.get("tags") and "Tagged: " + ", ".join(c["tags"]),
                c.get("priorities") and "Priority: " + ", ".join(c["priorities"]),
                c.get("words") and "Words: " + ", ".join(c["words"]),
                c.get("time_from") and f"Between {c['time_from']} and {c['time_to']}",
            )
            if text
        ]
        actions = [
            text
            for text in (
                a.get("team_id") and "Team: " + teams.get(a["team_id"], f"#{a['team_id']}"),
                a.get("add_tags") and "Add tags: " + ", ".join(a["add_tags"]),
                a.get("priority") and "Priority: " + a["priority"],
                a.get("assign_id")
                and "Assign: " + agents.get(a["assign_id"], f"#{a['assign_id']}"),
                a.get("note") and "Note: " + a["note"][:60],
            )
            if text
        ]
        out.append((rule, conditions, actions))
    return out


@dataclass(frozen=True)
class RoutingApplies:
    """What of routing can apply to one inbound message: read in one query, so a desk without
    rules, automatic routing or promises pays one cheap read per message, not three."""

    rules: bool  # active rules of the trigger exist
    routes: bool  # the team routes automatically (not manual)
    promises: bool  # the channel has a promise (for some priority)


def routing_applies(
    *, trigger: str | None, team_id: int | None, channel_kind: str
) -> RoutingApplies:
    quote = connection.ops.quote_name
    rule, routing, promise = (quote(model._meta.db_table) for model in (Rule, TeamRouting, Promise))
    with connection.cursor() as cursor:
        cursor.execute(
            f"SELECT EXISTS (SELECT 1 FROM {rule} WHERE {quote('trigger')} = %s AND is_active),"
            f" EXISTS (SELECT 1 FROM {routing} WHERE team_id = %s AND {quote('mode')} <> %s),"
            f" EXISTS (SELECT 1 FROM {promise} WHERE channel_kind = %s)",
            [trigger or "", team_id, RoutingMode.MANUAL, channel_kind],
        )
        rules, routes, promises = cursor.fetchone()
    return RoutingApplies(rules=bool(rules), routes=bool(routes), promises=bool(promises))
