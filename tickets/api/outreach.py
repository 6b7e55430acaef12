"""The desk reaching out: start a conversation (``POST /conversations/``), log a call."""

from __future__ import annotations

from typing import Any

from drf_spectacular.utils import extend_schema, extend_schema_serializer
from rest_framework import serializers, status
from rest_framework.request import Request
from rest_framework.response import Response

from supportdesk.errors import ApplicationError
from supportdesk.http import staff_user
from supportdesk.idempotency import idempotent
from tickets.api.common import (
    BODY_MAX_CHARS,
    IDEMPOTENCY_KEY_PARAMETER,
    PK_MAX,
    ConversationOutputSerializer,
    MessageOutputSerializer,
    StaffApi,
    error_codes,
    with_etag,
)
from tickets.models import Call, Channel, Contact, Identity
from tickets.selectors import conversation_get_for_user, customer_get_for_user, team_get_by_ref
from tickets.services import (
    CALL_MAX_SECONDS,
    TEAM_NOT_YOURS,
    Handle,
    call_log,
    conversation_start,
)


class ConversationStartMixin:
    """``POST /api/v1/conversations/``: mixed into the queue's view (the same path's GET)."""

    @extend_schema_serializer(component_name="ConversationStartInput")
    class StartInputSerializer(serializers.Serializer[Any]):
        class ToSerializer(serializers.Serializer[Any]):
            kind = serializers.ChoiceField(
                choices=[Identity.Kind.EMAIL, Identity.Kind.CHAT, Identity.Kind.SOCIAL]
            )
            value = serializers.CharField(max_length=320)

        channel = serializers.IntegerField(
            min_value=1, max_value=PK_MAX, help_text="The channel to write on (its id)."
        )
        customer = serializers.IntegerField(
            min_value=1, max_value=PK_MAX, required=False, help_text="An existing customer."
        )
        to = ToSerializer(
            required=False,
            help_text="The handle to write to; an unknown one creates the customer (or is "
            "linked to `customer`). Without it, the customer's handle on the channel's kind.",
        )
        subject = serializers.CharField(max_length=998, required=False, allow_blank=True)
        body = serializers.CharField(max_length=BODY_MAX_CHARS)
        team = serializers.CharField(
            max_length=100,
            required=False,
            help_text="Team id or name (one of yours); default: the channel's team.",
        )

        def validate(self, attrs: dict[str, Any]) -> dict[str, Any]:
            if "customer" not in attrs and "to" not in attrs:
                raise serializers.ValidationError("Give a customer, a handle in `to`, or both.")
            return attrs

    @extend_schema_serializer(component_name="ConversationStartOutput")
    class StartOutputSerializer(ConversationOutputSerializer):
        messages = MessageOutputSerializer(many=True)

    @extend_schema(
        tags=["conversations"],
        summary="Start a conversation (the desk writes first)",
        description="Creates the conversation with your message and sends it on the channel: an "
        "email (threaded when the customer answers) or a message posted to a chat or social "
        "channel's webhook. It waits on the customer (`pending`), is assigned to you and counts "
        "no contact until the customer writes (docs/metrics.md). 409 when `to` belongs to "
        "another customer than `customer`.",
        parameters=[IDEMPOTENCY_KEY_PARAMETER],
        request=StartInputSerializer,
        responses={201: StartOutputSerializer, **error_codes(400, 401, 403, 404, 409, 413, 422)},
    )
    def post(self, request: Request) -> Response:
        user = staff_user(request)
        serializer = self.StartInputSerializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        data = serializer.validated_data
        channel = Channel.objects.filter(pk=data["channel"], is_active=True).first()
        if channel is None:
            raise serializers.ValidationError({"channel": ["No active channel with this id."]})
        customer = (
            customer_get_for_user(user=user, pk=data["customer"]) if "customer" in data else None
        )
        team = None
        if data.get("team"):
            team = team_get_by_ref(ref=data["team"])
            if team is None:  # the same answer as another team's name: no probing
                raise ApplicationError(TEAM_NOT_YOURS)
        to = Handle(kind=data["to"]["kind"], value=data["to"]["value"]) if "to" in data else None

        def start() -> Response:
            conversation = conversation_start(
                actor=user,
                channel=channel,
                body=data["body"],
                customer=customer,
                to=to,
                subject=data.get("subject", ""),
                team=team,
            )
            created = conversation_get_for_user(user=user, pk=conversation.pk, for_detail=True)
            return with_etag(
                Response(self.StartOutputSerializer(created).data, status=status.HTTP_201_CREATED),
                created,
            )

        return idempotent(request, start)


class ConversationCallLogApi(StaffApi):
    class InputSerializer(serializers.Serializer[Any]):
        direction = serializers.ChoiceField(choices=Call.Direction.choices)
        started_at = serializers.DateTimeField(
            help_text="When the call started (ISO 8601 with a time zone); a future time is "
            "taken as now."
        )
        wait_seconds = serializers.IntegerField(min_value=0, max_value=CALL_MAX_SECONDS)
        talk_seconds = serializers.IntegerField(min_value=0, max_value=CALL_MAX_SECONDS)
        hold_seconds = serializers.IntegerField(min_value=0, max_value=CALL_MAX_SECONDS)
        ended_by = serializers.ChoiceField(choices=Contact.EndedBy.choices)
        notes = serializers.CharField(
            max_length=BODY_MAX_CHARS, required=False, allow_blank=True, default=""
        )

    class OutputSerializer(serializers.Serializer[Call]):
        id = serializers.IntegerField()
        direction = serializers.CharField()
        started_at = serializers.DateTimeField()
        wait_seconds = serializers.IntegerField()
        talk_seconds = serializers.IntegerField()
        hold_seconds = serializers.IntegerField()
        ended_by = serializers.CharField()
        logged_by = serializers.IntegerField(source="logged_by_id")
        message = serializers.IntegerField(source="message_id")
        conversation = serializers.IntegerField(
            source="message.conversation_id",
            help_text="Where the call was stored: this conversation, or a follow-up of it when "
            "it was closed.",
        )
        contact = serializers.IntegerField(
            source="message.contact_id",
            allow_null=True,
            help_text="The contact an inbound call opened; null for an outbound call.",
        )
        contacts_counted = serializers.IntegerField(source="message.conversation.contacts_counted")

    @extend_schema(
        tags=["conversations"],
        summary="Log a phone call",
        description="During or after the call. An inbound call counts as one contact, exactly "
        "like a phone system's call (docs/metrics.md); an outbound call never does (with talk "
        "time it is your answer on the phone, without it an internal note).",
        parameters=[IDEMPOTENCY_KEY_PARAMETER],
        request=InputSerializer,
        responses={201: OutputSerializer, **error_codes(400, 401, 403, 404, 409, 413, 422)},
    )
    def post(self, request: Request, pk: int) -> Response:
        user = staff_user(request)
        conversation = conversation_get_for_user(user=user, pk=pk)
        serializer = self.InputSerializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        data = serializer.validated_data

        def log() -> Response:
            call = call_log(conversation=conversation, actor=user, **data)
            call = Call.objects.select_related("message__conversation").get(pk=call.pk)
            return Response(self.OutputSerializer(call).data, status=status.HTTP_201_CREATED)

        return idempotent(request, log)
