"""Login protection: django-axes lockout, login rate limits, and rate limits on the Redis cache.

Rate-limit counters live in the cache. Tests on the in-process cache start with it empty; the Redis
tests use their own key prefix on the test Redis so they never flush anybody's data.
"""

from __future__ import annotations

import secrets
from io import StringIO

import pytest
import redis
import time_machine
from axes.models import AccessAttempt
from django.contrib.sessions.models import Session
from django.core.cache import cache
from django.core.management import call_command
from django.test import Client, override_settings
from django.utils import timezone

from tests.conftest import client_for
from tests.factories import TEST_PASSWORD
from tests.services import broker_url_for_tests, require_redis
from tickets.models import Message

pytestmark = pytest.mark.django_db


@pytest.fixture(autouse=True)
def _empty_local_cache():
    cache.clear()  # the in-process cache (these tests never clear a Redis cache)
    yield
    cache.clear()


@pytest.fixture
def one_minute():
    """Rate windows are clock minutes: every request of a test falls in the same one."""
    with time_machine.travel(timezone.now().replace(second=5), tick=False):
        yield


def login(username: str, password: str, *, ip: str = "10.0.0.1") -> object:
    return Client(REMOTE_ADDR=ip).post("/login/", {"login": username, "password": password})


# --- django-axes ------------------------------------------------------------------------------------


def test_five_wrong_passwords_lock_the_username_on_that_address_with_a_clear_page(
    agent_a, one_minute
):
    failures = [login("alice@desk.example", "wrong").status_code for _ in range(4)]
    fifth = login("Alice@Desk.Example ", "wrong")  # same account, however it is typed
    right_password = login("alice@desk.example", TEST_PASSWORD)
    other_address = login("alice@desk.example", TEST_PASSWORD, ip="10.0.0.2")

    assert failures == [200, 200, 200, 200]  # the form again, with its error
    assert fifth.status_code == 429
    assert right_password.status_code == 429
    page = right_password.content.decode()
    assert "Too many failed logins" in page
    assert "locked on this device after 5 wrong passwords" in page
    assert "The lock lifts after 0:15:00" in page
    assert other_address.status_code == 302  # another address is not locked out
    attempt = AccessAttempt.objects.get(ip_address="10.0.0.1")
    # The attempt made during the lock-out counts too (and restarts the cool-off).
    assert (attempt.username, attempt.failures_since_start) == ("alice@desk.example", 6)
    assert "wrong" not in str(attempt.post_data)  # passwords are never stored


def test_an_admin_unlocks_and_the_api_token_was_never_affected(agent_a, admin_user, one_minute):
    for _ in range(5):
        login("alice@desk.example", "wrong")
    assert login("alice@desk.example", TEST_PASSWORD).status_code == 429

    # The locked-out account's API token keeps working (axes guards the login form only).
    assert client_for(agent_a).get("/api/v1/conversations/").status_code == 200
    # The admin sees the lock-out and lifts it.
    admin = Client()
    admin.force_login(admin_user)
    listing = admin.get("/admin/axes/accessattempt/")
    assert listing.status_code == 200
    assert "alice@desk.example" in listing.content.decode()
    call_command("axes_reset_username", "alice@desk.example", stdout=StringIO())

    assert AccessAttempt.objects.count() == 0
    assert login("alice@desk.example", TEST_PASSWORD).status_code == 302


def test_a_successful_login_resets_the_failure_count(agent_a, one_minute):
    for _ in range(4):
        login("alice@desk.example", "wrong")
    assert login("alice@desk.example", TEST_PASSWORD).status_code == 302
    assert not AccessAttempt.objects.filter(username="alice@desk.example").exists()


# --- Login rate limits ------------------------------------------------------------------------------


