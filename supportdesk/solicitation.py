"""Wording that asks the customer for a score: one detector for every layer.

The integrity panel counts agent messages that match it (``metrics.facts``, docs/metrics.md
``survey_solicitation_flags``, evaluated by the database), and the survey wording an admin
stores is refused when it matches (``supportdesk.services.mail_template_save``). One
case-insensitive regular expression that PostgreSQL (ARE) and Python's ``re`` read alike: no
``\\b``, ``\\s`` or character-class shorthands.
"""

from __future__ import annotations

import re

SOLICITATION_PATTERN = (
    r"(rate (us|me)|(give|leave) (us|me) (a |an )?(10|9|ten|nine|five|5|perfect|top|high|good|great|positive)"
    r"|(10|ten|9|nine|5|five)( out of (10|ten|5|five)|/10|/5)? ?(stars?|points)"
    r"|(fill|fill in|fill out|complete|answer|take) (in |out )?(the|our|my|a|this)( short| quick)? (survey|questionnaire|feedback form)"
    r"|(stars?|score|rating|review) would (really |truly )?help"
    r"|(a|an) (10|ten|9|nine|5|five) would (really |truly )?help"
    r"|(score|rate|rating) of (9|10|5)"
    r"|(good|great|positive|high|top) (rating|review|score|feedback) (would|helps|means))"
)

_SOLICITATION = re.compile(SOLICITATION_PATTERN, re.IGNORECASE)


def solicitation_found(text: str) -> str:
    """The first words of ``text`` that ask for a score ("" when none do)."""
    match = _SOLICITATION.search(" ".join(text.split()))
    return match.group(0) if match else ""
