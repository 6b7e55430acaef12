"""The metrics API (docs/api.md "Scorecards"): scorecards from facts, on-demand recompute, task progress."""

from __future__ import annotations

from typing import Any

from django.conf import settings
from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import (
    OpenApiParameter,
    extend_schema,
    extend_schema_serializer,
)
from rest_framework import serializers, status
from rest_framework.exceptions import PermissionDenied
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from metrics.models import RecomputeJob
from metrics.selectors import (
    GROUPINGS,
    Scope,
    agent_experience_add,
    agent_get_for_user,
    recompute_job_get_for_user,
    scope_get_for_user,
    scorecard_groups,
)
from metrics.services import recompute_job_create
from supportdesk.api import error_responses
from supportdesk.http import staff_user
from supportdesk.permissions import IsManager
from supportdesk.replicas import replica_reads


class _PeriodSerializer(serializers.Serializer[Any]):
    to = serializers.DateField()

    def validate(self, attrs: dict[str, Any]) -> dict[str, Any]:
        day_from, day_to = attrs["from"], attrs["to"]
        if day_to <= day_from:
            raise serializers.ValidationError(
                "'to' must be after 'from': the period is [from, to)."
            )
        if (day_to - day_from).days > settings.METRICS_RETENTION_DAYS + 1:
            raise serializers.ValidationError(
                f"A period covers at most {settings.METRICS_RETENTION_DAYS} days."
            )
        return attrs

    def get_fields(self) -> dict[str, serializers.Field[Any, Any, Any, Any]]:
        fields = super().get_fields()
        # "from" is a Python keyword: declared here so the wire name is exactly "from".
        fields["from"] = serializers.DateField()
        return fields


class ScorecardListApi(APIView):
    """Scorecards for a period and a grouping, assembled from precomputed daily facts."""

    class InputSerializer(_PeriodSerializer):
        group_by = serializers.ChoiceField(choices=GROUPINGS, default="desk")
        scope = serializers.CharField(required=False, max_length=40)

    class RateSerializer(serializers.Serializer[Any]):
        value = serializers.FloatField(allow_null=True)
        n = serializers.IntegerField()
        ci95 = serializers.ListField(child=serializers.FloatField(), allow_null=True)

    class GroupSerializer(serializers.Serializer[Any]):
        key = serializers.JSONField(
            help_text="desk; a team, agent or tag id; a channel kind. group_by=tag: outcomes "
            "by topic, one group per tag (a conversation with two tags counts in both), with "
            "the outcome keys only and `solves`."
        )
        # SerializerMetaclass moves declared fields out of the class body, so this field does not
        # shadow Field.label at run time; the stubs do not know that.
        label = serializers.CharField()  # type: ignore[assignment]
        metrics = serializers.DictField(
            help_text="Every key of docs/metrics.md. Rates are {value, n, ci95}; durations "
            "{median, p90, n} in seconds; nps, csat_mean, qa_score {value, n}; counts "
            "{value, n}; resolution_gap adds internal_fcr and customer_fcr."
        )

    class OutputSerializer(serializers.Serializer[Any]):
        computed_at = serializers.DateTimeField(allow_null=True)
        groups = serializers.ListField(child=serializers.DictField())

    @extend_schema(
        operation_id="scorecards_list",
        parameters=[
            OpenApiParameter("from", OpenApiTypes.DATE, required=True, description="first day"),
            OpenApiParameter("to", OpenApiTypes.DATE, required=True, description="day after"),
            OpenApiParameter("group_by", OpenApiTypes.STR, enum=list(GROUPINGS)),
            OpenApiParameter(
                "scope",
                OpenApiTypes.STR,
                description="narrow to team:<id>, agent:<id> or channel:<kind> (managers)",
            ),
        ],
        responses={200: OutputSerializer, **error_responses(400, 401, 403, 404)},
    )
    @replica_reads
    def get(self, request: Request) -> Response:
        serializer = self.InputSerializer(data=request.query_params)
        serializer.is_valid(raise_exception=True)
        data = serializer.validated_data
        user = staff_user(request)
        scope: Scope | None = None
        if not user.is_manager:
            # Agents see their own scorecard only (docs/api.md roles); no ranking of colleagues.
            if data["group_by"] != "agent" or data.get("scope"):
                raise PermissionDenied("Agents see their own scorecard: use group_by=agent.")
            scope = Scope("agent", agent=agent_get_for_user(user=user, pk=user.pk))
        elif data.get("scope"):
            scope = scope_get_for_user(user=user, ref=data["scope"])
        result = scorecard_groups(
            user=user,
            date_from=data["from"],
            date_to=data["to"],
            group_by=data["group_by"],
            scope=scope,
        )
        if data["group_by"] != "tag":  # outcomes by topic carry outcome keys only
            agent_experience_add(
                user=user,
                groups=result["groups"],
                group_by=data["group_by"],
                date_from=data["from"],
                date_to=data["to"],
                narrowed=scope is not None and scope.kind != "agent",
            )
        return Response(self.OutputSerializer(result).data)


class ScorecardRecomputeApi(APIView):
    """Queue a recompute of the facts of ``[from, to)`` (managers); follow it at /tasks/{id}/."""

    permission_classes = [IsManager]

    class InputSerializer(_PeriodSerializer):
        pass

    class OutputSerializer(serializers.Serializer[Any]):
        task = serializers.IntegerField()

    @extend_schema(
        operation_id="scorecards_recompute",
        request=InputSerializer,
        responses={202: OutputSerializer, **error_responses(400, 401, 403)},
    )
    def post(self, request: Request) -> Response:
        serializer = self.InputSerializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        job = recompute_job_create(
            day_from=serializer.validated_data["from"],
            day_to=serializer.validated_data["to"],
            requested_by=staff_user(request),
        )
        return Response({"task": job.pk}, status=status.HTTP_202_ACCEPTED)


class TaskDetailApi(APIView):
    """A recompute task's state and progress (0 to 1)."""

    class OutputSerializer(serializers.Serializer[RecomputeJob]):
        id = serializers.IntegerField(source="pk")
        state = serializers.CharField()
        progress = serializers.FloatField()
        date_from = serializers.DateField()
        date_to = serializers.DateField()
        days_total = serializers.IntegerField()
        days_done = serializers.IntegerField()
        error = serializers.CharField()
        created_at = serializers.DateTimeField()
        finished_at = serializers.DateTimeField(allow_null=True)

    @extend_schema(
        operation_id="tasks_retrieve",
        responses={200: OutputSerializer, **error_responses(401, 403, 404)},
    )
    def get(self, request: Request, pk: int) -> Response:
        job = recompute_job_get_for_user(user=staff_user(request), pk=pk)
        return Response(self.OutputSerializer(job).data)


# Every view nests Input/Output serializers: name their schema components after the view
# (``ScorecardListApi.OutputSerializer`` -> ``ScorecardListOutput``), as the tickets API does.
for _view in (ScorecardListApi, ScorecardRecomputeApi, TaskDetailApi):
    for _role in ("Input", "Output", "Rate", "Group"):
        _serializer = _view.__dict__.get(f"{_role}Serializer")
        if _serializer is not None:
            extend_schema_serializer(component_name=_view.__name__.removesuffix("Api") + _role)(
                _serializer
            )
