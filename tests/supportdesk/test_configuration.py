"""Configuration: deploy checks, the secret key, security headers, and 500 pages that reveal nothing.

Settings are read once at start-up, so what depends on the environment runs in a subprocess with a
production environment (``manage.py check --deploy``, the secret key refusal, HSTS behind TLS).
"""

from __future__ import annotations

import os
import secrets
import subprocess
import sys
from pathlib import Path

import pytest
from django.http import HttpRequest, HttpResponse
from django.test import Client, override_settings
from django.urls import include, path

from tests.conftest import client_for

ROOT = Path(__file__).resolve().parents[2]
STRONG_KEY = secrets.token_urlsafe(50)


def production_env(tmp_path: Path, **extra: str) -> dict[str, str]:
    """What the compose file gives the web service, with nothing inherited from the test run."""
    env = {
        "PATH": os.environ.get("PATH", ""),
        "HOME": str(tmp_path),
        "DATA_DIR": str(tmp_path / "data"),
        "SECRET_KEY": STRONG_KEY,
        "DEBUG": "0",
        "ALLOWED_HOSTS": "support.example.com",
        "CSRF_TRUSTED_ORIGINS": "https://support.example.com",
        "BEHIND_TLS_PROXY": "1",
        "SITE_URL": "https://support.example.com",
    }
    for name in ("DATABASE_URL", "CELERY_BROKER_URL"):
        if os.environ.get(name):
            env[name] = os.environ[name]
    env.update(extra)
    return {key: value for key, value in env.items() if value is not None}


def run(args: list[str], env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, *args], cwd=ROOT, env=env, capture_output=True, text=True, timeout=120
    )


SHOW = (
    "-c",
    "import django, os; os.environ.setdefault('DJANGO_SETTINGS_MODULE', 'supportdesk.settings');"
    "django.setup(); from django.conf import settings as s;"
    "print(s.SECRET_KEY); print(getattr(s, 'SECURE_HSTS_SECONDS', 0));"
    "print(getattr(s, 'SECURE_SSL_REDIRECT', False)); print(s.X_FRAME_OPTIONS)",
)


# --- check --deploy and the secret key ---------------------------------------------------------------


def test_check_deploy_is_clean_under_production_settings(tmp_path):
    result = run(
        ["manage.py", "check", "--deploy", "--fail-level", "WARNING"], production_env(tmp_path)
    )
    assert result.returncode == 0, result.stdout + result.stderr
    assert "System check identified no issues (0 silenced)." in result.stdout


def test_production_settings_turn_on_hsts_and_the_https_redirect_only_behind_tls(tmp_path):
    behind = run(list(SHOW), production_env(tmp_path))
    direct = run(list(SHOW), production_env(tmp_path, BEHIND_TLS_PROXY="0"))

    assert behind.stdout.splitlines() == [STRONG_KEY, "31536000", "True", "DENY"]
    assert direct.stdout.splitlines() == [STRONG_KEY, "0", "False", "DENY"]


@pytest.mark.parametrize(
    ("key", "message"),
    [
        (None, "SECRET_KEY is not set."),
        ("", "SECRET_KEY is not set."),
        (
            "dev-only-insecure-secret-key-change-me-in-production-0123456789",
            "SECRET_KEY is a published default.",
        ),
        ("django-insecure-" + "x" * 60, "SECRET_KEY is a published default."),
        ("short-key-1234", "SECRET_KEY has 14 characters; use at least 50."),
        ("ab" * 40, "SECRET_KEY has fewer than 5 different characters."),
    ],
)
def test_production_start_up_refuses_a_missing_default_or_weak_key(tmp_path, key, message):
    env = production_env(tmp_path)
    if key is None:
        del env["SECRET_KEY"]
    else:
        env["SECRET_KEY"] = key

    result = run(["manage.py", "check"], env)

    assert result.returncode != 0
    assert f"django.core.exceptions.ImproperlyConfigured: {message}" in result.stderr
    assert "python3 -c 'import secrets; print(secrets.token_urlsafe(50))'" in result.stderr
    assert not (tmp_path / "data" / "secret_key").exists()