@override_settings(LOGIN_RATE_LIMIT_IP="3/m")
def test_login_is_rate_limited_per_address_with_retry_after(agent_a, agent_b, one_minute):
    statuses = [
        login(user, "wrong").status_code
        for user in ("a@x.example", "b@x.example", "c@x.example", "d@x.example")
    ]
    blocked = login("alice@desk.example", TEST_PASSWORD)
    elsewhere = login("alice@desk.example", TEST_PASSWORD, ip="10.0.0.9")

    assert statuses == [200, 200, 200, 429]
    assert blocked.status_code == 429
    assert blocked["Retry-After"] == "60"
    assert "Please wait 60 seconds" in blocked.content.decode()
    assert elsewhere.status_code == 302
    # The refused attempts never reached authentication: nothing recorded, no session.
    assert AccessAttempt.objects.filter(username="d@x.example").count() == 0
    assert Session.objects.count() == 1


@override_settings(LOGIN_RATE_LIMIT_USERNAME="2/m")
def test_a_username_is_rate_limited_per_address_never_for_its_owner_elsewhere(agent_a, one_minute):
    # given: a stranger posts Alice's login again and again from one address
    statuses = [login("alice@desk.example", "wrong", ip="10.0.1.1").status_code for _ in range(3)]
    rotating = [login("alice@desk.example", "wrong", ip=f"10.0.2.{i}").status_code for i in (1, 2)]

    # when: Alice logs in from her own address
    owner = login("alice@desk.example", TEST_PASSWORD, ip="10.0.3.3")

    # then: the stranger's address slows down; Alice is never kept out by someone else's posts
    assert statuses == [200, 200, 429]
    assert rotating == [200, 200]
    assert owner.status_code == 302


# --- Behind a proxy: the client's address comes from X-Forwarded-For, through trusted proxies only ---

PROXY = "172.18.0.2"


def via_proxy(client_address: str, username: str, password: str, *, proxy: str = PROXY) -> object:
    return Client(REMOTE_ADDR=proxy, HTTP_X_FORWARDED_FOR=client_address).post(
        "/login/", {"login": username, "password": password}
    )


@override_settings(TRUSTED_PROXIES=["172.18.0.0/16"], LOGIN_RATE_LIMIT_IP="3/m")
def test_clients_behind_a_trusted_proxy_have_their_own_budgets(agent_a, one_minute):
    # given: one client behind the proxy uses up its budget
    noisy = [via_proxy("203.0.113.7", f"x{i}@x.example", "wrong").status_code for i in range(4)]

    # when: another client behind the same proxy logs in
    other = via_proxy("198.51.100.4", "alice@desk.example", TEST_PASSWORD)

    # then
    assert noisy == [200, 200, 200, 429]
    assert other.status_code == 302


@override_settings(TRUSTED_PROXIES=["172.18.0.0/16"], LOGIN_RATE_LIMIT_IP="3/m")
def test_a_forwarded_for_header_from_an_untrusted_peer_is_ignored(agent_a, one_minute):
    # given: a client not behind the proxy rotates a forged X-Forwarded-For
    forged = [
        via_proxy(f"192.0.2.{i}", f"x{i}@x.example", "wrong", proxy="203.0.113.9").status_code
        for i in range(4)
    ]
    # and a forged left-most entry through the proxy counts as the proxy saw it
    spoofed = [
        via_proxy(f"192.0.2.{i}, 198.51.100.77", f"y{i}@x.example", "wrong").status_code
        for i in range(4)
    ]

    # then: both are counted on the real address
    assert forged == [200, 200, 200, 429]
    assert spoofed == [200, 200, 200, 429]


@override_settings(TRUSTED_PROXIES=["172.18.0.0/16"])
def test_behind_the_proxy_five_wrong_passwords_lock_out_only_the_attackers_address(
    agent_a, one_minute
):
    attempts = [
        via_proxy("203.0.113.7", "alice@desk.example", "wrong").status_code for _ in range(5)
    ]

    owner = via_proxy("198.51.100.4", "alice@desk.example", TEST_PASSWORD)

    assert attempts == [200, 200, 200, 200, 429]
    assert owner.status_code == 302
    assert list(AccessAttempt.objects.values_list("ip_address", "failures_since_start")) == [
        ("203.0.113.7", 5)
    ]


