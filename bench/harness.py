"""``bench/run``: the benchmark (docs/benchmarks.md), end to end from a clean database.

Creates (drops if present) the database, migrates, seeds it with ``bench_seed``, collects static
files, starts gunicorn (2 workers), a Celery worker and beat with production settings on
loopback, runs workloads W1-W6 with a bounded client while sampling RSS, times the hand-written
SQL floor of each page, stops everything and writes a Markdown results file.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import math
import os
import platform
import re
import sys
import time
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any

import phonenumbers
import psycopg
import requests

from bench import floor, peer
from bench.client import (
    InboundSource,
    RequestFailed,
    Stats,
    api_session,
    closed_loop,
    login,
    timed,
)
from bench.stack import ROOT, RssSampler, Stack, free_port, manage, stack_env

PASSWORD = "bench-pass"
PG_BASE = os.environ.get("BENCH_PG", "postgres://root@127.0.0.1:5432")


@dataclass
class Row:
    workload: str
    what: str
    stats: Stats | None = None
    floor: Stats | None = None
    rss_web: float = float("nan")
    rss_celery: float = float("nan")
    budget: str = ""
    verdict: str = ""
    value: str = ""  # for rows that are one measurement (seconds), not a latency distribution
    unit_throughput: str = "req/s"


def _fmt(x: float, digits: int = 1) -> str:
    return "-" if x is None or (isinstance(x, float) and math.isnan(x)) else f"{x:.{digits}f}"


def _latency_verdict(p95: float, budget_ms: float, ratio: float | None) -> str:
    misses = []
    if p95 > budget_ms:
        misses.append(f"misses by {p95 - budget_ms:.0f} ms ({p95 / budget_ms:.1f}x budget)")
    if ratio is not None and ratio > 3:
        misses.append(f"{ratio:.1f}x floor (budget 3x)")
    return "PASS" if not misses else "; ".join(misses)


def recreate_database(name: str) -> str:
    if not re.fullmatch(r"[a-z0-9_]+", name):
        raise SystemExit("--db: lower-case letters, digits and _ only")
    with psycopg.connect(f"{PG_BASE}/postgres", autocommit=True) as conn:
        conn.execute(
            "SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = %s", (name,)
        )
        conn.execute(f'DROP DATABASE IF EXISTS "{name}"')
        conn.execute(f'CREATE DATABASE "{name}"')
    return f"{PG_BASE}/{name}"


def machine_facts(dsn: str, broker_url: str) -> dict[str, str]:
    cpu = "unknown"
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    mem_gb = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES") / 2**30
    with psycopg.connect(dsn) as conn:
        pg = conn.execute("SHOW server_version").fetchone()[0]
    import redis

    client = redis.Redis.from_url(broker_url)
    try:
        redis_version = client.info("server")["redis_version"]
    finally:
        client.close()
    return {
        "nproc": str(os.cpu_count()),
        "ram": f"{mem_gb:.1f} GB",
        "cpu": cpu,
        "kernel": platform.release(),
        "python": platform.python_version(),
        "postgresql": pg,
        "redis": redis_version,
    }


class Bench:
    def __init__(self, args: argparse.Namespace) -> None:
        self.args = args
        self.rows: list[Row] = []
        self.w1: dict[str, int] = {}
        self.w1_by_senders: dict[int, Row] = {}
        self.notes: list[str] = []
        self.loads: list[tuple[str, tuple[float, float, float]]] = []
        self.workdir = ROOT / "var" / "bench" / args.db
        self.workdir.mkdir(parents=True, exist_ok=True)
        self.port = free_port()
        self.broker = args.broker
        self.dsn = f"{PG_BASE}/{args.db}"

    def note_load(self, label: str) -> None:
        self.loads.append((label, os.getloadavg()))

    # --- setup -------------------------------------------------------------------------------------

    def prepare(self) -> None:
        a = self.args
        self.env = stack_env(
            database_url=self.dsn,
            broker_url=self.broker,
            queue=a.queue,
            workdir=self.workdir,
            port=self.port,
            extra={
                # The inbound throttle defaults to 6000/min per channel; the benchmark drives
                # one email and one chat channel well above that on purpose.
                "INBOUND_THROTTLE_RATE": "100000/min",
                "SURVEY_RATE_LIMIT": "100000/m",
            },
        )
        manifest = self.workdir / "manifest.json"
        if not a.reuse:
            print(f"== database {a.db}: drop, create, migrate", flush=True)
            recreate_database(a.db)
            manage(self.env, "migrate", "--noinput", quiet=True)
            print(f"== bench_seed --conversations {a.conversations}", flush=True)
            started = time.monotonic()
            manage(
                self.env,
                "bench_seed",
                "--conversations",
                str(a.conversations),
                "--manifest",
                str(manifest),
                "--seed",
                str(a.seed),
                *(["--no-facts"] if a.no_facts else []),
            )
            self.seed_seconds = time.monotonic() - started
        else:
            # Reused data: still apply migrations that arrived since (indexes, for example).
            manage(self.env, "migrate", "--noinput", quiet=True)
            self.seed_seconds = float("nan")
        self.manifest: dict[str, Any] = json.loads(manifest.read_text())
        manage(self.env, "collectstatic", "--noinput", quiet=True)
        with psycopg.connect(self.dsn) as conn:
            self.team_ids = [
                r[0]
                for r in conn.execute(
                    "SELECT team_id FROM supportdesk_user_teams WHERE user_id = %s",
                    (self.manifest["agent000_id"],),
                )
            ]
            self.manager01_team = self.manifest["team01_id"]
            conn.execute("ANALYZE")
        self.facts = machine_facts(self.dsn, self.broker)

    # --- workloads ---------------------------------------------------------------------------------

    COLD_READS = 5

    def page(
        self,
        workload: str,
        what: str,
        url: str,
        session_factory: Any,
        statements: list[floor.Statement] | None,
        budget_ms: float,
        sampler: RssSampler,
        *,
        cold: bool = False,
    ) -> Row:
        """``--users`` closed-loop users requesting ``url`` for ``--seconds``; or, ``cold``,
        ``COLD_READS`` requests each right after the facts changed (``_cold_reads``)."""
        stats = Stats(what)
        if cold:
            self._cold_reads(stats, url, session_factory(), sampler)
            what = f"{what}: cache cold (first read after the facts changed)"
        else:
            with sampler:
                closed_loop(
                    stats,
                    self.args.users,
                    lambda s, n: s.get(self.stack.base_url + url, timeout=30),
                    seconds=self.args.seconds,
                    setup=lambda i: session_factory(),
                )
        floor_stats = (
            floor.time_floor(self.dsn, what, statements, stats.count or 1) if statements else None
        )
        ratio = stats.p95 / floor_stats.p95 if floor_stats and floor_stats.p95 else None
        row = Row(
            workload,
            what,
            stats,
            floor_stats,
            sampler.peak.get("web", float("nan")),
            sampler.peak.get("celery", float("nan")),
            budget=f"p95 < {budget_ms:.0f} ms"
            + (", ≤ 3x floor" if statements and budget_ms <= 50 else ""),
        )
        row.verdict = _latency_verdict(
            stats.p95, budget_ms, ratio if budget_ms <= 50 and statements else None
        )
        if stats.errors:
            row.verdict = f"{len(stats.errors)} errors (first: {stats.errors[0]}); " + row.verdict
        self.rows.append(row)
        print(self._row_line(row), flush=True)
        return row

    def _cold_reads(
        self, stats: Stats, url: str, session: requests.Session, sampler: RssSampler
    ) -> None:
        """A scorecard page read right after its facts changed: the cache misses every time.

        Before each of ``COLD_READS`` requests the last computed day's ``FactDay.version`` is
        bumped, as a recompute of that day bumps it, so every cached scorecard, trend and
        agents' table of a period that contains the day is stale and read from the facts again.
        """
        with sampler, psycopg.connect(self.dsn, autocommit=True) as conn:
            started = time.monotonic()
            for _ in range(self.COLD_READS):
                conn.execute(
                    "UPDATE metrics_factday SET version = version + 1"
                    " WHERE day = (SELECT max(day) FROM metrics_factday)"
                )
                with contextlib.suppress(RequestFailed):
                    timed(stats, lambda: session.get(self.stack.base_url + url, timeout=30), 200)
            stats.seconds = time.monotonic() - started

    def w1_inbound(self, sampler: RssSampler, senders: int) -> None:
        m = self.manifest
        source = InboundSource(
            self.stack.base_url, m["channels"]["email"]["secret"], m["channels"]["chat"]["secret"]
        )
        stats = Stats("inbound email + chat")
        with sampler:
            closed_loop(
                stats,
                senders,
                lambda s, n: source.one(s, n),
                seconds=self.args.inbound_seconds,
                expected=(201,),
            )
            # Let the worker drain what the burst queued (events, survey cancels, dirty days).
            time.sleep(3)
        sql, params = source.stored_sql()
        with psycopg.connect(self.dsn) as conn:
            stored, distinct = conn.execute(sql, params).fetchone()
        sent = source.sent
        lost = sent - stored
        throughput = stats.throughput
        row = Row(
            "W1 inbound",
            f"email + chat ingestion, {senders} senders",
            stats,
            None,
            sampler.peak.get("web", float("nan")),
            sampler.peak.get("celery", float("nan")),
            budget="≥ 200 msg/s, none lost",
            unit_throughput="msg/s",
        )
        problems = []
        if throughput < 200:
            problems.append(f"misses by {200 - throughput:.0f} msg/s ({throughput:.0f} msg/s)")
        if lost or distinct != stored:
            problems.append(
                f"LOST {lost}: {stored} stored ({distinct} distinct) of {sent} acknowledged"
            )
        if stats.errors:
            problems.append(f"{len(stats.errors)} failed requests (first: {stats.errors[0][:80]})")
        row.verdict = "PASS" if not problems else "; ".join(problems)
        row.value = (
            f"{sent} acknowledged, {stored} of them stored, {stats.count + len(stats.errors)} sent"
        )
        for key, value in (
            ("sent", sent),
            ("stored", stored),
            ("distinct", distinct),
            ("errors", len(stats.errors)),
        ):
            self.w1[key] = self.w1.get(key, 0) + value
        self.w1_by_senders[senders] = row
        self.rows.append(row)
        print(self._row_line(row), row.value, flush=True)

    def w1_async(self, sampler: RssSampler, senders: int) -> None:
        """W1 on asynchronous channels: accepted a second (202), then until the worker stored
        every accepted message: stored a second from the first accept; none lost or doubled."""
        secrets = {
            kind: manage(
                self.env,
                "create_channel",
                kind,
                f"Bench async {kind}",
                "--ingest",
                "async",
                # A reused database keeps the channel, its secret sealed with an earlier run's
                # random SECRET_KEY: a new one is set (on a new channel this does nothing).
                "--rotate-secret",
                quiet=True,
            )
            .strip()
            .splitlines()[-1]
            for kind in ("email", "chat")
        }
        source = InboundSource(
            self.stack.base_url, secrets["email"], secrets["chat"], accepted_status=202
        )
        stats = Stats("inbound email + chat, asynchronous")
        timeout = 60 + 20 * self.args.inbound_seconds
        with sampler, psycopg.connect(self.dsn, autocommit=True) as conn:
            started = time.monotonic()
            closed_loop(
                stats,
                senders,
                lambda s, n: source.one(s, n),
                seconds=self.args.inbound_seconds,
                expected=(202,),
            )
            pending = 1
            while time.monotonic() - started < timeout:
                pending = conn.execute(
                    "SELECT count(*) FROM tickets_inboundqueueitem q JOIN tickets_channel c"
                    " ON c.id = q.channel_id WHERE c.name LIKE 'Bench async %%'"
                    " AND q.status = 'pending'"
                ).fetchone()[0]
                if not pending:
                    break
                time.sleep(0.2)
            drained = time.monotonic() - started
            sql, params = source.stored_sql()
            stored, distinct = conn.execute(sql, params).fetchone()
        row = Row(
            "W1 async",
            f"email + chat accepted (202), {senders} senders",
            stats,
            None,
            sampler.peak.get("web", float("nan")),
            sampler.peak.get("celery", float("nan")),
            budget="≥ 200 accepted/s, stored ≥ 100/s, none lost",
            unit_throughput="msg/s",
        )
        row.verdict = async_verdict(
            accepted_rate=stats.throughput,
            stored_rate=stored / drained if drained else 0.0,
            sent=source.sent,
            stored=stored,
            distinct=distinct,
            errors=len(stats.errors),
            pending=bool(pending),
        )
        row.value = (
            f"{source.sent} accepted in {stats.seconds:.1f} s, {stored} of them stored"
            f" {drained:.1f} s after the first accept ({stored / drained:.1f} a second)"
        )
        self.rows.append(row)
        print(self._row_line(row), row.value, flush=True)

    def _poll_job(self, session: requests.Session, job: int, timeout: float) -> dict[str, Any]:
        deadline = time.monotonic() + timeout
        while True:
            data = session.get(f"{self.stack.base_url}/api/v1/tasks/{job}/", timeout=30).json()
            if data.get("state") in ("done", "failed"):
                return data
            if time.monotonic() > deadline:
                return data
            time.sleep(0.5)

    def w6_recompute(self, sampler: RssSampler) -> None:
        admin = api_session(self.manifest["tokens"]["admin"])
        with sampler:
            started = time.monotonic()
            out = manage(
                self.env,
                "shell",
                "-c",
                "from bench.prepare import recompute_retention as f; f()",
                quiet=True,
            )
            job = json.loads(out.strip().splitlines()[-1])
            data = self._poll_job(admin, job["job"], timeout=self.args.recompute_timeout)
            seconds = time.monotonic() - started
        row = Row(
            "W6 recompute",
            f"full recompute on demand, {job['days']} days (job {job['job']}: {data.get('state')})",
            None,
            None,
            sampler.peak.get("web", float("nan")),
            sampler.peak.get("celery", float("nan")),
            budget="< 120 s; worker < 400 MB",
            value=f"{seconds:.1f} s",
        )
        problems = []
        self.recompute_done = data.get("state") == "done"
        if data.get("state") != "done":
            progress = float(data.get("progress") or 0)
            estimate = seconds / progress if progress else float("inf")
            row.value = f"{progress:.0%} of {job['days']} days in {seconds:.0f} s"
            problems.append(
                f"stopped waiting at {seconds:.0f} s ({data.get('state')}, {progress:.0%} done): "
                f"about {estimate:.0f} s in all at that rate, misses by ~{estimate - 120:.0f} s"
            )
            # Stop the chain so the rest of the run does not share the worker with it.
            with psycopg.connect(self.dsn, autocommit=True) as conn:
                conn.execute(
                    "UPDATE metrics_recomputejob SET state = 'failed',"
                    " error = 'bench: stopped waiting' WHERE id = %s AND state <> 'done'",
                    (job["job"],),
                )
            self.notes.append(
                f"W6: the recompute had done {progress:.0%} of the {job['days']} days when the "
                f"harness stopped waiting ({seconds:.0f} s); W5 then read the facts that existed "
                "(those bench_seed computed, if it computed them). The harness then marked the job "
                "failed so that its next chunks do not run during the rest of the benchmark."
            )
        elif seconds > 120:
            problems.append(f"misses by {seconds - 120:.0f} s")
        if row.rss_celery > 400:
            problems.append(f"worker RSS misses by {row.rss_celery - 400:.0f} MB")
        row.verdict = "PASS" if not problems else "; ".join(problems)
        self.rows.append(row)
        print(self._row_line(row), row.value, flush=True)
        if self.recompute_done:
            self._wait_for_vacuum(job["job"])
        self.w6_nightly(sampler)

    def w6_nightly(self, sampler: RssSampler) -> None:
        """The nightly pass beat runs: the days whose sources changed in the last 24 hours."""
        with sampler:
            out = manage(
                self.env,
                "shell",
                "-c",
                "from bench.prepare import recompute_nightly as f; f()",
                quiet=True,
            )
        result = json.loads(out.strip().splitlines()[-1])
        seconds = float(result["seconds"])
        self.notes.append(
            f"W6 nightly pass: then {result['weeks']} weekly roll-ups rebuilt and"
            f" {result['warmed']} standard scorecards warmed in"
            f" {result['roll_up_and_warm_seconds']:.1f} s (the worker's task after the pass, run by"
            " the harness so that W5 does not run beside it)."
        )
        row = Row(
            "W6 recompute",
            f"nightly pass: the {result['days']} days whose sources changed in 24 h (and the"
            " open windows)",
            None,
            None,
            sampler.peak.get("web", float("nan")),
            sampler.peak.get("celery", float("nan")),
            budget="< 120 s",
            value=f"{seconds:.1f} s",
        )
        row.verdict = "PASS" if seconds < 120 else f"misses by {seconds - 120:.0f} s"
        self.rows.append(row)
        print(self._row_line(row), row.value, flush=True)

    def _wait_for_vacuum(self, job_id: int, timeout: float = 600.0) -> None:
        """The finished job queues ``facts_vacuum_task``; wait for it, so that W5's reads are
        not measured beside a VACUUM of millions of rows, and note how long it took."""
        started = time.monotonic()
        with psycopg.connect(self.dsn, autocommit=True) as conn:
            while time.monotonic() - started < timeout:
                (done,) = conn.execute(
                    "SELECT coalesce(s.last_vacuum >= j.finished_at, false)"
                    " FROM metrics_recomputejob j, pg_stat_user_tables s"
                    " WHERE j.id = %s AND s.relname = 'metrics_durationbucket'",
                    (job_id,),
                ).fetchone()
                if done:
                    self.notes.append(
                        "W6: after the recompute, the worker's VACUUM (ANALYZE) of the fact "
                        f"tables ended {time.monotonic() - started:.1f} s after the job did; W5 "
                        "started after it."
                    )
                    return
                time.sleep(0.5)
        self.notes.append(f"W6: no VACUUM of the fact tables was seen within {timeout:.0f} s.")

    def w6_survey(self, sampler: RssSampler) -> None:
        out = manage(
            self.env,
            "shell",
            "-c",
            "from bench.prepare import sent_survey_link as f; f()",
            quiet=True,
        )
        link = json.loads(out.strip().splitlines()[-1])
        day = date.fromisoformat(link["solved_day"])
        manager = api_session(self.manifest["tokens"]["admin"])
        url = (
            f"{self.stack.base_url}/api/v1/scorecards/?from={day}&to={day + timedelta(days=1)}"
            "&group_by=desk"
        )

        def fingerprint() -> str:
            data = manager.get(url, timeout=30).json()
            return json.dumps(data.get("groups"), sort_keys=True)

        before = fingerprint()
        customer = requests.Session()
        page_url = f"{self.stack.base_url}/s/{link['token']}/"
        with sampler:
            page = customer.get(page_url, timeout=30)
            token = re.search(r'name="csrfmiddlewaretoken" value="([^"]+)"', page.text)
            started = time.monotonic()
            answer = customer.post(
                page_url,
                data={
                    "resolved": "yes",
                    "contacts": "1",
                    "csat": "5",
                    "comment": "Benchmark answer",
                    "csrfmiddlewaretoken": token.group(1) if token else "",
                },
                headers={"Referer": page_url},
                timeout=30,
                allow_redirects=False,
            )
            shown = None
            if answer.status_code == 302:
                while time.monotonic() - started < 60:
                    if fingerprint() != before:
                        shown = time.monotonic() - started
                        break
                    time.sleep(0.2)
        row = Row(
            "W6 survey → dashboard",
            f"answer POSTed on /s/<token>/ until the scorecard API shows it (survey {link['survey']})",
            budget="< 10 s",
            value=f"{shown:.1f} s" if shown is not None else "not shown in 60 s",
            rss_web=sampler.peak.get("web", float("nan")),
            rss_celery=sampler.peak.get("celery", float("nan")),
        )
        if answer.status_code != 302:
            row.verdict = f"answer refused: {answer.status_code}"
        elif shown is None:
            row.verdict = "misses: not shown within 60 s"
        else:
            row.verdict = "PASS" if shown < 10 else f"misses by {shown - 10:.1f} s"
        self.rows.append(row)
        print(self._row_line(row), row.value, flush=True)

    def run_workloads(self) -> None:
        m, base = self.manifest, self.stack.base_url
        sampler = RssSampler(self.stack)
        today = datetime.now(UTC).date()
        d90_from, d90_to = today - timedelta(days=89), today + timedelta(days=1)

        def agent() -> requests.Session:
            return login(base, "agent000@bench.example", PASSWORD)

        def manager() -> requests.Session:
            return login(base, "manager01@bench.example", PASSWORD)

        def admin() -> requests.Session:
            return login(base, "admin@bench.example", PASSWORD)

        self.note_load("start")
        for senders in self.args.inbound_users:
            self.w1_inbound(sampler, senders)
        self.note_load("after W1")
        phone = m["search_phone"]
        try:
            e164 = phonenumbers.format_number(
                phonenumbers.parse(phone, "US"), phonenumbers.PhoneNumberFormat.E164
            )
        except phonenumbers.NumberParseException:
            e164 = None
        q = requests.utils.quote
        self.page(
            "W2 queue",
            "first queue page, filtered (email)",
            "/?channel=email",
            agent,
            floor.queue_filtered(m, self.team_ids),
            50,
            sampler,
        )
        self.page(
            "W2 queue",
            f"search by phone ({phone})",
            f"/?q={q(phone)}",
            agent,
            floor.queue_search(m, self.team_ids, phone, e164),
            50,
            sampler,
        )
        self.page(
            "W2 queue",
            "search by email",
            f"/?q={q(m['search_email'])}",
            agent,
            floor.queue_search(m, self.team_ids, m["search_email"], None),
            50,
            sampler,
        )
        self.note_load("after W2")
        self.page(
            "W3 conversation",
            "50 messages on 3 channels, customer with 20 past",
            f"/conversations/{m['heavy_conversation_id']}/",
            agent,
            floor.conversation_page(m),
            50,
            sampler,
        )
        self.page(
            "W4 customer API",
            "GET /api/v1/customers/{id}/ (20 conversations)",
            f"/api/v1/customers/{m['heavy_customer_id']}/",
            lambda: api_session(m["tokens"]["agent000"]),
            floor.customer_api(m, self.team_ids),
            50,
            sampler,
        )
        self.note_load("after W3-W4")
        self.w6_recompute(sampler)
        self.note_load("after W6 recompute")
        period = f"from={d90_from}&to={d90_to}"
        team = m["team01_id"]
        scorecards = [
            (
                "API: 90 days by agent, one team",
                f"/api/v1/scorecards/?{period}&group_by=agent&scope=team:{team}",
                lambda: api_session(m["tokens"]["manager01"]),
                floor.scorecard(d90_from, d90_to, team),
                100,
            ),
            (
                "API: 90 days by agent, whole desk",
                f"/api/v1/scorecards/?{period}&group_by=agent",
                lambda: api_session(m["tokens"]["admin"]),
                floor.scorecard(d90_from, d90_to, None),
                100,
            ),
            (
                "dashboard page: 90 days, one team",
                f"/dashboard/?scope=team:{team}&period=custom&{period}",
                manager,
                floor.dashboard(d90_from, d90_to, team),
                150,
            ),
            (
                "dashboard page: 90 days, whole desk",
                f"/dashboard/?period=custom&{period}",
                admin,
                floor.scorecard(d90_from, d90_to, None),
                150,
            ),
        ]
        for what, url, session_factory, statements, budget_ms in scorecards:
            # First right after the facts changed (every cache misses), then as usually read.
            for cold in (True, False):
                self.page(
                    "W5 scorecard",
                    what,
                    url,
                    session_factory,
                    statements,
                    budget_ms,
                    sampler,
                    cold=cold,
                )
        self.note_load("after W5")
        self.w6_survey(sampler)
        if self.args.async_users:
            # Last: the worker's reactions to its messages (events, dirty days) outlast the
            # drain the row waits for, and would run beside the page workloads.
            self.w1_async(sampler, self.args.async_users)
        self.note_load("end")

    # --- report ------------------------------------------------------------------------------------

    def _row_line(self, r: Row) -> str:
        s, f = r.stats, r.floor
        ratio = s.p95 / f.p95 if s and f and f.p95 else float("nan")
        cells = [
            r.workload,
            r.what,
            _fmt(s.p50) if s else "-",
            _fmt(s.p95) if s else r.value,
            f"{_fmt(s.throughput)} {r.unit_throughput}" if s else "-",
            str(s.count) if s else "-",
            _fmt(r.rss_web, 0),
            _fmt(r.rss_celery, 0),
            f"{_fmt(f.p50, 2)} / {_fmt(f.p95, 2)}" if f else "-",
            _fmt(ratio) + "x" if f else "-",
            r.budget,
            r.verdict,
        ]
        return "| " + " | ".join(c.replace("|", "\\|") for c in cells) + " |"

    def report(self) -> str:
        a, m, f = self.args, self.manifest, self.facts
        lines = [
            f"### N = {m['conversations']:,} conversations ({a.db})",
            "",
            f"Run {datetime.now(UTC):%Y-%m-%d %H:%M} UTC. Data: {m['conversations']:,} conversations, "
            f"{m['messages']:,} messages, {m['customers']:,} customers over {m['days']} days "
            f"(bench_seed: {m.get('seconds', float('nan')):.0f} s).",
            "",
            f"Machine: {f['nproc']} cores ({f['cpu']}), {f['ram']} RAM, Linux {f['kernel']}, "
            f"Python {f['python']}, PostgreSQL {f['postgresql']}, Redis {f['redis']}. "
            f"gunicorn -w {a.web_workers} (sync), Celery worker --concurrency={a.worker_concurrency} "
            "+ beat, DEBUG=0, Redis cache.",
            "",
            "Load average (1/5/15 min) during the run: "
            + "; ".join(
                f"{label} {l1:.1f}/{l5:.1f}/{l15:.1f}" for label, (l1, l5, l15) in self.loads
            )
            + ".",
            "",
            f"Client: {a.users} closed-loop users per page for {a.seconds:.0f} s; W1 "
            f"{', '.join(str(n) for n in a.inbound_users)} senders for {a.inbound_seconds:.0f} s "
            "each. The floor runs the page's "
            "hand-written SQL in one psycopg connection as many times as the page was served (at most 40).",
            "",
            "| workload | what | p50 ms | p95 ms | throughput | n | peak web RSS MB | "
            "peak worker RSS MB | floor p50 / p95 ms | p95 ÷ floor p95 | budget | verdict |",
            "| --- | --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | --- | --- |",
        ]
        lines += [self._row_line(r) for r in self.rows]
        web_peak = max((r.rss_web for r in self.rows if not math.isnan(r.rss_web)), default=0)
        lines += [
            "",
            f"W1: {self.w1['sent']} messages acknowledged (201), {self.w1['stored']} of them stored "
            f"({self.w1['distinct']} distinct), {self.w1['errors']} failed requests (a request "
            "that timed out on the client may still have been stored). "
            f"Peak RSS of one web worker over the run: {web_peak:.0f} MB (budget 250 MB: "
            f"{'PASS' if web_peak < 250 else f'misses by {web_peak - 250:.0f} MB'}).",
        ]
        lines += [f"\n{n}" for n in self.notes]
        return "\n".join(lines) + "\n"

    def peer_report(self) -> str:
        """django-helpdesk's harness on the same machine, right after our run; the pairs."""
        n = self.manifest["conversations"]
        self.note_load("before the peer")
        workdir = peer.prepare(self.args.peer_dir or peer.DEFAULT_PEER_DIR)
        peer.seed(workdir, n)
        started = os.getloadavg()
        results = peer.run(workdir)
        ended = os.getloadavg()
        lines = [
            "",
            f"### Side by side with django-helpdesk 2.6.1, N = {n:,}",
            "",
            "The peer's own harness (`../shared/peers/helpdesk/`, its `bench_http.py` and "
            "adapter) on the same machine right after this run, our stack stopped: its gunicorn "
            f"with 2 workers on its dataset of {n:,} tickets (`gen_data`), one run of each "
            "workload. Load average (1/5/15 min) at its start "
            f"{started[0]:.1f}/{started[1]:.1f}/{started[2]:.1f}, at its end "
            f"{ended[0]:.1f}/{ended[1]:.1f}/{ended[2]:.1f}. How each pair is matched: "
            "`bench/peer.py`.",
            "",
            *peer.side_by_side(ours_by_key(self.rows, self.w1_by_senders), results),
            "",
        ]
        return "\n".join(lines)

    def main(self) -> int:
        self.prepare()
        self.stack = Stack(
            self.env,
            self.port,
            self.workdir,
            web_workers=self.args.web_workers,
            worker_concurrency=self.args.worker_concurrency,
        )
        print(f"== stack on {self.stack.base_url} (logs in {self.workdir})", flush=True)
        try:
            self.stack.start()
            self.run_workloads()
        finally:
            self.stack.stop()
        text = self.report()
        if self.args.peer:
            text += self.peer_report()
        out = (
            Path(self.args.out)
            if self.args.out
            else ROOT / "docs" / "benchmarks" / f"{self.args.db}.md"
        )
        out.parent.mkdir(parents=True, exist_ok=True)
        out.write_text(text)
        print(text)
        print(f"== written to {out}")
        return 0


