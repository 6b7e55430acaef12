"""``/api/v1/``: business hours, promises, availability, team routing and rules (docs/api.md)."""

from __future__ import annotations

from typing import Any

from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import extend_schema
from rest_framework import serializers
from rest_framework.exceptions import NotFound, PermissionDenied
from rest_framework.request import Request
from rest_framework.response import Response

from routing import rules, selectors, services
from routing.models import (
    PROMISE_PRIORITY_CHOICES,
    BusinessHours,
    RoutingMode,
    Rule,
    RuleTrigger,
)
from supportdesk.api import error_responses
from supportdesk.errors import ApplicationError
from supportdesk.http import staff_user
from supportdesk.models import Team
from tickets.api.common import StaffApi
from tickets.models import ChannelKind

ID_MAX = 2**63 - 1
# Raw schemas of the answers that are lists (a manager's availability is a list per team, an
# agent's their own object).
LIST_OF_OBJECTS: dict[str, Any] = {"type": "array", "items": {"type": "object"}}
LIST_OR_OBJECT: dict[str, Any] = {"oneOf": [LIST_OF_OBJECTS, {"type": "object"}]}


def _hours_out(hours: BusinessHours) -> dict[str, Any]:
    return {
        "team": hours.team_id,
        "time_zone": hours.time_zone,
        "week": hours.week,
        "exceptions": [
            {
                "date": e.date.isoformat(),
                "name": e.name,
                "opens": e.opens.strftime("%H:%M") if e.opens else None,
                "closes": e.closes.strftime("%H:%M") if e.closes else None,
            }
            for e in hours.exceptions.all()
        ],
    }


class ExceptionSerializer(serializers.Serializer[Any]):
    date = serializers.DateField()
    name = serializers.CharField(max_length=100, required=False, default="", allow_blank=True)
    opens = serializers.TimeField(required=False, allow_null=True, default=None)
    closes = serializers.TimeField(required=False, allow_null=True, default=None)


class HoursApi(StaffApi):
    class HoursInputSerializer(serializers.Serializer[Any]):
        team = serializers.IntegerField(
            min_value=1, max_value=ID_MAX, required=False, allow_null=True, default=None,
            help_text="The team; null or absent: the desk's hours (admin).",
        )  # fmt: skip
        time_zone = serializers.CharField(max_length=64)
        week = serializers.DictField(
            help_text='{"mon": [["09:00", "17:00"]], ...}; a missing or empty day is closed.'
        )
        exceptions = serializers.ListField(
            child=ExceptionSerializer(), required=False, max_length=400
        )

    @extend_schema(
        tags=["routing"],
        summary="Business hours of the desk and the teams",
        responses={200: LIST_OF_OBJECTS, **error_responses(401, 403)},
    )
    def get(self, request: Request) -> Response:
        staff_user(request)
        return Response([_hours_out(h) for h in selectors.hours_list()])

    @extend_schema(
        tags=["routing"],
        summary="Set a team's (or the desk's) business hours and holidays",
        request=HoursInputSerializer,
        responses={200: OpenApiTypes.OBJECT, **error_responses(400, 401, 403)},
    )
    def put(self, request: Request) -> Response:
        user = staff_user(request)
        data = self.HoursInputSerializer(data=request.data)
        data.is_valid(raise_exception=True)
        v = data.validated_data
        team = None
        if v["team"] is not None:
            team = Team.objects.filter(pk=v["team"]).first()
            if team is None:
                raise ApplicationError("No such team.")
        hours = services.business_hours_save(
            team=team, time_zone=v["time_zone"], week=v["week"], actor=user
        )
        for e in v.get("exceptions") or []:
            services.business_hours_exception_save(
                hours=hours, date=e["date"], name=e["name"], opens=e["opens"],
                closes=e["closes"], actor=user,
            )  # fmt: skip
        hours = BusinessHours.objects.prefetch_related("exceptions").get(pk=hours.pk)
        return Response(_hours_out(hours))


