from django.contrib import admin

from tickets.models import (
    Attachment,
    Channel,
    Contact,
    Conversation,
    Customer,
    CustomerMerge,
    Event,
    Identity,
    Message,
    QuarantinedMessage,
    SavedReply,
)


class ReadOnlyAdmin(admin.ModelAdmin):
    """Audit and log records: visible, never edited by hand."""

    def has_add_permission(self, request):  # type: ignore[no-untyped-def]
        return False

    def has_change_permission(self, request, obj=None):  # type: ignore[no-untyped-def]
        return False

    def has_delete_permission(self, request, obj=None):  # type: ignore[no-untyped-def]
        return False


class IdentityInline(admin.TabularInline):
    model = Identity
    extra = 0
    fields = ["kind", "value", "display_value", "verified", "undeliverable_at"]


@admin.register(Customer)
class CustomerAdmin(admin.ModelAdmin):
    list_display = ["id", "name", "merged_into", "created_at"]
    search_fields = ["name", "identities__value"]
    raw_id_fields = ["merged_into"]
    inlines = [IdentityInline]


@admin.register(Identity)
class IdentityAdmin(admin.ModelAdmin):
    list_display = ["kind", "value", "customer", "verified", "undeliverable_at"]
    list_filter = ["kind", "verified"]
    search_fields = ["value", "display_value"]
    raw_id_fields = ["customer"]


@admin.register(Channel)
class ChannelAdmin(admin.ModelAdmin):
    list_display = ["name", "kind", "team", "address", "webhook_url", "is_active"]
    # Shown to admins on the change page; rotated with `manage.py create_channel ... --rotate-secret`.
    readonly_fields = ["secret"]
    list_filter = ["kind", "is_active"]
    search_fields = ["name", "address"]


class MessageInline(admin.TabularInline):
    model = Message
    extra = 0
    fields = [
        "sent_at",
        "direction",
        "channel_kind",
        "author",
        "body_text",
        "automated",
        "delivery_state",
    ]
    readonly_fields = fields
    can_delete = False
    show_change_link = True


@admin.register(Conversation)
class ConversationAdmin(admin.ModelAdmin):
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
    search_fields = ["subject", "customer__name", "customer__identities__value"]
    raw_id_fields = ["customer", "assignee", "follow_up_of"]
    readonly_fields = ["contacts_counted", "channels", "version"]
    inlines = [MessageInline]


@admin.register(Message)
class MessageAdmin(admin.ModelAdmin):
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
    raw_id_fields = ["conversation", "contact", "author", "identity", "channel"]


@admin.register(Contact)
class ContactAdmin(ReadOnlyAdmin):
    list_display = ["id", "conversation", "channel_kind", "reason", "started_at", "ended_by"]
    list_filter = ["channel_kind", "reason"]


@admin.register(Attachment)
class AttachmentAdmin(admin.ModelAdmin):
    list_display = ["filename", "content_type", "size", "message"]
    raw_id_fields = ["message"]


@admin.register(QuarantinedMessage)
class QuarantinedMessageAdmin(admin.ModelAdmin):
    list_display = ["id", "source", "channel", "error", "created_at", "resolved_at"]
    list_filter = ["source"]
    readonly_fields = ["channel", "source", "error", "created_at"]


@admin.register(Event)
class EventAdmin(ReadOnlyAdmin):
    list_display = ["occurred_at", "kind", "conversation", "customer", "actor", "agent", "team"]
    list_filter = ["kind"]
    date_hierarchy = "occurred_at"


@admin.register(CustomerMerge)
class CustomerMergeAdmin(ReadOnlyAdmin):
    list_display = ["created_at", "merged", "target", "actor", "undone_at"]


@admin.register(SavedReply)
class SavedReplyAdmin(admin.ModelAdmin):
    """Macros for the composer: ``{customer_first_name}`` and ``{agent_first_name}`` are filled in."""

    list_display = ["title", "is_active", "updated_at"]
    list_filter = ["is_active"]
    search_fields = ["title", "body"]
