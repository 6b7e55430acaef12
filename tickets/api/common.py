"""What every tickets API view shares: body limits, ETags and If-Match, shared output shapes."""

from __future__ import annotations

import io
from typing import IO, Any

from django.conf import settings
from django.core.exceptions import RequestDataTooBig
from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import (
    OpenApiParameter,
    OpenApiResponse,
    extend_schema_field,
    extend_schema_serializer,
)
from rest_framework import serializers
from rest_framework.parsers import BaseParser, JSONParser
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from supportdesk.api import error_responses
from supportdesk.errors import ApplicationError, PayloadTooLarge
from supportdesk.models import Team, User
from tickets.models import (
    Attachment,
    Call,
    ChannelKind,
    Contact,
    Conversation,
    Customer,
    CustomerMerge,
    Identity,
    Message,
)

BODY_MAX_CHARS = 100_000
ID_MAX_CHARS = 255
# Ids in bodies and query strings stay within bigint (SQLite raises OverflowError beyond it).
PK_MAX = 2**63 - 1

# --- Request size -----------------------------------------------------------------------------------


def too_large(size: int | None = None) -> PayloadTooLarge:
    limit = settings.DATA_UPLOAD_MAX_MEMORY_SIZE
    size_text = f"has {size} bytes" if size is not None else "is too large"
    return PayloadTooLarge(
        f"The request body {size_text}; the limit is {limit} bytes. Nothing was stored."
    )


def read_bounded(stream: IO[bytes]) -> bytes:
    """Read at most DATA_UPLOAD_MAX_MEMORY_SIZE bytes: a lying Content-Length cannot exhaust us."""
    limit = settings.DATA_UPLOAD_MAX_MEMORY_SIZE
    data = stream.read(limit + 1)
    if len(data) > limit:
        raise too_large()
    return data


class BoundedJSONParser(JSONParser):
    def parse(self, stream: Any, media_type: str | None = None, parser_context: Any = None) -> Any:
        return super().parse(io.BytesIO(read_bounded(stream)), media_type, parser_context)


class RFC822Parser(BaseParser):
    """``message/rfc822``: the body is the raw message; ``request.data`` is its bytes."""

    media_type = "message/rfc822"

    # DRF takes whatever a parser returns as request.data; the stubs allow mappings only.
    def parse(  # type: ignore[override]
        self, stream: IO[bytes], media_type: str | None = None, parser_context: Any = None
    ) -> bytes:
        return read_bounded(stream)


class BodyLimitMixin(APIView):
    """413 for a body over DATA_UPLOAD_MAX_MEMORY_SIZE, decided from Content-Length before reading.

    DRF reads the WSGI stream itself and so skips Django's own check; without this a large body
    would be read whole (or surface as a 500 from ``RequestDataTooBig``).
    """

    def initial(self, request: Request, *args: Any, **kwargs: Any) -> None:
        super().initial(request, *args, **kwargs)
        try:
            length = int(request.META.get("CONTENT_LENGTH") or 0)
        except ValueError:
            length = 0
        if length > settings.DATA_UPLOAD_MAX_MEMORY_SIZE:
            raise too_large(length)

    def handle_exception(self, exc: Exception) -> Response:
        if isinstance(exc, RequestDataTooBig):
            exc = too_large()
        return super().handle_exception(exc)


class StaffApi(BodyLimitMixin, APIView):
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


def conversation_etag(conversation: Conversation) -> str:
    return f'"{conversation.version}"'


def if_match_version(request: Request) -> int | None:
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


def with_etag(response: Response, conversation: Conversation) -> Response:
    response["ETag"] = conversation_etag(conversation)
    return response


# --- Shared output shapes ----------------------------------------------------------------------------


def error_codes(*codes: int) -> dict[int, OpenApiResponse]:
    return error_responses(*codes)


class UserRefSerializer(serializers.Serializer[User]):
    id = serializers.IntegerField()
    email = serializers.EmailField()
    full_name = serializers.CharField()


class TeamRefSerializer(serializers.Serializer[Team]):
    id = serializers.IntegerField()
    name = serializers.CharField()


class CustomerRefSerializer(serializers.Serializer[Customer]):
    id = serializers.IntegerField()
    name = serializers.CharField()


