"""Every write of routing: business hours, promises, availability, team routing and the
in-transaction reactions to a customer's message (``inbound_hook``, ``reopened_hook``).

Assignment takes the team's ``TeamRouting`` row with ``SELECT ... FOR UPDATE`` before it reads
the agents' loads, so concurrent ingestion into one team assigns one conversation at a time:
no agent goes over the cap, and round-robin's pointer never skips or repeats an agent.
"""

from __future__ import annotations

import logging
from datetime import UTC, datetime, time, timedelta
from typing import Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from django.db import transaction
from django.utils import timezone

from routing.business_time import WEEKDAYS, day_hours, format_hhmm
from routing.models import (
    Availability,
    AvailabilityStatus,
    BusinessHours,
    BusinessHoursException,
    BusinessInterval,
    Promise,
    RoutingMode,
    TeamRouting,
)
from routing.selectors import (
    LOAD_STATUSES,
    RoutingApplies,
    effective_status,
    open_loads,
    promise_seconds,
    routing_applies,
    schedule_for_team,
    schedule_from_hours,
)
from supportdesk.errors import ApplicationError, Forbidden
from supportdesk.models import AuditAction, Team, User
from supportdesk.services import audit_record
from tickets.models import ChannelKind, Conversation, ConversationPriority, Event, Message
from tickets.services.events import conversation_save, event_record

logger = logging.getLogger(__name__)
Status = Conversation.Status

# Business intervals are written from this date (or the first conversation, if earlier) to
# INTERVAL_YEARS_AHEAD years from now; the nightly task moves the horizon.
INTERVALS_FROM = datetime(2020, 1, 1, tzinfo=UTC)
INTERVAL_YEARS_AHEAD = 2


def _manager_only(actor: User, team: Team | None = None) -> None:
    if not actor.is_manager:
        raise Forbidden("Only a manager or an admin can change this.")
    if team is not None and not actor.is_admin and not actor.teams.filter(pk=team.pk).exists():
        raise Forbidden("You can only change your own teams.")
    if team is None and not actor.is_admin and actor.role != User.Role.MANAGER:
        raise Forbidden("Only a manager or an admin can change this.")


# --- Business hours ------------------------------------------------------------------------------


def week_clean(week: dict[str, Any]) -> dict[str, list[list[str]]]:
    """``{"mon": [["09:00", "17:00"]], ...}`` checked and normalised; ApplicationError if not."""
    if not isinstance(week, dict) or set(week) - set(WEEKDAYS):
        raise ApplicationError(f"week takes the days {', '.join(WEEKDAYS)}.")
    cleaned: dict[str, list[list[str]]] = {}
    for day in WEEKDAYS:
        intervals = week.get(day) or []
        try:
            if not isinstance(intervals, list) or any(
                not isinstance(pair, list | tuple) or len(pair) != 2 for pair in intervals
            ):
                raise ValueError("each interval is [opens, closes]")
            pairs = day_hours(intervals)
        except (TypeError, ValueError) as exc:
            raise ApplicationError(f"{day}: {exc}") from exc
        cleaned[day] = [[format_hhmm(a), format_hhmm(b)] for a, b in pairs]
    return cleaned


def time_zone_clean(name: str) -> str:
    try:
        ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError) as exc:
        raise ApplicationError(f"{name!r} is not a time zone (e.g. Europe/Lisbon).") from exc
    return name


@transaction.atomic
def business_hours_save(
    *, team: Team | None, time_zone: str, week: dict[str, Any], actor: User
) -> BusinessHours:
    """Set the weekly hours of ``team`` (None: the desk's). Audited; the business intervals
    the scorecards read are rebuilt in this transaction."""
    _manager_only(actor, team)
    if team is None and not actor.is_admin:
        raise Forbidden("Only an admin can change the desk's hours.")
    cleaned = week_clean(week)
    zone = time_zone_clean(time_zone)
    hours = BusinessHours.objects.select_for_update().filter(team=team).first()
    before = {"time_zone": hours.time_zone, "week": hours.week} if hours else None
    if hours is None:
        hours = BusinessHours(team=team)
    hours.time_zone, hours.week = zone, cleaned
    hours.save()
    audit_record(
        action=AuditAction.HOURS_CHANGED,
        target=hours,
        actor=actor,
        team=team,
        summary=f"Hours of {team or 'the desk'}: {zone}",
        details={"before": before, "after": {"time_zone": zone, "week": cleaned}},
    )
    business_intervals_rebuild()
    return hours


