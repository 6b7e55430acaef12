"""The surveys API for staff: responses, filtered by solve dates and agent."""

from __future__ import annotations

from typing import Any

from drf_spectacular.utils import OpenApiResponse, extend_schema, extend_schema_serializer
from rest_framework import serializers
from rest_framework.generics import GenericAPIView
from rest_framework.pagination import CursorPagination
from rest_framework.request import Request
from rest_framework.response import Response

from supportdesk.api import ErrorOutputSerializer, error_responses
from supportdesk.http import staff_user
from supportdesk.replicas import replica_reads
from surveys.models import SurveyResponse
from surveys.selectors import response_list_for_user
from tickets.selectors import staff_get_by_ref

PK_MAX = 2**63 - 1


class ResponseCursorPagination(CursorPagination):
    """Keyset pages, newest answer first (index ``surveys_response_answered``)."""

    ordering = ("-answered_at", "-id")
    page_size = 50
    page_size_query_param = "page_size"
    max_page_size = 200


class SurveyResponseListApi(GenericAPIView[SurveyResponse]):
    pagination_class = ResponseCursorPagination

    class FilterSerializer(serializers.Serializer[Any]):
        # "from" is a Python keyword: the field is declared below under its query-string name.
        to = serializers.DateField(
            required=False, help_text="Solve dates before this local date (excluded)."
        )
        agent = serializers.CharField(
            required=False, max_length=254, help_text="The solving agent, by id or email."
        )
        team = serializers.IntegerField(required=False, min_value=1, max_value=PK_MAX)
        conversation = serializers.IntegerField(required=False, min_value=1, max_value=PK_MAX)

        def get_fields(self) -> dict[str, serializers.Field[Any, Any, Any, Any]]:
            fields = super().get_fields()
            fields["from"] = serializers.DateField(
                required=False, help_text="Solve dates from this local date (included)."
            )
            return fields

    class OutputSerializer(serializers.Serializer[SurveyResponse]):
        id = serializers.IntegerField()
        survey = serializers.IntegerField(source="survey_id")
        conversation = serializers.IntegerField(source="survey.conversation_id")
        customer = serializers.IntegerField(source="survey.customer_id")
        agent = serializers.IntegerField(source="survey.agent_id", allow_null=True)
        team = serializers.IntegerField(source="survey.team_id", allow_null=True)
        channel = serializers.CharField(source="survey.channel_kind")
        solved_at = serializers.DateTimeField(source="survey.solved_at")
        resolved = serializers.CharField(help_text='"yes", "partly", "no" or "" (not answered).')
        contacts_declared = serializers.IntegerField(
            allow_null=True, help_text="1 to 5, 5 meaning five or more."
        )
        contacts_counted = serializers.IntegerField(help_text="Our own count at the solve.")
        csat = serializers.IntegerField(allow_null=True)
        nps = serializers.IntegerField(allow_null=True)
        comment = serializers.CharField()
        shout_out = serializers.BooleanField()
        needs_nothing_more = serializers.BooleanField()
        answered_at = serializers.DateTimeField()
        times_answered = serializers.IntegerField()

    @extend_schema(
        tags=["surveys"],
        summary="Survey responses",
        description=(
            "Responses about conversations you may open, newest answer first; cursor-paginated. "
            "`from`/`to` filter on the local date of the solve event the response is about "
            "(half-open `[from, to)`), as scorecards do."
        ),
        parameters=[FilterSerializer],
        responses={
            200: OutputSerializer(many=True),
            **error_responses(401, 403, 404),
            400: OpenApiResponse(ErrorOutputSerializer, description="Invalid filter."),
        },
    )
    @replica_reads
    def get(self, request: Request) -> Response:
        user = staff_user(request)
        filters = self.FilterSerializer(data=request.query_params)
        filters.is_valid(raise_exception=True)
        data = filters.validated_data
        agent_id = None
        if data.get("agent"):
            agent = staff_get_by_ref(ref=data["agent"])
            if agent is None:
                raise serializers.ValidationError({"agent": ["No such agent."]})
            agent_id = agent.pk
        if data.get("from") and data.get("to") and data["from"] > data["to"]:
            raise serializers.ValidationError({"to": ["Must not be before from."]})
        responses = response_list_for_user(
            user=user,
            from_date=data.get("from"),
            to_date=data.get("to"),
            agent_id=agent_id,
            team_id=data.get("team"),
            conversation_id=data.get("conversation"),
        )
        page = self.paginate_queryset(responses)
        # many=True serializes a list; the stubs type the instance as one object.
        output = self.OutputSerializer(page, many=True)  # type: ignore[arg-type]
        return self.get_paginated_response(output.data)


# Nested serializers get names of their own in the schema (``SurveyResponseListOutput``...).
for _role in ("Filter", "Output"):
    extend_schema_serializer(component_name=f"SurveyResponseList{_role}")(
        SurveyResponseListApi.__dict__[f"{_role}Serializer"]
    )
