"""The tickets API: inbound channels, the queue, conversations, customers and merges.

Views are thin (STYLE.md 6): a nested ``InputSerializer`` checks the shape, one service makes the
change, a nested ``OutputSerializer`` answers. Objects are looked up through the permission-scoped
selectors, so another team's conversation or customer is a 404, never a 403. Domain refusals are
``ApplicationError`` subclasses raised by the services and mapped once in
``supportdesk.api.exception_handler``.
"""

from __future__ import annotations

import io
import json
from collections.abc import Callable
from typing import Any, ClassVar

from django.conf import settings
from django.core.exceptions import RequestDataTooBig
from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import (
    OpenApiParameter,
    OpenApiResponse,
    extend_schema,
    extend_schema_field,
    extend_schema_serializer,
)
from rest_framework import serializers, status
from rest_framework.generics import GenericAPIView
from rest_framework.parsers import BaseParser, JSONParser
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from supportdesk.api import error_responses
from supportdesk.errors import ApplicationError, PayloadTooLarge
from supportdesk.idempotency import idempotent
from supportdesk.models import Team, User
from tickets.authentication import ChannelTokenAuthentication, InboundThrottle, IsChannel
from tickets.models import (
    ChannelKind,
    Contact,
    Conversation,
    Customer,
    Identity,
    Message,
    QuarantinedMessage,
)
from tickets.pagination import ConversationCursorPagination
from tickets.selectors import (
    conversation_get_for_user,
    conversation_list_for_user,
    customer_detail_data,
    customer_get_for_user,
    customer_merge_get_for_user,
    message_get_for_user,
    staff_get_by_ref,
    team_get_by_ref,
)
from tickets.services import (
    TEAM_NOT_YOURS,
    InboundResult,
    conversation_assign,
    conversation_reopen,
    conversation_reply,
    conversation_set_pending,
    conversation_solve,
    conversation_take_next,
    customer_merge,
    customer_merge_undo,
    identity_link,
    inbound_chat,
    inbound_email_raw,
    inbound_phone,
    inbound_social,
    message_move,
)

BODY_MAX_CHARS = 100_000
ID_MAX_CHARS = 255
# Ids in bodies and query strings stay within bigint (SQLite raises OverflowError beyond it).
PK_MAX = 2**63 - 1

# --- Request size -----------------------------------------------------------------------------------


def _too_large(size: int | None = None) -> PayloadTooLarge:
    limit = settings.DATA_UPLOAD_MAX_MEMORY_SIZE
    size_text = f"has {size} bytes" if size is not None else "is too large"
    return PayloadTooLarge(
        f"The request body {size_text}; the limit is {limit} bytes. Nothing was stored."
    )


def _read_bounded(stream: Any) -> bytes:
    """Read at most DATA_UPLOAD_MAX_MEMORY_SIZE bytes: a lying Content-Length cannot exhaust us."""
    limit = settings.DATA_UPLOAD_MAX_MEMORY_SIZE
    data = stream.read(limit + 1)
    if len(data) > limit:
        raise _too_large()
    return data


class BoundedJSONParser(JSONParser):
    def parse(self, stream: Any, media_type: str | None = None, parser_context: Any = None) -> Any:
        return super().parse(io.BytesIO(_read_bounded(stream)), media_type, parser_context)


class RFC822Parser(BaseParser):
    """``message/rfc822``: the body is the raw message; ``request.data`` is its bytes."""

    media_type = "message/rfc822"

    def parse(
        self, stream: Any, media_type: str | None = None, parser_context: Any = None
    ) -> bytes:
        return _read_bounded(stream)