@transaction.atomic
def business_hours_delete(*, team: Team, actor: User) -> None:
    """A team goes back to the desk's hours."""
    _manager_only(actor, team)
    deleted, _ = BusinessHours.objects.filter(team=team).delete()
    if deleted:
        audit_record(
            action=AuditAction.HOURS_CHANGED,
            target=("supportdesk.team", team.pk),
            actor=actor,
            team=team,
            summary=f"Hours of {team}: the desk's",
        )
        business_intervals_rebuild()


@transaction.atomic
def business_hours_exception_save(
    *,
    hours: BusinessHours,
    date: Any,
    name: str,
    opens: time | None,
    closes: time | None,
    actor: User,
) -> BusinessHoursException:
    """A holiday (no opens/closes) or other hours on one date; replaces that date's row."""
    _manager_only(actor, hours.team)
    if (opens is None) != (closes is None):
        raise ApplicationError("Give both opening and closing times, or neither for a holiday.")
    if opens is not None and closes is not None and opens >= closes:
        raise ApplicationError("The closing time must be after the opening time.")
    exception, _ = BusinessHoursException.objects.update_or_create(
        hours=hours, date=date, defaults={"name": name[:100], "opens": opens, "closes": closes}
    )
    audit_record(
        action=AuditAction.HOURS_CHANGED,
        target=hours,
        actor=actor,
        team=hours.team,
        summary=f"Hours of {hours.team or 'the desk'}: {date} "
        + (f"{opens:%H:%M}-{closes:%H:%M}" if opens and closes else "closed"),
        details={"date": str(date), "name": name},
    )
    business_intervals_rebuild()
    return exception


@transaction.atomic
def business_hours_exception_delete(*, exception: BusinessHoursException, actor: User) -> None:
    hours = exception.hours
    _manager_only(actor, hours.team)
    day = exception.date
    exception.delete()
    audit_record(
        action=AuditAction.HOURS_CHANGED,
        target=hours,
        actor=actor,
        team=hours.team,
        summary=f"Hours of {hours.team or 'the desk'}: {day} back to the week's hours",
    )
    business_intervals_rebuild()


@transaction.atomic
def business_intervals_rebuild(*, now: datetime | None = None) -> int:
    """Rewrite every team's opening intervals (team key 0: no team) from its effective hours;
    a team that is always open gets none (its business time is calendar time)."""
    now = now or timezone.now()
    first = Conversation.objects.order_by("created_at").values_list("created_at", flat=True).first()
    start = min(INTERVALS_FROM, first - timedelta(days=1)) if first else INTERVALS_FROM
    end = now.replace(year=now.year + INTERVAL_YEARS_AHEAD)
    all_hours = {h.team_id: h for h in BusinessHours.objects.prefetch_related("exceptions")}
    schedules = {team_id: schedule_from_hours(h) for team_id, h in all_hours.items()}
    BusinessInterval.objects.all().delete()
    rows: list[BusinessInterval] = []
    keys = [0, *Team.objects.values_list("pk", flat=True)]
    for key in keys:
        schedule = schedules.get(key or None) or schedules.get(None)
        if schedule is None:
            continue
        before = 0.0
        for opens, closes in schedule.intervals(start, end):
            rows.append(
                BusinessInterval(
                    team_key=key, opens_at=opens, closes_at=closes, before_seconds=int(before)
                )
            )
            before += (closes - opens).total_seconds()
    BusinessInterval.objects.bulk_create(rows, batch_size=2000)
    return len(rows)


# --- Promises ------------------------------------------------------------------------------------


@transaction.atomic
def promise_set(
    *, channel_kind: str, priority: str, reply_seconds: int | None, actor: User
) -> Promise | None:
    """Promise customers of ``channel_kind`` (and ``priority``; "" = any other) a reply within
    ``reply_seconds`` business seconds; None removes the promise. Admin only, audited."""
    if not actor.is_admin:
        raise Forbidden("Only an admin can change the promises to customers.")
    written = [kind for kind in ChannelKind.values if kind != ChannelKind.PHONE]
    if channel_kind not in written:
        # A call is answered live: a promise is about written messages (docs/metrics.md).
        raise ApplicationError(f"channel must be one of {', '.join(written)}.")
    if priority and priority not in ConversationPriority.values:
        raise ApplicationError(f"priority must be one of {', '.join(ConversationPriority.values)}.")
    if reply_seconds is not None and not 60 <= reply_seconds <= 60 * 60 * 24 * 60:
        raise ApplicationError("A reply time is between one minute and 60 days.")
    promise = None
    if reply_seconds is None:
        Promise.objects.filter(channel_kind=channel_kind, priority=priority).delete()
    else:
        promise, _ = Promise.objects.update_or_create(
            channel_kind=channel_kind, priority=priority, defaults={"reply_seconds": reply_seconds}
        )
    audit_record(
        action=AuditAction.PROMISES_CHANGED,
        target=("routing.promise", promise.pk if promise else None),
        actor=actor,
        summary=f"Promise {channel_kind}/{priority or 'any'}: "
        + (f"{reply_seconds}s" if reply_seconds is not None else "none"),
        details={"channel": channel_kind, "priority": priority, "reply_seconds": reply_seconds},
    )
    return promise


