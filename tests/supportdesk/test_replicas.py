"""Replica reads: dashboards, reports and exports read from a streaming replica; a read after the
caller's own write reads from the primary.

The end-to-end test runs the production stack (gunicorn, a worker) on a private primary and a
real streaming replica made with ``pg_basebackup``. It pauses the replica's WAL replay, so what the
replica serves is visibly stale: a dashboard that shows the stale figure was read from the
replica, one that shows the fresh figure from the primary.
"""

from __future__ import annotations

import re
import time
from typing import Any

import psycopg
import pytest
from django.db import OperationalError, ProgrammingError
from django.http import HttpRequest, HttpResponse, StreamingHttpResponse
from django.test import RequestFactory, override_settings

from bench.client import csrf_post, login
from bench.stack import Stack, free_port, manage, stack_env
from supportdesk import replicas
from supportdesk.replicas import (
    PIN_COOKIE,
    ReplicaRouter,
    current_read_alias,
    replica_pin_middleware,
    replica_reads,
)
from supportdesk.settings import replica_databases
from tests.factories import TEST_PASSWORD
from tests.services import (
    broker_url_for_tests,
    postgres_cluster,
    postgres_replica,
    redis_delete_queue,
    require_postgres,
    require_redis,
    unique_queue_name,
    wait_for,
)

TWO_REPLICAS = {
    "default": {"ENGINE": "django.db.backends.postgresql", "NAME": "sd"},
    "replica_0": {"ENGINE": "django.db.backends.postgresql", "NAME": "sd"},
    "replica_1": {"ENGINE": "django.db.backends.postgresql", "NAME": "sd"},
}


class _Model:
    pass


router = ReplicaRouter()