class _BodyLimitMixin:
    """413 for a body over DATA_UPLOAD_MAX_MEMORY_SIZE, decided from Content-Length before reading.

    DRF reads the WSGI stream itself and so skips Django's own check; without this a large body
    would be read whole (or surface as a 500 from ``RequestDataTooBig``).
    """

    def initial(self, request: Request, *args: Any, **kwargs: Any) -> None:
        super().initial(request, *args, **kwargs)  # type: ignore[misc]
        try:
            length = int(request.META.get("CONTENT_LENGTH") or 0)
        except ValueError:
            length = 0
        if length > settings.DATA_UPLOAD_MAX_MEMORY_SIZE:
            raise _too_large(length)

    def handle_exception(self, exc: Exception) -> Response:
        if isinstance(exc, RequestDataTooBig):
            exc = _too_large()
        return super().handle_exception(exc)  # type: ignore[misc]


class _StaffApi(_BodyLimitMixin, APIView):
    parser_classes = [BoundedJSONParser]


# --- Optimistic concurrency and idempotency ------------------------------------------------------

IDEMPOTENCY_KEY_PARAMETER = OpenApiParameter(
    "Idempotency-Key",
    OpenApiTypes.STR,
    OpenApiParameter.HEADER,
    required=False,
    description="Any unique string (a UUID). A retry with the same key within 24 h gets the "
    "first answer (header `Idempotent-Replayed: true`) and changes nothing more; the same key "
    "with a different body answers 422.",
)
IF_MATCH_PARAMETER = OpenApiParameter(
    "If-Match",
    OpenApiTypes.STR,
    OpenApiParameter.HEADER,
    required=False,
    description='The conversation\'s ETag (`"<version>"`) as you read it. If the conversation '
    "changed since, the answer is 409 and nothing is applied. Without it the change applies "
    "to whatever the conversation is now.",
)


def _etag(conversation: Conversation) -> str:
    return f'"{conversation.version}"'


def _if_match_version(request: Request) -> int | None:
    """The version named by ``If-Match`` (``"7"``, ``W/"7"`` or ``7``); None if absent or ``*``."""
    raw = request.headers.get("If-Match")
    if raw is None or raw.strip() == "*":
        return None
    value = raw.strip().removeprefix("W/").strip('"')
    if not value.isdigit() or len(value) > 18:
        raise ApplicationError(
            'If-Match must be the conversation\'s ETag, e.g. "7" (its "version").'
        )
    return int(value)


def _with_etag(response: Response, conversation: Conversation) -> Response:
    response["ETag"] = _etag(conversation)
    return response


# --- Shared output shapes ----------------------------------------------------------------------------


def _errors(*codes: int) -> dict[int, OpenApiResponse]:
    return error_responses(*codes)


class UserRefSerializer(serializers.Serializer):
    id = serializers.IntegerField()
    email = serializers.EmailField()
    full_name = serializers.CharField()


class TeamRefSerializer(serializers.Serializer):
    id = serializers.IntegerField()
    name = serializers.CharField()


class CustomerRefSerializer(serializers.Serializer):
    id = serializers.IntegerField()
    name = serializers.CharField()


class ConversationSummarySerializer(serializers.Serializer):
    """A conversation without its customer (the customer page lists these)."""

    id = serializers.IntegerField()
    status = serializers.ChoiceField(choices=Conversation.Status.choices)
    subject = serializers.CharField()
    assignee = UserRefSerializer(allow_null=True)
    team = TeamRefSerializer(allow_null=True)
    # Plain strings (email, chat, social, phone): one enum per choice set keeps the schema clean.
    channels = serializers.ListField(
        child=serializers.CharField(), help_text="Channel kinds used, in order of first use."
    )
    contacts_counted = serializers.IntegerField()
    created_at = serializers.DateTimeField()
    last_activity_at = serializers.DateTimeField()
    solved_at = serializers.DateTimeField(allow_null=True)
    follow_up_of = serializers.IntegerField(source="follow_up_of_id", allow_null=True)
    version = serializers.IntegerField(help_text="Bumped by every change to the conversation.")


class ConversationOutputSerializer(ConversationSummarySerializer):
    customer = CustomerRefSerializer()