class PromisesApi(StaffApi):
    class PromiseInputSerializer(serializers.Serializer[Any]):
        channel = serializers.ChoiceField(
            choices=[kind for kind in ChannelKind.values if kind != ChannelKind.PHONE]
        )
        priority = serializers.ChoiceField(
            choices=PROMISE_PRIORITY_CHOICES, required=False, default=""
        )
        reply_seconds = serializers.IntegerField(
            min_value=60, max_value=60 * 60 * 24 * 60, allow_null=True,
            help_text="Business seconds; null removes the promise.",
        )  # fmt: skip

    @extend_schema(
        tags=["routing"],
        summary="Promises to customers",
        responses={200: LIST_OF_OBJECTS, **error_responses(401, 403)},
    )
    def get(self, request: Request) -> Response:
        staff_user(request)
        return Response(
            [
                {
                    "channel": p.channel_kind,
                    "priority": p.priority,
                    "reply_seconds": p.reply_seconds,
                }
                for p in selectors.promise_list()
            ]
        )

    @extend_schema(
        tags=["routing"],
        summary="Promise a reply time on a channel (and priority), in business time",
        request=PromiseInputSerializer,
        responses={200: LIST_OF_OBJECTS, **error_responses(400, 401, 403)},
    )
    def put(self, request: Request) -> Response:
        user = staff_user(request)
        data = self.PromiseInputSerializer(data=request.data)
        data.is_valid(raise_exception=True)
        v = data.validated_data
        services.promise_set(
            channel_kind=v["channel"], priority=v["priority"],
            reply_seconds=v["reply_seconds"], actor=user,
        )  # fmt: skip
        return self.get(request)


class AvailabilityApi(StaffApi):
    class AvailabilityInputSerializer(serializers.Serializer[Any]):
        # A plain string (checked by the service): "status" enums of other components would
        # collide in the schema.
        status = serializers.CharField(max_length=20, help_text="available, busy or away")
        follows_hours = serializers.BooleanField(required=False, allow_null=True, default=None)
        user = serializers.IntegerField(
            min_value=1, max_value=ID_MAX, required=False, allow_null=True, default=None,
            help_text="A member of the manager's teams; absent: the caller.",
        )  # fmt: skip

    @extend_schema(
        tags=["routing"],
        summary="Who is available, per team (managers); an agent's own status",
        responses={200: LIST_OR_OBJECT, **error_responses(401, 403)},
    )
    def get(self, request: Request) -> Response:
        user = staff_user(request)
        if not user.is_manager:
            a = selectors.availability_of(user)
            return Response({"user": user.pk, "status": a.status, "follows_hours": a.follows_hours})
        return Response(
            [
                {
                    "team": team.pk,
                    "agents": [
                        {
                            "user": row.user.pk,
                            "email": row.user.email,
                            "status": row.status,
                            "effective": row.effective,
                            "outside_hours": row.outside_hours,
                            "open_conversations": row.load,
                        }
                        for row in selectors.team_availability(team)
                    ],
                }
                for team in selectors.teams_for_manager(user)
            ]
        )

    @extend_schema(
        tags=["routing"],
        summary="Set available, busy or away",
        request=AvailabilityInputSerializer,
        responses={200: OpenApiTypes.OBJECT, **error_responses(400, 401, 403)},
    )
    def post(self, request: Request) -> Response:
        user = staff_user(request)
        data = self.AvailabilityInputSerializer(data=request.data)
        data.is_valid(raise_exception=True)
        v = data.validated_data
        target = user
        if v["user"] is not None and v["user"] != user.pk:
            other = type(user).objects.filter(pk=v["user"], is_active=True).first()
            if other is None:
                raise ApplicationError("You can only set your own availability.")
            target = other
        a = services.availability_set(
            user=target, status=v["status"], follows_hours=v["follows_hours"], actor=user
        )
        return Response({"user": target.pk, "status": a.status, "follows_hours": a.follows_hours})


