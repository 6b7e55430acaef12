"""Inbound chat messages: the synchronous path against the asynchronous mode, on the same stack.

    .venv/bin/python -m bench.async_ingest --messages 2000 --clients 8

Creates a fresh database, two chat channels (``--ingest sync`` and ``--ingest async``), starts
gunicorn and one Celery worker (the stack of bench/stack.py, production settings, loopback), then:

1. posts N messages to the synchronous channel with C clients: stored messages per second;
2. posts N messages to the asynchronous channel with C clients: accepted per second (202), then
   waits until the worker stored them all: backlog drained per second (from the first accept);
3. checks that nothing was lost or stored twice and that both channels counted the same contacts.

Each phase also prints the CPU time it cost, by role (psutil): gunicorn's workers, the Celery
worker (its pool: ingestion and the reactions it triggers), PostgreSQL (every ``postgres``
process) and this client, in milliseconds a message. On 2 cores, 1,000 ms of CPU a second is
one core: that arithmetic says which rate the machine can hold at all.

Prints one line per figure. Times on a shared machine are noisy: compare runs side by side.
"""

from __future__ import annotations

import argparse
import os
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

import psutil
import psycopg
import requests

from bench.stack import Stack, free_port, manage, stack_env

VISITORS = 200


def _payload(prefix: str, n: int) -> dict[str, Any]:
    visitor = n % VISITORS
    return {
        "external_id": f"{prefix}-{n}",
        "session_id": f"{prefix}-v{visitor}-s{n // (VISITORS * 3)}",
        "visitor_id": f"{prefix}-v{visitor}",
        "body": f"Message {n} about order #{n * 7}",
    }


def _post_all(
    url: str, secret: str, prefix: str, count: int, clients: int
) -> tuple[float, dict[int, int]]:
    """Each client posts its visitors' messages in order; returns seconds and status counts."""
    statuses: dict[int, int] = {}
    lock = threading.Lock()

    def client(index: int) -> None:
        session = requests.Session()
        session.headers["X-Channel-Token"] = secret
        for n in range(index, count, clients):
            response = session.post(url, json=_payload(prefix, n), timeout=60)
            with lock:
                statuses[response.status_code] = statuses.get(response.status_code, 0) + 1

    threads = [threading.Thread(target=client, args=(i,)) for i in range(clients)]
    started = time.monotonic()
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    return time.monotonic() - started, statuses


def _cpu_seconds(pids: list[int]) -> float:
    total = 0.0
    for pid in pids:
        try:
            times = psutil.Process(pid).cpu_times()
        except psutil.Error:
            continue
        total += times.user + times.system
    return total


class CpuByRole:
    """CPU seconds spent by each role between two ``take()`` calls (processes alive at both)."""

    def __init__(self, stack: Stack) -> None:
        self.stack = stack
        self.last = self._now()

    def _pids(self) -> dict[str, list[int]]:
        postgres = [p.pid for p in psutil.process_iter(["name"]) if p.info["name"] == "postgres"]
        return {
            "web": self.stack.pids("web"),
            "worker": self.stack.pids("celery"),
            "postgres": postgres,
            "client": [os.getpid()],
        }

    def _now(self) -> dict[str, dict[int, float]]:
        return {
            role: {pid: _cpu_seconds([pid]) for pid in pids} for role, pids in self._pids().items()
        }

    def take(self) -> dict[str, float]:
        now = self._now()
        spent = {}
        for role, pids in now.items():
            before = self.last.get(role, {})
            # A process born since the last take counts whole (a new PostgreSQL backend).
            spent[role] = sum(cpu - before.get(pid, 0.0) for pid, cpu in pids.items())
        self.last = now
        return spent


def _cpu_line(label: str, spent: dict[str, float], messages: int) -> str:
    parts = ", ".join(f"{role} {seconds * 1000 / messages:.1f}" for role, seconds in spent.items())
    total = sum(spent.values()) * 1000 / messages
    return f"  CPU ms a message, {label}: {parts}; all {total:.1f}"


