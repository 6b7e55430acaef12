"""Supportdesk settings: one file, configured from the environment only (12-factor).

Every value has a development-safe default so that a fresh clone runs with no server at all:
SQLite in ``var/``, Celery's filesystem broker in ``var/broker/`` (still a real worker
process), and outgoing mail written to files in ``var/mail/``. ``DATABASE_URL``,
``CELERY_BROKER_URL`` and ``EMAIL_URL`` switch to PostgreSQL, Redis and SMTP.
"""

from __future__ import annotations

import importlib.util
import ipaddress
import json
import os
from collections.abc import Mapping
from datetime import timedelta
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, unquote, urlsplit

import dj_database_url
from celery.schedules import crontab
from django.core.exceptions import ImproperlyConfigured
from dotenv import load_dotenv
from kombu import Exchange, Queue

from supportdesk import queues

BASE_DIR = Path(__file__).resolve().parent.parent
load_dotenv(BASE_DIR / ".env")


def env(name: str, default: str = "") -> str:
    return os.environ.get(name, default)


def env_bool(name: str, default: bool = False) -> bool:
    raw = os.environ.get(name)
    if raw is None or raw == "":
        return default
    value = raw.strip().lower()
    if value in {"1", "true", "yes", "on"}:
        return True
    if value in {"0", "false", "no", "off"}:
        return False
    raise ImproperlyConfigured(f"{name} must be a boolean (1/0, true/false), not {raw!r}")


def env_int(name: str, default: int, *, minimum: int | None = None) -> int:
    raw = os.environ.get(name)
    if raw is None or raw.strip() == "":
        return default
    try:
        value = int(raw)
    except ValueError as exc:
        raise ImproperlyConfigured(f"{name} must be an integer, not {raw!r}") from exc
    if minimum is not None and value < minimum:
        raise ImproperlyConfigured(f"{name} must be at least {minimum}, not {value}")
    return value


def env_list(name: str, default: list[str]) -> list[str]:
    raw = os.environ.get(name)
    if raw is None or raw.strip() == "":
        return default
    return [item.strip() for item in raw.split(",") if item.strip()]


DATA_DIR = Path(env("DATA_DIR", str(BASE_DIR / "var")))

DEBUG = env_bool("DEBUG", False)


# --- limits: the secret key ----------------------------------------------------------------------
# Production (DEBUG off) refuses to start without a strong SECRET_KEY. Development needs no
# configuration: without SECRET_KEY a random key is generated once into DATA_DIR/secret_key
# (git-ignored, var/) and reused by the web server, the worker and manage.py. The test suite sets
# its own key (supportdesk/pytest_keys.py, a pytest plugin loaded before the settings).
SECRET_KEY_FILE = DATA_DIR / "secret_key"
# Keys that must never sign anything: this project's former development default and Django's
# "insecure" prefix.
KNOWN_INSECURE_KEYS = {"dev-only-insecure-secret-key-change-me-in-production-0123456789"}
SECRET_KEY_MIN_LENGTH = 50


def secret_key_problem(key: str) -> str | None:
    """Why ``key`` is unfit for production, or None when it is fine."""
    if key in KNOWN_INSECURE_KEYS or key.startswith("django-insecure"):
        return "is a published default"
    if len(key) < SECRET_KEY_MIN_LENGTH:
        return f"has {len(key)} characters; use at least {SECRET_KEY_MIN_LENGTH}"
    if len(set(key)) < 5:
        return "has fewer than 5 different characters"
    return None


