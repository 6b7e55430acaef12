"""The public survey page carries the same security headers as every other page."""

from __future__ import annotations

from datetime import timedelta

import pytest
import time_machine
from django.test import Client

from surveys.services import survey_token
from tests.supportdesk.test_configuration import assert_security_headers

pytestmark = pytest.mark.django_db


def test_survey_page_has_the_security_headers(sent):
    survey = sent()
    with time_machine.travel(survey.sent_at + timedelta(hours=1), tick=False):
        response = Client().get(f"/s/{survey_token(survey)}/")

    assert response.status_code == 200
    assert_security_headers(response)
    assert "form-action 'self'" in response["Content-Security-Policy"]