class AttachmentOutputSerializer(serializers.Serializer):
    id = serializers.IntegerField()
    filename = serializers.CharField()
    content_type = serializers.CharField()
    size = serializers.IntegerField()


class ContactRefSerializer(serializers.Serializer):
    id = serializers.IntegerField()
    reason = serializers.ChoiceField(choices=Contact.Reason.choices)
    channel = serializers.ChoiceField(source="channel_kind", choices=ChannelKind.choices)


class CallOutputSerializer(serializers.Serializer):
    wait_seconds = serializers.IntegerField(allow_null=True)
    talk_seconds = serializers.IntegerField(allow_null=True)
    hold_seconds = serializers.IntegerField(allow_null=True)
    wrap_seconds = serializers.IntegerField(allow_null=True)
    ended_by = serializers.CharField()
    agent = serializers.IntegerField(source="agent_id", allow_null=True)


class MessageOutputSerializer(serializers.Serializer):
    id = serializers.IntegerField()
    conversation = serializers.IntegerField(source="conversation_id")
    direction = serializers.ChoiceField(choices=Message.Direction.choices)
    channel = serializers.SerializerMethodField()
    author = UserRefSerializer(allow_null=True)
    subject = serializers.CharField()
    body_text = serializers.CharField()
    body_html = serializers.CharField()
    sent_at = serializers.DateTimeField()
    automated = serializers.CharField(
        help_text="Non-empty for auto-replies, bounces and list mail."
    )
    delivery_state = serializers.CharField(
        help_text="queued (not delivered yet; retrying when delivery_error is set), sending, "
        "sent, failed (gave up: see delivery_error), not_sent; empty for inbound and notes."
    )
    delivery_error = serializers.CharField(help_text="Why the last delivery attempt failed.")
    delivery_attempts = serializers.IntegerField()
    contact = ContactRefSerializer(allow_null=True)
    call = serializers.SerializerMethodField()
    attachments = AttachmentOutputSerializer(many=True)

    @extend_schema_field(serializers.ChoiceField(choices=ChannelKind.choices, allow_null=True))
    def get_channel(self, message: Message) -> str | None:
        return message.channel_kind or None

    @extend_schema_field(CallOutputSerializer(allow_null=True))
    def get_call(self, message: Message) -> dict[str, Any] | None:
        contact = message.contact
        if (
            contact is None
            or contact.channel_kind != ChannelKind.PHONE
            or message.direction != Message.Direction.INBOUND
        ):
            return None
        return CallOutputSerializer(contact).data


class IdentityOutputSerializer(serializers.Serializer):
    id = serializers.IntegerField()
    kind = serializers.ChoiceField(choices=Identity.Kind.choices)
    value = serializers.CharField()
    display_value = serializers.CharField()
    verified = serializers.BooleanField()
    undeliverable_at = serializers.DateTimeField(allow_null=True)


class MergeOutputSerializer(serializers.Serializer):
    id = serializers.IntegerField()
    target = serializers.IntegerField(source="target_id")
    merged = serializers.IntegerField(source="merged_id")
    identity_ids = serializers.ListField(child=serializers.IntegerField())
    conversation_ids = serializers.ListField(child=serializers.IntegerField())
    created_at = serializers.DateTimeField()
    undone_at = serializers.DateTimeField(allow_null=True)


# --- Inbound (channels) ------------------------------------------------------------------------------


class InboundOutputSerializer(serializers.Serializer):
    customer = serializers.IntegerField()
    conversation = serializers.IntegerField()
    message = serializers.IntegerField()
    new_contact = serializers.BooleanField()


class QuarantinedOutputSerializer(serializers.Serializer):
    quarantined = serializers.IntegerField()
    detail = serializers.CharField()


_INBOUND_RESPONSES = {
    201: OpenApiResponse(InboundOutputSerializer, description="Stored."),
    200: OpenApiResponse(InboundOutputSerializer, description="Already stored (same external id)."),
    **_errors(400, 401, 413, 415, 429),
}


