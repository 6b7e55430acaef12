"""``/api/v1/notifications/``: the caller's notifications, and marking them read (docs/api.md)."""

from __future__ import annotations

from typing import Any

from drf_spectacular.utils import extend_schema
from rest_framework import serializers
from rest_framework.generics import GenericAPIView
from rest_framework.pagination import CursorPagination
from rest_framework.request import Request
from rest_framework.response import Response

from notifications.selectors import notification_bell, notification_page_for_user
from supportdesk.api import error_responses
from supportdesk.http import staff_user
from supportdesk.models import Notification
from supportdesk.services import notifications_mark_read
from tickets.api.common import BodyLimitMixin, StaffApi

ID_MAX = 2**63 - 1


class NotificationCursorPagination(CursorPagination):
    """Keyset pages, newest first; ``supportdesk_notif_recipient`` serves the ordering."""

    ordering = ("-created_at", "-id")
    page_size = 50
    page_size_query_param = "page_size"
    max_page_size = 200


class NotificationOutputSerializer(serializers.ModelSerializer[Notification]):
    conversation = serializers.SerializerMethodField(
        help_text="The conversation it is about (null for QA, survey and check-in notifications)."
    )
    reason = serializers.SerializerMethodField(
        help_text="customer_wrote, assigned, reopened or mentioned; null for other kinds."
    )
    read = serializers.SerializerMethodField()

    class Meta:
        model = Notification
        fields = [
            "id",
            "kind",
            "reason",
            "title",
            "body",
            "url",
            "conversation",
            "created_at",
            "read",
            "read_at",
        ]

    def get_conversation(self, obj: Notification) -> int | None:
        link = getattr(obj, "conversation_link", None)
        return link.conversation_id if link is not None else None

    def get_reason(self, obj: Notification) -> str | None:
        link = getattr(obj, "conversation_link", None)
        return link.reason if link is not None else None

    def get_read(self, obj: Notification) -> bool:
        return obj.read_at is not None


class NotificationListApi(BodyLimitMixin, GenericAPIView[Notification]):
    pagination_class = NotificationCursorPagination

    class FilterSerializer(serializers.Serializer[Any]):
        unread = serializers.BooleanField(
            required=False, default=False, help_text="true: unread ones only."
        )

    @extend_schema(
        tags=["notifications"],
        summary="The caller's notifications",
        description="Newest first; cursor-paginated (`?cursor=`, `?page_size=` up to 200).",
        parameters=[FilterSerializer],
        # 404: an invalid ?cursor= (DRF's cursor pagination).
        responses={
            200: NotificationOutputSerializer(many=True),
            **error_responses(400, 401, 403, 404),
        },
    )
    def get(self, request: Request) -> Response:
        user = staff_user(request)
        filters = self.FilterSerializer(data=request.query_params)
        filters.is_valid(raise_exception=True)
        notifications = notification_page_for_user(
            user=user, unread_only=filters.validated_data["unread"]
        )
        page = self.paginate_queryset(notifications)
        output = NotificationOutputSerializer(page, many=True)
        return self.get_paginated_response(output.data)


class NotificationMarkReadApi(StaffApi):
    class InputSerializer(serializers.Serializer[Any]):
        ids = serializers.ListField(
            child=serializers.IntegerField(min_value=1, max_value=ID_MAX),
            required=False,
            max_length=1000,
            help_text="The notifications to mark read; the caller's own only (others are ignored).",
        )
        all = serializers.BooleanField(required=False, default=False, help_text="Every unread one.")

        def validate(self, attrs: dict[str, Any]) -> dict[str, Any]:
            if not attrs.get("all") and not attrs.get("ids"):
                raise serializers.ValidationError('Give "ids" (a non-empty list) or "all": true.')
            if attrs.get("all") and attrs.get("ids"):
                raise serializers.ValidationError('Give "ids" or "all", not both.')
            return attrs

    class OutputSerializer(serializers.Serializer[Any]):
        marked = serializers.IntegerField(help_text="How many were unread and are now read.")
        unread = serializers.IntegerField(help_text="How many stay unread.")

    @extend_schema(
        tags=["notifications"],
        summary="Mark notifications read",
        request=InputSerializer,
        responses={200: OutputSerializer, **error_responses(400, 401, 403)},
    )
    def post(self, request: Request) -> Response:
        user = staff_user(request)
        data = self.InputSerializer(data=request.data)
        data.is_valid(raise_exception=True)
        ids = None if data.validated_data["all"] else data.validated_data["ids"]
        marked = notifications_mark_read(recipient=user, ids=ids)
        unread = notification_bell(user=user, limit=1).unread
        return Response(self.OutputSerializer({"marked": marked, "unread": unread}).data)
