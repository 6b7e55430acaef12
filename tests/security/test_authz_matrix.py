"""Authorisation: the authorisation matrix (tests/security/matrix.py) walked for real.

Every URL pattern of the root URLconf and every operation of /api/schema/ must be classified;
each is called as anonymous, customer-with-survey-link, agent of Team A, agent of Team B,
manager of Team A and admin, against Team A's and Team B's objects. Every answer must be the
expected status; a refused call and every safe (GET) call must leave the database unchanged.
Each call runs in a savepoint rolled back afterwards, so calls do not see each other's effects.
"""

from __future__ import annotations

import copy
import hashlib
import json
import re
from collections.abc import Iterator
from typing import Any

import pytest
from django.apps import apps
from django.db import transaction
from django.test import Client
from django.urls import URLPattern, URLResolver, get_resolver, reverse

from tests.security.matrix import (
    ACCOUNTS_PREFIX,
    ADMIN_PREFIX,
    ANYMAIL_PREFIX,
    OPS,
    ROLE_TEAM,
    ROLES,
    Op,
    allowed,
    op_key,
)
from tests.security.world import World, build_world

pytestmark = pytest.mark.django_db

SAFE = {"GET", "HEAD"}


# --- The URLconf and the schema -----------------------------------------------------------------


def url_patterns() -> Iterator[tuple[str, str]]:
    """(route, name) of every pattern, prefixes joined, names with their namespaces."""

    def walk(resolver: URLResolver, prefix: str, namespace: str) -> Iterator[tuple[str, str]]:
        for pattern in resolver.url_patterns:
            if isinstance(pattern, URLResolver):
                ns = namespace + (f"{pattern.namespace}:" if pattern.namespace else "")
                yield from walk(pattern, prefix + str(pattern.pattern), ns)
            elif isinstance(pattern, URLPattern):
                yield prefix + str(pattern.pattern), namespace + (pattern.name or "")

    yield from walk(get_resolver(), "", "")


def _shape(path: str) -> str:
    """``api/v1/conversations/<int:pk>/`` and ``/api/v1/conversations/{id}/`` -> one key."""
    return re.sub(r"<[^>]+>|\{[^}]+\}", "{}", path.lstrip("/"))


def schema_operations() -> set[tuple[str, str]]:
    from drf_spectacular.generators import SchemaGenerator

    schema = SchemaGenerator().get_schema(request=None, public=True)
    return {
        (_shape(path), method.upper())
        for path, item in schema["paths"].items()
        for method in item
        if method in {"get", "post", "put", "patch", "delete"}
    }


def test_matrix_classifies_every_route_and_api_operation():
    routes = {route for route, _ in url_patterns()}
    classified = {op.route for op in OPS}
    unclassified = sorted(
        r
        for r in routes - classified
        if not r.startswith((ADMIN_PREFIX, ANYMAIL_PREFIX, ACCOUNTS_PREFIX))
    )
    assert unclassified == [], (
        "New URL patterns must be added to tests/security/matrix.py with who may call them: "
        f"{unclassified}"
    )
    assert sorted(classified - routes) == [], "The matrix lists routes that no longer exist"

    api_ops = {(_shape(op.route), op.method) for op in OPS if op.api}
    missing = sorted(schema_operations() - api_ops)
    assert missing == [], f"API operations missing from the matrix: {missing}"
    assert sorted(api_ops - schema_operations()) == [], "The matrix lists undocumented API calls"
    assert len({op_key(op) for op in OPS}) == len(OPS), "a (route, method) is listed twice"


# --- Callers -------------------------------------------------------------------------------------


@pytest.fixture
def world(settings) -> World:
    settings.SURVEY_RATE_LIMIT = "100000/m"
    settings.RATELIMIT_ENABLE = False
    return build_world()


def _clients(world: World) -> dict[str, tuple[Client, Client]]:
    """Per role: (page client with a session, API client with a token)."""
    from supportdesk.services import api_token_get_or_create

    clients: dict[str, tuple[Client, Client]] = {}
    for role in ROLES:
        page, api = Client(), Client()
        user = world.users.get(role)
        if user is not None:
            page.force_login(user)
            token, _ = api_token_get_or_create(user=user)
            api = Client(HTTP_AUTHORIZATION=f"Token {token.key}")
        clients[role] = (page, api)
    return clients


# --- Nothing changed -----------------------------------------------------------------------------

_SKIP_TABLES = {"sessions.session", "contenttypes.contenttype", "auth.permission"}


def _models() -> list[Any]:
    return [
        model
        for model in apps.get_models()
        if model._meta.label_lower not in _SKIP_TABLES
        and not model._meta.proxy
        and model._meta.managed
    ]


def snapshot(exclude: tuple[str, ...] = ()) -> dict[str, str]:
    """Per table: row count and a hash of every row, in primary-key order."""
    out = {}
    for model in _models():
        label = model._meta.label_lower
        if label in exclude:
            continue
        rows = list(model._base_manager.order_by("pk").values_list())
        digest = hashlib.sha256(repr(rows).encode()).hexdigest()[:16]
        out[label] = f"{len(rows)}:{digest}"
    return out


