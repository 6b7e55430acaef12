"""Helpers for tests that need real services: PostgreSQL, Redis and a Celery worker process.

Locally such a test skips when the service is missing. CI sets ``REQUIRE_SERVICES=1`` and then a
missing service fails the test with a message saying how to provide it: a green CI run has
really exercised the worker, it did not silently skip it.
"""

from __future__ import annotations

import os
import shutil
import signal
import socket
import socketserver
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypeVar
from urllib.parse import quote

import pytest
import redis
from django.conf import settings
from django.db import connection
from kombu import pools

from supportdesk.celery import app as celery_app
from supportdesk.queues import QUEUES, queue_name, task_routes
from supportdesk.settings import BASE_DIR, celery_broker_transport_options, celery_task_queues

DEFAULT_TEST_BROKER_URL = "redis://127.0.0.1:6379/15"
WORKER_READY_TIMEOUT = 60.0  # Django + Celery start-up on a busy 2-core CI machine
T = TypeVar("T")


def _missing(what: str, how: str) -> None:
    if settings.REQUIRE_SERVICES:
        pytest.fail(
            f"{what}. REQUIRE_SERVICES=1 makes this a failure instead of a skip, so that CI cannot "
            f"pass without exercising it. {how}",
            pytrace=False,
        )
    pytest.skip(f"{what} ({how})")


def require_postgres() -> None:
    """Skip (or fail under REQUIRE_SERVICES) unless the default database is PostgreSQL.

    Worker tests need a database that another process can reach while the test holds it: the
    in-memory/file SQLite test database is neither shared nor safe for that.
    """
    if connection.vendor != "postgresql":
        _missing(
            f"This test needs PostgreSQL, but the default database is {connection.vendor}",
            "Run it with DATABASE_URL=postgres://root@127.0.0.1:5432/supportdesk (the test "
            "runner creates and drops a test_ database next to it).",
        )


def broker_url_for_tests() -> str:
    url = os.environ.get("CELERY_BROKER_URL", "")
    return url if url.startswith(("redis://", "rediss://")) else DEFAULT_TEST_BROKER_URL


def require_redis(url: str) -> None:
    """Skip (or fail under REQUIRE_SERVICES) unless a Redis server answers at ``url``."""
    try:
        client = redis.Redis.from_url(url, socket_connect_timeout=2, socket_timeout=2)
        try:
            client.ping()
        finally:
            client.close()
    except redis.RedisError as exc:
        _missing(
            f"This test needs Redis at {url}, which did not answer ({exc})",
            "Start it with `redis-server --daemonize yes` or set CELERY_BROKER_URL.",
        )


def require_redis_server_binary() -> str:
    binary = shutil.which("redis-server")
    if binary is None:
        _missing(
            "This test needs the redis-server program", "Install it: apt-get install redis-server."
        )
    assert binary is not None
    return binary


def wait_for(
    probe: Callable[[], T], *, timeout: float, interval: float = 0.05, what: str = "condition"
) -> T:
    """Poll ``probe`` until it returns something truthy; fail the test after ``timeout`` s."""
    deadline = time.monotonic() + timeout
    while True:
        result = probe()
        if result:
            return result
        if time.monotonic() > deadline:
            pytest.fail(f"timed out after {timeout:.0f} s waiting for {what}", pytrace=False)
        time.sleep(interval)


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def queue_prefix_for(queue: str) -> str:
    """The prefix of the routed queues of a test whose default queue is ``queue``."""
    return f"{queue}."


def unique_queue_name() -> str:
    """A queue no other test run shares, so parallel runs on one Redis never take our tasks."""
    return f"sd-test-{uuid.uuid4().hex[:12]}"


def _stop(process: subprocess.Popen[Any], *, grace: float) -> None:
    if process.poll() is not None:
        return
    process.send_signal(signal.SIGTERM)
    try:
        process.wait(timeout=grace)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait(timeout=10)


# --- Redis ----------------------------------------------------------------------------------------


