"""The agent workspace and the customer's chat page (namespace "workspace")."""

from django.urls import path

from tickets import (
    customer_views,
    privacy_views,
    saved_reply_views,
    views,
    views_channels,
    views_chat,
    views_triage,
)

app_name = "workspace"

urlpatterns = [
    path("conversations/take-next/", views.conversation_take_next, name="take-next"),
    path("conversations/new/", customer_views.conversation_new, name="conversation-new"),
    path(
        "conversations/<int:pk>/calls/",
        customer_views.conversation_call,
        name="conversation-call",
    ),
    path("customers/", customer_views.customer_list, name="customers"),
    path("customers/new/", customer_views.customer_new, name="customer-new"),
    path("customers/<int:pk>/", customer_views.customer_detail, name="customer"),
    path("customers/<int:pk>/edit/", customer_views.customer_edit, name="customer-edit"),
    path("customers/<int:pk>/calls/", customer_views.customer_call, name="customer-call"),
    path("customers/<int:pk>/erase/", customer_views.customer_erase, name="customer-erase"),
    path("customers/<int:pk>/export/", customer_views.customer_export, name="customer-export"),
    path("lookup/", customer_views.lookup, name="lookup"),
    path("privacy/retention/", privacy_views.retention_page, name="retention"),
    path("conversations/bulk/", views_triage.conversations_bulk, name="bulk"),
    path(
        "conversations/<int:pk>/triage/",
        views_triage.conversation_triage,
        name="conversation-triage",
    ),
    path("conversations/<int:pk>/spam/", views_triage.conversation_spam, name="conversation-spam"),
    path(
        "conversations/<int:pk>/not-spam/",
        views_triage.conversation_not_spam,
        name="conversation-not-spam",
    ),
    path(
        "conversations/<int:pk>/macro/", views_triage.conversation_macro, name="conversation-macro"
    ),
    path("views/", views_triage.saved_view_create, name="saved-view-create"),
    path("views/delete/", views_triage.saved_view_delete, name="saved-view-delete"),
    path("saved-replies/", saved_reply_views.saved_reply_list, name="saved-replies"),
    path("saved-replies/<int:pk>/", saved_reply_views.saved_reply_edit, name="saved-reply-edit"),
    path(
        "saved-replies/<int:pk>/delete/",
        saved_reply_views.saved_reply_delete_view,
        name="saved-reply-delete",
    ),
    path("tags/", views_triage.tags_page, name="tags"),
    path("tags/<int:pk>/", views_triage.tag_update, name="tag-update"),
    path("conversations/<int:pk>/", views.conversation_detail, name="conversation"),
    path("conversations/<int:pk>/reply/", views.conversation_reply, name="conversation-reply"),
    path("conversations/<int:pk>/take/", views.conversation_take, name="conversation-take"),
    path(
        "conversations/<int:pk>/pending/", views.conversation_pending, name="conversation-pending"
    ),
    path("conversations/<int:pk>/solve/", views.conversation_solve, name="conversation-solve"),
    path("conversations/<int:pk>/reopen/", views.conversation_reopen, name="conversation-reopen"),
    path("conversations/<int:pk>/assign/", views.conversation_assign, name="conversation-assign"),
    path(
        "conversations/<int:pk>/presence/",
        views.conversation_presence,
        name="conversation-presence",
    ),
    path(
        "conversations/<int:pk>/presence/leave/",
        views.conversation_presence_leave,
        name="conversation-presence-leave",
    ),
    path("messages/<int:pk>/move/", views.message_move, name="message-move"),
    path("messages/<int:pk>/html/", views.message_html, name="message-html"),
    path("attachments/<int:pk>/", views.attachment_download, name="attachment"),
    path(
        "customers/<int:pk>/identities/",
        views.customer_link_identity,
        name="customer-link-identity",
    ),
    path("customers/<int:pk>/language/", views.customer_language, name="customer-language"),
    path("customers/<int:pk>/merge/", views.customer_merge, name="customer-merge"),
    path("merges/<int:pk>/undo/", views.merge_undo, name="merge-undo"),
    path("settings/sending/", views.channel_sending_list, name="sending"),
    path("settings/sending/<int:pk>/", views.channel_sending_edit, name="sending-edit"),
    path("settings/channels/", views_channels.channel_widget_list, name="channel-widgets"),
    path(
        "settings/channels/<int:pk>/",
        views_channels.channel_widget_edit,
        name="channel-widget-edit",
    ),
    path(
        "settings/channels/<int:pk>/rotate-secret/",
        views_channels.channel_secret_rotate,
        name="channel-secret-rotate",
    ),
    path("chat/", views_chat.chat_page, name="chat"),
    path("chat/transcript/", views_chat.chat_transcript, name="chat-transcript"),
    path("chat/end/", views_chat.chat_end, name="chat-end"),
]
