"""Shared fixtures. Tasks run eagerly unless a test starts a real worker (tests/services.py)."""

from __future__ import annotations

import os

import pytest
from django.conf import settings as django_settings
from rest_framework.test import APIClient

from supportdesk.celery import app as celery_app

os.environ.setdefault("DJANGO_ALLOW_ASYNC_UNSAFE", "true")


@pytest.fixture(autouse=True)
def _eager_tasks_and_tmp_media(settings, tmp_path):
    import supportdesk.outbox

    celery_app.conf.task_always_eager = True
    celery_app.conf.task_eager_propagates = True
    supportdesk.outbox._broker_down_until = 0.0  # the outbox circuit breaker starts closed
    settings.MEDIA_ROOT = str(tmp_path / "media")
    # Real PBKDF2 hashes, each password hashed once (tests/hashers.py): not half a second per
    # staff member created or signed in.
    settings.PASSWORD_HASHERS = [
        "tests.hashers.RememberingPBKDF2PasswordHasher",
        *(h for h in django_settings.PASSWORD_HASHERS if not h.endswith(".PBKDF2PasswordHasher")),
    ]
    settings.EMAIL_BACKEND = "django.core.mail.backends.locmem.EmailBackend"
    settings.SUPPORT_EMAIL = "support@desk.example"
    # Webhook receivers in tests listen on loopback and hooks.example.com has no DNS here: the
    # hosts are allowed the way an admin would (supportdesk/urlguard.py); tests of the guard
    # itself clear this.
    settings.WEBHOOK_ALLOWED_HOSTS = ["127.0.0.1", "localhost", "hooks.example.com"]
    # Recompute threads open their own connections, which cannot see a test's transaction;
    # tests/metrics/test_parallel_recompute.py runs them on committed data.
    settings.METRICS_RECOMPUTE_CONNECTIONS = 1
    settings.STORAGES = {
        **django_settings.STORAGES,
        "staticfiles": {"BACKEND": "django.contrib.staticfiles.storage.StaticFilesStorage"},
    }
    _clear_local_cache()  # rate-limit counters (login, chat, surveys) never leak between tests
    yield
    celery_app.conf.task_always_eager = False


def _clear_local_cache() -> None:
    from django.core.cache import caches
    from django.core.cache.backends.locmem import LocMemCache

    backend = caches["default"]
    if isinstance(backend, LocMemCache):
        backend.clear()  # never a shared Redis: clearing it would flush other people's data


@pytest.fixture
def team_a(db):
    from supportdesk.services import team_get_or_create

    return team_get_or_create(name="Team A")


@pytest.fixture
def team_b(db):
    from supportdesk.services import team_get_or_create

    return team_get_or_create(name="Team B")


@pytest.fixture
def agent_a(team_a):
    from tests.factories import make_staff

    return make_staff(
        "alice@desk.example", role="agent", teams=["Team A"], full_name="Alice Archer"
    )


@pytest.fixture
def agent_b(team_b):
    from tests.factories import make_staff

    return make_staff("bob@desk.example", role="agent", teams=["Team B"], full_name="Bob Baker")


@pytest.fixture
def manager_a(team_a):
    from tests.factories import make_staff

    return make_staff("mia@desk.example", role="manager", teams=["Team A"], full_name="Mia Manager")


@pytest.fixture
def admin_user(db):
    from tests.factories import make_staff

    return make_staff("root@desk.example", role="admin", teams=[], full_name="Ada Admin")


@pytest.fixture
def channels(team_a):
    """One channel of each kind, all routed to Team A."""
    from tickets.services import channel_create_or_update

    return {
        kind: channel_create_or_update(kind=kind, name=f"{kind} A", team_name="Team A")
        for kind in ("email", "chat", "social", "phone")
    }


@pytest.fixture
def channels_b(team_b):
    from tickets.services import channel_create_or_update

    return {
        kind: channel_create_or_update(kind=kind, name=f"{kind} B", team_name="Team B")
        for kind in ("email", "chat", "social", "phone")
    }


@pytest.fixture
def webhook_auth(settings):
    """The Authorization header that passes the email provider's webhook secret."""
    from tests.helpers import provider_webhook_headers

    return provider_webhook_headers(settings)


@pytest.fixture
def api():
    return APIClient()


def client_for(user) -> APIClient:
    from supportdesk.services import api_token_get_or_create

    client = APIClient()
    token, _ = api_token_get_or_create(user=user)
    client.credentials(HTTP_AUTHORIZATION=f"Token {token.key}")
    return client


@pytest.fixture
def api_a(agent_a):
    return client_for(agent_a)


@pytest.fixture
def api_b(agent_b):
    return client_for(agent_b)


# --- Browser tests (Playwright driving Debian's Chromium; see tests/browser.py) -----------------
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
    "--disable-quic",
]


@pytest.fixture(scope="session")
def browser_type_launch_args(browser_type_launch_args):
    executable = os.environ.get("CHROMIUM_PATH", "/usr/bin/chromium")
    if not os.path.exists(executable):
        from tests.services import _missing

        _missing(
            f"Browser tests need Chromium at {executable}",
            "Install Debian's: apt-get install -y chromium (or set CHROMIUM_PATH).",
        )
    return {
        **browser_type_launch_args,
        "executable_path": executable,
        "args": CHROMIUM_ARGS,
    }


@pytest.fixture(scope="session")
def browser_context_args(browser_context_args):
    return {**browser_context_args, "viewport": {"width": 1280, "height": 900}}


@pytest.fixture
def without_higher_apps(monkeypatch):
    """The page as its own app renders it: no panels or annotations of the apps above it.

    A lower app's query-count tests use this so their exact counts are about their own queries;
    tests/test_pages_integrated.py counts the whole page with every app plugged in.
    """
    from collections import defaultdict

    from supportdesk import extensions

    monkeypatch.setattr(extensions, "_panels", defaultdict(list))
    monkeypatch.setattr(extensions, "_annotators", {})


@pytest.fixture
def smtp_server(settings):
    """A real SMTP server on a free loopback port; the desk's outbound mail goes to it."""
    from tests.smtp import SmtpSink

    sink = SmtpSink()
    sink.start()
    settings.EMAIL_BACKEND = "django.core.mail.backends.smtp.EmailBackend"
    settings.EMAIL_HOST = "127.0.0.1"
    settings.EMAIL_PORT = sink.port
    settings.EMAIL_HOST_USER = ""
    settings.EMAIL_HOST_PASSWORD = ""
    settings.EMAIL_USE_TLS = False
    settings.EMAIL_USE_SSL = False
    settings.EMAIL_TIMEOUT = 10
    try:
        yield sink
    finally:
        sink.stop()
