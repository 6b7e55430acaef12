"""What the quality services share: defaults, text caps and the desk's local days and weeks."""

from __future__ import annotations

from datetime import date, datetime, time, timedelta

from django.utils import timezone

from supportdesk.errors import ApplicationError

# QA, ideas, cancellations, check-ins and the pulse: periods are local dates of the desk's time
# zone; see docs/metrics.md.

DEFAULT_RUBRIC = "Default"
# (name, description, weight, scale, critical)
DEFAULT_CRITERIA = (
    (
        "Accurate product information",
        "What the agent said about the product was correct.",
        3,
        "yes_no",
        True,
    ),
    ("Conversational tone", "Plain, warm words; no script or jargon.", 1, "1_5", False),
    (
        "Understood the real issue",
        "Answered what the customer needed, not only what they asked.",
        2,
        "1_5",
        False,
    ),
    ("Created connection", "The customer was treated as a person.", 1, "1_3", False),
    (
        "Left the door open",
        "The customer knows how to come back and what happens next.",
        1,
        "yes_no",
        False,
    ),
)
DEFAULT_CANCELLATION_REASONS = (
    "Too expensive",
    "Missing a feature",
    "Product quality or bugs",
    "Poor support experience",
    "Switching to a competitor",
    "No longer needed",
    "Other",
)
PULSE_MIN_ANSWERS = 5


def bounded_text(value: str, *, what: str, limit: int) -> None:
    """Refuse free text longer than ``limit`` characters (a clear 400; nothing is stored)."""
    if value and len(value) > limit:
        raise ApplicationError(f"{what} is too long: at most {limit:,} characters.")


def local_day_start(day: date) -> datetime:
    """The aware datetime at which ``day`` starts in the desk's time zone."""
    return timezone.make_aware(datetime.combine(day, time.min), timezone.get_current_timezone())


def week_start_of(moment: datetime | date) -> date:
    day = timezone.localdate(moment) if isinstance(moment, datetime) else moment
    return day - timedelta(days=day.weekday())