def changed(before: dict[str, str], after: dict[str, str]) -> list[str]:
    return sorted(k for k in before if before[k] != after.get(k))


# --- Walking the matrix --------------------------------------------------------------------------


def _names() -> dict[str, str]:
    return dict(url_patterns())


def _path_value(world: World, op: Op, team: str, role: str) -> Any:
    side = world.side(team)
    if op.obj == "token":
        if role == "anon":
            return side.token[:-2] + "xx"  # tampered
        if role == "customer" and team == "B":
            # The customer holds Team A's link only: B's survey id under A's signature.
            return f"{world.b.survey.pk}." + world.a.token.split(".", 1)[1]
        return side.token
    if op.obj == "rule":
        return world.checkin_rule.pk
    if op.obj == "routing_rule":
        return world.routing_rule.pk
    if op.obj == "template":
        return "acknowledgement"
    if op.obj == "widget":
        from tickets.services import channel_set_widget

        chat = channel_set_widget(channel=side.channels["chat"], origins=["https://a.example"])
        return chat.widget_key
    if op.obj == "mail_channel":
        return side.channels["email"].pk
    value = getattr(side, op.obj)
    return value.pk


def build_url(world: World, op: Op, team: str | None, role: str) -> str:
    name = _names()[op.route]
    params = re.findall(r"<(?:\w+:)?(\w+)>", op.route)
    if not params:
        return reverse(name)
    value = _path_value(world, op, team, role)
    return reverse(name, kwargs={params[0]: value})


def expected(op: Op, role: str, team: str | None) -> int:
    if allowed(op.who, role, team):
        if isinstance(op.ok, dict):
            return op.ok.get(role, op.ok.get("*", 200))
        return op.ok
    if op.who == "token":
        return 404
    if role in ("anon", "customer") or op.who == "channel":
        return 401 if op.api else 302
    if op.denied_role is not None and ROLE_TEAM.get(role) == team:
        return op.denied_role
    return op.denied


def call(client: Client, method: str, url: str, data: dict[str, Any], api: bool) -> Any:
    if method == "GET":
        return client.get(url, data)
    if method == "PATCH":
        return client.patch(url, json.dumps(data), content_type="application/json")
    if api and method != "POST":
        return client.generic(method, url, json.dumps(data), content_type="application/json")
    if api:
        return client.post(url, data, content_type="application/json")
    return client.post(url, data)


def run(client: Client, op: Op, url: str, *, check_unchanged: bool) -> tuple[Any, list[str]]:
    """Call in a savepoint rolled back afterwards; return the response and the tables written."""
    cookies = copy.deepcopy(client.cookies)  # a logout must not sign the next call out
    with transaction.atomic():
        before = snapshot(op.writes) if check_unchanged else {}
        response = call(client, op.method, url, op.data, op.api)
        written = changed(before, snapshot(op.writes)) if check_unchanged else []
        transaction.set_rollback(True)
    client.cookies = cookies
    return response, written


def test_every_route_answers_as_the_matrix_says(world):
    clients = _clients(world)
    failures: list[str] = []
    calls = 0
    for op in OPS:
        teams = ("A", "B") if op.obj and op.obj not in ("rule", "routing_rule") else (None,)
        for role in ROLES:
            for team in teams:
                url = build_url(world, op, team, role)
                want = expected(op, role, team)
                is_allowed = allowed(op.who, role, team)
                client = clients[role][1 if op.api else 0]
                response, written = run(
                    client, op, url, check_unchanged=op.method in SAFE or not is_allowed
                )
                calls += 1
                where = f"{op.method} {url} as {role} (team {team})"
                if response.status_code != want:
                    failures.append(f"{where}: {response.status_code}, expected {want}")
                if written:
                    failures.append(f"{where}: wrote {written}")
                login = response.get("Location", "").startswith("/login/")
                if response.status_code == 302 and not is_allowed and not op.api and not login:
                    failures.append(f"{where}: redirected to {response['Location']}")
    assert failures == [], f"{len(failures)} of {calls} calls:\n" + "\n".join(failures)


def test_inbound_operations_take_a_channel_token_only(world):
    """Staff tokens and sessions are 401 on inbound (see the matrix); the channel's secret passes
    authentication and reaches validation (400 on an empty body, nothing stored)."""
    client = Client(HTTP_X_CHANNEL_TOKEN=world.a.channels["chat"].secret)
    # Polling an accepted payload: the accepting channel only.
    own, other = world.a.inbound_item, world.b.inbound_item
    assert client.get(f"/api/v1/inbound/queue/{own.pk}/").status_code == 200
    assert client.get(f"/api/v1/inbound/queue/{other.pk}/").status_code == 404
    for op in OPS:
        if op.who != "channel" or op.method != "POST":
            continue
        url = "/" + op.route
        with transaction.atomic():
            before = snapshot()
            if op.route.endswith("email/"):
                response = client.post(url, b"", content_type="message/rfc822")
            else:
                response = client.post(url, {}, content_type="application/json")
            assert (url, response.status_code, changed(before, snapshot())) == (url, 400, [])
            transaction.set_rollback(True)


