"""Property-based API fuzzing from the OpenAPI schema.

Every operation of /api/schema/ runs in-process (schemathesis over WSGI) against a seeded desk:
staff operations as an agent of Team A (recompute as a manager of Team A; half the generated ids are replaced by real objects of
Team A or Team B, so lookups reach real rows and the 404 of another team's object), inbound
operations with their channel's ``X-Channel-Token``. Each response must

- never be a 5xx,
- have a status code the schema documents for the operation,
- have a Content-Type the schema documents for that status,
- match the documented response schema (and documented headers).

Examples are capped per operation so the file stays within a few minutes in CI.
"""

from __future__ import annotations

from datetime import date

import pytest
import schemathesis
from hypothesis import HealthCheck
from hypothesis import settings as hypothesis_settings
from schemathesis.checks import not_a_server_error
from schemathesis.specs.openapi.checks import (
    content_type_conformance,
    response_headers_conformance,
    response_schema_conformance,
    status_code_conformance,
)

from supportdesk.wsgi import application
from tests.factories import send_call, send_chat, send_email

CHECKS = [
    not_a_server_error,
    status_code_conformance,
    content_type_conformance,
    response_schema_conformance,
    response_headers_conformance,
]


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
def desk(db, channels, channels_b, agent_a, agent_b, manager_a):
    """Conversations of both teams, a merge, a recompute job; ids to aim the fuzzer at."""
    from metrics.services import recompute_job_create
    from supportdesk.services import api_token_get_or_create
    from tickets.models import Customer
    from tickets.services import customer_merge

    jane = send_email(channels["email"], sender="jane@example.com")
    send_chat(channels["chat"], email="jane@example.com")
    send_call(channels["phone"])
    other = send_email(channels["email"], sender="omar@example.com")
    merge = customer_merge(
        target=Customer.objects.get(pk=jane.customer_id),
        other=Customer.objects.get(pk=other.customer_id),
        actor=agent_a,
    )
    bob = send_email(channels_b["email"], sender="bert@example.com")
    job = recompute_job_create(
        day_from=date(2026, 1, 1),
        day_to=date(2026, 1, 3),
        requested_by=agent_a,
    )
    token, _ = api_token_get_or_create(user=agent_a)
    manager_token, _ = api_token_get_or_create(user=manager_a)
    ids = {
        "conversations": [jane.conversation_id, bob.conversation_id],
        "messages": [jane.message_id, bob.message_id],
        "customers": [jane.customer_id, bob.customer_id],
        "merges": [merge.pk],
        "tasks": [job.pk],
    }
    return {"agent": token.key, "manager": manager_token.key}, {**channels}, ids


def _aim(case, ids) -> None:
    """Replace an even generated id by a real object's id of the same kind."""
    value = (case.path_parameters or {}).get("id")
    if not isinstance(value, int) or value % 2:
        return
    kind = case.path.split("/")[3]
    choices = ids.get(kind)
    if choices:
        case.path_parameters["id"] = choices[(value // 2) % len(choices)]


@schema.parametrize()
@hypothesis_settings(
    max_examples=15,
    deadline=None,
    suppress_health_check=list(HealthCheck),
    derandomize=True,
)
def test_api_conforms_to_its_schema(case, desk):
    tokens, channels, ids = desk
    # Managers' operations as a manager (an agent only ever gets their 403), the others as Alice.
    who = "manager" if case.path.endswith("/recompute/") else "agent"
    headers = {"Authorization": f"Token {tokens[who]}"}
    if case.path.startswith("/api/v1/inbound/"):
        kind = case.path.split("/")[4]  # a channel kind, or "queue" (polled by any channel)
        headers = {"X-Channel-Token": channels["chat" if kind == "queue" else kind].secret}
    _aim(case, ids)

    case.call_and_validate(headers=headers, checks=CHECKS)
