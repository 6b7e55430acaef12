"""Every write of the tickets app, by sub-domain; import from here (``tickets.services``).

- ``channels``: channels, their secrets and webhook URLs
- ``events``: the event log, and the conversation row's status and version
- ``customers``: customers and identities, linking, merges and their undo
- ``contacts``: contact counting (docs/metrics.md, "Counting contacts"), the one place that decides
- ``ingest``: the one ingestion path, and the chat, social and phone entry points
- ``inbound_email``: raw RFC 822 and provider webhooks into that path
- ``conversations``: agent actions (reply, solve, reopen, pending, assign, take next, move, close)
- ``delivery``: outbound email and signed webhooks, one claim so a message is sent once
- ``outbound_mail``: what an email reply carries (copies, files, signatures, HTML, From) and
  the participants of a conversation; ``acknowledgement``: a mailbox's "we got your message"
- ``mailboxes``: IMAP/SMTP accounts of email channels, polling them exactly once, their health
- ``outreach``: the desk writes first (start a conversation) and agents log calls
- ``triage``: tags and priority, spam and blocked senders, macros, bulk actions, saved views
- ``privacy``: erasing and exporting a customer, the retention policy and its nightly run
- ``saved_replies``, ``presence``

Rules that hold throughout:

- Each public function is one state change, in one transaction. Side effects (mail, the
  reactions of higher apps) are written to the outbox in that transaction and run after commit.
- Ingestion is idempotent on ``(channel, external_id)`` by a unique constraint, not by
  check-then-insert: a concurrent duplicate rolls its whole transaction back and returns the row
  the winner stored.
- Contacts are counted by ``contacts.contact_reason`` only, for ingestion and recounts alike.
"""

from tickets.services.acknowledgement import (
    acknowledgement_email,
    acknowledgement_enqueue,
    acknowledgement_send,
    acknowledgement_variables,
)
from tickets.services.automated import (
    ChannelRoute,
    customer_channel_route,
    message_automated_send,
)
from tickets.services.channels import (
    channel_create_or_update,
    channel_mail_settings_update,
    channel_rotate_secret,
    channel_set_surveyed,
    channel_set_webhook,
    channel_set_widget,
    channel_settings_update,
)
from tickets.services.contacts import (
    contact_open,
    contact_reason,
    conversation_is_answered,
    conversation_recount_contacts,
    counted_inbound,
)
from tickets.services.conversations import (
    TEAM_NOT_YOURS,
    ReplyHeld,
    StaleVersion,
    conversation_assign,
    conversation_close,
    conversation_lock,
    conversation_reopen,
    conversation_reply,
    conversation_set_pending,
    conversation_solve,
    conversation_take_next,
    conversations_close_solved,
    message_move,
)
from tickets.services.customers import (
    UNCHANGED,
    HandleTaken,
    customer_create,
    customer_for_handles,
    customer_language_detected,
    customer_language_set,
    customer_merge,
    customer_merge_undo,
    customer_update,
    identity_link,
    organisation_create_or_update,
    organisation_for_handles,
    organisation_get_or_create,
    solve_dates,
)
from tickets.services.delivery import (
    SEND_LEASE,
    WEBHOOK_SIGNATURE_HEADER,
    WEBHOOK_TIMEOUT_SECONDS,
    WEBHOOK_TIMESTAMP_HEADER,
    WebhookRejected,
    chat_replies_mark_delivered,
    chat_session_latest,
    message_claim_for_sending,
    message_delivery_failed,
    message_email_send,
    message_webhook_send,
    webhook_signature,
)
from tickets.services.events import (
    conversation_save,
    conversation_set_status,
    event_record,
)
from tickets.services.inbound_channels import inbound_chat, inbound_phone, inbound_social
from tickets.services.inbound_email import inbound_email_from_anymail, inbound_email_raw
from tickets.services.ingest import (
    EARLIEST_MESSAGE_TIME,
    InboundResult,
    identity_mark_undeliverable,
    quarantine_store,
)
from tickets.services.mailboxes import (
    MAILBOX_FIELDS,
    PollResult,
    mailbox_access_token,
    mailbox_create,
    mailbox_oauth_complete,
    mailbox_oauth_endpoints,
    mailbox_poll,
    mailbox_poll_by_name,
    mailbox_save,
    mailbox_smtp_connection,
    mailbox_test_connection,
    mailboxes_poll_due,
)
from tickets.services.outbound_mail import (
    MAX_COPIES,
    MAX_REPLY_FILES,
    OutboundFile,
    participants_add,
    reply_bodies,
    reply_copies_clean,
    sender_address,
    sender_desk_name,
    signature_variables,
)
from tickets.services.outreach import (
    CALL_MAX_SECONDS,
    Handle,
    call_log,
    conversation_start,
)
from tickets.services.presence import (
    PRESENCE_TTL_SECONDS,
    conversation_presence_leave,
    conversation_presence_touch,
)
from tickets.services.privacy import (
    conversations_anonymise,
    customer_erase,
    customer_export,
    customer_export_data,
    retention_latest_run,
    retention_policy_get,
    retention_policy_update,
    retention_run,
)
from tickets.services.saved_replies import (
    SAVED_REPLY_VARIABLES,
    saved_replies_seed_defaults,
    saved_reply_create_or_update,
    saved_reply_delete,
    saved_reply_render,
    saved_reply_save,
)
from tickets.services.triage import (
    BULK_MAX,
    BulkResult,
    conversation_mark_spam,
    conversation_triage,
    conversation_unmark_spam,
    conversations_bulk,
    saved_reply_apply,
    saved_view_delete,
    saved_view_save,
    tag_archive,
    tag_create,
    tag_rename,
    tags_by_names,
)

