"""Every write of the quality app, by area; import from here (``quality.services``).

- ``common``: defaults, text caps, the desk's local days and weeks
- ``reviews``: rubrics, the weekly QA sample, reviewing, disputes, calibration
- ``ideas``: customer ideas and cancellations
- ``checkins``: proactive check-ins and the weekly agent pulse
"""

from quality.services.checkins import (
    CHECKIN_LOOKBACK_DAYS,
    DEFAULT_CHECKIN_DAYS,
    HIGH_EFFORT_CONTACTS,
    checkin_dismiss,
    checkin_rule_update,
    checkin_rules_ensure_default,
    checkin_send,
    checkins_create_due,
    pulse_answer,
    pulse_week_open,
)
from quality.services.common import (
    DEFAULT_CANCELLATION_REASONS,
    DEFAULT_CRITERIA,
    DEFAULT_RUBRIC,
    PULSE_MIN_ANSWERS,
    bounded_text,
    local_day_start,
    week_start_of,
)
from quality.services.ideas import (
    cancellation_reason_save,
    cancellation_reasons_ensure_default,
    cancellation_record,
    idea_attach,
    idea_create,
    idea_notify_customers,
    idea_set_status,
)
from quality.services.reviews import (
    calibration_create,
    qa_review_acknowledge,
    qa_review_dispute,
    qa_review_replace,
    qa_review_submit,
    qa_sample_draw,
    review_score,
    rubric_ensure_default,
    rubric_publish,
)

__all__ = [
    "CHECKIN_LOOKBACK_DAYS",
    "DEFAULT_CANCELLATION_REASONS",
    "DEFAULT_CHECKIN_DAYS",
    "DEFAULT_CRITERIA",
    "DEFAULT_RUBRIC",
    "HIGH_EFFORT_CONTACTS",
    "PULSE_MIN_ANSWERS",
    "bounded_text",
    "calibration_create",
    "cancellation_reason_save",
    "cancellation_reasons_ensure_default",
    "cancellation_record",
    "checkin_dismiss",
    "checkin_rule_update",
    "checkin_rules_ensure_default",
    "checkin_send",
    "checkins_create_due",
    "idea_attach",
    "idea_create",
    "idea_notify_customers",
    "idea_set_status",
    "local_day_start",
    "pulse_answer",
    "pulse_week_open",
    "qa_review_acknowledge",
    "qa_review_dispute",
    "qa_review_replace",
    "qa_review_submit",
    "qa_sample_draw",
    "review_score",
    "rubric_ensure_default",
    "rubric_publish",
    "week_start_of",
]