@dataclass
class RedisServer:
    """A private redis-server that a test may stop and start again on the same port."""

    port: int
    workdir: Path
    process: subprocess.Popen[bytes] | None = None

    def url(self, db: int = 0) -> str:
        return f"redis://127.0.0.1:{self.port}/{db}"

    def start(self) -> None:
        assert self.process is None or self.process.poll() is not None, "already running"
        log = open(self.workdir / "redis.log", "ab")  # noqa: SIM115 (the child owns it)
        self.process = subprocess.Popen(
            [
                require_redis_server_binary(),
                "--port",
                str(self.port),
                "--bind",
                "127.0.0.1",
                "--daemonize",
                "no",
                "--save",
                "",
                "--appendonly",
                "no",
                "--dir",
                str(self.workdir),
            ],
            stdout=log,
            stderr=subprocess.STDOUT,
        )
        log.close()
        client = redis.Redis(port=self.port, socket_connect_timeout=0.5, socket_timeout=0.5)

        def answers() -> bool:
            assert self.process is not None
            if self.process.poll() is not None:
                pytest.fail(f"redis-server exited:\n{(self.workdir / 'redis.log').read_text()}")
            try:
                return bool(client.ping())
            except redis.RedisError:
                return False

        try:
            wait_for(answers, timeout=15, what=f"redis-server on port {self.port}")
        finally:
            client.close()

    def stop(self) -> None:
        if self.process is not None:
            _stop(self.process, grace=10)
            self.process = None


@contextmanager
def redis_server(port: int | None = None) -> Iterator[RedisServer]:
    """Run a private Redis (no persistence) for the duration of the block, then stop it.

    Fault tests stop and restart this one, never the shared server on 6379.
    """
    server = RedisServer(
        port=port or free_port(), workdir=Path(tempfile.mkdtemp(prefix="sd-redis-"))
    )
    try:
        server.start()
        yield server
    finally:
        server.stop()
        shutil.rmtree(server.workdir, ignore_errors=True)


def redis_delete_queue(url: str, queue: str) -> None:
    """Remove what a test queue left on a shared Redis: its list and kombu's bindings.

    The default exchange is named after the default queue, and kombu keys bindings by exchange.
    """
    client = redis.Redis.from_url(url, socket_connect_timeout=2, socket_timeout=2)
    names = [queue, *(queue_name(group, queue_prefix_for(queue)) for group in QUEUES)]
    keys = [
        key
        for name in names
        for key in (name, f"_kombu.binding.{name}", f"_kombu.binding_permanent.{name}")
    ]
    try:
        client.delete(*keys)
    except redis.RedisError:
        pass
    finally:
        client.close()


# --- The Celery app in the test process (the producer) ----------------------------------------------


def _drop_producer_connections() -> None:
    # Celery caches the broker connection pool (app.pool), the producer pool and the queue/route
    # tables (app.amqp); kombu caches pools per broker URL. Drop them all so the next publish
    # connects to the broker and queue configured now, not to the ones of an earlier test.
    pools.reset()
    celery_app._pool = None
    celery_app.__dict__.pop("amqp", None)


@contextmanager
def celery_publishing_to(broker_url: str, *, queue: str) -> Iterator[None]:
    """Make this process publish tasks to ``broker_url``/``queue`` instead of running them eagerly.

    This is what the web process does in production. The eager test configuration is restored
    on exit, whatever happens, so the other tests in the session are unaffected.
    """
    conf = celery_app.conf
    keys = (
        "broker_url",
        "broker_transport_options",
        "task_default_queue",
        "task_queues",
        "task_routes",
        "task_always_eager",
    )
    saved = {key: conf[key] for key in keys}
    # Celery reads these variables before its configuration (celery.app.utils.Settings).
    env_keys = ("CELERY_BROKER_URL", "CELERY_BROKER_WRITE_URL")
    saved_env = {key: os.environ.get(key) for key in env_keys}
    _drop_producer_connections()
    os.environ.pop("CELERY_BROKER_WRITE_URL", None)
    os.environ["CELERY_BROKER_URL"] = broker_url
    conf.update(
        broker_url=broker_url,
        broker_transport_options=celery_broker_transport_options(broker_url),
        task_default_queue=queue,
        # The routed queues (ingest, mail, ...) get the test's queue as prefix, as in the worker.
        task_queues=celery_task_queues(queue_prefix_for(queue), default_queue=queue),
        task_routes=task_routes(queue_prefix_for(queue)),
        task_always_eager=False,
    )
    try:
        yield
    finally:
        _drop_producer_connections()
        conf.update(saved)
        for key, value in saved_env.items():
            if value is None:
                os.environ.pop(key, None)
            else:
                os.environ[key] = value


# --- A real worker process --------------------------------------------------------------------------