__all__ = [
    "BULK_MAX",
    "CALL_MAX_SECONDS",
    "EARLIEST_MESSAGE_TIME",
    "MAILBOX_FIELDS",
    "MAX_COPIES",
    "MAX_REPLY_FILES",
    "PRESENCE_TTL_SECONDS",
    "SAVED_REPLY_VARIABLES",
    "SEND_LEASE",
    "TEAM_NOT_YOURS",
    "UNCHANGED",
    "WEBHOOK_SIGNATURE_HEADER",
    "WEBHOOK_TIMEOUT_SECONDS",
    "WEBHOOK_TIMESTAMP_HEADER",
    "BulkResult",
    "ChannelRoute",
    "Handle",
    "HandleTaken",
    "InboundResult",
    "OutboundFile",
    "PollResult",
    "ReplyHeld",
    "StaleVersion",
    "WebhookRejected",
    "acknowledgement_email",
    "acknowledgement_enqueue",
    "acknowledgement_send",
    "acknowledgement_variables",
    "call_log",
    "channel_create_or_update",
    "channel_mail_settings_update",
    "channel_rotate_secret",
    "channel_set_surveyed",
    "channel_set_webhook",
    "channel_set_widget",
    "channel_settings_update",
    "chat_replies_mark_delivered",
    "chat_session_latest",
    "contact_open",
    "contact_reason",
    "conversation_assign",
    "conversation_close",
    "conversation_is_answered",
    "conversation_lock",
    "conversation_mark_spam",
    "conversation_presence_leave",
    "conversation_presence_touch",
    "conversation_recount_contacts",
    "conversation_reopen",
    "conversation_reply",
    "conversation_save",
    "conversation_set_pending",
    "conversation_set_status",
    "conversation_solve",
    "conversation_start",
    "conversation_take_next",
    "conversation_triage",
    "conversation_unmark_spam",
    "conversations_anonymise",
    "conversations_bulk",
    "conversations_close_solved",
    "counted_inbound",
    "customer_channel_route",
    "customer_create",
    "customer_erase",
    "customer_export",
    "customer_export_data",
    "customer_for_handles",
    "customer_language_detected",
    "customer_language_set",
    "customer_merge",
    "customer_merge_undo",
    "customer_update",
    "event_record",
    "identity_link",
    "identity_mark_undeliverable",
    "inbound_chat",
    "inbound_email_from_anymail",
    "inbound_email_raw",
    "inbound_phone",
    "inbound_social",
    "mailbox_access_token",
    "mailbox_create",
    "mailbox_oauth_complete",
    "mailbox_oauth_endpoints",
    "mailbox_poll",
    "mailbox_poll_by_name",
    "mailbox_save",
    "mailbox_smtp_connection",
    "mailbox_test_connection",
    "mailboxes_poll_due",
    "message_automated_send",
    "message_claim_for_sending",
    "message_delivery_failed",
    "message_email_send",
    "message_move",
    "message_webhook_send",
    "organisation_create_or_update",
    "organisation_for_handles",
    "organisation_get_or_create",
    "participants_add",
    "quarantine_store",
    "reply_bodies",
    "reply_copies_clean",
    "retention_latest_run",
    "retention_policy_get",
    "retention_policy_update",
    "retention_run",
    "saved_replies_seed_defaults",
    "saved_reply_apply",
    "saved_reply_create_or_update",
    "saved_reply_delete",
    "saved_reply_render",
    "saved_reply_save",
    "saved_view_delete",
    "saved_view_save",
    "sender_address",
    "sender_desk_name",
    "signature_variables",
    "solve_dates",
    "tag_archive",
    "tag_create",
    "tag_rename",
    "tags_by_names",
    "webhook_signature",
]