class TeamRoutingApi(StaffApi):
    class TeamRoutingInputSerializer(serializers.Serializer[Any]):
        mode = serializers.ChoiceField(choices=RoutingMode.values)
        cap = serializers.IntegerField(min_value=0, max_value=1000, required=False, default=0)
        return_when_away = serializers.BooleanField(required=False, default=False)

    @extend_schema(
        tags=["routing"],
        summary="Set a team's routing: manual, round_robin or least_loaded, with a cap",
        request=TeamRoutingInputSerializer,
        responses={200: OpenApiTypes.OBJECT, **error_responses(400, 401, 403, 404)},
    )
    def put(self, request: Request, pk: int) -> Response:
        user = staff_user(request)
        team = Team.objects.filter(pk=pk).first()
        if team is None:
            raise NotFound("No such team.")
        data = self.TeamRoutingInputSerializer(data=request.data)
        data.is_valid(raise_exception=True)
        v = data.validated_data
        r = services.team_routing_save(
            team=team, mode=v["mode"], cap=v["cap"], return_when_away=v["return_when_away"],
            actor=user,
        )  # fmt: skip
        return Response(
            {"team": team.pk, "mode": r.mode, "cap": r.cap, "return_when_away": r.return_when_away}
        )


class RuleInputSerializer(serializers.Serializer[Any]):
    name = serializers.CharField(max_length=100)
    trigger = serializers.ChoiceField(choices=RuleTrigger.values, default=RuleTrigger.INGESTED)
    no_reply_hours = serializers.IntegerField(min_value=1, max_value=1000, required=False)
    is_active = serializers.BooleanField(required=False, default=True)
    stop_after = serializers.BooleanField(required=False, default=False)
    conditions = serializers.DictField(required=False, default=dict)
    actions = serializers.DictField(required=False, default=dict)


def _rule_out(rule: Rule) -> dict[str, Any]:
    return {
        "id": rule.pk,
        "name": rule.name,
        "position": rule.position,
        "trigger": rule.trigger,
        "no_reply_hours": rule.no_reply_hours,
        "is_active": rule.is_active,
        "stop_after": rule.stop_after,
        "conditions": rule.conditions,
        "actions": rule.actions,
        "applied": rule.applied_count,
        "failed": rule.failed_count,
        "last_error": rule.last_error,
    }


class RulesApi(StaffApi):
    @extend_schema(
        tags=["routing"],
        summary="The rules, in order",
        responses={200: LIST_OF_OBJECTS, **error_responses(401, 403)},
    )
    def get(self, request: Request) -> Response:
        staff_user(request)
        return Response([_rule_out(r) for r in selectors.rule_list()])

    @extend_schema(
        tags=["routing"],
        summary="Write a rule (admins and managers); it goes last",
        request=RuleInputSerializer,
        responses={201: OpenApiTypes.OBJECT, **error_responses(400, 401, 403)},
    )
    def post(self, request: Request) -> Response:
        user = staff_user(request)
        data = RuleInputSerializer(data=request.data)
        data.is_valid(raise_exception=True)
        rule = rules.rule_save(actor=user, data=dict(data.validated_data))
        return Response(_rule_out(rule), status=201)


class RuleDryRunApi(StaffApi):
    @extend_schema(
        tags=["routing"],
        summary="Which recent conversations a rule's conditions would have matched",
        request=RuleInputSerializer,
        responses={200: OpenApiTypes.OBJECT, **error_responses(400, 401, 403)},
    )
    def post(self, request: Request) -> Response:
        user = staff_user(request)
        if not user.is_manager:
            raise PermissionDenied("Only a manager or an admin can try rules.")
        body = request.data if isinstance(request.data, dict) else {}
        data = RuleInputSerializer(data={"name": "dry run", **body})
        data.is_valid(raise_exception=True)
        matched = rules.rule_dry_run(data=dict(data.validated_data))
        return Response(
            {
                "days": rules.DRY_RUN_DAYS,
                "matched": [{"id": c.pk, "subject": c.subject} for c in matched],
            }
        )
