"""Rules: ordered conditions and actions an admin or a manager writes in the product.

Evaluated in ``position`` order once when a conversation arrives (``ingested``), when it is
reopened (``reopened``), and by beat when the customer has had no reply for N business hours
(``no_reply``, once per unanswered message). Each rule runs in its own savepoint: a rule that
fails (an agent who left the team, a tag archived since) is rolled back alone, logged, counted
on the rule and recorded as a ``rule.failed`` event; it never stops ingestion or the next rule.
Each application is a ``rule.applied`` event naming the rule and what it did.
"""

from __future__ import annotations

import logging
import re
from datetime import datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

from django.conf import settings
from django.db import transaction
from django.db.models import Exists, F, Max, OuterRef, Q, Subquery
from django.utils import timezone

from routing.business_time import parse_hhmm
from routing.models import BusinessHours, Rule, RuleTrigger
from routing.selectors import schedule_for_team
from routing.services import conversation_assign_by
from supportdesk.errors import ApplicationError, Forbidden
from supportdesk.models import AuditAction, Team, User
from supportdesk.services import audit_record
from tickets.models import ChannelKind, Conversation, ConversationPriority, Event, Message
from tickets.services.events import conversation_save, event_record
from tickets.services.triage import conversation_triage, tags_by_names

logger = logging.getLogger(__name__)

CONDITION_KEYS = (
    "channel_kinds",
    "mailbox_ids",
    "customer_ids",
    "organisation_ids",
    "tags",
    "priorities",
    "words",
    "time_from",
    "time_to",
)
ACTION_KEYS = ("team_id", "add_tags", "priority", "assign_id", "note")
DRY_RUN_DAYS = 30
DRY_RUN_LIMIT = 500


class RuleFailed(Exception):
    """A rule's action could not be applied."""


# --- Writing rules --------------------------------------------------------------------------------


def _ids(value: Any, what: str) -> list[int]:
    try:
        return sorted({int(v) for v in (value or [])})
    except (TypeError, ValueError) as exc:
        raise ApplicationError(f"{what} must be a list of ids.") from exc


def _names(value: Any) -> list[str]:
    if isinstance(value, str):
        value = value.split(",")
    return [" ".join(str(v).split()) for v in (value or []) if str(v).strip()]


def rule_clean(data: dict[str, Any]) -> tuple[dict[str, Any], dict[str, Any]]:
    """(conditions, actions) checked; ApplicationError says what is wrong."""
    raw_c, raw_a = data.get("conditions") or {}, data.get("actions") or {}
    if not isinstance(raw_c, dict) or not isinstance(raw_a, dict):
        raise ApplicationError("conditions and actions are objects.")
    unknown = (set(raw_c) - set(CONDITION_KEYS)) | (set(raw_a) - set(ACTION_KEYS))
    if unknown:
        raise ApplicationError(f"Unknown keys: {', '.join(sorted(unknown))}.")
    c: dict[str, Any] = {}
    kinds = [k for k in raw_c.get("channel_kinds") or [] if k]
    if set(kinds) - set(ChannelKind.values):
        raise ApplicationError(f"channel_kinds take {', '.join(ChannelKind.values)}.")
    priorities = [p for p in raw_c.get("priorities") or [] if p]
    if set(priorities) - set(ConversationPriority.values):
        raise ApplicationError(f"priorities take {', '.join(ConversationPriority.values)}.")
    c.update(
        channel_kinds=sorted(set(kinds)),
        mailbox_ids=_ids(raw_c.get("mailbox_ids"), "mailbox_ids"),
        customer_ids=_ids(raw_c.get("customer_ids"), "customer_ids"),
        organisation_ids=_ids(raw_c.get("organisation_ids"), "organisation_ids"),
        tags=_names(raw_c.get("tags")),
        priorities=sorted(set(priorities)),
        words=[w.lower() for w in _names(raw_c.get("words"))],
    )
    time_from, time_to = raw_c.get("time_from") or "", raw_c.get("time_to") or ""
    if bool(time_from) != bool(time_to):
        raise ApplicationError("A time of day needs both from and to.")
    if time_from:
        try:
            if parse_hhmm(time_from) == parse_hhmm(time_to):
                raise ApplicationError("The time of day from and to are the same.")
        except ValueError as exc:
            raise ApplicationError(str(exc)) from exc
        c.update(time_from=time_from, time_to=time_to)
    c = {k: v for k, v in c.items() if v}
    a: dict[str, Any] = {}
    if raw_a.get("team_id"):
        team_id = _ids([raw_a["team_id"]], "team_id")[0]
        if not Team.objects.filter(pk=team_id).exists():
            raise ApplicationError("No such team.")
        a["team_id"] = team_id
    if raw_a.get("add_tags"):
        a["add_tags"] = [t.name for t in tags_by_names(_names(raw_a["add_tags"]))]
    if raw_a.get("priority"):
        if raw_a["priority"] not in ConversationPriority.values:
            raise ApplicationError(f"priority takes {', '.join(ConversationPriority.values)}.")
        a["priority"] = raw_a["priority"]
    if raw_a.get("assign_id"):
        agent_id = _ids([raw_a["assign_id"]], "assign_id")[0]
        if not User.objects.filter(pk=agent_id, is_active=True).exists():
            raise ApplicationError("No such active agent.")
        a["assign_id"] = agent_id
    note = str(raw_a.get("note") or "").strip()
    if note:
        a["note"] = note[:5000]
    if not a:
        raise ApplicationError("A rule needs at least one action.")
    return c, a