def due_at_for(
    conversation: Conversation, *, channel_kind: str, since: datetime
) -> datetime | None:
    """When a customer message of ``since`` is due under the promise for its channel and the
    conversation's priority, counted in the team's business hours; None without a promise."""
    seconds = promise_seconds(channel_kind, conversation.priority)
    if seconds is None:
        return None
    schedule = schedule_for_team(conversation.team)
    if schedule is None:
        return since + timedelta(seconds=seconds)
    return schedule.add(since, seconds)


# --- Availability ----------------------------------------------------------------------------------


@transaction.atomic
def availability_set(
    *, user: User, status: str, actor: User, follows_hours: bool | None = None
) -> Availability:
    """An agent sets themself available, busy or away (a manager may set a member of their
    teams). Going away hands their waiting conversations back to the pool in teams that ask
    for it; coming back takes conversations waiting in the pool, up to the cap."""
    if status not in AvailabilityStatus.values:
        raise ApplicationError(f"status must be one of {', '.join(AvailabilityStatus.values)}.")
    if actor.pk != user.pk:
        shared = actor.teams.filter(pk__in=user.teams.values("pk")).exists()
        if not (actor.is_admin or (actor.is_manager and shared)):
            raise ApplicationError("You can only set your own availability.")
    availability, _ = Availability.objects.select_for_update().get_or_create(user=user)
    before = availability.status
    availability.status = status
    if follows_hours is not None:
        availability.follows_hours = follows_hours
    availability.changed_at = timezone.now()
    availability.save()
    if actor.pk != user.pk:
        audit_record(
            action=AuditAction.AVAILABILITY_CHANGED,
            target=user,
            actor=actor,
            summary=f"{user.email}: {before} -> {status}",
        )
    teams = list(Team.objects.filter(members=user).select_related("routing"))
    if status == AvailabilityStatus.AWAY:
        for team in teams:
            routing = getattr(team, "routing", None)
            if routing is not None and routing.return_when_away:
                conversations_return_to_pool(team=team, agent=user)
    elif status == AvailabilityStatus.AVAILABLE:
        for team in teams:
            routing_pool_drain(team=team)
    return availability


# --- Team routing ----------------------------------------------------------------------------------


@transaction.atomic
def team_routing_save(
    *, team: Team, mode: str, cap: int, return_when_away: bool, actor: User
) -> TeamRouting:
    _manager_only(actor, team)
    if mode not in RoutingMode.values:
        raise ApplicationError(f"mode must be one of {', '.join(RoutingMode.values)}.")
    if not 0 <= cap <= 1000:
        raise ApplicationError("The cap is between 0 (none) and 1000.")
    routing, _ = TeamRouting.objects.select_for_update().get_or_create(team=team)
    before = {"mode": routing.mode, "cap": routing.cap, "return": routing.return_when_away}
    routing.mode, routing.cap, routing.return_when_away = mode, cap, return_when_away
    routing.save()
    audit_record(
        action=AuditAction.ROUTING_CHANGED,
        target=routing,
        actor=actor,
        team=team,
        summary=f"Routing of {team}: {mode}, cap {cap or 'none'}",
        details={"before": before, "after": {"mode": mode, "cap": cap, "return": return_when_away}},
    )
    routing_pool_drain(team=team)
    return routing


def conversation_assign_by(conversation: Conversation, agent: User | None, *, by: str) -> None:
    """Assign (or unassign) in the caller's transaction, recording who decided: ``by`` is the
    routing mode, \"away\" or \"rule\". The caller checked the agent is a member of the team."""
    previous = conversation.assignee_id
    conversation.assignee = agent
    conversation_save(conversation, "assignee")
    event_record(
        kind=Event.Kind.ASSIGNED,
        conversation=conversation,
        actor=None,
        agent=agent,
        data={
            "from": {"team": conversation.team_id, "agent": previous},
            "to": {"team": conversation.team_id, "agent": agent.pk if agent else None},
            "by": by,
        },
    )


