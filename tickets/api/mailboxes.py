"""Mailbox health (admins) and the channel list (staff). Neither ever shows a credential or secret."""

from __future__ import annotations

from typing import Any

from drf_spectacular.utils import extend_schema
from rest_framework import serializers
from rest_framework.generics import GenericAPIView
from rest_framework.request import Request
from rest_framework.response import Response

from supportdesk.permissions import IsAdmin
from tickets.api.common import error_codes
from tickets.models import Channel, Mailbox
from tickets.selectors import channel_list, mailbox_list


class MailboxListApi(GenericAPIView[Mailbox]):
    """Every mailbox and its health: the last good poll, the last error, failures in a row."""

    permission_classes = [IsAdmin]
    # A bare list (docs/api.md): a desk has a handful of mailboxes and channels, never pages.
    pagination_class = None

    class OutputSerializer(serializers.ModelSerializer[Mailbox]):
        name = serializers.CharField(source="channel.name")
        address = serializers.CharField(source="channel.address")
        channel = serializers.IntegerField(source="channel_id")
        team = serializers.CharField(source="channel.team.name", default=None)
        healthy = serializers.BooleanField()
        progress = serializers.SerializerMethodField(
            help_text="Messages done and found by the running (or last) poll."
        )

        class Meta:
            model = Mailbox
            fields = [
                "id",
                "name",
                "address",
                "channel",
                "team",
                "is_active",
                "imap_host",
                "imap_port",
                "imap_security",
                "username",
                "folder",
                "after_import",
                "move_to_folder",
                "auth",
                "oauth_provider",
                "smtp_host",
                "last_poll_at",
                "last_success_at",
                "last_error",
                "consecutive_failures",
                "failing_since",
                "healthy",
                "progress",
            ]

        def get_progress(self, mailbox: Mailbox) -> dict[str, int]:
            return {"done": mailbox.progress_done, "total": mailbox.progress_total}

    @extend_schema(
        tags=["mailboxes"],
        summary="Mailboxes and their health (admins)",
        responses={200: OutputSerializer(many=True), **error_codes(401, 403)},
    )
    def get(self, request: Request) -> Response:
        return Response(self.OutputSerializer(mailbox_list().order_by("pk"), many=True).data)

    def get_queryset(self) -> Any:
        return mailbox_list()


class ChannelListApi(GenericAPIView[Channel]):
    """The active channels, for any member of staff; never a channel secret."""

    pagination_class = None

    class OutputSerializer(serializers.ModelSerializer[Channel]):
        team = serializers.CharField(source="team.name", default=None)

        class Meta:
            model = Channel
            fields = ["id", "kind", "name", "team", "address"]

    @extend_schema(
        tags=["channels"],
        summary="Channels (staff)",
        responses={200: OutputSerializer(many=True), **error_codes(401, 403)},
    )
    def get(self, request: Request) -> Response:
        return Response(self.OutputSerializer(channel_list().order_by("pk"), many=True).data)

    def get_queryset(self) -> Any:
        return channel_list()
