"""The COPY side of the generator: the columns of every table it writes, and its plan types."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import date, timedelta

from bench.seed.vocabulary import DAY


def copy_text(text: str) -> str:
    """A value for COPY's text format."""
    return text.replace("\\", "\\\\").replace("\t", "\\t").replace("\n", "\\n").replace("\r", "\\r")


N = "\\N"


@dataclass
class Tables:
    """Where rows go: ``write(table, text)`` gets newline-terminated COPY text lines."""

    write: Callable[[str, str], None]


# Columns every row of a table gets the same value in, appended after the generator's own values:
# NOT NULL columns (no database default) the generated desk has nothing to say about.
CONSTANT_COLUMNS: dict[str, tuple[tuple[str, str], ...]] = {
    "tickets_customer": (("language", ""), ("notes", "")),
    "tickets_conversation": (("priority", "normal"),),
    "tickets_message": (("cc", "[]"), ("bcc", "[]")),
}

COLUMNS: dict[str, tuple[str, ...]] = {
    "tickets_customer": ("id", "created_at", "updated_at", "name", "merged_into_id"),
    "tickets_identity": (
        "id",
        "created_at",
        "updated_at",
        "customer_id",
        "kind",
        "value",
        "display_value",
        "verified",
        "undeliverable_at",
    ),
    "tickets_conversation": (
        "id",
        "created_at",
        "updated_at",
        "customer_id",
        "team_id",
        "assignee_id",
        "subject",
        "status",
        "channels",
        "contacts_counted",
        "first_inbound_at",
        "last_inbound_at",
        "last_activity_at",
        "solved_at",
        "closed_at",
        "follow_up_of_id",
        "version",
    ),
    "tickets_contact": (
        "id",
        "conversation_id",
        "channel_id",
        "channel_kind",
        "reason",
        "started_at",
        "session_id",
        "wait_seconds",
        "talk_seconds",
        "hold_seconds",
        "wrap_seconds",
        "ended_by",
        "agent_id",
    ),
    "tickets_message": (
        "id",
        "conversation_id",
        "contact_id",
        "channel_id",
        "channel_kind",
        "direction",
        "author_id",
        "identity_id",
        "external_id",
        "message_id",
        "in_reply_to",
        "references",
        "thread_key",
        "subject",
        "body_text",
        "body_html",
        "raw",
        "automated",
        "sent_at",
        "created_at",
        "delivery_state",
        "delivery_error",
        "delivered_at",
        "delivery_attempts",
        "claimed_at",
        "claimed_email",
    ),
    "tickets_event": (
        "id",
        "kind",
        "occurred_at",
        "conversation_id",
        "customer_id",
        "message_id",
        "actor_id",
        "team_id",
        "agent_id",
        "channel_kind",
        "data",
    ),
    "surveys_survey": (
        "id",
        "event_id",
        "conversation_id",
        "customer_id",
        "agent_id",
        "team_id",
        "channel_kind",
        "solved_at",
        "contacts_counted",
        "status",
        "skip_reason",
        "due_at",
        "identity_id",
        "email",
        "via",
        "asks_nps",
        "send_claimed_at",
        "send_attempts",
        "sent_at",
        "message_id",
        "reminder_claimed_at",
        "reminded_at",
        "opened_at",
        "bounced_at",
        "cancelled_at",
        "token_key",
        "expires_at",
        "created_at",
    ),
    "surveys_surveyresponse": (
        "id",
        "survey_id",
        "resolved",
        "contacts_declared",
        "contacts_counted",
        "csat",
        "nps",
        "comment",
        "shout_out",
        "needs_nothing_more",
        "first_answered_at",
        "answered_at",
        "times_answered",
        "escalated_at",
        "shout_out_notified_at",
    ),
    "surveys_followup": (
        "id",
        "survey_id",
        "team_id",
        "assignee_id",
        "reason",
        "status",
        "note",
        "created_at",
        "closed_at",
        "closed_by_id",
    ),
    "surveys_surveyunsubscribe": ("id", "email", "customer_id", "survey_id", "created_at"),
}
for _table, _constants in CONSTANT_COLUMNS.items():
    COLUMNS[_table] = (*COLUMNS[_table], *(name for name, _ in _constants))

# Bulk-loaded tables in an order that respects their foreign keys.
TABLES = tuple(COLUMNS)


class Stamp:
    """Fast ``timestamptz`` text for integer epoch seconds (UTC)."""

    def __init__(self) -> None:
        self._days: dict[int, str] = {}
        self._times = [
            f" {sec // 3600:02d}:{sec % 3600 // 60:02d}:{sec % 60:02d}+00" for sec in range(DAY)
        ]

    def __call__(self, ts: int | None) -> str:
        if ts is None:
            return N
        day, sec = divmod(ts, DAY)
        text = self._days.get(day)
        if text is None:
            text = self._days[day] = (date(1970, 1, 1) + timedelta(days=day)).isoformat()
        return text + self._times[sec]


@dataclass
class Setup:
    """What exists before the bulk load: staff, teams, channels (ids from the ORM)."""

    team_ids: list[int]
    agent_ids: list[list[int]]  # per team
    manager_ids: list[int]  # per team
    channel_ids: dict[tuple[int, str], int]  # (team index, kind) -> channel id
    now: int  # epoch seconds
    days: int


@dataclass
class CustomerPlan:
    team: int
    mix: tuple[str, ...]
    first: int
    last: int
    domain: int
    uk_phone: bool
    network: int
    conversations: int = 0
    id: int = 0
    identity: dict[str, int] = field(default_factory=dict)
    name: str = ""
    email: str = ""
    phone: str = ""
    phone_display: str = ""
    social: str = ""
    chat: str = ""
    last_survey_sent: int = -(10**12)
    last_nps: int = -(10**12)
    unsubscribed: bool = False


@dataclass
class Result:
    conversations: int = 0
    messages: int = 0
    customers: int = 0
    contacts: int = 0
    events: int = 0
    surveys: int = 0
    responses: int = 0
    heavy_conversation_id: int = 0
    heavy_customer_id: int = 0
    search_phone: str = ""
    search_email: str = ""
    by_status: dict[str, int] = field(default_factory=dict)
