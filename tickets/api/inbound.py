"""Inbound calls from channels: email, chat, social and phone (X-Channel-Token only)."""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any, ClassVar

from django.urls import reverse
from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import (
    OpenApiResponse,
    PolymorphicProxySerializer,
    extend_schema,
)
from rest_framework import serializers, status
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from supportdesk.errors import ApplicationError
from tickets.api.common import (
    BODY_MAX_CHARS,
    ID_MAX_CHARS,
    BodyLimitMixin,
    BoundedJSONParser,
    RFC822Parser,
    error_codes,
)
from tickets.authentication import (
    ChannelTokenAuthentication,
    InboundThrottle,
    IsChannel,
    request_channel,
)
from tickets.models import (
    Contact,
    InboundQueueItem,
    IngestMode,
    QuarantinedMessage,
)
from tickets.services import (
    InboundResult,
    inbound_chat,
    inbound_email_raw,
    inbound_phone,
    inbound_social,
)
from tickets.services.inbound_queue import (
    Accepted,
    inbound_queue_accept_email,
    inbound_queue_accept_json,
    inbound_queue_item_for_channel,
)

# --- Inbound (channels) ------------------------------------------------------------------------------


class InboundOutputSerializer(serializers.Serializer[Any]):
    customer = serializers.IntegerField()
    conversation = serializers.IntegerField()
    message = serializers.IntegerField()
    new_contact = serializers.BooleanField()


class QuarantinedOutputSerializer(serializers.Serializer[Any]):
    quarantined = serializers.IntegerField()
    detail = serializers.CharField()


class AcceptedOutputSerializer(serializers.Serializer[Any]):
    """An accepted payload of a channel in the asynchronous mode, as a poll returns it."""

    id = serializers.IntegerField()
    status = serializers.ChoiceField(choices=InboundQueueItem.Status.choices)
    poll = serializers.CharField(help_text="GET this (with X-Channel-Token) for the status.")
    received_at = serializers.DateTimeField()
    processed_at = serializers.DateTimeField(allow_null=True)
    error = serializers.CharField(help_text="Why it failed; empty otherwise.")
    customer = serializers.IntegerField(allow_null=True, source="customer_id_result")
    conversation = serializers.IntegerField(allow_null=True, source="conversation_id_result")
    message = serializers.IntegerField(allow_null=True, source="message_id_result")
    new_contact = serializers.BooleanField(allow_null=True)
    quarantined = serializers.IntegerField(allow_null=True, source="quarantined_id")


def accepted_response(request: Request, accepted: Accepted) -> Response:
    item = accepted.item
    item.poll = reverse("tickets:inbound-queue-item", kwargs={"pk": item.pk})  # type: ignore[attr-defined]
    data = AcceptedOutputSerializer(item).data
    return Response(
        data, status=status.HTTP_202_ACCEPTED if accepted.created else status.HTTP_200_OK
    )


INBOUND_RESPONSES = {
    201: OpenApiResponse(InboundOutputSerializer, description="Stored."),
    202: OpenApiResponse(
        AcceptedOutputSerializer,
        description="A channel in the asynchronous mode: accepted (one insert), stored by the "
        "ingest worker; poll the id. Sent again: 200 with the same id.",
    ),
    200: OpenApiResponse(InboundOutputSerializer, description="Already stored (same external id)."),
    **error_codes(400, 401, 413, 415, 429),
}


class InboundApi(BodyLimitMixin, APIView):
    """Authenticated by the channel secret in ``X-Channel-Token`` only (never a staff token)."""

    authentication_classes = [ChannelTokenAuthentication]
    permission_classes = [IsChannel]
    throttle_classes = [InboundThrottle]
    throttle_scope = "inbound"
    parser_classes = [BoundedJSONParser]
    OutputSerializer = InboundOutputSerializer
    InputSerializer: ClassVar[type[serializers.Serializer[Any]]]  # each channel's view sets it

    def respond(self, result: InboundResult) -> Response:
        data = self.OutputSerializer(
            {
                "customer": result.customer_id,
                "conversation": result.conversation_id,
                "message": result.message_id,
                "new_contact": result.new_contact,
            }
        ).data
        return Response(
            data, status=status.HTTP_201_CREATED if result.created else status.HTTP_200_OK
        )

    def ingest(self, request: Request, service: Callable[..., InboundResult]) -> Response:
        """Validate the JSON body with the view's InputSerializer and hand it to ``service``."""
        serializer = self.InputSerializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        channel = request_channel(request)
        if channel.ingest_mode == IngestMode.ASYNC:
            return accepted_response(
                request,
                inbound_queue_accept_json(
                    channel=channel,
                    kind=channel.kind,
                    fields=dict(serializer.validated_data),
                    raw=self.raw_payload(request),
                ),
            )
        result = service(
            channel=request_channel(request),
            raw=self.raw_payload(request),
            **serializer.validated_data,
        )
        return self.respond(result)

    @staticmethod
    def raw_payload(request: Request) -> bytes:
        """The provider's payload as received (re-encoded), kept on the message for audits."""
        return json.dumps(request.data, ensure_ascii=False, sort_keys=True).encode()