@pytest.fixture
def two_replicas(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(replicas, "replica_aliases", lambda: ["replica_0", "replica_1"])
    monkeypatch.setattr(replicas, "replica_usable", lambda alias: True)


def test_replica_urls_become_mirrored_database_aliases():
    primary = {"CONN_MAX_AGE": 60, "CONN_HEALTH_CHECKS": True}
    entries = replica_databases(" postgres://u@r1:5432/sd , postgres://u@r2:5433/sd,", primary)
    assert sorted(entries) == ["replica_0", "replica_1"]
    assert (entries["replica_0"]["HOST"], entries["replica_1"]["PORT"]) == ("r1", 5433)
    assert entries["replica_0"]["CONN_MAX_AGE"] == 60
    assert entries["replica_1"]["TEST"] == {"MIRROR": "default"}
    assert replica_databases("", primary) == {}


def test_without_replicas_no_router_is_installed(settings):
    assert settings.DATABASE_ROUTERS == []
    assert "supportdesk.replicas.replica_pin_middleware" not in settings.MIDDLEWARE


def test_only_marked_reads_go_to_a_replica(two_replicas):
    assert router.db_for_read(_Model) == "default"
    assert current_read_alias() == "default"

    @replica_reads
    def view() -> str:
        return router.db_for_read(_Model)

    assert view() in {"replica_0", "replica_1"}
    assert router.db_for_read(_Model) == "default"  # the mark ends with the view


def test_a_read_after_a_write_in_the_same_request_stays_on_the_primary(two_replicas):
    seen: list[str] = []

    @replica_reads
    def view(request: HttpRequest) -> HttpResponse:
        seen.append(router.db_for_read(_Model))
        assert router.db_for_write(_Model) == "default"
        seen.append(router.db_for_read(_Model))
        return HttpResponse("ok")

    with override_settings(REPLICA_PIN_SECONDS=7):
        response = replica_pin_middleware(view)(RequestFactory().get("/dashboard/"))
    assert seen[0] in {"replica_0", "replica_1"}
    assert seen[1] == "default"
    # The client's next requests read from the primary for a few seconds, too.
    assert response.cookies[PIN_COOKIE]["max-age"] == 7
    assert response.cookies[PIN_COOKIE]["httponly"] is True


def test_a_pinned_client_and_an_unsafe_request_read_from_the_primary(two_replicas):
    seen: list[str] = []

    @replica_reads
    def view(request: HttpRequest) -> HttpResponse:
        seen.append(router.db_for_read(_Model))
        return HttpResponse("ok")

    handler = replica_pin_middleware(view)
    factory = RequestFactory()
    fresh = handler(factory.get("/dashboard/"))
    pinned_request = factory.get("/dashboard/")
    pinned_request.COOKIES[PIN_COOKIE] = "1"
    handler(pinned_request)
    handler(factory.post("/dashboard/"))
    assert seen[0] in {"replica_0", "replica_1"}
    assert seen[1:] == ["default", "default"]
    assert PIN_COOKIE not in fresh.cookies  # a request that wrote nothing pins nobody


def test_a_streamed_export_produces_its_rows_on_the_replica(two_replicas):
    @replica_reads
    def view() -> StreamingHttpResponse:
        return StreamingHttpResponse(router.db_for_read(_Model) for _ in range(3))

    response = view()
    assert router.db_for_read(_Model) == "default"
    rows = [bytes(chunk).decode() for chunk in response.streaming_content]  # type: ignore[arg-type]
    assert len(rows) == 3
    assert all(row in {"replica_0", "replica_1"} for row in rows)


def test_reads_inside_a_transaction_on_the_primary_stay_there(two_replicas, monkeypatch):
    from django.db import connections

    monkeypatch.setattr(connections["default"], "in_atomic_block", True)
    with replicas.reading_from_replica():
        assert router.db_for_read(_Model) == "default"


def test_a_replica_that_does_not_answer_is_left_out_and_the_primary_serves(
    monkeypatch, settings, caplog
):
    settings.REPLICA_RETRY_SECONDS = 30
    monkeypatch.setattr(replicas, "replica_aliases", lambda: ["replica_0"])
    monkeypatch.setattr(replicas, "_down_until", {})
    attempts: list[str] = []

    class Refusing:
        def close_if_health_check_failed(self) -> None:
            pass

        def ensure_connection(self) -> None:
            attempts.append("connect")
            raise OperationalError("connection refused")

        def close(self) -> None:
            pass

    monkeypatch.setattr(replicas, "connections", {"replica_0": Refusing()})

    @replica_reads
    def view() -> str:
        return router.db_for_read(_Model)

    assert view() == "default"
    assert view() == "default"
    # Tried once, then left out for REPLICA_RETRY_SECONDS (no connect attempt per request)
    assert attempts == ["connect"]
    assert "database replica replica_0 unavailable" in caplog.text


def test_a_view_whose_replica_fails_midway_runs_again_on_the_primary(two_replicas, monkeypatch):
    monkeypatch.setattr(replicas, "_connection_broken", lambda alias: True)
    marked: list[str] = []
    monkeypatch.setattr(replicas, "replica_mark_down", lambda alias, exc=None: marked.append(alias))
    seen: list[str] = []

    @replica_reads
    def view() -> str:
        seen.append(router.db_for_read(_Model))
        if len(seen) == 1:
            raise OperationalError("server closed the connection unexpectedly")
        return "page"

    assert view() == "page"
    assert seen[0] in {"replica_0", "replica_1"}
    assert seen[1] == "default"
    assert marked == [seen[0]]


def test_a_programming_error_on_a_replica_is_not_retried(two_replicas):
    calls: list[str] = []

    @replica_reads
    def view() -> str:
        calls.append(router.db_for_read(_Model))
        raise ProgrammingError("column does not exist")

    with pytest.raises(ProgrammingError):
        view()
    assert len(calls) == 1


def test_migrations_run_on_the_primary_only():
    assert router.allow_migrate("default", "tickets") is True
    assert router.allow_migrate("replica_0", "tickets") is False
    assert router.db_for_write(_Model) == "default"


# --- End to end: a real streaming replica ---------------------------------------------------------

TARGETS = re.compile(r'<ul class="targets">(.*?)</ul>', re.S)


def _targets(page: str) -> str:
    found = TARGETS.search(page)
    return found.group(1) if found else ""


def _set_target(session: Any, base: str, value: str) -> Any:
    """The manager sets the resolution-rate target on the dashboard (a write on the primary)."""
    return csrf_post(
        session,
        base + "/dashboard/targets/",
        base + "/dashboard/",
        {"metric": "resolution_rate", "value": value},
        allow_redirects=False,
    )


def _replay(replica: Any, action: str) -> None:
    with psycopg.connect(replica.url(), autocommit=True) as db:
        db.execute(f"SELECT pg_wal_replay_{action}()")
        if action == "pause":
            wait_for(
                lambda: (
                    db.execute("SELECT pg_get_wal_replay_pause_state()").fetchone()[0] == "paused"
                ),
                timeout=20,
                what="the replica's replay to pause",
            )


def _caught_up(primary: Any, replica: Any) -> bool:
    with psycopg.connect(primary.url(), autocommit=True) as db:
        sent = db.execute("SELECT pg_current_wal_lsn()").fetchone()[0]
    with psycopg.connect(replica.url(), autocommit=True) as db:
        return bool(
            db.execute("SELECT pg_last_wal_replay_lsn() >= %s::pg_lsn", [sent]).fetchone()[0]
        )


@pytest.mark.services
@pytest.mark.django_db(transaction=True)
def test_dashboard_reads_hit_the_streaming_replica_and_a_write_then_read_hits_the_primary(
    tmp_path,
):
    require_postgres()
    broker = broker_url_for_tests()
    require_redis(broker)
    queue = unique_queue_name()
    port = free_port()
    with postgres_cluster() as primary:
        with psycopg.connect(primary.url(), autocommit=True) as admin:
            admin.execute("CREATE DATABASE sd")
        with postgres_replica(primary) as replica:
            with psycopg.connect(replica.url(), autocommit=True) as db:
                assert db.execute("SELECT pg_is_in_recovery()").fetchone()[0] is True
            env = stack_env(
                database_url=primary.url("sd"),
                broker_url=broker,
                queue=queue,
                workdir=tmp_path,
                port=port,
                extra={
                    "DATABASE_REPLICA_URLS": replica.url("sd"),
                    "REPLICA_PIN_SECONDS": "2",
                    "REPLICA_RETRY_SECONDS": "2",
                    "DB_CONN_MAX_AGE": "0",
                },
            )
            manage(env, "migrate", "--noinput", quiet=True)
            manage(env, "collectstatic", "--noinput", quiet=True)
            manage(
                env,
                "create_staff",
                "boss@desk.example",
                "--role",
                "admin",
                "--team",
                "Team A",
                "--password",
                TEST_PASSWORD,
                quiet=True,
            )
            stack = Stack(env, port, tmp_path, beat=False, worker_concurrency=1, web_workers=1)
            try:
                stack.start()
                base = stack.base_url
                session = login(base, "boss@desk.example", TEST_PASSWORD)
                wait_for(lambda: _caught_up(primary, replica), timeout=30, what="replication")
                time.sleep(2.5)  # the login's pin on the primary runs out

                # Given the replica stops applying the primary's changes
                _replay(replica, "pause")
                before = session.get(base + "/dashboard/", timeout=30)
                assert before.status_code == 200
                assert "61%" not in _targets(before.text)

                # When the manager sets a target (a write on the primary) and looks again
                saved = _set_target(session, base, "61")
                assert saved.status_code == 302
                assert PIN_COOKIE in saved.cookies
                # Then the read right after the write comes from the primary: the target shows
                after_write = session.get(base + "/dashboard/", timeout=30)
                assert "Resolution rate: 61%" in _targets(after_write.text)

                # And once the pin has run out, the dashboard reads from the paused replica,
                # which has not seen the target yet
                time.sleep(2.5)
                session.cookies.clear_expired_cookies()
                assert PIN_COOKIE not in session.cookies.get_dict()
                from_replica = session.get(base + "/dashboard/", timeout=30)
                assert from_replica.status_code == 200
                assert "61%" not in _targets(from_replica.text)

                # When the replica replays again, the dashboard it serves shows the target
                _replay(replica, "resume")
                wait_for(
                    lambda: (
                        "Resolution rate: 61%"
                        in _targets(session.get(base + "/dashboard/", timeout=30).text)
                    ),
                    timeout=30,
                    what="the replica to serve the new target",
                )

                # When the replica goes down, the dashboard is served from the primary
                replica.stop()
                down = session.get(base + "/dashboard/", timeout=30)
                assert down.status_code == 200
                assert "Resolution rate: 61%" in _targets(down.text)
                assert "database replica replica_0 unavailable" in stack.log("gunicorn")

                # And once it is back (and its retry window has passed), reads return to it:
                # a target set while its replay is paused is not on the page it serves
                replica.start()
                wait_for(lambda: _caught_up(primary, replica), timeout=30, what="replication")
                _replay(replica, "pause")
                assert _set_target(session, base, "62").status_code == 302
                time.sleep(2.5)  # the pin and the replica's retry window run out
                session.cookies.clear_expired_cookies()
                back = session.get(base + "/dashboard/", timeout=30)
                assert back.status_code == 200
                assert "Resolution rate: 61%" in _targets(back.text)
                assert "62%" not in _targets(back.text)
                _replay(replica, "resume")
            except BaseException:
                for name in ("gunicorn", "worker"):
                    print(f"----- {name} -----\n{stack.log(name)[-4000:]}")
                raise
            finally:
                stack.stop()
                redis_delete_queue(broker, queue)