class _InboundApi(_BodyLimitMixin, APIView):
    """Authenticated by the channel secret in ``X-Channel-Token`` only (never a staff token)."""

    authentication_classes = [ChannelTokenAuthentication]
    permission_classes = [IsChannel]
    throttle_classes = [InboundThrottle]
    throttle_scope = "inbound"
    parser_classes = [BoundedJSONParser]
    OutputSerializer = InboundOutputSerializer

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
        serializer = self.InputSerializer(data=request.data)  # type: ignore[attr-defined]
        serializer.is_valid(raise_exception=True)
        result = service(
            channel=request.auth, raw=self.raw_payload(request), **serializer.validated_data
        )
        return self.respond(result)

    @staticmethod
    def raw_payload(request: Request) -> bytes:
        """The provider's payload as received (re-encoded), kept on the message for audits."""
        return json.dumps(request.data, ensure_ascii=False, sort_keys=True).encode()


class InboundEmailApi(_InboundApi):
    parser_classes = [RFC822Parser]

    @extend_schema(
        tags=["inbound"],
        summary="Receive a raw email",
        description="Idempotent on Message-ID. An email that cannot be attributed to a sender is "
        "quarantined (202): it was kept for review and must not be retried.",
        request={"message/rfc822": OpenApiTypes.BINARY},
        responses={
            **_INBOUND_RESPONSES,
            202: OpenApiResponse(QuarantinedOutputSerializer, description="Kept in quarantine."),
        },
    )
    def post(self, request: Request) -> Response:
        raw = request.data
        if not isinstance(raw, bytes) or not raw.strip():
            raise ApplicationError(
                "Send the raw RFC 822 message as the request body (Content-Type: message/rfc822)."
            )
        result = inbound_email_raw(channel=request.auth, raw=raw, source="api")
        if isinstance(result, QuarantinedMessage):
            return Response(
                {
                    "quarantined": result.pk,
                    "detail": f"Kept for review, not stored as a message: {result.error}",
                },
                status=status.HTTP_202_ACCEPTED,
            )
        return self.respond(result)


_SENT_AT_HELP = "ISO 8601; defaults to the time of receipt. A time in the future counts as now."


class InboundChatApi(_InboundApi):
    class InputSerializer(serializers.Serializer):
        external_id = serializers.CharField(max_length=ID_MAX_CHARS)
        session_id = serializers.CharField(
            max_length=ID_MAX_CHARS, help_text="One session = one contact."
        )
        visitor_id = serializers.CharField(max_length=ID_MAX_CHARS)
        email = serializers.EmailField(required=False, allow_blank=True, default="")
        name = serializers.CharField(max_length=200, required=False, allow_blank=True, default="")
        body = serializers.CharField(max_length=BODY_MAX_CHARS, trim_whitespace=False)
        sent_at = serializers.DateTimeField(
            required=False, allow_null=True, default=None, help_text=_SENT_AT_HELP
        )

    @extend_schema(
        tags=["inbound"],
        summary="Receive a chat message",
        request=InputSerializer,
        responses=_INBOUND_RESPONSES,
    )
    def post(self, request: Request) -> Response:
        return self.ingest(request, inbound_chat)


class InboundSocialApi(_InboundApi):
    class InputSerializer(serializers.Serializer):
        external_id = serializers.CharField(max_length=ID_MAX_CHARS)
        network = serializers.CharField(max_length=30)
        handle = serializers.CharField(max_length=ID_MAX_CHARS)
        body = serializers.CharField(max_length=BODY_MAX_CHARS, trim_whitespace=False)
        sent_at = serializers.DateTimeField(
            required=False, allow_null=True, default=None, help_text=_SENT_AT_HELP
        )
        thread_id = serializers.CharField(
            max_length=ID_MAX_CHARS, required=False, allow_blank=True, default=""
        )

    @extend_schema(
        tags=["inbound"],
        summary="Receive a social message",
        request=InputSerializer,
        responses=_INBOUND_RESPONSES,
    )
    def post(self, request: Request) -> Response:
        return self.ingest(request, inbound_social)