@transaction.atomic
def rule_save(*, actor: User, data: dict[str, Any], rule: Rule | None = None) -> Rule:
    """Create or change a rule (admins and managers). New rules go last. Audited."""
    if not actor.is_manager:
        raise Forbidden("Only a manager or an admin can write rules.")
    name = " ".join(str(data.get("name") or "").split())[:100]
    if not name:
        raise ApplicationError("A rule needs a name.")
    trigger = data.get("trigger") or RuleTrigger.INGESTED
    if trigger not in RuleTrigger.values:
        raise ApplicationError(f"trigger takes {', '.join(RuleTrigger.values)}.")
    raw_hours = data.get("no_reply_hours")
    hours: int | None = None
    if trigger == RuleTrigger.NO_REPLY:
        try:
            hours = int(raw_hours or 0)
        except (TypeError, ValueError) as exc:
            raise ApplicationError("A no-reply rule needs a number of business hours.") from exc
        if not 1 <= hours <= 1000:
            raise ApplicationError("No-reply hours are between 1 and 1000.")
    conditions, actions = rule_clean(data)
    if rule is None:
        last = Rule.objects.aggregate(m=Max("position"))["m"]
        rule = Rule(created_by=actor, position=(last or 0) + 1)
    rule.name, rule.trigger, rule.no_reply_hours = name, trigger, hours
    rule.conditions, rule.actions = conditions, actions
    rule.is_active = bool(data.get("is_active", True))
    rule.stop_after = bool(data.get("stop_after", False))
    rule.save()
    audit_record(
        action=AuditAction.RULE_CHANGED,
        target=rule,
        actor=actor,
        summary=f"Rule {name!r} saved",
        details={"conditions": conditions, "actions": actions, "trigger": trigger},
    )
    return rule


@transaction.atomic
def rule_delete(*, rule: Rule, actor: User) -> None:
    if not actor.is_manager:
        raise Forbidden("Only a manager or an admin can delete rules.")
    audit_record(
        action=AuditAction.RULE_CHANGED,
        target=rule,
        actor=actor,
        summary=f"Rule {rule.name!r} deleted",
        details={"conditions": rule.conditions, "actions": rule.actions},
    )
    rule.delete()


@transaction.atomic
def rule_move(*, rule: Rule, direction: int, actor: User) -> None:
    """Move a rule one place up (-1) or down (+1); positions are renumbered 1..n."""
    if not actor.is_manager:
        raise Forbidden("Only a manager or an admin can order rules.")
    rules = list(Rule.objects.select_for_update().order_by("position", "id"))
    index = next(i for i, r in enumerate(rules) if r.pk == rule.pk)
    other = index + (1 if direction > 0 else -1)
    if 0 <= other < len(rules):
        rules[index], rules[other] = rules[other], rules[index]
    for position, r in enumerate(rules, start=1):
        if r.position != position:
            Rule.objects.filter(pk=r.pk).update(position=position)
    audit_record(
        action=AuditAction.RULE_CHANGED,
        target=rule,
        actor=actor,
        summary=f"Rule {rule.name!r} moved {'down' if direction > 0 else 'up'}",
    )


# --- Evaluating ----------------------------------------------------------------------------------


def _desk_zone() -> ZoneInfo:
    desk = BusinessHours.objects.filter(team__isnull=True).values_list("time_zone", flat=True)
    return ZoneInfo(desk.first() or settings.TIME_ZONE)