class InboundEmailApi(InboundApi):
    parser_classes = [RFC822Parser]

    @extend_schema(
        tags=["inbound"],
        summary="Receive a raw email",
        description="Idempotent on Message-ID. An email that cannot be attributed to a sender is "
        "quarantined (202): it was kept for review and must not be retried.",
        request={"message/rfc822": OpenApiTypes.BINARY},
        responses={
            **INBOUND_RESPONSES,
            202: OpenApiResponse(
                PolymorphicProxySerializer(
                    component_name="InboundEmailAccepted",
                    serializers=[QuarantinedOutputSerializer, AcceptedOutputSerializer],
                    resource_type_field_name=None,
                ),
                description="Kept in quarantine (synchronous mode), or accepted for the "
                "worker (asynchronous mode: poll the id).",
            ),
        },
    )
    def post(self, request: Request) -> Response:
        # RFC822Parser makes request.data the body's bytes (DRF's stubs know of mappings only).
        raw: object = request.data
        if not isinstance(raw, bytes) or not raw.strip():
            raise ApplicationError(
                "Send the raw RFC 822 message as the request body (Content-Type: message/rfc822)."
            )
        channel = request_channel(request)
        if channel.ingest_mode == IngestMode.ASYNC:
            return accepted_response(
                request, inbound_queue_accept_email(channel=channel, raw=raw, source="api")
            )
        result = inbound_email_raw(channel=channel, raw=raw, source="api")
        if isinstance(result, QuarantinedMessage):
            return Response(
                {
                    "quarantined": result.pk,
                    "detail": f"Kept for review, not stored as a message: {result.error}",
                },
                status=status.HTTP_202_ACCEPTED,
            )
        return self.respond(result)


SENT_AT_HELP = "ISO 8601; defaults to the time of receipt. A time in the future counts as now."


class InboundChatApi(InboundApi):
    class InputSerializer(serializers.Serializer[Any]):
        external_id = serializers.CharField(max_length=ID_MAX_CHARS)
        session_id = serializers.CharField(
            max_length=ID_MAX_CHARS, help_text="One session = one contact."
        )
        visitor_id = serializers.CharField(max_length=ID_MAX_CHARS)
        email = serializers.EmailField(required=False, allow_blank=True, default="")
        name = serializers.CharField(max_length=200, required=False, allow_blank=True, default="")
        body = serializers.CharField(max_length=BODY_MAX_CHARS, trim_whitespace=False)
        sent_at = serializers.DateTimeField(
            required=False, allow_null=True, default=None, help_text=SENT_AT_HELP
        )

    @extend_schema(
        tags=["inbound"],
        summary="Receive a chat message",
        request=InputSerializer,
        responses=INBOUND_RESPONSES,
    )
    def post(self, request: Request) -> Response:
        return self.ingest(request, inbound_chat)


class InboundSocialApi(InboundApi):
    class InputSerializer(serializers.Serializer[Any]):
        external_id = serializers.CharField(max_length=ID_MAX_CHARS)
        network = serializers.CharField(max_length=30)
        handle = serializers.CharField(max_length=ID_MAX_CHARS)
        body = serializers.CharField(max_length=BODY_MAX_CHARS, trim_whitespace=False)
        sent_at = serializers.DateTimeField(
            required=False, allow_null=True, default=None, help_text=SENT_AT_HELP
        )
        thread_id = serializers.CharField(
            max_length=ID_MAX_CHARS, required=False, allow_blank=True, default=""
        )

    @extend_schema(
        tags=["inbound"],
        summary="Receive a social message",
        request=InputSerializer,
        responses=INBOUND_RESPONSES,
    )
    def post(self, request: Request) -> Response:
        return self.ingest(request, inbound_social)


class InboundPhoneApi(InboundApi):
    class InputSerializer(serializers.Serializer[Any]):
        external_id = serializers.CharField(max_length=ID_MAX_CHARS)
        from_number = serializers.CharField(max_length=64)
        started_at = serializers.DateTimeField(
            required=False, allow_null=True, default=None, help_text=SENT_AT_HELP
        )
        # A week in seconds is far beyond any real call; the bound keeps the columns safe.
        wait_seconds = serializers.IntegerField(min_value=0, max_value=604_800)
        talk_seconds = serializers.IntegerField(min_value=0, max_value=604_800)
        hold_seconds = serializers.IntegerField(min_value=0, max_value=604_800)
        wrap_seconds = serializers.IntegerField(min_value=0, max_value=604_800)
        ended_by = serializers.ChoiceField(choices=Contact.EndedBy.choices)
        agent_email = serializers.EmailField(required=False, allow_blank=True, default="")
        notes = serializers.CharField(
            max_length=BODY_MAX_CHARS, required=False, allow_blank=True, default=""
        )

    @extend_schema(
        tags=["inbound"],
        summary="Receive a call log",
        request=InputSerializer,
        responses=INBOUND_RESPONSES,
    )
    def post(self, request: Request) -> Response:
        return self.ingest(request, inbound_phone)


class InboundQueueItemApi(APIView):
    """The status of a payload a channel in the asynchronous mode accepted (that channel only)."""

    authentication_classes = [ChannelTokenAuthentication]
    permission_classes = [IsChannel]
    throttle_classes = [InboundThrottle]
    throttle_scope = "inbound"

    @extend_schema(
        tags=["inbound"],
        summary="Poll an accepted inbound payload",
        description="`pending` until the ingest worker took it; `done` with the ids the "
        "synchronous call returns; `failed` with the reason (nothing of it was stored, or it "
        "was kept in quarantine).",
        responses={200: AcceptedOutputSerializer, **error_codes(401, 404, 429)},
    )
    def get(self, request: Request, pk: int) -> Response:
        item = inbound_queue_item_for_channel(channel=request_channel(request), pk=pk)
        item.poll = reverse("tickets:inbound-queue-item", kwargs={"pk": item.pk})  # type: ignore[attr-defined]
        return Response(AcceptedOutputSerializer(item).data)