class InboundPhoneApi(_InboundApi):
    class InputSerializer(serializers.Serializer):
        external_id = serializers.CharField(max_length=ID_MAX_CHARS)
        from_number = serializers.CharField(max_length=64)
        started_at = serializers.DateTimeField(
            required=False, allow_null=True, default=None, help_text=_SENT_AT_HELP
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
        responses=_INBOUND_RESPONSES,
    )
    def post(self, request: Request) -> Response:
        return self.ingest(request, inbound_phone)


# --- Conversations ----------------------------------------------------------------------------------


# GenericAPIView only for its explicit ``pagination_class``; no queryset or filter-backend magic.
class ConversationListApi(_BodyLimitMixin, GenericAPIView):
    pagination_class = ConversationCursorPagination

    class FilterSerializer(serializers.Serializer):
        status = serializers.CharField(
            required=False, help_text="One status, or several comma-separated."
        )
        assignee = serializers.CharField(
            required=False, max_length=254, help_text='Agent id or email, "me" or "none".'
        )
        team = serializers.IntegerField(required=False, min_value=1, max_value=PK_MAX)
        customer = serializers.IntegerField(required=False, min_value=1, max_value=PK_MAX)
        channel = serializers.ChoiceField(required=False, choices=ChannelKind.choices)

        def validate_status(self, value: str) -> str:
            statuses = [item.strip() for item in value.split(",") if item.strip()]
            unknown = sorted(set(statuses) - set(Conversation.Status.values))
            if unknown:
                raise serializers.ValidationError(
                    f"Unknown status {', '.join(unknown)}; use {', '.join(Conversation.Status.values)}."
                )
            return ",".join(statuses)

        def validate_assignee(self, value: str) -> str:
            value = value.strip()
            if value in {"me", "none"} or value.isdigit() or "@" in value:
                return value
            raise serializers.ValidationError('Give an agent id, an email, "me" or "none".')

    OutputSerializer = ConversationOutputSerializer

    @extend_schema(
        tags=["conversations"],
        summary="The queue",
        description="Newest activity first; cursor-paginated (`?cursor=`, `?page_size=` up to 200).",
        parameters=[FilterSerializer],
        responses={200: OutputSerializer(many=True), **_errors(400, 401, 403, 404)},
    )
    def get(self, request: Request) -> Response:
        filters = self.FilterSerializer(data=request.query_params)
        filters.is_valid(raise_exception=True)
        conversations = conversation_list_for_user(user=request.user, **filters.validated_data)
        page = self.paginate_queryset(conversations)
        return self.get_paginated_response(self.OutputSerializer(page, many=True).data)


class ConversationDetailApi(_StaffApi):
    class OutputSerializer(ConversationOutputSerializer):
        messages = MessageOutputSerializer(many=True, help_text="All channels, in time order.")

    @extend_schema(
        tags=["conversations"],
        summary="A conversation with its timeline",
        responses={200: OutputSerializer, **_errors(401, 403, 404)},
    )
    def get(self, request: Request, pk: int) -> Response:
        conversation = conversation_get_for_user(user=request.user, pk=pk, for_detail=True)
        return _with_etag(Response(self.OutputSerializer(conversation).data), conversation)