def _secret_key() -> str:
    key = env("SECRET_KEY").strip()
    how = (
        "Set SECRET_KEY to 50+ random characters, e.g. the output of "
        "python3 -c 'import secrets; print(secrets.token_urlsafe(50))' "
        "(for development, DEBUG=1 generates one into var/secret_key)."
    )
    if key:
        problem = secret_key_problem(key)
        if problem and not DEBUG:
            raise ImproperlyConfigured(f"SECRET_KEY {problem}. {how}")
        return key
    if not DEBUG:
        # A development key left in a production data folder is never picked up silently.
        found = " (var/secret_key is a development key, used only with DEBUG=1)"
        raise ImproperlyConfigured(
            f"SECRET_KEY is not set{found if SECRET_KEY_FILE.is_file() else ''}. {how}"
        )
    if SECRET_KEY_FILE.is_file():
        key = SECRET_KEY_FILE.read_text().strip()
        if key and not secret_key_problem(key):
            return key
    import secrets

    SECRET_KEY_FILE.parent.mkdir(parents=True, exist_ok=True)
    key = secrets.token_urlsafe(50)
    fd = os.open(SECRET_KEY_FILE, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as handle:
        handle.write(key + "\n")
    return key


SECRET_KEY = _secret_key()
# Former keys, comma-separated, while sessions, signed links and sealed secrets move to the new one.
SECRET_KEY_FALLBACKS = env_list("SECRET_KEY_FALLBACKS", [])
ALLOWED_HOSTS = env_list("ALLOWED_HOSTS", ["localhost", "127.0.0.1", "[::1]", "testserver"])
CSRF_TRUSTED_ORIGINS = env_list("CSRF_TRUSTED_ORIGINS", [])
SITE_URL = env("SITE_URL", "http://localhost:8000").rstrip("/")
SUPPORT_EMAIL = env("SUPPORT_EMAIL", "support@supportdesk.localhost").lower()
DEFAULT_FROM_EMAIL = env("DEFAULT_FROM_EMAIL", f"Support <{SUPPORT_EMAIL}>")
SERVER_EMAIL = SUPPORT_EMAIL
# The desk's name in the From of outgoing mail ("Alice via Example Support"); a channel may
# override it (Channel.from_name).
DESK_NAME = env("DESK_NAME", "Support")

INSTALLED_APPS = [
    "django.contrib.admin",
    "django.contrib.auth",
    "django.contrib.contenttypes",
    "django.contrib.sessions",
    "django.contrib.messages",
    "whitenoise.runserver_nostatic",
    "django.contrib.staticfiles",
    "rest_framework",
    "rest_framework.authtoken",
    "django_filters",
    "drf_spectacular",
    "drf_spectacular_sidecar",
    "anymail",
    "django_htmx",
    "template_partials",
    "csp",
    "axes",
    # Staff accounts (accounts): sign-in, invitations, password reset, TOTP, OpenID Connect.
    "allauth",
    "allauth.account",
    "allauth.mfa",
    "allauth.usersessions",  # which sessions are whose: deactivation ends them
    "allauth.socialaccount",
    "allauth.socialaccount.providers.openid_connect",
    "supportdesk",
    "tickets",
    "routing",
    "notifications",
    "surveys",
    "quality",
    "metrics",
]
# Development: `manage.py bench_seed` (bench/seed), present in a checkout, absent from the image.
if importlib.util.find_spec("bench") is not None and (BASE_DIR / "bench" / "seed").is_dir():
    INSTALLED_APPS.append("bench.seed")

MIDDLEWARE = [
    "supportdesk.request_context.RequestContextMiddleware",  # limits: request id, audit address
    "django.middleware.security.SecurityMiddleware",
    "supportdesk.request_context.RequestSizeLimitMiddleware",  # limits: 413 before reading
    "whitenoise.middleware.WhiteNoiseMiddleware",
    "django.contrib.sessions.middleware.SessionMiddleware",
    "django.middleware.common.CommonMiddleware",
    "django.middleware.csrf.CsrfViewMiddleware",
    "django.contrib.auth.middleware.AuthenticationMiddleware",
    "django.contrib.messages.middleware.MessageMiddleware",
    "django.middleware.clickjacking.XFrameOptionsMiddleware",
    "csp.middleware.CSPMiddleware",
    "django_htmx.middleware.HtmxMiddleware",
    # faults: a database outage answers 503 + Retry-After (supportdesk/outage.py)
    "supportdesk.outage.DatabaseOutageMiddleware",
    # Mail integrity (hostile branch): provider webhooks refuse everything without a secret.
    "supportdesk.middleware.anymail_webhook_gate",
    "axes.middleware.AxesMiddleware",  # limits: turns a login lockout into the lockout page
    "allauth.account.middleware.AccountMiddleware",
    "supportdesk.accounts.RequireSecondFactorMiddleware",  # accounts: MFA_REQUIRED
]

ROOT_URLCONF = "supportdesk.urls"
WSGI_APPLICATION = "supportdesk.wsgi.application"

TEMPLATES = [
    {
        "BACKEND": "django.template.backends.django.DjangoTemplates",
        "DIRS": [BASE_DIR / "templates"],
        "APP_DIRS": True,
        "OPTIONS": {
            "context_processors": [
                "django.template.context_processors.request",
                "django.contrib.auth.context_processors.auth",
                "django.contrib.messages.context_processors.messages",
                "supportdesk.context_processors.notifications",
            ],
        },
    },
]

# Database: SQLite in the project folder unless DATABASE_URL says otherwise.
DATABASES = {
    "default": dj_database_url.parse(
        env("DATABASE_URL", f"sqlite:///{DATA_DIR / 'db.sqlite3'}"),
        conn_max_age=env_int("DB_CONN_MAX_AGE", 60, minimum=0),
        conn_health_checks=True,
    )
}
if DATABASES["default"]["ENGINE"] == "django.db.backends.sqlite3":
    # Several processes (web, worker, beat) share the file: wait for locks instead of failing.
    DATABASES["default"].setdefault("OPTIONS", {})["timeout"] = 20
    DATABASES["default"]["CONN_MAX_AGE"] = 0
IS_POSTGRES = DATABASES["default"]["ENGINE"].endswith("postgresql")


def replica_databases(urls: str, primary: Mapping[str, Any]) -> dict[str, Any]:
    """``DATABASES`` entries ``replica_0``, ``replica_1``, … for comma-separated replica URLs.

    In tests the replicas mirror the primary's test database instead of getting their own.
    """
    entries: dict[str, Any] = {}
    for index, url in enumerate(part.strip() for part in urls.split(",") if part.strip()):
        entry: dict[str, Any] = dict(
            dj_database_url.parse(
                url,
                conn_max_age=primary.get("CONN_MAX_AGE", 0),
                conn_health_checks=bool(primary.get("CONN_HEALTH_CHECKS")),
            )
        )
        entry["TEST"] = {"MIRROR": "default"}
        # A replica that is down must not hold a page for long: it is left out instead.
        entry.setdefault("OPTIONS", {}).setdefault("connect_timeout", 3)
        entries[f"replica_{index}"] = entry
    return entries


# Streaming replicas (comma-separated URLs): dashboards, reports and exports read from them, every
# other query and any read after the request's own write from the primary (supportdesk/replicas.py).
DATABASES.update(replica_databases(env("DATABASE_REPLICA_URLS"), DATABASES["default"]))
DATABASE_ROUTERS = ["supportdesk.replicas.ReplicaRouter"] if len(DATABASES) > 1 else []
if DATABASE_ROUTERS:
    MIDDLEWARE.append("supportdesk.replicas.replica_pin_middleware")
# After a request that wrote, the same client reads from the primary for this many seconds.
REPLICA_PIN_SECONDS = env_int("REPLICA_PIN_SECONDS", 5, minimum=1)
# A replica that cannot be reached is left out for this many seconds (reads go elsewhere).
REPLICA_RETRY_SECONDS = env_int("REPLICA_RETRY_SECONDS", 30, minimum=1)

DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"
AUTH_USER_MODEL = "supportdesk.User"
AUTHENTICATION_BACKENDS = [
    # limits: django-axes refuses logins of a locked-out username and address first.
    "axes.backends.AxesStandaloneBackend",
    "django.contrib.auth.backends.ModelBackend",
    # accounts: the OpenID Connect sign-in (allauth) logs the matched staff member in.
    "allauth.account.auth_backends.AuthenticationBackend",
]
AUTH_PASSWORD_VALIDATORS = [
    {"NAME": "django.contrib.auth.password_validation.MinimumLengthValidator"},
    {"NAME": "django.contrib.auth.password_validation.CommonPasswordValidator"},
]
LOGIN_URL = "login"
LOGIN_REDIRECT_URL = "home"
LOGOUT_REDIRECT_URL = "login"

# --- Staff accounts (django-allauth; supportdesk/accounts.py) ------------------------------------
# Sign-in by email; no open sign-up (staff are invited by an admin, or created by create_staff);
# invitations and password resets are one-time links signed with SECRET_KEY that expire after
# ACCOUNT_LINK_HOURS (Django's PASSWORD_RESET_TIMEOUT).
ACCOUNT_ADAPTER = "supportdesk.accounts.AccountAdapter"
SOCIALACCOUNT_ADAPTER = "supportdesk.accounts.SocialAccountAdapter"
ACCOUNT_LOGIN_METHODS = {"email"}
ACCOUNT_SIGNUP_FIELDS = ["email*", "password1*"]
ACCOUNT_USER_MODEL_USERNAME_FIELD = None
ACCOUNT_EMAIL_VERIFICATION = "none"
ACCOUNT_UNIQUE_EMAIL = True
ACCOUNT_PREVENT_ENUMERATION = True
ACCOUNT_LOGOUT_ON_PASSWORD_CHANGE = False
ACCOUNT_LOGIN_ON_PASSWORD_RESET = False
ACCOUNT_PASSWORD_RESET_BY_CODE_ENABLED = False
ACCOUNT_EMAIL_SUBJECT_PREFIX = "[Supportdesk] "
ACCOUNT_DEFAULT_HTTP_PROTOCOL = "https" if SITE_URL.startswith("https://") else "http"
# Login limits stay the project's: django-ratelimit (supportdesk.security) and django-axes.
ACCOUNT_RATE_LIMITS = False
PASSWORD_RESET_TIMEOUT = 3600 * env_int("ACCOUNT_LINK_HOURS", 72, minimum=1)
# "none", "admins" or "everyone": who must enrol a second factor before any other page.
MFA_REQUIRED = env("MFA_REQUIRED", "none")
if MFA_REQUIRED not in {"none", "admins", "everyone"}:
    raise ImproperlyConfigured("MFA_REQUIRED must be none, admins or everyone")
MFA_SUPPORTED_TYPES = ["totp", "recovery_codes"]
MFA_TOTP_ISSUER = env("MFA_TOTP_ISSUER", "Supportdesk")
MFA_RECOVERY_CODE_COUNT = 10
USERSESSIONS_TRACK_ACTIVITY = False
# Single sign-on: OIDC_PROVIDERS is a JSON list of {"id", "name", "server_url", "client_id",
# "secret"} (Google: server_url https://accounts.google.com; Microsoft:
# https://login.microsoftonline.com/<tenant>/v2.0). Staff are matched by verified email and never
# created by a sign-in.
SOCIALACCOUNT_ONLY = False
SOCIALACCOUNT_AUTO_SIGNUP = False
SOCIALACCOUNT_EMAIL_AUTHENTICATION = True
SOCIALACCOUNT_EMAIL_AUTHENTICATION_AUTO_CONNECT = True
SOCIALACCOUNT_LOGIN_ON_GET = False
SOCIALACCOUNT_STORE_TOKENS = False


def _oidc_apps(raw: str) -> list[dict[str, Any]]:
    if not raw.strip():
        return []
    try:
        entries = json.loads(raw)
        return [
            {
                "provider_id": str(entry["id"]),
                "name": str(entry.get("name") or entry["id"]),
                "client_id": str(entry["client_id"]),
                "secret": str(entry.get("secret", "")),
                "settings": {"server_url": str(entry["server_url"])},
            }
            for entry in entries
        ]
    except (ValueError, KeyError, TypeError) as exc:
        raise ImproperlyConfigured(
            f"OIDC_PROVIDERS is not a JSON list of providers: {exc}"
        ) from exc


def oidc_origins(apps: list[dict[str, Any]]) -> list[str]:
    """The scheme://host[:port] of each provider's server_url (its authorisation endpoint)."""
    origins = []
    for app in apps:
        parts = urlsplit(str(app["settings"]["server_url"]))
        origins.append(f"{parts.scheme}://{parts.netloc}")
    return sorted(set(origins))


OIDC_APPS = _oidc_apps(env("OIDC_PROVIDERS", ""))
SOCIALACCOUNT_PROVIDERS = {"openid_connect": {"OAUTH_PKCE_ENABLED": True, "APPS": OIDC_APPS}}

# Webhook URLs (chat and social channels) may not point at loopback, private, link-local or
# other internal addresses (supportdesk/urlguard.py) unless their host is allowed: by an admin
# on the Settings > Webhook hosts page, or here (comma-separated host names or addresses).
WEBHOOK_ALLOWED_HOSTS = env_list("WEBHOOK_ALLOWED_HOSTS", [])

LANGUAGE_CODE = "en-us"
# Customer-facing pages and email (survey, chat, unsubscribe, expired link, acknowledgement,
# survey email and reminder) come in these; staff pages are English (docs/api.md "Languages").
LANGUAGES = [
    ("en", "English"),
    ("es", "Español"),
    ("fr", "Français"),
    ("de", "Deutsch"),
    ("pt-br", "Português (Brasil)"),
]
LOCALE_PATHS = [BASE_DIR / "locale"]
TIME_ZONE = env("TIME_ZONE", "UTC")
USE_I18N = True
USE_TZ = True

STATIC_URL = "/static/"
STATIC_ROOT = Path(env("STATIC_ROOT", str(BASE_DIR / "staticfiles")))
STATICFILES_DIRS = [BASE_DIR / "static"] if (BASE_DIR / "static").is_dir() else []
MEDIA_URL = "/media/"
MEDIA_ROOT = Path(env("MEDIA_ROOT", str(DATA_DIR / "media")))
STORAGES = {
    "default": {"BACKEND": "django.core.files.storage.FileSystemStorage"},
    "staticfiles": {
        "BACKEND": env(
            "STATICFILES_BACKEND",
            "whitenoise.storage.CompressedManifestStaticFilesStorage"
            if not DEBUG
            else "django.contrib.staticfiles.storage.StaticFilesStorage",
        )
    },
}

# Size limits: a request body larger than this answers 413 and stores nothing.
ATTACHMENT_MAX_BYTES = env_int("ATTACHMENT_MAX_BYTES", 10 * 1024 * 1024, minimum=1)
DATA_UPLOAD_MAX_MEMORY_SIZE = env_int("INBOUND_MAX_BYTES", 25 * 1024 * 1024, minimum=1024)

# Security headers that hold in every environment.
SECURE_CONTENT_TYPE_NOSNIFF = True
SECURE_REFERRER_POLICY = "same-origin"
SECURE_CROSS_ORIGIN_OPENER_POLICY = "same-origin"
# limits: no page may be framed, except the sanitised email HTML (its view says SAMEORIGIN).
X_FRAME_OPTIONS = "DENY"
SESSION_COOKIE_HTTPONLY = True
SESSION_COOKIE_SECURE = env_bool("SECURE_COOKIES", SITE_URL.startswith("https://"))
CSRF_COOKIE_SECURE = SESSION_COOKIE_SECURE
# Content Security Policy (django-csp): our own origin only, no inline script anywhere. Email HTML
# is shown in a sandboxed iframe served from /…/html/ with an even stricter policy of its own.
CONTENT_SECURITY_POLICY = {
    "DIRECTIVES": {
        "default-src": ["'self'"],
        "script-src": ["'self'"],
        "style-src": ["'self'"],
        "img-src": ["'self'", "data:"],
        "font-src": ["'self'"],
        "connect-src": ["'self'"],
        "frame-src": ["'self'"],
        "frame-ancestors": ["'none'"],
        "object-src": ["'none'"],
        "base-uri": ["'self'"],
        "form-action": ["'self'"],
    }
}
# The sign-in form posts to allauth, which redirects to the identity provider: browsers apply
# form-action to that redirect, so the configured providers' origins are allowed.
CONTENT_SECURITY_POLICY["DIRECTIVES"]["form-action"] += oidc_origins(OIDC_APPS)
BEHIND_TLS_PROXY = env_bool("BEHIND_TLS_PROXY", False)
# Addresses or networks (comma-separated, e.g. "172.16.0.0/12,10.0.0.5") of the proxies in front
# of the app. Only a request arriving from one of them has its X-Forwarded-For read for the
# client's address (rate limits, login lockout, audit log); everyone else's header is ignored.
TRUSTED_PROXIES = env_list("TRUSTED_PROXIES", [])
for _proxy in TRUSTED_PROXIES:
    try:
        ipaddress.ip_network(_proxy, strict=False)
    except ValueError as _exc:
        raise ImproperlyConfigured(
            f"TRUSTED_PROXIES: {_proxy!r} is not an IP address or network."
        ) from _exc
# django-ratelimit's key="ip" uses the same client address.
RATELIMIT_IP_META_KEY = "supportdesk.request_context.ratelimit_ip"
if BEHIND_TLS_PROXY:
    SECURE_PROXY_SSL_HEADER = ("HTTP_X_FORWARDED_PROTO", "https")
    # limits: TLS is guaranteed only behind the proxy, so only then HSTS and the redirect to https
    # (the proxy's plain-http health probe of /healthz is exempt).
    SECURE_HSTS_SECONDS = env_int("SECURE_HSTS_SECONDS", 31536000, minimum=0)
    # Subdomains of the desk's own host name; "preload" only matters once the domain is
    # submitted to the browsers' preload list (SECURE_HSTS_PRELOAD=0 to leave it out).
    SECURE_HSTS_INCLUDE_SUBDOMAINS = env_bool("SECURE_HSTS_INCLUDE_SUBDOMAINS", True)
    SECURE_HSTS_PRELOAD = env_bool("SECURE_HSTS_PRELOAD", True)
    SECURE_SSL_REDIRECT = env_bool("SECURE_SSL_REDIRECT", True)
    SECURE_REDIRECT_EXEMPT = [r"^healthz$"]


# --- limits: login brute force (django-axes) and login rate limits (django-ratelimit) ------------
# Five wrong passwords for one username from one address lock that pair out for 15 minutes (a page
# says so, with the time); an admin unlocks at /admin/axes/ or with `manage.py axes_reset`.
# The login form is also rate-limited per address and per username: 429 beyond the rate.
AXES_FAILURE_LIMIT = env_int("LOGIN_FAILURE_LIMIT", 5, minimum=1)
AXES_COOLOFF_TIME = timedelta(minutes=env_int("LOGIN_LOCKOUT_MINUTES", 15, minimum=1))
AXES_LOCKOUT_PARAMETERS = [["username", "ip_address"]]
AXES_LOCKOUT_TEMPLATE = "registration/locked_out.html"
AXES_RESET_ON_SUCCESS = True
AXES_USERNAME_CALLABLE = "supportdesk.security.axes_username"
AXES_CLIENT_IP_CALLABLE = "supportdesk.security.axes_client_ip"
AXES_SENSITIVE_PARAMETERS = ["password"]
AXES_VERBOSE = False
# allauth's sign-in form names the email field "login".
AXES_USERNAME_FORM_FIELD = "login"
LOGIN_RATE_LIMIT_IP = env("LOGIN_RATE_LIMIT_IP", "20/m")
LOGIN_RATE_LIMIT_USERNAME = env("LOGIN_RATE_LIMIT_USERNAME", "10/m")


# --- Cache: rate limits (django-ratelimit) and presence counters --------------------------------
# Unset: per-process memory, right for bin/dev. With several web workers set CACHE_URL to Redis
# (redis://host:6379/1) so a rate limit counts across all of them.
CACHE_URL = env("CACHE_URL", "")
if CACHE_URL and not CACHE_URL.startswith(("redis://", "rediss://")):
    raise ImproperlyConfigured(f"CACHE_URL must be a redis:// URL, not {CACHE_URL!r}")
CACHES = {
    "default": (
        {"BACKEND": "django.core.cache.backends.redis.RedisCache", "LOCATION": CACHE_URL}
        if CACHE_URL
        else {"BACKEND": "django.core.cache.backends.locmem.LocMemCache"}
    )
}
# The workspace's rendered fragments (tickets.fragments): keyed by what they show, so never stale;
# the time only bounds how long an unused one takes room. The queue's view counts are reused by
# its 15-second poll for this long (a full page load always counts): 0 counts on every poll.
FRAGMENT_CACHE_SECONDS = env_int("FRAGMENT_CACHE_SECONDS", 3600, minimum=1)
QUEUE_COUNTS_SECONDS = env_int("QUEUE_COUNTS_SECONDS", 20, minimum=0)


# --- Email -----------------------------------------------------------------------------------
def _email_settings(url: str) -> dict[str, object]:
    """EMAIL_URL: unset -> files under var/mail; smtp://user:pass@host:port[?tls=1|ssl=1]."""
    if not url:
        return {
            "EMAIL_BACKEND": "django.core.mail.backends.filebased.EmailBackend",
            "EMAIL_FILE_PATH": str(DATA_DIR / "mail"),
        }
    parts = urlsplit(url)
    query = {key: values[-1] for key, values in parse_qs(parts.query).items()}
    if parts.scheme == "console":
        return {"EMAIL_BACKEND": "django.core.mail.backends.console.EmailBackend"}
    if parts.scheme == "file":
        return {
            "EMAIL_BACKEND": "django.core.mail.backends.filebased.EmailBackend",
            "EMAIL_FILE_PATH": parts.path or str(DATA_DIR / "mail"),
        }
    if parts.scheme == "locmem":
        return {"EMAIL_BACKEND": "django.core.mail.backends.locmem.EmailBackend"}
    if parts.scheme not in {"smtp", "smtps"}:
        raise ImproperlyConfigured(
            f"EMAIL_URL scheme must be smtp, smtps, file or console: {url!r}"
        )
    return {
        "EMAIL_BACKEND": "django.core.mail.backends.smtp.EmailBackend",
        "EMAIL_HOST": parts.hostname or "localhost",
        "EMAIL_PORT": parts.port or (465 if parts.scheme == "smtps" else 25),
        "EMAIL_HOST_USER": unquote(parts.username or ""),
        "EMAIL_HOST_PASSWORD": unquote(parts.password or ""),
        "EMAIL_USE_SSL": parts.scheme == "smtps" or query.get("ssl") in {"1", "true"},
        "EMAIL_USE_TLS": query.get("tls") in {"1", "true"},
        "EMAIL_TIMEOUT": 20,
    }


globals().update(_email_settings(env("EMAIL_URL")))

ANYMAIL = {
    # Basic-auth credentials ("user:password") the inbound provider webhook must present.
    "WEBHOOK_SECRET": env("ANYMAIL_WEBHOOK_SECRET", "") or None,
    "MAILGUN_WEBHOOK_SIGNING_KEY": env("MAILGUN_WEBHOOK_SIGNING_KEY", "") or None,
    "POSTMARK_SERVER_TOKEN": env("POSTMARK_SERVER_TOKEN", "") or None,
}
ANYMAIL = {key: value for key, value in ANYMAIL.items() if value}

# --- Domain settings ---------------------------------------------------------------------------
ATTACH_WINDOW_DAYS = env_int("ATTACH_WINDOW_DAYS", 7, minimum=0)
CONTACT_CHASER_HOURS = env_int("CONTACT_CHASER_HOURS", 4, minimum=1)
CLOSE_SOLVED_AFTER_DAYS = env_int(
    "CLOSE_SOLVED_AFTER_DAYS", env_int("SURVEY_WINDOW_DAYS", 7), minimum=1
)
PHONE_DEFAULT_REGION = env("PHONE_DEFAULT_REGION", "US").upper()
SURVEY_DELAY_MINUTES = env_int("SURVEY_DELAY_MINUTES", 60, minimum=0)
SURVEY_MIN_DAYS_BETWEEN = env_int("SURVEY_MIN_DAYS_BETWEEN", 7, minimum=0)
SURVEY_WINDOW_DAYS = env_int("SURVEY_WINDOW_DAYS", 7, minimum=1)
SURVEY_REMINDER_DAYS = env_int("SURVEY_REMINDER_DAYS", 3, minimum=1)
# surveys: requests per client address on the public survey links (django-ratelimit syntax).
SURVEY_RATE_LIMIT = env("SURVEY_RATE_LIMIT", "60/m")
# Emails one member of staff gets for notifications in any hour; beyond it, workspace only.
STAFF_NOTIFICATION_EMAILS_PER_HOUR = env_int("STAFF_NOTIFICATION_EMAILS_PER_HOUR", 30, minimum=0)
# notifications: how often an open workspace tab asks for its unread count (the bell, desktop
# notifications), and the desk-time hour daily digests go out.
NOTIFICATION_POLL_SECONDS = env_int("NOTIFICATION_POLL_SECONDS", 20, minimum=1)
NOTIFICATION_DIGEST_HOUR = env_int("NOTIFICATION_DIGEST_HOUR", 8, minimum=0)
# An event older than this notifies nobody (replayed history, a reaction after a long outage).
NOTIFICATION_MAX_AGE_HOURS = env_int("NOTIFICATION_MAX_AGE_HOURS", 24, minimum=1)
METRICS_RETENTION_DAYS = env_int("METRICS_RETENTION_DAYS", 400, minimum=1)
# The nightly recompute covers the days whose sources changed (metrics/nightly.py); 1: the whole
# retention window every night instead.
METRICS_NIGHTLY_FULL = env_bool("METRICS_NIGHTLY_FULL", False)
# Database connections a recompute chunk runs on at once (each keeps one PostgreSQL core busy).
METRICS_RECOMPUTE_CONNECTIONS = env_int("METRICS_RECOMPUTE_CONNECTIONS", 2, minimum=1)
# How long a computed scorecard is kept; a recompute of any of its days replaces it at once.
SCORECARD_CACHE_SECONDS = env_int("SCORECARD_CACHE_SECONDS", 600, minimum=0)
# Mailboxes (IMAP fetching): how often beat polls each mailbox, how long a poll may hold its
# mailbox before another may take over (renewed every batch), the batch size, how far back the
# first import reaches, and how long a mailbox fails before the admins get one email about it.
MAILBOX_POLL_SECONDS = env_int("MAILBOX_POLL_SECONDS", 60, minimum=5)
MAILBOX_POLL_LEASE_SECONDS = env_int("MAILBOX_POLL_LEASE_SECONDS", 300, minimum=1)
MAILBOX_BATCH_SIZE = env_int("MAILBOX_BATCH_SIZE", 100, minimum=1)
MAILBOX_IMPORT_DAYS = env_int("MAILBOX_IMPORT_DAYS", 30, minimum=1)
MAILBOX_ALERT_MINUTES = env_int("MAILBOX_ALERT_MINUTES", 5, minimum=1)
MAILBOX_TIMEOUT_SECONDS = env_int("MAILBOX_TIMEOUT_SECONDS", 30, minimum=1)
# A beat poll stops after the batch that passes this (a big first import goes on next tick), so
# it ends well inside CELERY_TASK_SOFT_TIME_LIMIT.
MAILBOX_POLL_MAX_SECONDS = env_int("MAILBOX_POLL_MAX_SECONDS", 240, minimum=1)
# --- Mail integrity (hostile branch): automatic mail (surveys, reminders) one address may get ---
AUTO_MAIL_MAX_PER_HOUR = env_int("AUTO_MAIL_MAX_PER_HOUR", 3, minimum=1)
AUTO_MAIL_MAX_PER_DAY = env_int("AUTO_MAIL_MAX_PER_DAY", 10, minimum=1)
# The asynchronous ingestion mode (channels with ingest_mode "async"): accepted payloads are
# split into this many shards by sender (one worker drains a shard at a time, in arrival order),
# taken this many at a time, and beat kicks the ingest workers this often.
INBOUND_QUEUE_SHARDS = env_int("INBOUND_QUEUE_SHARDS", 8, minimum=1)
INBOUND_QUEUE_BATCH = env_int("INBOUND_QUEUE_BATCH", 200, minimum=1)
INBOUND_QUEUE_KICK_SECONDS = env_int("INBOUND_QUEUE_KICK_SECONDS", 2, minimum=1)
# Outbox rows older than this that were not handed to the broker yet are relayed by beat.
OUTBOX_RELAY_AFTER_SECONDS = env_int("OUTBOX_RELAY_AFTER_SECONDS", 5, minimum=0)
# QA sample: conversations per agent per week; peers review as well as managers.
QA_SAMPLE_SIZE = env_int("QA_SAMPLE_SIZE", 5, minimum=1)
QA_PEER_REVIEW = env_bool("QA_PEER_REVIEW", True)
# A review scoring at least this "passes" (the QA-versus-customer disagreement view).
QA_PASS_SCORE = env_int("QA_PASS_SCORE", 80, minimum=0)

# faults: first retry of a failed email/webhook delivery after this many seconds, doubling each
# time (capped at 30 minutes); Idempotency-Key answers are kept this long.
DELIVERY_RETRY_SECONDS = env_int("DELIVERY_RETRY_SECONDS", 30, minimum=1)
IDEMPOTENCY_KEY_HOURS = env_int("IDEMPOTENCY_KEY_HOURS", 24, minimum=1)

# Tests set this so a test that needs PostgreSQL, Redis or a worker fails instead of skipping.
REQUIRE_SERVICES = env_bool("REQUIRE_SERVICES", False)


# --- Celery ------------------------------------------------------------------------------------
def celery_broker_transport_options(broker_url: str) -> dict[str, object]:
    """Transport options for a broker URL (tests that switch brokers reuse this)."""
    if broker_url.startswith("filesystem://"):
        broker_dir = DATA_DIR / "broker"
        return {
            "data_folder_in": str(broker_dir / "queue"),
            "data_folder_out": str(broker_dir / "queue"),
            "processed_folder": str(broker_dir / "processed"),
            # Exchange tables (kombu's default is ./control, which dirtied the checkout).
            "control_folder": str(broker_dir / "control"),
            "store_processed": False,
        }
    # Fail fast when the broker is down: the outbox keeps the work and beat relays it later.
    # faults: a task whose worker died unacknowledged is delivered again after this many seconds
    # (kombu restores it); it must exceed the longest task and retry countdown.
    visibility = env_int("CELERY_BROKER_VISIBILITY_TIMEOUT", 3600, minimum=1)
    options: dict[str, object] = {
        "socket_connect_timeout": 2,
        "socket_timeout": 5,
        "visibility_timeout": visibility,
    }
    if visibility < 60:  # tests: sweep for lost tasks every second, not every 100 s
        options.update(unacked_restore_interval=1, unacked_restore_throttle=1)
    return options


CELERY_BROKER_URL = env("CELERY_BROKER_URL", "filesystem://")
CELERY_BROKER_TRANSPORT_OPTIONS = celery_broker_transport_options(CELERY_BROKER_URL)
# One queue name per deployment (or per test run, so parallel runs on one Redis stay apart).
CELERY_TASK_DEFAULT_QUEUE = env("CELERY_TASK_DEFAULT_QUEUE", "celery")
# Separate queues (supportdesk/queues.py): ingest, mail, webhooks, facts, housekeeping; each task
# is routed by name. A worker without -Q consumes them all; docker-compose.yml runs one worker
# service per group. CELERY_QUEUE_PREFIX keeps deployments (or test runs) on one Redis apart.
CELERY_QUEUE_PREFIX = env("CELERY_QUEUE_PREFIX", "")


def celery_task_queues(prefix: str, *, default_queue: str) -> list[Queue]:
    """The queues a worker without -Q consumes (tests that switch queues reuse this)."""
    return [
        Queue(name, Exchange(name, type="direct"), routing_key=name)
        for name in queues.task_queue_names(prefix, default_queue=default_queue)
    ]


CELERY_TASK_QUEUES = celery_task_queues(
    CELERY_QUEUE_PREFIX, default_queue=CELERY_TASK_DEFAULT_QUEUE
)
CELERY_TASK_ROUTES = queues.task_routes(CELERY_QUEUE_PREFIX)
CELERY_BROKER_CONNECTION_TIMEOUT = 2
CELERY_BROKER_CONNECTION_RETRY_ON_STARTUP = True
CELERY_TASK_IGNORE_RESULT = True
CELERY_RESULT_BACKEND = None
CELERY_TASK_ACKS_LATE = True
CELERY_TASK_REJECT_ON_WORKER_LOST = True
CELERY_WORKER_PREFETCH_MULTIPLIER = 1
CELERY_TASK_TIME_LIMIT = env_int("CELERY_TASK_TIME_LIMIT", 600, minimum=1)
CELERY_TASK_SOFT_TIME_LIMIT = env_int("CELERY_TASK_SOFT_TIME_LIMIT", 540, minimum=1)
# How long one turn of the nightly retention run works before it queues the next (seconds).
RETENTION_TASK_SECONDS = env_int("RETENTION_TASK_SECONDS", 240, minimum=1)
CELERY_TASK_ALWAYS_EAGER = env_bool("CELERY_TASK_ALWAYS_EAGER", False)
CELERY_TASK_EAGER_PROPAGATES = True
CELERY_TIMEZONE = TIME_ZONE
CELERY_BEAT_SCHEDULE_FILENAME = str(DATA_DIR / "celerybeat-schedule")
CELERY_BEAT_SCHEDULE = {
    "relay-outbox": {
        "task": "supportdesk.tasks.outbox_relay_task",
        "schedule": timedelta(seconds=10),
        "options": {"expires": 10},
    },
    "poll-mailboxes": {
        "task": "tickets.tasks.mailboxes_poll_task",
        "schedule": timedelta(seconds=MAILBOX_POLL_SECONDS),
        "options": {"expires": MAILBOX_POLL_SECONDS},
    },
    # The asynchronous ingestion mode: drain accepted payloads even if a kick was lost.
    "ingest-inbound-queue": {
        "task": "tickets.tasks.inbound_queue_ingest_task",
        "schedule": timedelta(seconds=INBOUND_QUEUE_KICK_SECONDS),
        "options": {"expires": INBOUND_QUEUE_KICK_SECONDS},
    },
    "close-solved-conversations": {
        "task": "tickets.tasks.conversations_close_solved_task",
        "schedule": timedelta(minutes=15),
        "options": {"expires": 600},
    },
    # notifications: hourly and daily email digests (each agent's own period decides)
    "notification-digests": {
        "task": "notifications.tasks.notification_digests_send_task",
        "schedule": crontab(minute=0),
        "options": {"expires": 3000},
    },
    # routing: agents away hand back their conversations, pools are routed, no-reply rules
    "routing-sweep": {
        "task": "routing.tasks.routing_sweep_task",
        "schedule": timedelta(minutes=2),
        "options": {"expires": 120},
    },
    "rules-no-reply": {
        "task": "routing.tasks.rules_no_reply_task",
        "schedule": timedelta(minutes=5),
        "options": {"expires": 300},
    },
    "business-intervals-nightly": {
        "task": "routing.tasks.business_intervals_rebuild_task",
        "schedule": crontab(hour=1, minute=45),
    },
    # surveys
    "send-due-surveys": {
        "task": "surveys.tasks.surveys_send_due_task",
        "schedule": timedelta(minutes=1),
        "options": {"expires": 60},
    },
    "send-survey-reminders": {
        "task": "surveys.tasks.surveys_remind_due_task",
        "schedule": timedelta(hours=1),
        "options": {"expires": 3600},
    },
    # metrics (scorecards): debounced recompute of the days events changed; nightly full window.
    "recompute-dirty-facts": {
        "task": "metrics.tasks.facts_recompute_dirty_task",
        "schedule": timedelta(seconds=3),
        "options": {"expires": 3},
    },
    "recompute-facts-nightly": {
        "task": "metrics.tasks.facts_recompute_nightly_task",
        "schedule": crontab(hour=2, minute=30),
    },
    # privacy: raw mail, attachments and closed conversations past the retention policy
    "retention-nightly": {
        "task": "tickets.tasks.retention_run_task",
        "schedule": crontab(hour=3, minute=40),
    },
    "prune-idempotency-keys": {  # faults
        "task": "supportdesk.tasks.idempotency_keys_prune_task",
        "schedule": timedelta(hours=1),
        "options": {"expires": 3600},
    },
    "prune-outbox": {
        "task": "supportdesk.tasks.outbox_prune_task",
        "schedule": crontab(hour=3, minute=17),
    },
    # QA and pulse
    "qa-weekly-sample": {  # Monday morning: last week's solved conversations
        "task": "quality.tasks.qa_sample_draw_task",
        "schedule": crontab(day_of_week="mon", hour=6, minute=5),
    },
    "pulse-weekly": {  # Friday afternoon: two questions about the week
        "task": "quality.tasks.pulse_week_open_task",
        "schedule": crontab(day_of_week="fri", hour=14, minute=0),
    },
    "checkins-daily": {
        "task": "quality.tasks.checkins_create_due_task",
        "schedule": crontab(hour=7, minute=10),
    },
}

# --- API ---------------------------------------------------------------------------------------
REST_FRAMEWORK = {
    "DEFAULT_AUTHENTICATION_CLASSES": [
        "supportdesk.authentication.ApiTokenAuthentication",
        "rest_framework.authentication.SessionAuthentication",
    ],
    "DEFAULT_PERMISSION_CLASSES": ["supportdesk.permissions.IsStaffMember"],
    "DEFAULT_SCHEMA_CLASS": "drf_spectacular.openapi.AutoSchema",
    "DEFAULT_RENDERER_CLASSES": ["rest_framework.renderers.JSONRenderer"]
    + (["rest_framework.renderers.BrowsableAPIRenderer"] if DEBUG else []),
    "EXCEPTION_HANDLER": "supportdesk.api.exception_handler",
    "DEFAULT_PAGINATION_CLASS": None,
    "DEFAULT_THROTTLE_RATES": {"inbound": env("INBOUND_THROTTLE_RATE", "6000/min")},
    "TEST_REQUEST_DEFAULT_FORMAT": "json",
}
SPECTACULAR_SETTINGS = {
    "TITLE": "Supportdesk API",
    "DESCRIPTION": "Omnichannel conversations under one customer identity, "
    "with customer-declared resolution.",
    "VERSION": "1",
    "SERVE_INCLUDE_SCHEMA": False,
    "SWAGGER_UI_DIST": "SIDECAR",
    "SWAGGER_UI_FAVICON_HREF": "SIDECAR",
    "REDOC_DIST": "SIDECAR",
    "COMPONENT_SPLIT_REQUEST": True,
    # One name per choice set where several fields share it (identities' and channels' kinds),
    # and a name of its own for the channels a conversation can be started on.
    "ENUM_NAME_OVERRIDES": {
        "ChannelKindEnum": "tickets.models.ChannelKind",
        "IdentityKindEnum": "tickets.models.IdentityKind",
        "InboundQueueStatusEnum": "tickets.models.InboundQueueStatus",
        # The conversation's status keeps the name it had before the inbound queue's status.
        "StatusEnum": "tickets.models.ConversationStatus",
        "StartKindEnum": ["email", "chat", "social"],
        "PromisePriorityEnum": "routing.models.PROMISE_PRIORITY_CHOICES",
    },
}

LOGGING = {
    "version": 1,
    "disable_existing_loggers": False,
    "formatters": {"plain": {"format": "%(asctime)s %(levelname)s %(name)s %(message)s"}},
    "handlers": {"console": {"class": "logging.StreamHandler", "formatter": "plain"}},
    "root": {"handlers": ["console"], "level": env("LOG_LEVEL", "INFO")},
    "loggers": {"django.db.backends": {"level": "INFO"}},
}