def test_development_generates_a_private_key_once_and_reuses_it(tmp_path):
    env = production_env(tmp_path, DEBUG="1", BEHIND_TLS_PROXY="0")
    del env["SECRET_KEY"]

    first = run(list(SHOW), env)
    second = run(list(SHOW), env)

    key_file = tmp_path / "data" / "secret_key"
    assert first.returncode == 0, first.stderr
    key = key_file.read_text().strip()
    assert len(key) >= 50
    assert oct(key_file.stat().st_mode & 0o777) == "0o600"
    assert first.stdout.splitlines()[0] == key
    assert second.stdout.splitlines()[0] == key


def test_production_refuses_a_development_key_left_in_the_data_folder(tmp_path):
    # given: var/secret_key from a development run, and production settings without SECRET_KEY
    env = production_env(tmp_path)
    del env["SECRET_KEY"]
    key_file = tmp_path / "data" / "secret_key"
    key_file.parent.mkdir(parents=True, exist_ok=True)
    key_file.write_text("dev-" + "k3y-" * 20 + "\n")

    # when
    result = run(["manage.py", "check"], env)

    # then: start-up stops and says why; the file is left as it was
    assert result.returncode != 0
    assert (
        "django.core.exceptions.ImproperlyConfigured: SECRET_KEY is not set (var/secret_key is "
        "a development key, used only with DEBUG=1)." in result.stderr
    )
    assert key_file.read_text() == "dev-" + "k3y-" * 20 + "\n"


def test_the_var_folder_holding_the_development_key_is_git_ignored():
    assert "/var/" in (ROOT / ".gitignore").read_text().splitlines()


# --- Security headers -------------------------------------------------------------------------------


def assert_security_headers(response: HttpResponse) -> None:
    assert response["X-Content-Type-Options"] == "nosniff"
    assert response["Referrer-Policy"] == "same-origin"
    assert response["Cross-Origin-Opener-Policy"] == "same-origin"
    assert response["X-Frame-Options"] == "DENY"
    csp = response["Content-Security-Policy"]
    assert "default-src 'self'" in csp
    assert "script-src 'self'" in csp
    assert "frame-ancestors 'none'" in csp
    assert "unsafe-inline" not in csp
    assert "Strict-Transport-Security" not in response  # plain http in tests: never HSTS
    assert len(response["X-Request-ID"]) == 16


@pytest.mark.django_db
def test_security_headers_on_a_page_and_an_api_response(agent_a, channels):
    page = Client().get("/login/")
    api = client_for(agent_a).get("/api/v1/conversations/")
    inbound = Client().post(
        "/api/v1/inbound/chat/",
        {"external_id": "c", "session_id": "s", "visitor_id": "v", "body": "hi"},
        content_type="application/json",
        HTTP_X_CHANNEL_TOKEN=channels["chat"].secret,
    )

    assert (page.status_code, api.status_code, inbound.status_code) == (200, 200, 201)
    for response in (page, api, inbound):
        assert_security_headers(response)


@pytest.mark.django_db
@override_settings(
    SECURE_PROXY_SSL_HEADER=("HTTP_X_FORWARDED_PROTO", "https"),
    SECURE_HSTS_SECONDS=31536000,
    SECURE_HSTS_INCLUDE_SUBDOMAINS=True,
    SECURE_HSTS_PRELOAD=True,
    SECURE_SSL_REDIRECT=True,
    SECURE_REDIRECT_EXEMPT=[r"^healthz$"],
)
def test_behind_the_tls_proxy_https_gets_hsts_and_http_is_redirected_except_healthz():
    # The values are the ones BEHIND_TLS_PROXY=1 sets (checked in a subprocess above).
    client = Client()
    secure = client.get("/login/", HTTP_X_FORWARDED_PROTO="https")
    plain = client.get("/login/")
    probe = client.get("/healthz")

    assert secure.status_code == 200
    assert secure["Strict-Transport-Security"] == "max-age=31536000; includeSubDomains; preload"
    assert plain.status_code == 301
    assert plain["Location"] == "https://testserver/login/"
    assert probe.status_code == 200


