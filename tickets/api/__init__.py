"""The tickets API: inbound channels, the queue, conversations, customers and merges.

Views are thin (CONTRIBUTING.md, "Where things go"): a nested ``InputSerializer`` checks the shape, one service makes the
change, a nested ``OutputSerializer`` answers. Objects are looked up through the permission-scoped
selectors, so another team's conversation or customer is a 404, never a 403. Domain refusals are
``ApplicationError`` subclasses raised by the services and mapped once in
``supportdesk.api.exception_handler``.
"""

from __future__ import annotations

from tickets.api.common import name_schema_components
from tickets.api.conversations import (
    ConversationAssignApi,
    ConversationDetailApi,
    ConversationListApi,
    ConversationPendingApi,
    ConversationReopenApi,
    ConversationReplyApi,
    ConversationSolveApi,
    ConversationStatusApi,
    ConversationTakeNextApi,
    MessageMoveApi,
)
from tickets.api.customers import (
    CustomerDetailApi,
    CustomerEraseApi,
    CustomerExportApi,
    CustomerIdentityLinkApi,
    CustomerListApi,
    CustomerMergeApi,
    CustomerMergeUndoApi,
)
from tickets.api.inbound import (
    InboundApi,
    InboundChatApi,
    InboundEmailApi,
    InboundPhoneApi,
    InboundQueueItemApi,
    InboundSocialApi,
)
from tickets.api.mailboxes import ChannelListApi, MailboxListApi
from tickets.api.outreach import ConversationCallLogApi, ConversationStartMixin

__all__ = [
    "ChannelListApi",
    "ConversationAssignApi",
    "ConversationCallLogApi",
    "ConversationDetailApi",
    "ConversationListApi",
    "ConversationPendingApi",
    "ConversationReopenApi",
    "ConversationReplyApi",
    "ConversationSolveApi",
    "ConversationStartMixin",
    "ConversationStatusApi",
    "ConversationTakeNextApi",
    "CustomerDetailApi",
    "CustomerEraseApi",
    "CustomerExportApi",
    "CustomerIdentityLinkApi",
    "CustomerListApi",
    "CustomerMergeApi",
    "CustomerMergeUndoApi",
    "InboundApi",
    "InboundChatApi",
    "InboundEmailApi",
    "InboundPhoneApi",
    "InboundQueueItemApi",
    "InboundSocialApi",
    "MailboxListApi",
    "MessageMoveApi",
]

name_schema_components(globals())