def rule_matches(
    rule: Rule,
    conversation: Conversation,
    message: Message | None,
    *,
    tag_names: set[str],
    zone: ZoneInfo,
    at: datetime,
) -> bool:
    """Whether every condition of ``rule`` holds for the conversation and its message."""
    c = rule.conditions
    kind = message.channel_kind if message else (conversation.channels or [""])[-1]
    if c.get("channel_kinds") and kind not in c["channel_kinds"]:
        return False
    if c.get("mailbox_ids") and (message is None or message.channel_id not in c["mailbox_ids"]):
        return False
    if c.get("customer_ids") and conversation.customer_id not in c["customer_ids"]:
        return False
    if c.get("organisation_ids") and (
        conversation.customer.organisation_id not in c["organisation_ids"]
    ):
        return False
    if c.get("tags") and not {t.lower() for t in c["tags"]} & tag_names:
        return False
    if c.get("priorities") and conversation.priority not in c["priorities"]:
        return False
    if c.get("words"):
        text = f"{conversation.subject}\n{message.body_text if message else ''}".lower()
        if not any(re.search(rf"\b{re.escape(word)}\b", text) for word in c["words"]):
            return False
    if c.get("time_from"):
        local = at.astimezone(zone)
        minute = local.hour * 60 + local.minute
        start, end = parse_hhmm(c["time_from"]), parse_hhmm(c["time_to"])
        inside = start <= minute < end if start < end else (minute >= start or minute < end)
        if not inside:
            return False
    return True


def _apply(rule: Rule, conversation: Conversation) -> list[str]:
    """Apply ``rule``'s actions to the (locked) conversation; what was done, for the event."""
    done: list[str] = []
    a = rule.actions
    if a.get("team_id") and a["team_id"] != conversation.team_id:
        team = Team.objects.filter(pk=a["team_id"]).first()
        if team is None:
            raise RuleFailed("its team no longer exists")
        conversation.team = team
        fields = ["team"]
        if (
            conversation.assignee_id
            and not team.members.filter(pk=conversation.assignee_id).exists()
        ):
            conversation.assignee = None
            fields.append("assignee")
        conversation_save(conversation, *fields)
        done.append(f"team {team.name}")
    if a.get("priority") and a["priority"] != conversation.priority:
        conversation_triage(conversation=conversation, actor=None, priority=a["priority"])
        conversation.refresh_from_db()
        done.append(f"priority {a['priority']}")
    if a.get("add_tags"):
        current = list(conversation.tags.all())
        wanted = tags_by_names([*(t.name for t in current), *a["add_tags"]])
        if {t.pk for t in wanted} != {t.pk for t in current}:
            conversation_triage(conversation=conversation, actor=None, tags=wanted)
            conversation.refresh_from_db()
            done.append(f"tags +{', '.join(a['add_tags'])}")
    if a.get("assign_id") and a["assign_id"] != conversation.assignee_id:
        agent = User.objects.filter(pk=a["assign_id"], is_active=True).first()
        if agent is None:
            raise RuleFailed("its agent's account is deactivated or gone")
        if conversation.team_id and not agent.teams.filter(pk=conversation.team_id).exists():
            raise RuleFailed(f"{agent.email} is not a member of the conversation's team")
        conversation_assign_by(conversation, agent, by="rule")
        done.append(f"assigned to {agent.email}")
    if a.get("note"):
        note = Message.objects.create(
            conversation=conversation,
            direction=Message.Direction.NOTE,
            body_text=f"Rule “{rule.name}”: {a['note']}",
            sent_at=timezone.now(),
        )
        event_record(kind=Event.Kind.NOTE_ADDED, conversation=conversation, message=note)
        done.append("note")
    return done


def rules_active(trigger: str) -> list[Rule]:
    """The active rules of ``trigger``, in the order they apply."""
    return list(Rule.objects.filter(trigger=trigger, is_active=True).order_by("position", "id"))


def rules_run(
    *,
    trigger: str,
    conversation: Conversation,
    message: Message | None,
    at: datetime | None = None,
    only: set[int] | None = None,
    rules: list[Rule] | None = None,
) -> list[int]:
    """Apply the active rules of ``trigger`` in order to the locked conversation; the ids of
    the rules applied. Each in a savepoint; a failure is recorded, never raised. ``rules``: the
    caller already read them (``rules_active``)."""
    at = at or (message.sent_at if message else timezone.now())
    if rules is None:
        rules = rules_active(trigger)
    if only is not None:
        rules = [rule for rule in rules if rule.pk in only]
    if not rules:
        return []
    if message is None:
        message = (
            Message.objects.filter(conversation=conversation, direction=Message.Direction.INBOUND)
            .order_by("-sent_at", "-id")
            .first()
        )
    zone = _desk_zone()
    applied: list[int] = []
    for rule in rules:
        tag_names = {t.name.lower() for t in conversation.tags.all()}
        try:
            with transaction.atomic():
                if not rule_matches(
                    rule, conversation, message, tag_names=tag_names, zone=zone, at=at
                ):
                    continue
                done = _apply(rule, conversation)
                event_record(
                    kind=Event.Kind.RULE_APPLIED,
                    conversation=conversation,
                    message=message,
                    data={"rule": rule.pk, "name": rule.name, "trigger": trigger, "did": done},
                )
                Rule.objects.filter(pk=rule.pk).update(applied_count=F("applied_count") + 1)
        except Exception as exc:  # a rule never blocks what triggered it
            logger.warning("rule %s failed on conversation %s: %s", rule.pk, conversation.pk, exc)
            conversation.refresh_from_db()
            error = str(exc) or exc.__class__.__name__
            event_record(
                kind=Event.Kind.RULE_FAILED,
                conversation=conversation,
                data={"rule": rule.pk, "name": rule.name, "trigger": trigger, "error": error},
            )
            Rule.objects.filter(pk=rule.pk).update(
                failed_count=F("failed_count") + 1,
                last_error=error[:1000],
                last_error_at=timezone.now(),
            )
            continue
        applied.append(rule.pk)
        if rule.stop_after:
            break
    return applied


