"""/api/v1/: one path per operation (see docs/api.md)."""

from django.urls import path

from tickets import api

app_name = "tickets"

urlpatterns = [
    path("inbound/email/", api.InboundEmailApi.as_view(), name="inbound-email"),
    path("inbound/chat/", api.InboundChatApi.as_view(), name="inbound-chat"),
    path("inbound/social/", api.InboundSocialApi.as_view(), name="inbound-social"),
    path("inbound/phone/", api.InboundPhoneApi.as_view(), name="inbound-phone"),
    path("inbound/queue/<int:pk>/", api.InboundQueueItemApi.as_view(), name="inbound-queue-item"),
    path("mailboxes/", api.MailboxListApi.as_view(), name="mailbox-list"),
    path("channels/", api.ChannelListApi.as_view(), name="channel-list"),
    path("conversations/", api.ConversationListApi.as_view(), name="conversation-list"),
    path(
        "conversations/take-next/",
        api.ConversationTakeNextApi.as_view(),
        name="conversation-take-next",
    ),
    path(
        "conversations/<int:pk>/", api.ConversationDetailApi.as_view(), name="conversation-detail"
    ),
    path(
        "conversations/<int:pk>/replies/",
        api.ConversationReplyApi.as_view(),
        name="conversation-reply",
    ),
    path(
        "conversations/<int:pk>/solve/",
        api.ConversationSolveApi.as_view(),
        name="conversation-solve",
    ),
    path(
        "conversations/<int:pk>/reopen/",
        api.ConversationReopenApi.as_view(),
        name="conversation-reopen",
    ),
    path(
        "conversations/<int:pk>/pending/",
        api.ConversationPendingApi.as_view(),
        name="conversation-pending",
    ),
    path(
        "conversations/<int:pk>/assign/",
        api.ConversationAssignApi.as_view(),
        name="conversation-assign",
    ),
    path(
        "conversations/<int:pk>/calls/",
        api.ConversationCallLogApi.as_view(),
        name="conversation-calls",
    ),
    path("messages/<int:pk>/move/", api.MessageMoveApi.as_view(), name="message-move"),
    path("customers/", api.CustomerListApi.as_view(), name="customer-list"),
    path("customers/<int:pk>/", api.CustomerDetailApi.as_view(), name="customer-detail"),
    path("customers/<int:pk>/merge/", api.CustomerMergeApi.as_view(), name="customer-merge"),
    path("customers/<int:pk>/erase/", api.CustomerEraseApi.as_view(), name="customer-erase"),
    path("customers/<int:pk>/export/", api.CustomerExportApi.as_view(), name="customer-export"),
    path(
        "customers/<int:pk>/identities/",
        api.CustomerIdentityLinkApi.as_view(),
        name="customer-identity-link",
    ),
    path("merges/<int:pk>/undo/", api.CustomerMergeUndoApi.as_view(), name="merge-undo"),
]