class ConversationSummarySerializer(serializers.Serializer[Conversation]):
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
    priority = serializers.ChoiceField(choices=Conversation.Priority.choices)
    tags = serializers.SerializerMethodField(help_text="Tag names, by name.")
    spam_at = serializers.DateTimeField(
        allow_null=True, help_text="When it was marked as spam (null: not spam)."
    )

    @extend_schema_field(serializers.ListField(child=serializers.CharField()))
    def get_tags(self, conversation: Conversation) -> list[str]:
        # The selectors prefetch tags in name order: no query per row.
        return [tag.name for tag in conversation.tags.all()]


class AttachmentOutputSerializer(serializers.Serializer[Attachment]):
    id = serializers.IntegerField()
    filename = serializers.CharField()
    content_type = serializers.CharField()
    size = serializers.IntegerField()


class ContactRefSerializer(serializers.Serializer[Contact]):
    id = serializers.IntegerField()
    reason = serializers.ChoiceField(choices=Contact.Reason.choices)
    channel = serializers.ChoiceField(source="channel_kind", choices=ChannelKind.choices)


class CallOutputSerializer(serializers.Serializer[Contact]):
    wait_seconds = serializers.IntegerField(allow_null=True)
    talk_seconds = serializers.IntegerField(allow_null=True)
    hold_seconds = serializers.IntegerField(allow_null=True)
    wrap_seconds = serializers.IntegerField(allow_null=True)
    ended_by = serializers.CharField()
    agent = serializers.IntegerField(source="agent_id", allow_null=True)
    direction = serializers.CharField(
        default="inbound", help_text="inbound (the customer called) or outbound (we called)."
    )


def message_call(message: Message) -> dict[str, Any] | None:
    """A phone message's call: the contact's times for a call the customer made, the logged
    call's for one the desk made (no query when the message was read with ``call_log``)."""
    if message.channel_kind != ChannelKind.PHONE:
        return None
    contact = message.contact
    if contact is not None and message.direction == Message.Direction.INBOUND:
        return {**CallOutputSerializer(contact).data, "direction": "inbound"}
    try:
        log = message.call_log
    except Call.DoesNotExist:
        return None
    return {
        "wait_seconds": log.wait_seconds,
        "talk_seconds": log.talk_seconds,
        "hold_seconds": log.hold_seconds,
        "wrap_seconds": None,
        "ended_by": log.ended_by,
        "agent": log.logged_by_id,
        "direction": log.direction,
    }


class MessageOutputSerializer(serializers.Serializer[Message]):
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
        help_text="Non-empty for auto-replies, bounces and list mail, and for the desk's own "
        'automated messages on a chat or social channel ("survey": the survey link).'
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
    cc = serializers.ListField(
        child=serializers.CharField(), help_text="Email: the addresses copied."
    )
    bcc = serializers.ListField(
        child=serializers.CharField(), help_text="Email replies: the blind copies."
    )

    @extend_schema_field(serializers.ChoiceField(choices=ChannelKind.choices, allow_null=True))
    def get_channel(self, message: Message) -> str | None:
        return message.channel_kind or None

    @extend_schema_field(CallOutputSerializer(allow_null=True))
    def get_call(self, message: Message) -> dict[str, Any] | None:
        return message_call(message)


class IdentityOutputSerializer(serializers.Serializer[Identity]):
    id = serializers.IntegerField()
    kind = serializers.ChoiceField(choices=Identity.Kind.choices)
    value = serializers.CharField()
    display_value = serializers.CharField()
    verified = serializers.BooleanField()
    undeliverable_at = serializers.DateTimeField(allow_null=True)


class MergeOutputSerializer(serializers.Serializer[CustomerMerge]):
    id = serializers.IntegerField()
    target = serializers.IntegerField(source="target_id")
    merged = serializers.IntegerField(source="merged_id")
    identity_ids = serializers.ListField(child=serializers.IntegerField())
    conversation_ids = serializers.ListField(child=serializers.IntegerField())
    created_at = serializers.DateTimeField()
    undone_at = serializers.DateTimeField(allow_null=True)


def name_schema_components(namespace: dict[str, Any]) -> None:
    """Every view nests an ``InputSerializer``/``OutputSerializer``; the schema needs unique names.

    ``ConversationReplyApi.InputSerializer`` becomes the component ``ConversationReplyInput``.
    Shared serializers (assigned, not nested) keep their own names.
    """
    for view in list(namespace.values()):
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