def async_verdict(
    *,
    accepted_rate: float,
    stored_rate: float,
    sent: int,
    stored: int,
    distinct: int,
    errors: int,
    pending: bool,
) -> str:
    """W1 async against issue 21: 200 accepted a second, the backlog stored at 100 a second."""
    problems = []
    if accepted_rate < 200:
        problems.append(f"accepts miss by {200 - accepted_rate:.0f}/s ({accepted_rate:.0f}/s)")
    if stored_rate < 100:
        problems.append(f"storing misses by {100 - stored_rate:.0f}/s ({stored_rate:.0f}/s)")
    if pending:
        problems.append("the worker had not stored every accepted message by the timeout")
    elif stored != sent or distinct != stored:
        problems.append(f"LOST {sent - stored}: {stored} stored ({distinct} distinct) of {sent}")
    if errors:
        problems.append(f"{errors} failed requests")
    return "PASS" if not problems else "; ".join(problems)


def _measure(row: Row) -> peer.Measure | None:
    if row.stats is None or not row.stats.count:
        return None
    return peer.Measure(p50=row.stats.p50, p95=row.stats.p95, rate=row.stats.throughput)


def ours_by_key(rows: list[Row], w1_by_senders: dict[int, Row]) -> dict[str, peer.Measure]:
    """Our rows under the keys of ``bench.peer.PAIRS``."""
    # (workload, the start of "what", or all of it when the row has a cold twin)
    wanted = {
        "W2": ("W2 queue", "first queue page", False),
        "W3": ("W3 conversation", "", False),
        "W4": ("W4 customer API", "", False),
        "W5 desk": ("W5 scorecard", "dashboard page: 90 days, whole desk", True),
        "W5 desk cold": ("W5 scorecard", "dashboard page: 90 days, whole desk: cache cold", False),
        "W5 team": ("W5 scorecard", "dashboard page: 90 days, one team", True),
    }
    found: dict[str, peer.Measure] = {}
    for key, (workload, what, exact) in wanted.items():
        for row in rows:
            matches = row.what == what if exact else row.what.startswith(what)
            if row.workload == workload and matches:
                measure = _measure(row)
                if measure is not None:
                    found[key] = measure
                break
    for senders in (1, 4):
        if senders in w1_by_senders and (measure := _measure(w1_by_senders[senders])):
            found[f"W1 c{senders}"] = measure
    return found


