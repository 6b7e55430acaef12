"""The browser set-up every page test builds on: log in, see the queue, no CSP violation."""

import pytest

from tests.browser import login, watch_console

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]


def test_agent_logs_in_and_sees_the_queue_without_console_errors(page, live_server, agent_a):
    problems = watch_console(page)

    login(page, live_server, agent_a)

    assert page.get_by_role("heading", name="Queue").is_visible()
    assert page.evaluate("typeof window.htmx") == "object"  # htmx loaded from our static files
    assert problems == []