class ConversationReplyApi(_StaffApi):
    class InputSerializer(serializers.Serializer):
        body = serializers.CharField(max_length=BODY_MAX_CHARS)
        channel = serializers.ChoiceField(
            choices=ChannelKind.choices,
            required=False,
            help_text="Default: the customer's last channel.",
        )
        internal = serializers.BooleanField(
            default=False, help_text="An internal note: never sent."
        )

    OutputSerializer = MessageOutputSerializer

    @extend_schema(
        tags=["conversations"],
        summary="Reply or add an internal note",
        description="A public reply on email sends a threaded email (queued, sent after commit). "
        "Send an `Idempotency-Key` so that a retry after a lost answer creates no second reply.",
        parameters=[IDEMPOTENCY_KEY_PARAMETER],
        request=InputSerializer,
        responses={201: OutputSerializer, **_errors(400, 401, 403, 404, 413, 422)},
    )
    def post(self, request: Request, pk: int) -> Response:
        conversation = conversation_get_for_user(user=request.user, pk=pk)
        serializer = self.InputSerializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        data = serializer.validated_data

        def reply() -> Response:
            message = conversation_reply(
                conversation=conversation,
                author=request.user,
                body=data["body"],
                channel_kind=data.get("channel"),
                internal=data["internal"],
            )
            return Response(self.OutputSerializer(message).data, status=status.HTTP_201_CREATED)

        return idempotent(request, reply)


class _ConversationStatusApi(_StaffApi):
    """No request body; answers with the conversation as it is after the change."""

    OutputSerializer = ConversationOutputSerializer
    # The service making the change: called as service(conversation=..., actor=...).
    service: ClassVar[Callable[..., object]]

    def post(self, request: Request, pk: int) -> Response:
        conversation = conversation_get_for_user(user=request.user, pk=pk)
        expected_version = _if_match_version(request)

        def change() -> Response:
            type(self).service(
                conversation=conversation, actor=request.user, expected_version=expected_version
            )
            changed = conversation_get_for_user(user=request.user, pk=pk)
            return _with_etag(Response(self.OutputSerializer(changed).data), changed)

        return idempotent(request, change)


_STATUS_RESPONSES = {200: ConversationOutputSerializer, **_errors(400, 401, 403, 404, 409, 422)}
_STATUS_PARAMETERS = [IF_MATCH_PARAMETER, IDEMPOTENCY_KEY_PARAMETER]


@extend_schema(
    tags=["conversations"],
    summary="Solve",
    description="Records a solve event; the resolution survey is scheduled. 409 if already solved.",
    request=None,
    parameters=_STATUS_PARAMETERS,
    responses=_STATUS_RESPONSES,
)
class ConversationSolveApi(_ConversationStatusApi):
    service = staticmethod(conversation_solve)


@extend_schema(
    tags=["conversations"],
    summary="Reopen a solved or closed conversation",
    request=None,
    parameters=_STATUS_PARAMETERS,
    responses=_STATUS_RESPONSES,
)
class ConversationReopenApi(_ConversationStatusApi):
    service = staticmethod(conversation_reopen)


@extend_schema(
    tags=["conversations"],
    summary="Wait on the customer (pending)",
    request=None,
    parameters=_STATUS_PARAMETERS,
    responses=_STATUS_RESPONSES,
)
class ConversationPendingApi(_ConversationStatusApi):
    service = staticmethod(conversation_set_pending)


def _agent_by_ref(ref: str) -> User:
    agent = staff_get_by_ref(ref=ref)
    if agent is None:
        raise serializers.ValidationError({"agent": [f"No agent {ref!r}."]})
    return agent


def _team_by_ref(ref: str) -> Team:
    team = team_get_by_ref(ref=ref)
    if team is None:
        # The same answer as for another team's name (the service's rule): no probing.
        raise ApplicationError(TEAM_NOT_YOURS)
    return team