def _admin_url(world: World, route: str, name: str) -> str:
    if name == "admin:app_list":
        return reverse(name, kwargs={"app_label": "tickets"})
    params = re.findall(r"<(?:\w+:)?(\w+)>", route)
    if not params:
        return reverse(name)
    if name == "admin:view_on_site":
        from django.contrib.contenttypes.models import ContentType

        from tickets.models import Conversation

        ct = ContentType.objects.get_for_model(Conversation)
        return reverse(name, args=[ct.pk, world.b.conversation.pk])
    app_label, model_name = route.split("/")[1:3]
    model = apps.get_model(app_label, model_name)
    row = model._base_manager.order_by("pk").first()
    return reverse(name, args=[row.pk if row else 1])


def test_django_admin_is_for_admins_only(world):
    clients = _clients(world)
    failures = []
    for route, name in url_patterns():
        if not route.startswith(ADMIN_PREFIX):
            continue
        url = _admin_url(world, route, name) if name != "admin:" else None
        if url is None:  # the bare <object_id>/ redirect: resolve it through its change view
            continue
        for role in ("anon", "agent_a", "manager_a", "admin"):
            response, written = run(
                clients[role][0],
                Op(route=route, method="GET", who="admin"),
                url,
                check_unchanged=True,
            )
            status = response.status_code
            if route == "admin/logout/":
                # POST only; the non-admin goes to the admin index (and from there to its login)
                ok = status == 405 if role == "admin" else response.get("Location") == "/admin/"
            elif name == "admin:view_on_site" and role == "admin":
                ok = status == 404  # conversations have no public URL
            elif route == "admin/login/":
                ok = status in (200, 302)
            elif role == "admin":
                ok = status in (200, 302, 403)
                if status == 302:
                    ok = not response["Location"].startswith("/admin/login/")
            else:
                ok = status == 302 and response["Location"].startswith("/admin/login/")
            if not ok or written:
                failures.append(f"GET {url} as {role}: {status} wrote {written}")
    assert failures == [], "\n".join(failures)


def test_provider_webhooks_refuse_calls_without_the_secret(world, settings):
    """Without the webhook's basic-auth secret: 400 (anymail refuses it), or 404 for a provider
    this desk has not set up (supportdesk.webhooks); never a 5xx, never a write."""
    settings.ANYMAIL = {"WEBHOOK_SECRET": "hook:s3cret-value"}
    client = Client(raise_request_exception=False)
    failures = []
    for route, _name in url_patterns():
        if not route.startswith(ANYMAIL_PREFIX):
            continue
        url = "/" + route.replace("^", "").replace("(_mime)?/$", "/")
        response, written = run(
            client, Op(route=route, method="POST", who="channel"), url, check_unchanged=True
        )
        if response.status_code not in (400, 404) or written:
            failures.append(f"POST {url}: {response.status_code} wrote {written}")
    assert failures == [], "\n".join(failures)


def test_no_api_view_takes_free_form_filters_or_ordering(settings):
    """Filters are explicit serializer fields; nothing lets a query string name a model field."""
    from rest_framework.filters import OrderingFilter, SearchFilter

    assert "DEFAULT_FILTER_BACKENDS" not in settings.REST_FRAMEWORK
    views = []
    for route, _name in url_patterns():
        if not route.startswith("api/v1/"):
            continue
        match = get_resolver().resolve("/" + re.sub(r"<[^>]+>", "1", route))
        view = getattr(match.func, "view_class", None) or getattr(match.func, "cls", None)
        views.append(view)
        for backend in getattr(view, "filter_backends", None) or []:
            assert backend not in (OrderingFilter, SearchFilter) or (
                getattr(view, "ordering_fields", None) not in (None, "__all__")
            ), view
            assert getattr(view, "filterset_fields", None) != "__all__", view
    # notifications: list, mark read; mailboxes, channels; start, calls; customer erase, export;
    # the inbound queue's poll
    assert len(views) == 36
    assert None not in views


@pytest.mark.django_db
def test_account_pages_need_a_signed_in_member_of_staff(client):
    """allauth's pages that change an account send anonymous callers to sign in."""
    for path in (
        "/accounts/2fa/",
        "/accounts/2fa/totp/activate/",
        "/accounts/2fa/recovery-codes/",
        "/accounts/password/change/",
        "/accounts/email/",
        "/accounts/sessions/",
        "/accounts/3rdparty/",
    ):
        response = client.get(path)
        assert response.status_code == 302, path
        assert response["Location"].startswith(("/login/?next=", "/accounts/login/?next=")), path
