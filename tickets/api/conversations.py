"""The queue and a conversation: detail, replies, status changes, assignment, take next, moves."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, ClassVar

from django.conf import settings
from django.db import transaction
from drf_spectacular.utils import (
    extend_schema,
)
from rest_framework import serializers, status
from rest_framework.generics import GenericAPIView
from rest_framework.parsers import MultiPartParser
from rest_framework.request import Request
from rest_framework.response import Response

from supportdesk.errors import ApplicationError, PayloadTooLarge
from supportdesk.http import staff_user
from supportdesk.idempotency import idempotent
from supportdesk.models import Team, User
from tickets.api.common import (
    BODY_MAX_CHARS,
    IDEMPOTENCY_KEY_PARAMETER,
    IF_MATCH_PARAMETER,
    PK_MAX,
    BodyLimitMixin,
    BoundedJSONParser,
    ConversationOutputSerializer,
    MessageOutputSerializer,
    StaffApi,
    error_codes,
    if_match_version,
    with_etag,
)
from tickets.api.outreach import ConversationStartMixin
from tickets.models import (
    ChannelKind,
    Conversation,
)
from tickets.pagination import ConversationCursorPagination
from tickets.selectors import (
    conversation_get_for_user,
    conversation_list_for_user,
    message_get_for_user,
    staff_get_by_ref,
    team_get_by_ref,
)
from tickets.services import (
    MAX_COPIES,
    MAX_REPLY_FILES,
    TEAM_NOT_YOURS,
    OutboundFile,
    conversation_assign,
    conversation_lock,
    conversation_mark_spam,
    conversation_reopen,
    conversation_reply,
    conversation_set_pending,
    conversation_solve,
    conversation_take_next,
    conversation_triage,
    conversation_unmark_spam,
    message_move,
    tags_by_names,
)
from tickets.services.triage import TAGS_PER_CONVERSATION_MAX


def outbound_files(files: list[Any]) -> list[OutboundFile]:
    """Uploaded files as the reply service takes them (read once, here)."""
    return [
        OutboundFile(
            filename=str(file.name or "attachment"),
            content_type=str(getattr(file, "content_type", "") or "application/octet-stream"),
            content=file.read(),
        )
        for file in files
    ]


# --- Conversations ----------------------------------------------------------------------------------


# GenericAPIView only for its explicit ``pagination_class``; no queryset or filter-backend magic.
class ConversationListApi(ConversationStartMixin, BodyLimitMixin, GenericAPIView[Conversation]):
    pagination_class = ConversationCursorPagination
    parser_classes = [BoundedJSONParser]  # POST: tickets.api.outreach.ConversationStartMixin
    # What OPTIONS describes for POST (DRF's metadata asks a generic view for its serializer).
    serializer_class = ConversationStartMixin.StartInputSerializer

    class FilterSerializer(serializers.Serializer[Any]):
        status = serializers.CharField(
            required=False, help_text="One status, or several comma-separated."
        )
        assignee = serializers.CharField(
            required=False, max_length=254, help_text='Agent id or email, "me" or "none".'
        )
        team = serializers.IntegerField(required=False, min_value=1, max_value=PK_MAX)
        customer = serializers.IntegerField(required=False, min_value=1, max_value=PK_MAX)
        channel = serializers.ChoiceField(required=False, choices=ChannelKind.choices)
        tag = serializers.CharField(required=False, max_length=50, help_text="A tag name.")
        priority = serializers.CharField(
            required=False, help_text="One priority, or several comma-separated."
        )
        q = serializers.CharField(
            required=False,
            max_length=200,
            help_text="Search: message text (full text), subject, customer name, any identity, #id.",
        )
        spam = serializers.BooleanField(
            required=False, default=False, help_text="true: only spam (hidden otherwise)."
        )

        def validate_priority(self, value: str) -> str:
            wanted = [item.strip() for item in value.split(",") if item.strip()]
            unknown = sorted(set(wanted) - set(Conversation.Priority.values))
            if unknown or not wanted:
                raise serializers.ValidationError(
                    f"Unknown priority {', '.join(unknown)}; use {', '.join(Conversation.Priority.values)}."
                )
            return ",".join(wanted)

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
        responses={200: OutputSerializer(many=True), **error_codes(400, 401, 403, 404)},
    )
    def get(self, request: Request) -> Response:
        user = staff_user(request)
        filters = self.FilterSerializer(data=request.query_params)
        filters.is_valid(raise_exception=True)
        conversations = conversation_list_for_user(user=user, **filters.validated_data)
        page = self.paginate_queryset(conversations)
        # many=True serializes a list; the stubs type the instance as one object.
        output = self.OutputSerializer(page, many=True)  # type: ignore[arg-type]
        return self.get_paginated_response(output.data)


class ConversationDetailApi(StaffApi):
    class PatchInputSerializer(serializers.Serializer[Any]):
        tags = serializers.ListField(
            child=serializers.CharField(max_length=50),
            required=False,
            max_length=TAGS_PER_CONVERSATION_MAX,
            help_text="The whole set of tag names (any case); [] removes every tag.",
        )
        priority = serializers.ChoiceField(choices=Conversation.Priority.choices, required=False)
        spam = serializers.BooleanField(
            required=False, help_text="true marks it as spam, false says it is not spam."
        )
        block_sender = serializers.BooleanField(
            required=False, default=False, help_text="With spam=true: block its senders too."
        )

        def validate(self, attrs: dict[str, Any]) -> dict[str, Any]:
            if not {"tags", "priority", "spam"} & set(attrs):
                raise serializers.ValidationError("Send tags, priority or spam.")
            return attrs

    class OutputSerializer(ConversationOutputSerializer):
        messages = MessageOutputSerializer(many=True, help_text="All channels, in time order.")

    @extend_schema(
        tags=["conversations"],
        summary="A conversation with its timeline",
        responses={200: OutputSerializer, **error_codes(401, 403, 404)},
    )
    def get(self, request: Request, pk: int) -> Response:
        user = staff_user(request)
        conversation = conversation_get_for_user(user=user, pk=pk, for_detail=True)
        return with_etag(Response(self.OutputSerializer(conversation).data), conversation)

    @extend_schema(
        tags=["conversations"],
        summary="Set tags, priority or the spam mark",
        description="Tags by name (a manager creates them; an archived tag cannot be added), "
        "priority `low|normal|high|urgent`, `spam`. Send `If-Match` with the ETag you read: "
        "409 and nothing changed if the conversation changed since. Each change records an "
        "event and an audit entry; nothing changes when the values are the same.",
        request=PatchInputSerializer,
        parameters=[IF_MATCH_PARAMETER],
        responses={200: OutputSerializer, **error_codes(400, 401, 403, 404, 409)},
    )
    def patch(self, request: Request, pk: int) -> Response:
        user = staff_user(request)
        conversation = conversation_get_for_user(user=user, pk=pk)
        expected_version = if_match_version(request)
        serializer = self.PatchInputSerializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        data = serializer.validated_data
        with transaction.atomic():
            if "tags" in data or "priority" in data:
                conversation = conversation_triage(
                    conversation=conversation,
                    actor=user,
                    tags=tags_by_names(data["tags"]) if "tags" in data else None,
                    priority=data.get("priority"),
                    expected_version=expected_version,
                )
                expected_version = None  # checked once, by the first change
            if data.get("spam") is True:
                conversation_mark_spam(
                    conversation=conversation,
                    actor=user,
                    block_sender=data["block_sender"],
                    expected_version=expected_version,
                )
            elif data.get("spam") is False and conversation.spam_at is not None:
                conversation_unmark_spam(
                    conversation=conversation, actor=user, expected_version=expected_version
                )
            elif data.get("spam") is False and expected_version is not None:
                conversation_lock(conversation, expected_version=expected_version)
        changed = conversation_get_for_user(user=user, pk=pk, for_detail=True)
        return with_etag(Response(self.OutputSerializer(changed).data), changed)


class ConversationReplyApi(StaffApi):
    """JSON, or multipart/form-data when the reply carries files."""

    parser_classes = [BoundedJSONParser, MultiPartParser]

    class InputSerializer(serializers.Serializer[Any]):
        body = serializers.CharField(max_length=BODY_MAX_CHARS)
        channel = serializers.ChoiceField(
            choices=ChannelKind.choices,
            required=False,
            help_text="Default: the customer's last channel.",
        )
        internal = serializers.BooleanField(
            default=False, help_text="An internal note: never sent."
        )
        cc = serializers.ListField(
            child=serializers.CharField(max_length=320),
            required=False,
            default=list,
            max_length=MAX_COPIES,
            help_text="Email replies: addresses copied (repeat the field in multipart). "
            "They become participants of the conversation.",
        )
        bcc = serializers.ListField(
            child=serializers.CharField(max_length=320),
            required=False,
            default=list,
            max_length=MAX_COPIES,
            help_text="Email replies: blind copies, never in the headers the customer sees.",
        )
        attachments = serializers.ListField(
            child=serializers.FileField(allow_empty_file=False, max_length=255),
            required=False,
            default=list,
            max_length=MAX_REPLY_FILES,
            help_text="multipart/form-data only; each file at most ATTACHMENT_MAX_BYTES (413).",
        )

    OutputSerializer = MessageOutputSerializer

    @extend_schema(
        tags=["conversations"],
        summary="Reply or add an internal note",
        description="A public reply on email sends a threaded email (queued, sent after commit): "
        "text and HTML (the body is plain text or Markdown), the files attached, From the "
        "mailbox's own address, Cc as given. Send an `Idempotency-Key` so that a retry after a "
        "lost answer creates no second reply.",
        parameters=[IDEMPOTENCY_KEY_PARAMETER],
        request={
            "application/json": InputSerializer,
            "multipart/form-data": InputSerializer,
        },
        responses={201: OutputSerializer, **error_codes(400, 401, 403, 404, 413, 422)},
    )
    def post(self, request: Request, pk: int) -> Response:
        user = staff_user(request)
        conversation = conversation_get_for_user(user=user, pk=pk)
        files = request.FILES.getlist("attachments") if request.FILES else []
        too_big = next((f for f in files if (f.size or 0) > settings.ATTACHMENT_MAX_BYTES), None)
        if too_big is not None:
            # Before reading the files into memory: the same answer the service gives.
            raise PayloadTooLarge(
                f"Attachment {too_big.name!r} has {too_big.size} bytes; the limit is "
                f"{settings.ATTACHMENT_MAX_BYTES} bytes. Nothing was stored."
            )
        serializer = self.InputSerializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        data = serializer.validated_data

        def reply() -> Response:
            message = conversation_reply(
                conversation=conversation,
                author=user,
                body=data["body"],
                channel_kind=data.get("channel"),
                internal=data["internal"],
                cc=data["cc"],
                bcc=data["bcc"],
                attachments=outbound_files(data["attachments"]),
            )
            return Response(self.OutputSerializer(message).data, status=status.HTTP_201_CREATED)

        return idempotent(request, reply)


class ConversationStatusApi(StaffApi):
    """No request body; answers with the conversation as it is after the change."""

    OutputSerializer = ConversationOutputSerializer
    # The service making the change: called as service(conversation=..., actor=...).
    service: ClassVar[Callable[..., object]]

    def post(self, request: Request, pk: int) -> Response:
        user = staff_user(request)
        conversation = conversation_get_for_user(user=user, pk=pk)
        expected_version = if_match_version(request)

        def change() -> Response:
            type(self).service(
                conversation=conversation, actor=user, expected_version=expected_version
            )
            changed = conversation_get_for_user(user=user, pk=pk)
            return with_etag(Response(self.OutputSerializer(changed).data), changed)

        return idempotent(request, change)


STATUS_RESPONSES = {200: ConversationOutputSerializer, **error_codes(400, 401, 403, 404, 409, 422)}
STATUS_PARAMETERS = [IF_MATCH_PARAMETER, IDEMPOTENCY_KEY_PARAMETER]


@extend_schema(
    tags=["conversations"],
    summary="Solve",
    description="Records a solve event; the resolution survey is scheduled. 409 if already solved.",
    request=None,
    parameters=STATUS_PARAMETERS,
    responses=STATUS_RESPONSES,
)
class ConversationSolveApi(ConversationStatusApi):
    service = staticmethod(conversation_solve)


@extend_schema(
    tags=["conversations"],
    summary="Reopen a solved or closed conversation",
    request=None,
    parameters=STATUS_PARAMETERS,
    responses=STATUS_RESPONSES,
)
class ConversationReopenApi(ConversationStatusApi):
    service = staticmethod(conversation_reopen)


@extend_schema(
    tags=["conversations"],
    summary="Wait on the customer (pending)",
    request=None,
    parameters=STATUS_PARAMETERS,
    responses=STATUS_RESPONSES,
)
class ConversationPendingApi(ConversationStatusApi):
    service = staticmethod(conversation_set_pending)


def agent_by_ref(ref: str) -> User:
    agent = staff_get_by_ref(ref=ref)
    if agent is None:
        raise serializers.ValidationError({"agent": [f"No agent {ref!r}."]})
    return agent


def team_by_ref(ref: str) -> Team:
    team = team_get_by_ref(ref=ref)
    if team is None:
        # The same answer as for another team's name (the service's rule): no probing.
        raise ApplicationError(TEAM_NOT_YOURS)
    return team


class ConversationAssignApi(StaffApi):
    class InputSerializer(serializers.Serializer[Any]):
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
        parameters=STATUS_PARAMETERS,
        request=InputSerializer,
        responses={200: OutputSerializer, **error_codes(400, 401, 403, 404, 409, 413, 422)},
    )
    def post(self, request: Request, pk: int) -> Response:
        user = staff_user(request)
        conversation = conversation_get_for_user(user=user, pk=pk)
        serializer = self.InputSerializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        data = serializer.validated_data
        agent_ref = data.get("agent")
        agent = agent_by_ref(agent_ref) if agent_ref else None
        team = team_by_ref(data["team"]) if data.get("team") else None
        expected_version = if_match_version(request)

        def assign() -> Response:
            changed = conversation_assign(
                conversation=conversation,
                actor=user,
                agent=agent,
                team=team,
                unassign="agent" in data and not agent_ref,
                expected_version=expected_version,
            )
            return with_etag(Response(self.OutputSerializer(changed).data), changed)

        return idempotent(request, assign)


class ConversationTakeNextApi(StaffApi):
    OutputSerializer = ConversationOutputSerializer

    @extend_schema(
        tags=["conversations"],
        summary="Take the next conversation",
        description="Assigns you the oldest unassigned new or open conversation of your teams "
        "and returns it. Concurrent callers never get the same one. 404 when there is nothing "
        "to take.",
        request=None,
        parameters=[IDEMPOTENCY_KEY_PARAMETER],
        responses={200: OutputSerializer, **error_codes(400, 401, 403, 404, 422)},
    )
    def post(self, request: Request) -> Response:
        user = staff_user(request)

        def take() -> Response:
            taken = conversation_take_next(agent=user)
            if taken is None:
                raise NothingToTake(
                    "Nothing to take: no unassigned new or open conversation in your teams."
                )
            taken = conversation_get_for_user(user=user, pk=taken.pk)
            return with_etag(Response(self.OutputSerializer(taken).data), taken)

        return idempotent(request, take)


class NothingToTake(ApplicationError):
    status = 404


class MessageMoveApi(StaffApi):
    class InputSerializer(serializers.Serializer[Any]):
        conversation = serializers.IntegerField(
            min_value=1, max_value=PK_MAX, help_text="Another conversation of the same customer."
        )

    OutputSerializer = MessageOutputSerializer

    @extend_schema(
        tags=["conversations"],
        summary="Move a message to another conversation",
        description="Both conversations' contacts are recounted.",
        request=InputSerializer,
        responses={200: OutputSerializer, **error_codes(400, 401, 403, 404, 413)},
    )
    def post(self, request: Request, pk: int) -> Response:
        user = staff_user(request)
        message = message_get_for_user(user=user, pk=pk)
        serializer = self.InputSerializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        target = conversation_get_for_user(user=user, pk=serializer.validated_data["conversation"])
        message = message_move(message=message, to_conversation=target, actor=user)
        return Response(self.OutputSerializer(message).data)
