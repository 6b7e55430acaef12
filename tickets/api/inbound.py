"""Inbound calls from channels: email, chat, social and phone (X-Channel-Token only)."""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any, ClassVar

from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import (
    OpenApiResponse,
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
    QuarantinedMessage,
)
from tickets.services import (
    InboundResult,
    inbound_chat,
    inbound_email_raw,
    inbound_phone,
    inbound_social,
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


INBOUND_RESPONSES = {
    201: OpenApiResponse(InboundOutputSerializer, description="Stored."),
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
            202: OpenApiResponse(QuarantinedOutputSerializer, description="Kept in quarantine."),
        },
    )
    def post(self, request: Request) -> Response:
        # RFC822Parser makes request.data the body's bytes (DRF's stubs know of mappings only).
        raw: object = request.data
        if not isinstance(raw, bytes) or not raw.strip():
            raise ApplicationError(
                "Send the raw RFC 822 message as the request body (Content-Type: message/rfc822)."
            )
        result = inbound_email_raw(channel=request_channel(request), raw=raw, source="api")
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
