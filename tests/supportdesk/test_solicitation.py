"""The score-solicitation detector reads alike in Python (wording editor) and PostgreSQL
(the integrity panel's ``survey_solicitation_flags``)."""

from __future__ import annotations

import pytest
from django.db import connection

from supportdesk.solicitation import SOLICITATION_PATTERN, solicitation_found

SAMPLES = {
    "Please rate us 10!": "rate us",
    "A 5 would help me a lot": "A 5 would help",
    "an ten would really help": "an ten would really help",
    "Leave us a 10 if you can": "Leave us a 10",
    "5 stars would help": "5 stars",
    "Please fill in the short survey": "fill in the short survey",
    "Your order shipped; tracking number 5 would arrive Monday.": "",
    "We rated the issue as urgent.": "",
    "Thanks, all fixed. Anything else?": "",
    "": "",
}


@pytest.mark.django_db
@pytest.mark.parametrize(("text", "found"), SAMPLES.items())
def test_python_and_postgresql_agree_on_what_asks_for_a_score(text, found):
    assert solicitation_found(text) == found
    with connection.cursor() as cursor:
        cursor.execute("SELECT %s ~* %s", [text, SOLICITATION_PATTERN])
        (matches,) = cursor.fetchone()
    assert matches is bool(found)
