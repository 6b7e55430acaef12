"""Admin: the desk's records, read-only; changes go through admin actions that call the services.

A direct edit of a conversation's status or assignee, a customer's merge or an identity's customer
would record no event, bump no version, write no audit entry and reach no outbox, so scorecards
and surveys would silently disagree with the page. Channels and saved replies keep a change form
whose save calls the service.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING, Any, TypeVar

from django import forms
from django.contrib import admin, messages
from django.db.models import Model, QuerySet
from django.http import HttpRequest

from supportdesk.admin import ModelAdmin, ReadOnlyAdmin, ReadOnlyInline
from supportdesk.errors import ApplicationError
from supportdesk.http import staff_user
from supportdesk.urlguard import UnsafeURL, check_webhook_url
from tickets.models import (
    Attachment,
    Channel,
    ChannelKind,
    Contact,
    Conversation,
    Customer,
    CustomerMerge,
    Event,
    Identity,
    Message,
    Organisation,
    QuarantinedMessage,
    SavedReply,
)
from tickets.services import (
    channel_create_or_update,
    channel_rotate_secret,
    channel_set_webhook,
    conversation_assign,
    conversation_close,
    conversation_reopen,
    conversation_solve,
    organisation_create_or_update,
    saved_reply_create_or_update,
)

_M = TypeVar("_M", bound=Model)

# ModelForm is generic to the type checker only (see supportdesk.admin).
if TYPE_CHECKING:
    _ChannelModelForm = forms.ModelForm[Channel]
    _SavedReplyModelForm = forms.ModelForm[SavedReply]
else:
    _ChannelModelForm = _SavedReplyModelForm = forms.ModelForm


def _each(
    modeladmin: admin.ModelAdmin[_M],
    request: HttpRequest,
    rows: QuerySet[_M],
    verb: str,
    change: Callable[[_M], object],
) -> None:
    """Apply one service call per selected row; report what was done and what was refused."""
    done, refused = 0, []
    for row in rows:
        try:
            change(row)
        except ApplicationError as exc:
            refused.append(f"#{row.pk}: {exc.message}")
        else:
            done += 1
    if done:
        modeladmin.message_user(request, f"{verb}: {done}.", messages.SUCCESS)
    for line in refused:
        modeladmin.message_user(request, line, messages.ERROR)


class IdentityInline(ReadOnlyInline[Identity, Customer]):
    model = Identity
    readonly_fields = ("kind", "value", "display_value", "verified", "undeliverable_at")
    fields = readonly_fields


@admin.register(Customer)
class CustomerAdmin(ReadOnlyAdmin[Customer]):
    """Merges and their undo happen on the customer page, which records and can undo them."""

    list_display = ["id", "name", "organisation", "language", "merged_into", "created_at"]
    list_select_related = ["organisation"]
    search_fields = ["name", "identities__value", "organisation__name"]
    inlines = [IdentityInline]


@admin.register(Identity)
class IdentityAdmin(ReadOnlyAdmin[Identity]):
    list_display = ["kind", "value", "customer", "verified", "undeliverable_at"]
    list_filter = ["kind", "verified"]
    search_fields = ["value", "display_value"]
    list_select_related = ["customer"]


if TYPE_CHECKING:
    _OrganisationModelForm = forms.ModelForm[Organisation]
else:
    _OrganisationModelForm = forms.ModelForm


class OrganisationForm(_OrganisationModelForm):
    class Meta:
        model = Organisation
        fields = ["name", "domain", "notes"]
        help_texts = {
            "domain": "Customers with an email address at this domain (example.com) are linked "
            "to this organisation, now and as they arrive. Empty: linked by hand only.",
        }

    def clean_domain(self) -> str:
        domain = (self.cleaned_data.get("domain") or "").strip().lower().lstrip("@")
        return domain


@admin.register(Organisation)
class OrganisationAdmin(ModelAdmin[Organisation]):
    """Saved through organisation_create_or_update: setting a domain links its customers."""

    form = OrganisationForm
    list_display = ["name", "domain", "updated_at"]
    search_fields = ["name", "domain"]

    def has_delete_permission(self, request: HttpRequest, obj: Organisation | None = None) -> bool:
        return False  # customers keep pointing at it; clear the domain instead

    def save_model(
        self, request: HttpRequest, obj: Organisation, form: OrganisationForm, change: bool
    ) -> None:
        data = form.cleaned_data
        try:
            organisation, linked = organisation_create_or_update(
                name=data["name"],
                domain=data.get("domain", ""),
                notes=data.get("notes", ""),
                organisation=Organisation.objects.get(pk=obj.pk) if obj.pk else None,
                actor=staff_user(request),
            )
        except ApplicationError as exc:
            messages.error(request, str(exc))
            return
        obj.pk = organisation.pk
        if linked:
            messages.info(
                request, f"{linked} customer{'s' if linked != 1 else ''} linked by domain."
            )


class ChannelForm(_ChannelModelForm):
    webhook_url = forms.URLField(required=False, assume_scheme="https", max_length=200)

    class Meta:
        model = Channel
        fields = ["name", "kind", "team", "address", "webhook_url"]

    def clean(self) -> dict[str, Any]:
        data = super().clean() or {}
        kind = data.get("kind") or self.instance.kind
        if data.get("webhook_url") and kind not in (ChannelKind.CHAT, ChannelKind.SOCIAL):
            self.add_error("webhook_url", "Only chat and social channels deliver by webhook.")
        elif data.get("webhook_url") and data["webhook_url"] != self.instance.webhook_url:
            try:
                check_webhook_url(data["webhook_url"])
            except UnsafeURL as exc:
                self.add_error("webhook_url", exc.message)
        return data


@admin.register(Channel)
class ChannelAdmin(ModelAdmin[Channel]):
    """Saved through channel_create_or_update and channel_set_webhook (audited, validated)."""

    form = ChannelForm
    list_display = ["name", "kind", "team", "address", "webhook_url", "is_active"]
    list_filter = ["kind", "is_active"]
    search_fields = ["name", "address"]
    # Admins see the secret on the change page; the action below rotates it.
    readonly_fields = ["secret", "is_active"]
    actions = ["rotate_secret"]

    def get_readonly_fields(self, request: HttpRequest, obj: Channel | None = None) -> list[str]:
        # The name is the channel's key in channel_create_or_update; kind and name are fixed once made.
        fixed = ["name", "kind"] if obj is not None else []
        return [*fixed, *self.readonly_fields]

    def has_delete_permission(self, request: HttpRequest, obj: Channel | None = None) -> bool:
        return False  # conversations and messages keep pointing at it

    def save_model(
        self, request: HttpRequest, obj: Channel, form: ChannelForm, change: bool
    ) -> None:
        data = form.cleaned_data
        channel = channel_create_or_update(
            kind=data.get("kind") or obj.kind,
            name=data.get("name") or obj.name,
            team_name=data["team"].name if data.get("team") else None,
            address=data.get("address", ""),
            actor=staff_user(request),
        )
        if (data.get("webhook_url") or "") != channel.webhook_url:
            channel = channel_set_webhook(
                channel=channel, webhook_url=data.get("webhook_url") or ""
            )
        obj.pk = channel.pk

    @admin.action(description="Rotate the secret (the old one stops working at once)")
    def rotate_secret(self, request: HttpRequest, queryset: QuerySet[Channel]) -> None:
        actor = staff_user(request)
        _each(
            self,
            request,
            queryset,
            "Secrets rotated",
            lambda channel: channel_rotate_secret(channel=channel, actor=actor),
        )


class MessageInline(ReadOnlyInline[Message, Conversation]):
    model = Message
    readonly_fields = (
        "sent_at",
        "direction",
        "channel_kind",
        "author",
        "body_text",
        "automated",
        "delivery_state",
    )
    fields = readonly_fields


@admin.register(Conversation)
class ConversationAdmin(ReadOnlyAdmin[Conversation]):
    list_display = [
        "id",
        "subject",
        "customer",
        "status",
        "team",
        "assignee",
        "contacts_counted",
        "last_activity_at",
    ]
    list_filter = ["status", "team"]
    list_select_related = ["customer", "team", "assignee"]
    search_fields = ["subject", "customer__name", "customer__identities__value"]
    inlines = [MessageInline]
    actions = ["solve", "reopen", "close", "unassign"]

    @admin.action(description="Solve (as you; schedules the survey)")
    def solve(self, request: HttpRequest, queryset: QuerySet[Conversation]) -> None:
        actor = staff_user(request)
        _each(
            self,
            request,
            queryset,
            "Solved",
            lambda conversation: conversation_solve(conversation=conversation, actor=actor),
        )

    @admin.action(description="Reopen")
    def reopen(self, request: HttpRequest, queryset: QuerySet[Conversation]) -> None:
        actor = staff_user(request)
        _each(
            self,
            request,
            queryset,
            "Reopened",
            lambda conversation: conversation_reopen(
                conversation=conversation, actor=actor, reason="Reopened in the admin"
            ),
        )

    @admin.action(description="Close")
    def close(self, request: HttpRequest, queryset: QuerySet[Conversation]) -> None:
        actor = staff_user(request)
        _each(
            self,
            request,
            queryset,
            "Closed",
            lambda conversation: conversation_close(
                conversation=conversation, actor=actor, reason="Closed in the admin"
            ),
        )

    @admin.action(description="Unassign (back to the team's queue)")
    def unassign(self, request: HttpRequest, queryset: QuerySet[Conversation]) -> None:
        actor = staff_user(request)
        _each(
            self,
            request,
            queryset,
            "Unassigned",
            lambda conversation: conversation_assign(
                conversation=conversation, actor=actor, unassign=True
            ),
        )


@admin.register(Message)
class MessageAdmin(ReadOnlyAdmin[Message]):
    list_display = [
        "id",
        "conversation",
        "direction",
        "channel_kind",
        "automated",
        "delivery_state",
        "sent_at",
    ]
    list_filter = ["direction", "channel_kind", "delivery_state"]
    search_fields = ["external_id", "message_id", "subject"]


@admin.register(Contact)
class ContactAdmin(ReadOnlyAdmin[Contact]):
    list_display = ["id", "conversation", "channel_kind", "reason", "started_at", "ended_by"]
    list_filter = ["channel_kind", "reason"]


@admin.register(Attachment)
class AttachmentAdmin(ReadOnlyAdmin[Attachment]):
    list_display = ["filename", "content_type", "size", "message"]


@admin.register(QuarantinedMessage)
class QuarantinedMessageAdmin(ReadOnlyAdmin[QuarantinedMessage]):
    list_display = ["id", "source", "channel", "error", "created_at", "resolved_at"]
    list_filter = ["source"]


@admin.register(Event)
class EventAdmin(ReadOnlyAdmin[Event]):
    list_display = ["occurred_at", "kind", "conversation", "customer", "actor", "agent", "team"]
    list_filter = ["kind"]
    date_hierarchy = "occurred_at"


@admin.register(CustomerMerge)
class CustomerMergeAdmin(ReadOnlyAdmin[CustomerMerge]):
    list_display = ["created_at", "merged", "target", "actor", "undone_at"]


class SavedReplyForm(_SavedReplyModelForm):
    class Meta:
        model = SavedReply
        fields = [
            "title",
            "body",
            "is_active",
            "add_tags",
            "set_priority",
            "set_status",
            "set_assignee",
        ]

    def clean(self) -> dict[str, Any]:
        data = super().clean() or {}
        does_something = data.get("add_tags") or any(
            data.get(name) for name in ("set_priority", "set_status", "set_assignee")
        )
        if not (data.get("body") or "").strip() and not does_something:
            raise forms.ValidationError("A saved reply needs a body, or something it sets.")
        return data


@admin.register(SavedReply)
class SavedReplyAdmin(ModelAdmin[SavedReply]):
    """Macros for the composer: ``{customer_first_name}`` and ``{agent_first_name}`` are filled in.
    Run in one click from a conversation, a macro also adds its tags and sets its priority,
    assignee and status.

    Saved through saved_reply_create_or_update (keyed by title, trimmed and validated there).
    """

    form = SavedReplyForm
    list_display = ["title", "is_active", "updated_at"]
    list_filter = ["is_active"]
    search_fields = ["title", "body"]

    def get_readonly_fields(self, request: HttpRequest, obj: SavedReply | None = None) -> list[str]:
        return ["title"] if obj is not None else []

    def save_model(
        self, request: HttpRequest, obj: SavedReply, form: SavedReplyForm, change: bool
    ) -> None:
        data = form.cleaned_data
        reply = saved_reply_create_or_update(
            title=data.get("title") or obj.title,
            body=data["body"],
            is_active=data["is_active"],
            add_tags=list(data.get("add_tags") or []),
            set_priority=data.get("set_priority") or "",
            set_status=data.get("set_status") or "",
            set_assignee=data.get("set_assignee") or "",
        )
        obj.pk = reply.pk

    def save_related(self, request: HttpRequest, form: Any, formsets: Any, change: bool) -> None:
        """The service already set the macro's tags (``add_tags``)."""