def _wait_until_idle(cpu: CpuByRole, stack: Stack, quiet_seconds: float = 2.0) -> None:
    """Wait until the Celery worker has been idle (< 2 % of a core) for ``quiet_seconds``."""
    quiet_since = time.monotonic()
    last = _cpu_seconds(stack.pids("celery"))
    while time.monotonic() - quiet_since < quiet_seconds:
        time.sleep(0.5)
        now = _cpu_seconds(stack.pids("celery"))
        if now - last > 0.01:
            quiet_since = time.monotonic()
        last = now


def _count(dsn: str, sql: str, *args: Any) -> int:
    with psycopg.connect(dsn) as db:
        row = db.execute(sql, args).fetchone()
        return int(row[0]) if row else 0


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--messages", type=int, default=2000)
    parser.add_argument("--clients", type=int, default=8)
    parser.add_argument(
        "--admin-url",
        default=os.environ.get("BENCH_ADMIN_URL", "postgres://root@127.0.0.1:5432/postgres"),
    )
    parser.add_argument("--db", default="bench_async_ingest")
    parser.add_argument(
        "--broker", default=os.environ.get("CELERY_BROKER_URL", "redis://127.0.0.1:6379/15")
    )
    args = parser.parse_args()

    with psycopg.connect(args.admin_url, autocommit=True) as admin:
        admin.execute(f'DROP DATABASE IF EXISTS "{args.db}"')
        admin.execute(f'CREATE DATABASE "{args.db}"')
    dsn = args.admin_url.rsplit("/", 1)[0] + f"/{args.db}"
    workdir = Path(tempfile.mkdtemp(prefix="bench-async-"))
    port = free_port()
    queue = f"bench-async-{port}"
    env = stack_env(
        database_url=dsn, broker_url=args.broker, queue=queue, workdir=workdir, port=port
    )
    manage(env, "migrate", "--noinput", quiet=True)
    manage(env, "collectstatic", "--noinput", quiet=True)
    sync_secret = (
        manage(env, "create_channel", "chat", "Sync chat", "--ingest", "sync", quiet=True)
        .strip()
        .splitlines()[-1]
    )
    async_secret = (
        manage(env, "create_channel", "chat", "Async chat", "--ingest", "async", quiet=True)
        .strip()
        .splitlines()[-1]
    )
    stack = Stack(env, port, workdir, beat=True, worker_concurrency=2)
    stack.start()
    url = stack.base_url + "/api/v1/inbound/chat/"
    n = args.messages
    try:
        print(f"load before: {os.getloadavg()[0]:.1f}")
        cpu = CpuByRole(stack)
        seconds, statuses = _post_all(url, sync_secret, "sync", n, args.clients)
        print(f"sync: {n} messages, {args.clients} clients: {n / seconds:.1f} stored/s {statuses}")
        print(_cpu_line("sync requests", cpu.take(), n))
        _wait_until_idle(cpu, stack)
        print(_cpu_line("sync reactions", cpu.take(), n))

        started = time.monotonic()
        seconds, statuses = _post_all(url, async_secret, "async", n, args.clients)
        print(f"async: {n} accepted in {seconds:.1f} s: {n / seconds:.1f} accepted/s {statuses}")
        print(_cpu_line("async accept (the worker draining beside it)", cpu.take(), n))
        while _count(dsn, "SELECT count(*) FROM tickets_inboundqueueitem WHERE status = 'pending'"):
            time.sleep(0.2)
        drained = time.monotonic() - started
        print(f"async: backlog stored {n / drained:.1f}/s ({drained:.1f} s from the first accept)")
        print(_cpu_line("async drain after the accepts", cpu.take(), n))
        _wait_until_idle(cpu, stack)
        print(_cpu_line("async reactions left", cpu.take(), n))

        done = _count(dsn, "SELECT count(*) FROM tickets_inboundqueueitem WHERE status = 'done'")
        stored = {
            prefix: _count(
                dsn, "SELECT count(*) FROM tickets_message WHERE external_id LIKE %s", f"{prefix}-%"
            )
            for prefix in ("sync", "async")
        }
        contacts = {
            name: _count(
                dsn,
                "SELECT count(*) FROM tickets_contact c JOIN tickets_channel ch ON ch.id = c.channel_id WHERE ch.name = %s",
                name,
            )
            for name in ("Sync chat", "Async chat")
        }
        print(f"check: rows done {done}, messages {stored}, contacts {contacts}")
    finally:
        stack.stop()


if __name__ == "__main__":
    main()