def rules_no_reply_run(*, now: datetime | None = None) -> int:
    """Beat: conversations whose customer has waited ``no_reply_hours`` business hours without
    a public reply get the no-reply rules, once per waiting message. Returns applications."""
    now = now or timezone.now()
    rules = list(Rule.objects.filter(trigger=RuleTrigger.NO_REPLY, is_active=True))
    if not rules:
        return 0
    shortest = min(r.no_reply_hours or 1 for r in rules)
    waiting = (
        Conversation.objects.filter(
            status__in=[Conversation.Status.NEW, Conversation.Status.OPEN],
            spam_at__isnull=True,
            # Business hours are never more than calendar hours: a cheap first cut.
            last_inbound_at__lte=now - timedelta(hours=shortest),
        )
        .exclude(_answered_since_last_inbound())
        .order_by("last_inbound_at")[:DRY_RUN_LIMIT]
    )
    count = 0
    for candidate in waiting:
        count += _no_reply_one(candidate.pk, rules, now)
    return count


def _answered_since_last_inbound() -> Q:
    return Q(
        Exists(
            Message.objects.filter(
                conversation_id=OuterRef("pk"),
                direction=Message.Direction.OUTBOUND,
                sent_at__gte=OuterRef("last_inbound_at"),
            )
        )
    )


@transaction.atomic
def _no_reply_one(conversation_id: int, rules: list[Rule], now: datetime) -> int:
    conversation = (
        Conversation.objects.select_for_update(of=("self",))
        .select_related("team", "customer")
        .get(pk=conversation_id)
    )
    since = conversation.last_inbound_at
    if (
        since is None
        or Conversation.objects.filter(_answered_since_last_inbound(), pk=conversation.pk).exists()
    ):
        return 0
    schedule = schedule_for_team(conversation.team)
    waited = schedule.seconds_between(since, now) if schedule else (now - since).total_seconds()
    already = set(
        Event.objects.filter(
            conversation=conversation, kind=Event.Kind.RULE_APPLIED, occurred_at__gte=since
        ).values_list("data__rule", flat=True)
    )
    due_rules = [
        r for r in rules if r.pk not in already and waited >= (r.no_reply_hours or 0) * 3600
    ]
    if not due_rules:
        return 0
    applied = rules_run(
        trigger=RuleTrigger.NO_REPLY,
        conversation=conversation,
        message=None,
        at=now,
        only={r.pk for r in due_rules},
    )
    return len(applied)


def rule_dry_run(*, data: dict[str, Any], days: int = DRY_RUN_DAYS) -> list[Conversation]:
    """The recent conversations (created in the last ``days``) whose first customer message
    the rule's conditions match, newest first; nothing is changed."""
    conditions, _actions = rule_clean({**data, "actions": data.get("actions") or {"note": "-"}})
    probe = Rule(name="dry run", conditions=conditions)
    zone = _desk_zone()
    since = timezone.now() - timedelta(days=days)
    first_inbound = Message.objects.filter(
        conversation_id=OuterRef("pk"), direction=Message.Direction.INBOUND
    ).order_by("sent_at", "id")
    conversations = list(
        Conversation.objects.filter(created_at__gte=since, spam_at__isnull=True)
        .select_related("customer", "team")
        .prefetch_related("tags")
        .annotate(first_inbound_id=Subquery(first_inbound.values("pk")[:1]))
        .order_by("-created_at", "-id")[:DRY_RUN_LIMIT]
    )
    firsts = {
        message.conversation_id: message
        for message in Message.objects.filter(
            pk__in=[getattr(c, "first_inbound_id", None) for c in conversations]
        )
    }
    matched: list[Conversation] = []
    for conversation in conversations:
        first = firsts.get(conversation.pk)
        at = first.sent_at if first else conversation.created_at
        tag_names = {t.name.lower() for t in conversation.tags.all()}
        if rule_matches(probe, conversation, first, tag_names=tag_names, zone=zone, at=at):
            matched.append(conversation)
    return matched