class ConversationAssignApi(_StaffApi):
    class InputSerializer(serializers.Serializer):
        agent = serializers.CharField(
            required=False,
            allow_null=True,
            max_length=254,
            help_text="Agent id or email; null unassigns.",
        )
        team = serializers.CharField(required=False, max_length=100, help_text="Team id or name.")

        def validate(self, attrs: dict[str, Any]) -> dict[str, Any]:
            if "agent" not in attrs and "team" not in attrs:
                raise serializers.ValidationError("Give an agent, a team, or both.")
            return attrs

    OutputSerializer = ConversationOutputSerializer

    @extend_schema(
        tags=["conversations"],
        summary="Assign to an agent and/or a team",
        parameters=_STATUS_PARAMETERS,
        request=InputSerializer,
        responses={200: OutputSerializer, **_errors(400, 401, 403, 404, 409, 413, 422)},
    )
    def post(self, request: Request, pk: int) -> Response:
        conversation = conversation_get_for_user(user=request.user, pk=pk)
        serializer = self.InputSerializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        data = serializer.validated_data
        agent_ref = data.get("agent")
        agent = _agent_by_ref(agent_ref) if agent_ref else None
        team = _team_by_ref(data["team"]) if data.get("team") else None
        expected_version = _if_match_version(request)

        def assign() -> Response:
            changed = conversation_assign(
                conversation=conversation,
                actor=request.user,
                agent=agent,
                team=team,
                unassign="agent" in data and not agent_ref,
                expected_version=expected_version,
            )
            return _with_etag(Response(self.OutputSerializer(changed).data), changed)

        return idempotent(request, assign)


class ConversationTakeNextApi(_StaffApi):
    OutputSerializer = ConversationOutputSerializer

    @extend_schema(
        tags=["conversations"],
        summary="Take the next conversation",
        description="Assigns you the oldest unassigned new or open conversation of your teams "
        "and returns it. Concurrent callers never get the same one. 404 when there is nothing "
        "to take.",
        request=None,
        parameters=[IDEMPOTENCY_KEY_PARAMETER],
        responses={200: OutputSerializer, **_errors(400, 401, 403, 404, 422)},
    )
    def post(self, request: Request) -> Response:
        def take() -> Response:
            taken = conversation_take_next(agent=request.user)
            if taken is None:
                raise NothingToTake(
                    "Nothing to take: no unassigned new or open conversation in your teams."
                )
            taken = conversation_get_for_user(user=request.user, pk=taken.pk)
            return _with_etag(Response(self.OutputSerializer(taken).data), taken)

        return idempotent(request, take)


class NothingToTake(ApplicationError):
    status = 404


class MessageMoveApi(_StaffApi):
    class InputSerializer(serializers.Serializer):
        conversation = serializers.IntegerField(
            min_value=1, max_value=PK_MAX, help_text="Another conversation of the same customer."
        )

    OutputSerializer = MessageOutputSerializer

    @extend_schema(
        tags=["conversations"],
        summary="Move a message to another conversation",
        description="Both conversations' contacts are recounted.",
        request=InputSerializer,
        responses={200: OutputSerializer, **_errors(400, 401, 403, 404, 413)},
    )
    def post(self, request: Request, pk: int) -> Response:
        message = message_get_for_user(user=request.user, pk=pk)
        serializer = self.InputSerializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        target = conversation_get_for_user(
            user=request.user, pk=serializer.validated_data["conversation"]
        )
        message = message_move(message=message, to_conversation=target, actor=request.user)
        return Response(self.OutputSerializer(message).data)


# --- Customers and merges ------------------------------------------------------------------------------


class CustomerDetailApi(_StaffApi):
    class OutputSerializer(serializers.Serializer):
        id = serializers.IntegerField()
        name = serializers.CharField()
        merged_into = serializers.IntegerField(
            allow_null=True, help_text="Set when merged into another customer."
        )
        created_at = serializers.DateTimeField()
        identities = IdentityOutputSerializer(many=True)
        conversations = ConversationSummarySerializer(many=True, help_text="Those visible to you.")
        merges = MergeOutputSerializer(many=True, help_text="Customers merged into this one.")

    @extend_schema(
        tags=["customers"],
        summary="A customer with identities and conversations",
        responses={200: OutputSerializer, **_errors(401, 403, 404)},
    )
    def get(self, request: Request, pk: int) -> Response:
        customer = customer_get_for_user(user=request.user, pk=pk)
        data = customer_detail_data(user=request.user, customer=customer)
        return Response(self.OutputSerializer(_customer_payload(customer, data)).data)