@override_settings(TRUSTED_PROXIES=["172.18.0.0/16"], LOGIN_RATE_LIMIT_USERNAME="10/m")
def test_behind_the_proxy_eleven_posts_of_a_victims_login_never_keep_the_victim_out(
    agent_a, one_minute
):
    attacker = [
        via_proxy("203.0.113.7", "alice@desk.example", "wrong").status_code for _ in range(11)
    ]

    owner = via_proxy("198.51.100.4", "alice@desk.example", TEST_PASSWORD)

    assert attacker[-1] == 429
    assert owner.status_code == 302


# --- Rate limits on the real Redis cache ---------------------------------------------------------------


@pytest.fixture
def redis_cache():
    url = broker_url_for_tests()
    require_redis(url)
    prefix = f"sdtest-{secrets.token_hex(6)}"
    caches = {
        "default": {
            "BACKEND": "django.core.cache.backends.redis.RedisCache",
            "LOCATION": url,
            "KEY_PREFIX": prefix,
        }
    }
    with override_settings(CACHES=caches):
        yield prefix
    client = redis.Redis.from_url(url)
    try:
        keys = list(client.scan_iter(f"{prefix}:*"))
        if keys:
            client.delete(*keys)
    finally:
        client.close()


def _redis_keys(prefix: str) -> list[str]:
    client = redis.Redis.from_url(broker_url_for_tests())
    try:
        return sorted(key.decode() for key in client.scan_iter(f"{prefix}:*"))
    finally:
        client.close()


@pytest.mark.services
@override_settings(LOGIN_RATE_LIMIT_IP="2/m")
def test_login_rate_limit_counts_in_redis(redis_cache, agent_a, one_minute):
    statuses = [login("alice@desk.example", "wrong").status_code for _ in range(3)]

    assert statuses == [200, 200, 429]
    keys = _redis_keys(redis_cache)
    assert len(keys) == 2  # one counter per address, one per username
    assert all(":rl:" in key for key in keys)


@pytest.mark.services
def test_inbound_throttle_counts_per_channel_in_redis_and_stores_nothing_beyond(
    redis_cache, channels, monkeypatch
):
    from tickets.authentication import InboundThrottle

    monkeypatch.setattr(InboundThrottle, "THROTTLE_RATES", {"inbound": "2/min"})
    # A clock 30 s into a minute (window 16,667 of 60 s): the calls cannot straddle two windows.
    monkeypatch.setattr(InboundThrottle, "timer", lambda self: 1_000_050.0)
    client = Client()

    def post(i: int):
        return client.post(
            "/api/v1/inbound/chat/",
            {"external_id": f"r-{i}", "session_id": "s", "visitor_id": "v", "body": f"hi {i}"},
            content_type="application/json",
            HTTP_X_CHANNEL_TOKEN=channels["chat"].secret,
        )

    responses = [post(i) for i in range(3)]

    assert [r.status_code for r in responses] == [201, 201, 429]
    assert responses[2]["Retry-After"] == "30"  # the window ends at 1,000,080
    assert responses[2].json()["detail"].startswith("Request was throttled.")
    assert Message.objects.count() == 2
    # One small counter for the channel and the window (not a list of every call's time).
    key = f"{redis_cache}:1:throttle_inbound_channel-{channels['chat'].pk}:16667"
    assert _redis_keys(redis_cache) == [key]
    client = redis.Redis.from_url(broker_url_for_tests())
    try:
        assert client.get(key) == b"3"  # the refused call is counted too
    finally:
        client.close()


@override_settings(LOGIN_RATE_LIMIT_IP="2/m")
def test_the_admin_login_form_shares_the_rate_limits_and_axes_counts_it(admin_user, one_minute):
    client = Client(REMOTE_ADDR="10.0.2.1")
    data = {"username": "root@desk.example", "password": "wrong", "next": "/admin/"}

    statuses = [client.post("/admin/login/", data).status_code for _ in range(3)]

    assert statuses == [200, 200, 429]
    assert AccessAttempt.objects.get().failures_since_start == 2
