"""Every write of the surveys app, by area; import from here (``surveys.services``).

- ``policy``: survey settings and signed links; ``scheduling``: at a solve, and what cancels it;
  ``sending``: surveys and the reminder; ``answers``: answers and their effects, unsubscribes,
  follow-ups; ``history``: past surveys for seeding and imports.


Rules that hold throughout:

- One survey per solve event, by a one-to-one constraint (``Survey.event``), not check-then-insert.
- The schedule lives in the database (``Survey.due_at``); beat's ``surveys_send_due_task`` picks
  due surveys up. A send is claimed by a conditional UPDATE of a lease (``send_claimed_at``), so
  two workers or a redelivered task send once; a worker killed mid-send leaves the lease, and the
  next beat run after the lease expires sends it.
- Eligibility (throttle, unsubscribe, bounce, auto-reply, reopen) is checked when the survey goes
  out, because it can change during the delay. Channel and sampling are decided at the solve.
- One response per survey (``surveys_surveyresponse_one_per_survey``); answers are written under a
  row lock of the survey, so concurrent submissions serialise and the last one wins.
"""

from __future__ import annotations

from surveys.services.answers import (
    Answer,
    follow_up_close,
    survey_answer,
    survey_mark_opened,
    survey_unsubscribe,
    team_manager,
    validate,
)
from surveys.services.history import (
    survey_record_past,
)
from surveys.services.policy import (
    ANSWERED_KIND,
    SEND_LEASE,
    TOKEN_SALT,
    SurveyExpired,
    SurveyNotFound,
    SurveyPolicy,
    survey_from_token,
    survey_policy,
    survey_settings_update,
    survey_token,
    survey_unsubscribe_url,
    survey_url,
)
from surveys.services.scheduling import (
    survey_cancel_for_inbound,
    survey_mark_bounced,
    survey_schedule,
    surveys_cancel_for_spam,
    surveys_follow_conversations,
    surveys_move_customer,
)
from surveys.services.sending import (
    survey_remind,
    survey_send,
    surveys_remind_due,
    surveys_send_due,
)
from surveys.services.wording import (
    WORDING_VARIABLES,
    survey_wording_html,
    survey_wording_reset,
    survey_wording_save,
)

__all__ = [
    "ANSWERED_KIND",
    "SEND_LEASE",
    "TOKEN_SALT",
    "WORDING_VARIABLES",
    "Answer",
    "SurveyExpired",
    "SurveyNotFound",
    "SurveyPolicy",
    "follow_up_close",
    "survey_answer",
    "survey_cancel_for_inbound",
    "survey_from_token",
    "survey_mark_bounced",
    "survey_mark_opened",
    "survey_policy",
    "survey_record_past",
    "survey_remind",
    "survey_schedule",
    "survey_send",
    "survey_settings_update",
    "survey_token",
    "survey_unsubscribe",
    "survey_unsubscribe_url",
    "survey_url",
    "survey_wording_html",
    "survey_wording_reset",
    "survey_wording_save",
    "surveys_cancel_for_spam",
    "surveys_follow_conversations",
    "surveys_move_customer",
    "surveys_remind_due",
    "surveys_send_due",
    "team_manager",
    "validate",
]