def _customer_payload(customer: Customer, data: dict[str, Any]) -> dict[str, Any]:
    return {
        "id": customer.pk,
        "name": customer.name,
        "merged_into": customer.merged_into_id,
        "created_at": customer.created_at,
        **data,
    }


class CustomerMergeApi(_StaffApi):
    class InputSerializer(serializers.Serializer):
        other = serializers.IntegerField(
            min_value=1, max_value=PK_MAX, help_text="The customer merged into this one."
        )

    OutputSerializer = MergeOutputSerializer

    @extend_schema(
        tags=["customers"],
        summary="Merge another customer into this one",
        description="Identities and conversations move here; undo with /merges/{id}/undo/.",
        request=InputSerializer,
        responses={201: OutputSerializer, **_errors(400, 401, 403, 404, 409, 413)},
    )
    def post(self, request: Request, pk: int) -> Response:
        target = customer_get_for_user(user=request.user, pk=pk)
        serializer = self.InputSerializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        other = customer_get_for_user(user=request.user, pk=serializer.validated_data["other"])
        merge = customer_merge(target=target, other=other, actor=request.user)
        return Response(self.OutputSerializer(merge).data, status=status.HTTP_201_CREATED)


class CustomerIdentityLinkApi(_StaffApi):
    class InputSerializer(serializers.Serializer):
        kind = serializers.ChoiceField(choices=Identity.Kind.choices)
        value = serializers.CharField(max_length=320)

    OutputSerializer = IdentityOutputSerializer

    @extend_schema(
        tags=["customers"],
        summary="Link a handle to this customer",
        description="201 when linked, 200 when it already was this customer's, 409 when it is "
        "another customer's (merge them instead).",
        request=InputSerializer,
        responses={
            201: OutputSerializer,
            200: OutputSerializer,
            **_errors(400, 401, 403, 404, 409, 413),
        },
    )
    def post(self, request: Request, pk: int) -> Response:
        customer = customer_get_for_user(user=request.user, pk=pk)
        serializer = self.InputSerializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        known = set(customer.identities.values_list("pk", flat=True))
        identity = identity_link(customer=customer, actor=request.user, **serializer.validated_data)
        code = status.HTTP_200_OK if identity.pk in known else status.HTTP_201_CREATED
        return Response(self.OutputSerializer(identity).data, status=code)


class CustomerMergeUndoApi(_StaffApi):
    OutputSerializer = MergeOutputSerializer

    @extend_schema(
        tags=["customers"],
        summary="Undo a merge",
        description="Moves back what the merge moved; later links and conversations stay. 409 if already undone.",
        request=None,
        responses={200: OutputSerializer, **_errors(401, 403, 404, 409)},
    )
    def post(self, request: Request, pk: int) -> Response:
        merge = customer_merge_get_for_user(user=request.user, pk=pk)
        merge = customer_merge_undo(merge=merge, actor=request.user)
        return Response(self.OutputSerializer(merge).data)


def _name_schema_components() -> None:
    """Every view nests an ``InputSerializer``/``OutputSerializer``; the schema needs unique names.

    ``ConversationReplyApi.InputSerializer`` becomes the component ``ConversationReplyInput``.
    Shared serializers (assigned, not nested) keep their own names.
    """
    for view in list(globals().values()):
        if not (
            isinstance(view, type) and issubclass(view, APIView) and view.__name__.endswith("Api")
        ):
            continue
        for role in ("Input", "Output", "Filter"):
            serializer = view.__dict__.get(f"{role}Serializer")
            if (
                serializer is not None
                and serializer.__qualname__ == f"{view.__name__}.{role}Serializer"
            ):
                name = view.__name__.removesuffix("Api") + role
                extend_schema_serializer(component_name=name)(serializer)


_name_schema_components()