def _senders(text: str) -> list[int]:
    try:
        values = [int(part) for part in text.split(",") if part.strip()]
    except ValueError as exc:
        raise argparse.ArgumentTypeError("numbers separated by commas, e.g. 1,4,8") from exc
    if not values or min(values) < 1:
        raise argparse.ArgumentTypeError("at least one sender")
    return values


def parse(argv: list[str]) -> argparse.Namespace:
    p = argparse.ArgumentParser(prog="bench/run", description=__doc__)
    p.add_argument("--conversations", type=int, default=100_000)
    p.add_argument("--db", default=None, help="database to (re)create; default bench_run_<N>")
    p.add_argument("--seed", type=int, default=7)
    p.add_argument("--reuse", action="store_true", help="keep the seeded database (no drop/seed)")
    p.add_argument(
        "--broker", default=os.environ.get("BENCH_BROKER_URL", "redis://127.0.0.1:6379/2")
    )
    p.add_argument("--queue", default=os.environ.get("BENCH_QUEUE", "q_bench"))
    p.add_argument("--users", type=int, default=2, help="closed-loop users per page")
    p.add_argument("--seconds", type=float, default=20.0, help="seconds per page workload")
    p.add_argument(
        "--inbound-users",
        type=_senders,
        default=[8],
        help="concurrent senders for W1, comma-separated for several runs (1,4,8)",
    )
    p.add_argument("--inbound-seconds", type=float, default=30.0)
    p.add_argument(
        "--async-users",
        type=int,
        default=8,
        help="senders for W1 on asynchronous channels (accept, then the worker stores); 0: skip",
    )
    p.add_argument("--web-workers", type=int, default=2)
    p.add_argument("--worker-concurrency", type=int, default=2)
    p.add_argument("--recompute-timeout", type=float, default=900.0)
    p.add_argument(
        "--no-facts", action="store_true", help="bench_seed --no-facts (W6 computes them)"
    )
    p.add_argument("--out", default=None, help="results file (default docs/benchmarks/<db>.md)")
    p.add_argument(
        "--peer",
        action="store_true",
        help="then run django-helpdesk's harness on the same machine and compare (bench/peer.py)",
    )
    p.add_argument(
        "--peer-dir", type=Path, default=None, help="the harness (../shared/peers/helpdesk)"
    )
    args = p.parse_args(argv)
    if args.db is None:
        n = args.conversations
        args.db = (
            f"bench_run_{n // 1_000_000}m" if n % 1_000_000 == 0 else f"bench_run_{n // 1000}k"
        )
    return args


if __name__ == "__main__":
    sys.exit(Bench(parse(sys.argv[1:])).main())