@pytest.mark.django_db
def test_the_email_frame_alone_may_be_framed_by_our_pages(agent_a, channels):
    from tests.factories import send_email
    from tickets.models import Message

    result = send_email(channels["email"])
    Message.objects.filter(pk=result.message_id).update(body_html="<p>Hello</p>")
    client = Client()
    client.force_login(agent_a)

    frame = client.get(f"/messages/{result.message_id}/html/")

    assert frame.status_code == 200
    assert frame["X-Frame-Options"] == "SAMEORIGIN"
    assert "frame-ancestors 'self'" in frame["Content-Security-Policy"]


# --- 500 pages --------------------------------------------------------------------------------------


def _boom(request: HttpRequest) -> HttpResponse:
    raise RuntimeError("SELECT secret_column FROM hidden_table -- SECRET_KEY leaked?")


urlpatterns = [
    path("boom/", _boom),
    path("api/v1/boom/", _boom),
    path("", include("supportdesk.urls")),
]
handler500 = "supportdesk.security.handler500"


@pytest.mark.django_db
@pytest.mark.urls(__name__)
@override_settings(DEBUG=False)
def test_a_crash_shows_a_page_with_the_request_id_and_nothing_else(agent_a):
    client = Client(raise_request_exception=False)
    client.force_login(agent_a)

    page = client.get("/boom/")
    api = client.get("/api/v1/boom/")

    assert (page.status_code, api.status_code) == (500, 500)
    html = page.content.decode()
    request_id = page["X-Request-ID"]
    assert f"Request id: <code>{request_id}</code>" in html
    assert "Something went wrong" in html
    assert api.json() == {
        "detail": "The error was recorded. If it keeps happening, tell your administrator "
        "and quote the request id.",
        "request_id": api["X-Request-ID"],
    }
    for body in (html, api.content.decode()):
        for leak in ("Traceback", "RuntimeError", "SELECT", "hidden_table", "SECRET", "alice@"):
            assert leak not in body, leak
    assert_security_headers(page)


@pytest.mark.django_db
def test_a_request_id_from_the_proxy_is_kept_when_it_looks_like_one():
    kept = Client().get("/login/", HTTP_X_REQUEST_ID="abc-123-def-456")
    replaced = Client().get("/login/", HTTP_X_REQUEST_ID="<script>x</script>")

    assert kept["X-Request-ID"] == "abc-123-def-456"
    assert replaced["X-Request-ID"] != "<script>x</script>"
    assert len(replaced["X-Request-ID"]) == 16


def test_the_embedded_broker_keeps_every_folder_under_the_data_folder():
    """bin/dev's filesystem broker wrote ./control into the checkout (kombu's default)."""
    from supportdesk.settings import DATA_DIR, celery_broker_transport_options

    options = celery_broker_transport_options("filesystem://")

    folders = {
        key: Path(value)
        for key, value in options.items()
        if key.endswith("_folder") or key.startswith("data_folder")
    }
    assert set(folders) == {
        "data_folder_in",
        "data_folder_out",
        "processed_folder",
        "control_folder",
    }
    for folder in folders.values():
        assert folder.is_relative_to(DATA_DIR / "broker")


def test_the_browser_tests_write_screenshots_outside_the_checkout_unless_asked():
    from tests.browser import SHOTS

    root = Path(__file__).resolve().parents[2]
    if os.environ.get("SCREENSHOTS_DIR"):
        assert Path(os.environ["SCREENSHOTS_DIR"]) == SHOTS
    else:
        assert not SHOTS.resolve().is_relative_to(root)
