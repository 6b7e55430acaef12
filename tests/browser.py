"""Helpers for browser tests: ``@pytest.mark.browser`` plus ``django_db(transaction=True)``.

Use pytest-playwright's ``page`` fixture with pytest-django's ``live_server``::

    @pytest.mark.browser
    @pytest.mark.django_db(transaction=True)
    def test_something(page, live_server, agent_a):
        login(page, live_server, agent_a)
        page.goto(f"{live_server.url}/")

Every browser test also fails on a page error (uncaught exception) or a CSP violation, through
``watch_console``.
"""

from __future__ import annotations

import os
import tempfile
from pathlib import Path

from playwright.sync_api import Page

from tests.factories import TEST_PASSWORD

# The README's screenshots are refreshed by `bin/screenshots` (it sets SCREENSHOTS_DIR to
# docs/screenshots); an ordinary test run writes them to a temporary folder, so it never dirties
# the checkout.
SHOTS = Path(
    os.environ.get("SCREENSHOTS_DIR") or Path(tempfile.gettempdir()) / "supportdesk-screenshots"
)


def login(page: Page, live_server, user, *, password: str = TEST_PASSWORD) -> None:
    page.goto(f"{live_server.url}/login/")
    page.get_by_label("Email").fill(user.email)
    page.get_by_label("Password").fill(password)
    page.get_by_role("button", name="Log in").click()
    page.wait_for_url(lambda url: "/login/" not in url)


def watch_console(page: Page) -> list[str]:
    """Collects page errors and console errors (CSP violations show there) into a list."""
    problems: list[str] = []
    page.on("pageerror", lambda exc: problems.append(f"pageerror: {exc}"))
    page.on(
        "console",
        lambda msg: problems.append(f"console: {msg.text}") if msg.type == "error" else None,
    )
    return problems


def screenshot(page: Page, name: str) -> Path:
    """Saves <name>.png in SHOTS (docs/screenshots under bin/screenshots; the README shows them)."""
    SHOTS.mkdir(parents=True, exist_ok=True)
    path = SHOTS / f"{name}.png"
    page.screenshot(path=str(path), full_page=False)
    return path
