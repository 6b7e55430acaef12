"""The agent workspace and the customer's chat page (namespace "workspace")."""

from django.urls import path

from tickets import views

app_name = "workspace"

urlpatterns = [
    path("conversations/take-next/", views.conversation_take_next, name="take-next"),
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
    path("customers/<int:pk>/merge/", views.customer_merge, name="customer-merge"),
    path("merges/<int:pk>/undo/", views.merge_undo, name="merge-undo"),
    path("settings/sending/", views.channel_sending_list, name="sending"),
    path("settings/sending/<int:pk>/", views.channel_sending_edit, name="sending-edit"),
    path("settings/channels/", views.channel_widget_list, name="channel-widgets"),
    path("settings/channels/<int:pk>/", views.channel_widget_edit, name="channel-widget-edit"),
    path("chat/", views.chat_page, name="chat"),
    path("chat/transcript/", views.chat_transcript, name="chat-transcript"),
    path("chat/end/", views.chat_end, name="chat-end"),
]