def worker_database_url() -> str:
    """The URL of the database this test uses (pytest-django renamed it test_<name>)."""
    db = connection.settings_dict
    user = quote(db.get("USER") or "", safe="")
    password = quote(db.get("PASSWORD") or "", safe="")
    auth = f"{user}:{password}@" if password else (f"{user}@" if user else "")
    host = db.get("HOST") or "127.0.0.1"
    port = f":{db['PORT']}" if db.get("PORT") else ""
    return f"postgres://{auth}{host}{port}/{quote(db['NAME'], safe='')}"


@dataclass
class CeleryWorker:
    process: subprocess.Popen[bytes]
    log_path: Path
    mail_dir: Path
    env: dict[str, str] = field(repr=False)

    def log(self) -> str:
        return self.log_path.read_text(errors="replace") if self.log_path.exists() else ""

    def wait_for_log(self, text: str, *, timeout: float = 30.0) -> None:
        def seen() -> bool:
            if self.process.poll() is not None:
                pytest.fail(f"the Celery worker exited ({self.process.returncode})", pytrace=False)
            return text in self.log()

        wait_for(seen, timeout=timeout, what=f"{text!r} in the worker log")

    def mail_files(self) -> list[Path]:
        return sorted(path for path in self.mail_dir.iterdir() if path.is_file())

    def mail_text(self) -> str:
        return "".join(path.read_text(errors="replace") for path in self.mail_files())


@contextmanager
def celery_worker(
    broker_url: str,
    env_extra: dict[str, str] | None = None,
    *,
    database_url: str | None = None,
) -> Iterator[CeleryWorker]:
    """Start ``celery -A supportdesk worker`` as a separate process on the test database.

    Mail is written to files in ``worker.mail_dir``. The block starts once the worker logs that
    it is ready; the worker is stopped on exit (SIGTERM, then SIGKILL) and its log is printed if
    the block failed, so a CI failure shows what the worker saw.
    """
    workdir = Path(tempfile.mkdtemp(prefix="sd-worker-"))
    mail_dir = workdir / "mail"
    mail_dir.mkdir()
    env = {
        **os.environ,
        "DJANGO_SETTINGS_MODULE": "supportdesk.settings",
        "DATABASE_URL": database_url or worker_database_url(),
        "CELERY_BROKER_URL": broker_url,
        "CELERY_TASK_ALWAYS_EAGER": "0",
        "EMAIL_URL": f"file://{mail_dir}",
        "SUPPORT_EMAIL": "support@desk.example",
        "DATA_DIR": str(workdir / "data"),
        "LOG_LEVEL": "INFO",
        "PYTHONUNBUFFERED": "1",
        # the tests' webhook receivers listen on loopback (supportdesk/urlguard.py)
        "WEBHOOK_ALLOWED_HOSTS": "127.0.0.1,localhost",
        **(env_extra or {}),
    }
    env.pop("CELERY_BROKER_WRITE_URL", None)
    # A worker on a test's own default queue consumes that test's routed queues as well.
    if "CELERY_TASK_DEFAULT_QUEUE" in (env_extra or {}) and "CELERY_QUEUE_PREFIX" not in (
        env_extra or {}
    ):
        env["CELERY_QUEUE_PREFIX"] = queue_prefix_for(env["CELERY_TASK_DEFAULT_QUEUE"])
    log_path = workdir / "worker.log"
    log_file = open(log_path, "wb")  # noqa: SIM115 (the child owns it)
    process = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "celery",
            "-A",
            "supportdesk",
            "worker",
            "--pool=solo",
            "--concurrency=1",
            "--loglevel=INFO",
            "--without-heartbeat",
            "--without-mingle",
            "--without-gossip",
            f"--hostname=test-{uuid.uuid4().hex[:8]}@%h",
        ],
        cwd=BASE_DIR,
        env=env,
        stdout=log_file,
        stderr=subprocess.STDOUT,
    )
    log_file.close()
    worker = CeleryWorker(process=process, log_path=log_path, mail_dir=mail_dir, env=env)
    try:
        # Celery logs "celery@<host> ready." once it consumes from the queue.
        worker.wait_for_log(" ready.", timeout=WORKER_READY_TIMEOUT)
        yield worker
    except BaseException:
        print(f"----- Celery worker log ({log_path}) -----\n{worker.log()}\n----- end -----")
        raise
    finally:
        _stop(process, grace=15)
        shutil.rmtree(workdir, ignore_errors=True)


# --- An SMTP server that a test controls ------------------------------------------------------------