def _pick_agent(routing: TeamRouting, *, now: datetime) -> User | None:
    """The next available agent under the cap (round-robin or least-loaded), in the caller's
    transaction, which holds the ``TeamRouting`` row lock."""
    schedule = schedule_for_team(routing.team)
    # Agents only: a manager or an admin in the team takes work by hand.
    members = list(
        User.objects.filter(teams=routing.team_id, is_active=True, role=User.Role.AGENT)
        .select_related("availability")
        .order_by("pk")
    )
    available = [
        m
        for m in members
        if effective_status(getattr(m, "availability", None), schedule, now)[0]
        == AvailabilityStatus.AVAILABLE
    ]
    loads = open_loads([m.pk for m in available])
    if routing.cap:
        available = [m for m in available if loads.get(m.pk, 0) < routing.cap]
    if not available:
        return None
    # Round-robin order: the agents after the one who was given the last conversation first.
    pointer = routing.last_agent_id or 0
    ordered = [m for m in available if m.pk > pointer] + [m for m in available if m.pk <= pointer]
    if routing.mode == RoutingMode.LEAST_LOADED:
        fewest = min(loads.get(m.pk, 0) for m in ordered)
        ordered = [m for m in ordered if loads.get(m.pk, 0) == fewest]
    return ordered[0]


def conversation_route(*, conversation: Conversation, now: datetime | None = None) -> User | None:
    """Give an unassigned, waiting conversation to an agent if its team routes automatically.
    Runs in the caller's transaction; takes the team's routing row lock. Returns the agent."""
    if (
        conversation.team_id is None
        or conversation.assignee_id is not None
        or conversation.status not in LOAD_STATUSES
        or conversation.spam_at is not None
    ):
        return None
    routing = (
        TeamRouting.objects.select_for_update()
        .select_related("team")
        .filter(team_id=conversation.team_id)
        .exclude(mode=RoutingMode.MANUAL)
        .first()
    )
    if routing is None:
        return None
    agent = _pick_agent(routing, now=now or timezone.now())
    if agent is None:
        return None
    routing.last_agent = agent
    routing.save(update_fields=["last_agent", "updated_at"])
    conversation_assign_by(conversation, agent, by=routing.mode)
    return agent


@transaction.atomic
def routing_pool_drain(*, team: Team, limit: int = 200) -> int:
    """Route the team's unassigned waiting conversations, oldest first, while agents are free."""
    if not TeamRouting.objects.filter(team=team).exclude(mode=RoutingMode.MANUAL).exists():
        return 0
    routed = 0
    pool = Conversation.objects.filter(
        team=team, assignee__isnull=True, status__in=LOAD_STATUSES, spam_at__isnull=True
    ).order_by("created_at", "id")
    for conversation in pool.select_for_update(skip_locked=True, of=("self",))[:limit]:
        if conversation_route(conversation=conversation) is None:
            break
        routed += 1
    return routed


@transaction.atomic
def conversations_return_to_pool(*, team: Team, agent: User) -> int:
    """The agent's waiting conversations in ``team`` go back to the pool (and are routed again
    to someone available, if the team routes automatically)."""
    returned = 0
    mine = Conversation.objects.filter(
        team=team, assignee=agent, status__in=LOAD_STATUSES, spam_at__isnull=True
    ).order_by("created_at", "id")
    for conversation in mine.select_for_update(of=("self",)):
        conversation_assign_by(conversation, None, by="away")
        returned += 1
        conversation_route(conversation=conversation)
    return returned


@transaction.atomic
def routing_sweep(*, now: datetime | None = None) -> dict[str, int]:
    """Beat, every few minutes: agents now away (or outside their hours) hand back their
    waiting conversations where the team asks for it, and pools are routed to whoever is free."""
    now = now or timezone.now()
    returned = drained = 0
    for routing in TeamRouting.objects.select_related("team").exclude(mode=RoutingMode.MANUAL):
        team = routing.team
        if routing.return_when_away:
            schedule = schedule_for_team(team)
            holders = User.objects.filter(
                pk__in=Conversation.objects.filter(
                    team=team, status__in=LOAD_STATUSES, spam_at__isnull=True
                ).values("assignee_id")
            ).select_related("availability")
            for agent in holders:
                status, _ = effective_status(getattr(agent, "availability", None), schedule, now)
                if status == AvailabilityStatus.AWAY:
                    returned += conversations_return_to_pool(team=team, agent=agent)
        drained += routing_pool_drain(team=team)
    return {"returned": returned, "routed": drained}


# --- The reactions to tickets (in ingestion's transaction) ----------------------------------------


