"""The production-like stack the benchmark and the load run drive: gunicorn, a Celery worker and
beat, on the machine's PostgreSQL and Redis, all bound to loopback.

Every process is started here and stopped here (SIGTERM, then SIGKILL); nothing else is touched.
"""

from __future__ import annotations

import os
import secrets
import signal
import socket
import subprocess
import sys
import threading
import time
import uuid
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import requests

ROOT = Path(__file__).resolve().parent.parent


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def stack_env(
    *,
    database_url: str,
    broker_url: str,
    queue: str,
    workdir: Path,
    port: int,
    extra: dict[str, str] | None = None,
) -> dict[str, str]:
    """Production settings: DEBUG off, a real secret, Redis broker and cache, mail to files."""
    env = {
        **os.environ,
        "DJANGO_SETTINGS_MODULE": "supportdesk.settings",
        "DATABASE_URL": database_url,
        "CELERY_BROKER_URL": broker_url,
        "CELERY_TASK_DEFAULT_QUEUE": queue,
        # The routed queues (ingest, mail, webhooks, facts, housekeeping) of this run, apart.
        "CELERY_QUEUE_PREFIX": f"{queue}.",
        "CELERY_TASK_ALWAYS_EAGER": "0",
        "CACHE_URL": broker_url,
        "DEBUG": "0",
        "SECRET_KEY": os.environ.get("BENCH_SECRET_KEY") or secrets.token_urlsafe(50),
        "EMAIL_URL": f"file://{workdir / 'mail'}",
        "SUPPORT_EMAIL": "support@bench.example",
        "SITE_URL": f"http://127.0.0.1:{port}",
        "ALLOWED_HOSTS": "127.0.0.1,localhost",
        "DATA_DIR": str(workdir / "data"),
        "STATIC_ROOT": str(workdir / "static"),
        "LOG_LEVEL": "WARNING",
        "PYTHONUNBUFFERED": "1",
        **(extra or {}),
    }
    env.pop("CELERY_BROKER_WRITE_URL", None)
    (workdir / "mail").mkdir(parents=True, exist_ok=True)
    (workdir / "data").mkdir(parents=True, exist_ok=True)
    return env


def manage(env: dict[str, str], *args: str, quiet: bool = False) -> str:
    """Run ``manage.py`` with the stack's environment; raise with its output when it fails."""
    result = subprocess.run(
        [sys.executable, str(ROOT / "manage.py"), *args],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        check=False,
    )
    if result.returncode != 0:
        raise RuntimeError(f"manage.py {' '.join(args)} failed:\n{result.stdout}\n{result.stderr}")
    if not quiet and result.stdout.strip():
        print(result.stdout.rstrip()[-2000:], flush=True)
    return result.stdout


def _stop(process: subprocess.Popen[Any], grace: float = 20) -> None:
    if process.poll() is not None:
        return
    process.send_signal(signal.SIGTERM)
    try:
        process.wait(timeout=grace)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait(timeout=10)


@dataclass
class Stack:
    env: dict[str, str]
    port: int
    workdir: Path
    web_workers: int = 2
    worker_concurrency: int = 2
    beat: bool = True
    processes: dict[str, subprocess.Popen[bytes]] = field(default_factory=dict)

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def mail_dir(self) -> Path:
        return self.workdir / "mail"

    def _spawn(self, name: str, argv: list[str]) -> None:
        log = open(self.workdir / f"{name}.log", "wb")  # noqa: SIM115 (the child owns it)
        self.processes[name] = subprocess.Popen(
            argv, cwd=ROOT, env=self.env, stdout=log, stderr=subprocess.STDOUT
        )
        log.close()

    def log(self, name: str) -> str:
        path = self.workdir / f"{name}.log"
        return path.read_text(errors="replace") if path.exists() else ""

    def start(self) -> Stack:
        bindir = Path(sys.executable).parent
        self._spawn(
            "gunicorn",
            [
                str(bindir / "gunicorn"),
                "supportdesk.wsgi",
                f"--bind=127.0.0.1:{self.port}",
                "-w",
                str(self.web_workers),
                "--timeout=60",
            ],
        )
        self._spawn(
            "worker",
            [
                sys.executable,
                "-m",
                "celery",
                "-A",
                "supportdesk",
                "worker",
                "--loglevel=INFO",
                f"--concurrency={self.worker_concurrency}",
                "--without-heartbeat",
                "--without-mingle",
                "--without-gossip",
                f"--hostname=bench-{uuid.uuid4().hex[:8]}@%h",
            ],
        )
        if self.beat:
            self._spawn(
                "beat",
                [
                    sys.executable,
                    "-m",
                    "celery",
                    "-A",
                    "supportdesk",
                    "beat",
                    "--loglevel=INFO",
                    f"--schedule={self.workdir / 'data' / 'celerybeat-schedule'}",
                ],
            )
        deadline = time.monotonic() + 120
        while True:
            for name, process in self.processes.items():
                if process.poll() is not None:
                    raise RuntimeError(f"{name} exited:\n{self.log(name)[-3000:]}")
            try:
                web_ok = requests.get(self.base_url + "/healthz", timeout=2).status_code == 200
            except requests.RequestException:
                web_ok = False
            if web_ok and " ready." in self.log("worker"):
                return self
            if time.monotonic() > deadline:
                raise RuntimeError(
                    "the stack did not start:\n"
                    + "\n".join(f"--- {n}\n{self.log(n)[-2000:]}" for n in self.processes)
                )
            time.sleep(0.3)

    def stop(self) -> None:
        for name in ("beat", "gunicorn", "worker"):
            if name in self.processes:
                _stop(self.processes[name])

    def pids(self, role: str) -> list[int]:
        """The processes of a role: gunicorn's workers (not the arbiter), the worker's pool."""
        import psutil

        parent = self.processes.get({"web": "gunicorn", "celery": "worker"}[role])
        if parent is None or parent.poll() is not None:
            return []
        proc = psutil.Process(parent.pid)
        children = [child.pid for child in proc.children(recursive=True)]
        return children if role == "web" else [parent.pid, *children]


class RssSampler:
    """Samples the RSS of a stack's processes every ``interval`` s; ``peaks()`` per role (MB)."""

    def __init__(self, stack: Stack, interval: float = 0.25) -> None:
        self.stack = stack
        self.interval = interval
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self.peak: dict[str, float] = {}

    def _sample(self) -> None:
        import psutil

        for role in ("web", "celery"):
            total = 0.0
            largest = 0.0
            for pid in self.stack.pids(role):
                try:
                    rss = psutil.Process(pid).memory_info().rss / 2**20
                except psutil.Error:
                    continue
                largest = max(largest, rss)
                total += rss
            self.peak[role] = max(self.peak.get(role, 0.0), largest)
            self.peak[role + "_total"] = max(self.peak.get(role + "_total", 0.0), total)

    def _run(self) -> None:
        while not self._stop.is_set():
            self._sample()
            self._stop.wait(self.interval)

    def __enter__(self) -> RssSampler:
        self.peak = {}
        self._stop.clear()
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join()
        self._sample()


def load_average() -> tuple[float, float, float]:
    return os.getloadavg()


def first(iterable: Iterable[Any]) -> Any:
    return next(iter(iterable))