class _SmtpHandler(socketserver.StreamRequestHandler):
    """Just enough SMTP for Django's backend. A message counts as delivered once the sink has
    answered 250 to its final dot; while ``hold`` is set, the sink never answers it."""

    def _reply(self, line: str) -> None:
        self.wfile.write(f"{line}\r\n".encode())
        self.wfile.flush()

    def handle(self) -> None:
        sink: SmtpSink = self.server.sink  # type: ignore[attr-defined]
        self._reply("220 sink ESMTP")
        while True:
            line = self.rfile.readline()
            if not line:
                return
            command = line.decode(errors="replace").strip().upper()
            if command.startswith("EHLO"):
                self._reply("250-sink")
                self._reply("250 AUTH PLAIN LOGIN XOAUTH2")
            elif command.startswith("HELO"):
                self._reply("250 sink")
            elif command.startswith("AUTH"):
                # Any login is good; the test reads what the client presented.
                sink.auth.append(line.decode(errors="replace").strip())
                self._reply("235 2.7.0 Authentication successful")
            elif command.startswith("DATA"):
                self._reply("354 go ahead")
                data = []
                while True:
                    chunk = self.rfile.readline()
                    if not chunk:
                        return  # the client went away mid-message: nothing delivered
                    if chunk == b".\r\n":
                        break
                    data.append(chunk)
                if sink.hold.is_set():
                    sink.holding.set()
                    # The sender dies while waiting here; its connection closing ends this.
                    self.rfile.readline()
                    return
                sink.delivered.append(b"".join(data).decode(errors="replace"))
                self._reply("250 queued")
            elif command.startswith("QUIT"):
                self._reply("221 bye")
                return
            else:
                self._reply("250 OK")


class SmtpSink(socketserver.ThreadingTCPServer):
    daemon_threads = True
    allow_reuse_address = True

    def __init__(self, port: int) -> None:
        super().__init__(("127.0.0.1", port), _SmtpHandler)
        self.sink = self
        self.hold = threading.Event()
        self.holding = threading.Event()
        self.delivered: list[str] = []
        self.auth: list[str] = []


@contextmanager
def smtp_sink(port: int | None = None) -> Iterator[SmtpSink]:
    """Run an SmtpSink on ``port`` (a free one by default) for the block."""
    sink = SmtpSink(port or free_port())
    threading.Thread(target=sink.serve_forever, daemon=True).start()
    try:
        yield sink
    finally:
        sink.shutdown()
        sink.server_close()


# --- A webhook receiver that a test controls ----------------------------------------------------------


class WebhookReceiver(socketserver.ThreadingTCPServer):
    """Records each POST; answers 200 unless ``hold`` is set, then never answers (the sender
    dies waiting). ``accepted`` holds the bodies it confirmed with a 200."""

    daemon_threads = True
    allow_reuse_address = True

    def __init__(self, port: int) -> None:
        super().__init__(("127.0.0.1", port), _WebhookHandler)
        self.hold = threading.Event()
        self.holding = threading.Event()
        self.received: list[bytes] = []
        self.accepted: list[bytes] = []

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.server_address[1]}/hook"


class _WebhookHandler(socketserver.StreamRequestHandler):
    def handle(self) -> None:
        server: WebhookReceiver = self.server  # type: ignore[assignment]
        length = 0
        while True:
            line = self.rfile.readline()
            if not line or line in (b"\r\n", b"\n"):
                break
            name, _, value = line.decode("latin-1").partition(":")
            if name.strip().lower() == "content-length":
                length = int(value.strip())
        body = self.rfile.read(length)
        server.received.append(body)
        if server.hold.is_set():
            server.holding.set()
            self.rfile.read(1)  # returns when the sender's connection closes
            return
        server.accepted.append(body)
        self.wfile.write(b"HTTP/1.1 200 OK\r\nContent-Length: 0\r\nConnection: close\r\n\r\n")


@contextmanager
def webhook_receiver() -> Iterator[WebhookReceiver]:
    receiver = WebhookReceiver(free_port())
    threading.Thread(target=receiver.serve_forever, daemon=True).start()
    try:
        yield receiver
    finally:
        receiver.shutdown()
        receiver.server_close()


# --- A private PostgreSQL cluster that a test may restart ----------------------------------------------