def inbound_hook(
    *,
    conversation_id: int,
    message_id: int,
    created: bool,
    reopened: bool,
    channel_kind: str | None = None,
    sent_at: datetime | None = None,
    conversation: Conversation | None = None,
) -> None:
    """A person's message was stored: rules (new or reopened conversation), assignment, and the
    due time promised. Never raises: ingestion must not fail because of routing.

    Runs for every inbound message, so it reads only what applies: the rules of the trigger (the
    message itself only when there are some), the conversation once (again only after a rule
    changed it), the team's routing only for an unassigned conversation, the promise only when
    nothing is due yet. ``channel_kind`` and ``sent_at`` of the message spare reading it, and
    ``conversation`` (ingestion's own, locked in this transaction) reading that again."""
    from routing.rules import rules_active, rules_run

    trigger = "ingested" if created else "reopened" if reopened else None
    applies: RoutingApplies | None = None
    try:
        if (
            conversation is not None
            and conversation.pk == conversation_id
            and channel_kind is not None
            and sent_at is not None
        ):
            # The common case of a desk without rules, automatic routing or promises: one read,
            # and no savepoint to open and release for every message.
            applies = routing_applies(
                trigger=trigger, team_id=conversation.team_id, channel_kind=channel_kind
            )
            if not (
                (trigger is not None and applies.rules)
                or applies.routes
                or (applies.promises and conversation.due_at is None and conversation.is_active)
            ):
                return
        with transaction.atomic():
            if conversation is None or conversation.pk != conversation_id:
                conversation = _conversation_locked(conversation_id)
            if channel_kind is None or sent_at is None:
                channel_kind, sent_at = Message.objects.values_list("channel_kind", "sent_at").get(
                    pk=message_id
                )
            if applies is None:  # not read above (ingestion passed ids only)
                applies = routing_applies(
                    trigger=trigger, team_id=conversation.team_id, channel_kind=channel_kind
                )
            rules = rules_active(trigger) if trigger is not None and applies.rules else []
            if trigger is not None and rules:
                message = Message.objects.select_related("channel").get(pk=message_id)
                if rules_run(
                    trigger=trigger, conversation=conversation, message=message, rules=rules
                ):
                    # A rule may have moved it to another team: what applies is read again.
                    conversation = _conversation_locked(conversation_id)
                    applies = routing_applies(
                        trigger=None, team_id=conversation.team_id, channel_kind=channel_kind
                    )
            if applies.routes:
                conversation_route(conversation=conversation)
            if applies.promises and conversation.due_at is None and conversation.is_active:
                due = due_at_for(conversation, channel_kind=channel_kind, since=sent_at)
                if due is not None:
                    conversation.due_at = due
                    conversation_save(conversation, "due_at")
    except Exception:
        logger.exception("routing failed for conversation %s; ingestion goes on", conversation_id)


def priority_hook(*, conversation: Conversation) -> None:
    """The priority of a conversation changed (the caller saves it): while the customer waits
    for an answer, the reply is due by the promise for the new priority, counted from the
    customer's first unanswered message; None when the new priority has no promise."""
    if conversation.due_at is None or not conversation.is_active:
        return  # answered, or never promised: nothing is due
    answered_at = (
        Message.objects.filter(
            conversation=conversation, direction=Message.Direction.OUTBOUND, automated=""
        )
        .order_by("-sent_at")
        .values_list("sent_at", flat=True)
        .first()
    )
    waiting = Message.objects.filter(
        conversation=conversation, direction=Message.Direction.INBOUND
    ).order_by("sent_at", "id")
    if answered_at is not None:
        waiting = waiting.filter(sent_at__gt=answered_at)
    first = waiting.only("sent_at", "channel_kind").first()
    if first is None:
        return
    conversation.due_at = due_at_for(
        conversation, channel_kind=first.channel_kind, since=first.sent_at
    )


def reopened_hook(*, conversation_id: int) -> None:
    """An agent reopened a conversation: the rules for reopened conversations, assignment."""
    from routing.rules import rules_run

    try:
        with transaction.atomic():
            conversation = _conversation_locked(conversation_id)
            rules_run(trigger="reopened", conversation=conversation, message=None)
            conversation_route(conversation=_conversation_locked(conversation_id))
    except Exception:
        logger.exception("routing failed for reopened conversation %s", conversation_id)


def _conversation_locked(conversation_id: int) -> Conversation:
    return (
        Conversation.objects.select_for_update(of=("self",))
        .select_related("team", "customer", "assignee")
        .get(pk=conversation_id)
    )


def team_created(sender: Any, instance: Team, created: bool, **kwargs: Any) -> None:
    """A new team follows the desk's hours at once (its business intervals are written)."""
    if created and BusinessHours.objects.filter(team__isnull=True).exists():
        business_intervals_rebuild()
