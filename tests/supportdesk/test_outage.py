"""A database error answers 503 + Retry-After (JSON for the API), never a 500 page.

The real outage (a PostgreSQL cluster stopped under load) is in tests/test_faults.py; these
check each path in-process: a view's error (the middleware) and an error outside a view
(``handler500``).
"""

from __future__ import annotations

from unittest import mock

import pytest
from django.db import InterfaceError, OperationalError
from django.test import Client, RequestFactory

from supportdesk.outage import DETAIL
from supportdesk.urls import handler500 as server_error


@pytest.mark.django_db
def test_an_api_request_during_an_outage_answers_503_json_with_retry_after(channels):
    with mock.patch(
        "tickets.authentication.channel_get_by_secret",
        side_effect=OperationalError("connection refused"),
    ):
        response = Client(raise_request_exception=False).post(
            "/api/v1/inbound/chat/",
            {"external_id": "x"},
            content_type="application/json",
            headers={"X-Channel-Token": channels["chat"].secret},
        )
    assert response.status_code == 503
    assert response.json() == {"detail": DETAIL}
    assert response["Retry-After"] == "5"
    assert response["Cache-Control"] == "no-store"


def test_a_page_during_an_outage_answers_a_plain_503_page():
    with mock.patch(
        "supportdesk.views.connection.cursor", side_effect=InterfaceError("connection closed")
    ):
        response = Client(raise_request_exception=False).get("/healthz")
    # /healthz is not an API path and asks for no JSON: the HTML page
    assert response.status_code == 503
    assert response["Content-Type"] == "text/html; charset=utf-8"
    assert "Back in a moment" in response.content.decode()
    assert response["Retry-After"] == "5"


def test_handler500_answers_503_for_a_database_error_raised_outside_a_view():
    request = RequestFactory().get("/api/v1/conversations/")
    try:
        raise OperationalError("the database system is shutting down")
    except OperationalError:
        response = server_error(request)
    assert response.status_code == 503
    assert response["Retry-After"] == "5"


def test_handler500_leaves_other_errors_to_the_500_page():
    request = RequestFactory().get("/")
    try:
        raise ValueError("a bug")
    except ValueError:
        response = server_error(request)
    assert response.status_code == 500
