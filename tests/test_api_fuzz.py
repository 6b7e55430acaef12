"""Property-based API fuzzing from the OpenAPI schema: no input may cause a 5xx.

Runs every operation of /api/schema/ in-process (schemathesis over WSGI) as an agent of the
conversation's team, and the inbound operations with their channel's token.
"""

from __future__ import annotations

import pytest
import schemathesis
from hypothesis import HealthCheck
from hypothesis import settings as hypothesis_settings

from supportdesk.wsgi import application
from tests.factories import send_call, send_chat, send_email


@schemathesis.serializer("message/rfc822")
def _rfc822(ctx, value):
    return value if isinstance(value, bytes) else str(value).encode()


schema = schemathesis.openapi.from_wsgi("/api/schema/", application)


@pytest.fixture(autouse=True)
def _keep_test_connection():
    # Like django.test.Client: a request must not close the test transaction's connection.
    from django.core.signals import request_finished, request_started
    from django.db import close_old_connections

    request_started.disconnect(close_old_connections)
    request_finished.disconnect(close_old_connections)
    yield
    request_started.connect(close_old_connections)
    request_finished.connect(close_old_connections)


@pytest.fixture
def desk(db, channels, agent_a):
    from rest_framework.authtoken.models import Token

    send_email(channels["email"], sender="jane@example.com")
    send_chat(channels["chat"], email="jane@example.com")
    send_call(channels["phone"])
    token, _ = Token.objects.get_or_create(user=agent_a)
    return token.key, channels


@schema.parametrize()
@hypothesis_settings(
    max_examples=40,
    deadline=None,
    suppress_health_check=list(HealthCheck),
)
def test_no_input_causes_a_server_error(case, desk):
    token, channels = desk
    headers = {"Authorization": f"Token {token}"}
    if case.path.startswith("/api/v1/inbound/"):
        headers = {"X-Channel-Token": channels[case.path.split("/")[-2]].secret}

    response = case.call(headers=headers)

    assert response.status_code < 500, (case.method, case.path, response.text[:1000])