@dataclass
class PostgresCluster:
    """``initdb`` in a temporary folder, run as the ``postgres`` user on a free port.

    Fault tests stop and restart this one, never the machine's shared server on 5432.
    """

    port: int
    datadir: Path
    bindir: Path

    def _run(self, *args: str, timeout: float = 120) -> str:
        done = subprocess.run(
            ["runuser", "-u", "postgres", "--", *args],
            capture_output=True,
            text=True,
            timeout=timeout,
            check=False,
        )
        if done.returncode != 0:
            pytest.fail(f"{' '.join(args)} failed:\n{done.stdout}\n{done.stderr}", pytrace=False)
        return done.stdout

    def url(self, db: str = "postgres") -> str:
        return f"postgres://postgres@127.0.0.1:{self.port}/{db}"

    def pg_ctl(self, *args: str) -> None:
        options = f"-p {self.port} -k {self.datadir} -c listen_addresses=127.0.0.1 -c fsync=off"
        self._run(
            str(self.bindir / "pg_ctl"),
            "-D",
            str(self.datadir / "data"),
            "-l",
            str(self.datadir / "postgres.log"),
            "-o",
            options,
            "-w",
            "-t",
            "60",
            *args,
        )

    def start(self) -> None:
        self.pg_ctl("start")

    def stop(self) -> None:
        self.pg_ctl("stop", "-m", "fast")

    def log(self) -> str:
        path = self.datadir / "postgres.log"
        return path.read_text(errors="replace") if path.exists() else ""


def postgres_bindir() -> Path:
    candidates = sorted(Path("/usr/lib/postgresql").glob("*/bin/initdb"))
    if not candidates or shutil.which("runuser") is None or os.geteuid() != 0:
        _missing(
            "This test starts its own PostgreSQL cluster: it needs /usr/lib/postgresql/*/bin, "
            "runuser and root (to run initdb as the postgres user)",
            "Run CI as root in the Debian image with the postgresql package.",
        )
    return candidates[-1].parent


@contextmanager
def postgres_cluster() -> Iterator[PostgresCluster]:
    """A private PostgreSQL for the block (trust auth on 127.0.0.1), removed afterwards."""
    bindir = postgres_bindir()
    datadir = Path(tempfile.mkdtemp(prefix="sd-pg-"))
    shutil.chown(datadir, "postgres", "postgres")
    cluster = PostgresCluster(port=free_port(), datadir=datadir, bindir=bindir)
    try:
        cluster._run(
            str(bindir / "initdb"),
            "-D",
            str(datadir / "data"),
            "-U",
            "postgres",
            "--auth=trust",
            "-E",
            "UTF8",
            "--no-sync",
        )
        cluster.start()
        yield cluster
    except BaseException:
        print(f"----- PostgreSQL log -----\n{cluster.log()}\n----- end -----")
        raise
    finally:
        subprocess.run(
            [
                "runuser",
                "-u",
                "postgres",
                "--",
                str(bindir / "pg_ctl"),
                "-D",
                str(datadir / "data"),
                "stop",
                "-m",
                "immediate",
                "-w",
            ],
            capture_output=True,
            check=False,
            timeout=60,
        )
        shutil.rmtree(datadir, ignore_errors=True)


@contextmanager
def postgres_replica(primary: PostgresCluster) -> Iterator[PostgresCluster]:
    """A streaming replica (hot standby) of ``primary``: ``pg_basebackup -R -X stream`` into a
    second data folder, started on another free loopback port, removed afterwards.

    ``initdb --auth=trust`` allows replication connections from 127.0.0.1, so no setup is needed.
    """
    datadir = Path(tempfile.mkdtemp(prefix="sd-pg-replica-"))
    shutil.chown(datadir, "postgres", "postgres")
    replica = PostgresCluster(port=free_port(), datadir=datadir, bindir=primary.bindir)
    try:
        replica._run(
            str(primary.bindir / "pg_basebackup"),
            "-h",
            "127.0.0.1",
            "-p",
            str(primary.port),
            "-U",
            "postgres",
            "-D",
            str(datadir / "data"),
            "-R",
            "-X",
            "stream",
            "--checkpoint=fast",
        )
        replica.start()
        yield replica
    except BaseException:
        print(f"----- PostgreSQL replica log -----\n{replica.log()}\n----- end -----")
        raise
    finally:
        subprocess.run(
            [
                "runuser",
                "-u",
                "postgres",
                "--",
                str(primary.bindir / "pg_ctl"),
                "-D",
                str(datadir / "data"),
                "stop",
                "-m",
                "immediate",
                "-w",
            ],
            capture_output=True,
            check=False,
            timeout=60,
        )
        shutil.rmtree(datadir, ignore_errors=True)
