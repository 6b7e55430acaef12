"""The peer beside us: django-helpdesk's harness (``../shared/peers/helpdesk/``) in the same run.

``bench/run --peer`` calls ``run_peer`` after our stack has stopped (one app at a time on the
machine's cores): the peer's folder is copied to ``var/bench/peer/`` (it writes its venv, data and
results beside itself), its ``setup.sh`` prepares its venv and database once, ``gen_data`` seeds
it with as many tickets as we have conversations (skipped when it already holds that many), and
its own HTTP runner ``bench_http.py`` measures it behind its gunicorn with 2 workers; its W1
tickets are deleted afterwards. ``side_by_side`` then pairs its workloads with ours.

The pairs (what one person does, app-neutral, as the peer's README defines the workloads):

- W1: a customer's message becomes a ticket: the peer's agent creating a ticket through its API
  against our inbound message (email and chat), at the same number of concurrent clients;
- W2: the agent's queue, first page: the peer's page shell plus the rows it loads (W2a + W2b)
  against our queue page filtered by channel;
- W3: one conversation with its messages: the peer's ticket with 12 follow-ups against our
  conversation of 50 messages on three channels with the customer's 20 past conversations;
- W4: one customer's history: the peer's keyword search page plus its rows (W4a + W4b, the only
  route its staff UI has) against our customer API;
- W5: reports: the peer's reports overview (W5a) against our whole-desk dashboard, read as usual
  and right after its facts changed; the peer's agent dashboard (W5d) against our team's.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import time
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

import requests

from bench.stack import ROOT, free_port

DEFAULT_PEER_DIR = ROOT.parent / "shared" / "peers" / "helpdesk"
WORKDIR = ROOT / "var" / "bench" / "peer"
AIM = 3.0  # issue 21: ahead of the peer by at least 3x on every workload


@dataclass(frozen=True)
class Pair:
    key: str  # our row, as the harness files it (see ``ours_by_key`` in bench/harness.py)
    peer: tuple[str, ...]  # the peer's workloads; several are one screen (their times add up)
    what: str
    kind: str  # "rate" (more is better) or "latency" (p95, less is better)


PAIRS = (
    Pair("W1 c1", ("W1_create_ticket_c1",), "a message becomes a ticket, 1 client", "rate"),
    Pair("W1 c4", ("W1_create_ticket_c4",), "a message becomes a ticket, 4 clients", "rate"),
    Pair(
        "W2",
        ("W2a_open_queue_page", "W2b_open_queue_rows25"),
        "agent's queue, first page",
        "latency",
    ),
    Pair("W3", ("W3_ticket_detail",), "one conversation with its messages", "latency"),
    Pair(
        "W4",
        ("W4a_customer_history_page", "W4b_customer_history_rows"),
        "one customer's history",
        "latency",
    ),
    Pair("W5 desk", ("W5a_reports_index",), "reports: the whole desk", "latency"),
    Pair(
        "W5 desk cold",
        ("W5a_reports_index",),
        "reports: the whole desk, first read after a change",
        "latency",
    ),
    Pair("W5 team", ("W5d_agent_dashboard",), "a team's / an agent's dashboard", "latency"),
)


@dataclass(frozen=True)
class Measure:
    """One side of a pair: p50 and p95 in ms (latency) or requests a second (rate)."""

    p50: float
    p95: float
    rate: float


def peer_measure(
    results: Mapping[str, Mapping[str, float]], names: tuple[str, ...]
) -> Measure | None:
    """The peer's figure for ``names``: one screen made of several requests waits for their sum."""
    if not all(name in results for name in names):
        return None
    found = [results[name] for name in names]
    return Measure(
        p50=sum(float(r["p50_ms"]) for r in found),
        p95=sum(float(r["p95_ms"]) for r in found),
        rate=float(found[0].get("req_per_s", 0.0)),
    )


def ratio(pair: Pair, ours: Measure, peer: Measure) -> float:
    """How many times ahead we are: our rate over theirs, or their p95 over ours."""
    if pair.kind == "rate":
        return ours.rate / peer.rate if peer.rate else float("nan")
    return peer.p95 / ours.p95 if ours.p95 else float("nan")


def verdict(value: float) -> str:
    if value != value:  # NaN
        return "-"
    if value >= AIM:
        return f"ahead {value:.1f}x (aim {AIM:.0f}x: PASS)"
    if value >= 1:
        return f"ahead {value:.1f}x (aim {AIM:.0f}x: misses)"
    return f"behind: {1 / value:.1f}x slower (aim {AIM:.0f}x: misses)"


def side_by_side(
    ours: Mapping[str, Measure], peer_results: Mapping[str, Mapping[str, float]]
) -> list[str]:
    """The comparison table (Markdown lines) for the pairs both sides measured."""
    lines = [
        "| workload | what | peer (django-helpdesk) | Supportdesk | peer ÷ ours (p95) or ours ÷ peer (rate) | verdict |",
        "| --- | --- | ---: | ---: | ---: | --- |",
    ]
    for pair in PAIRS:
        mine = ours.get(pair.key)
        theirs = peer_measure(peer_results, pair.peer)
        if mine is None or theirs is None:
            continue
        value = ratio(pair, mine, theirs)
        if pair.kind == "rate":
            shown = (f"{theirs.rate:.1f} req/s", f"{mine.rate:.1f} msg/s")
        else:
            shown = (
                f"p50 {theirs.p50:.0f} / p95 {theirs.p95:.0f} ms",
                f"p50 {mine.p50:.0f} / p95 {mine.p95:.0f} ms",
            )
        lines.append(
            f"| {pair.key} | {pair.what} ({' + '.join(pair.peer)}) | {shown[0]} | {shown[1]} "
            f"| {value:.1f}x | {verdict(value)} |"
        )
    return lines


# --- Running the peer ------------------------------------------------------------------------------


def _env(workdir: Path) -> dict[str, str]:
    env = dict(os.environ)
    env.update(
        {
            "BENCH_DB_NAME": env.get("BENCH_PEER_DB", "helpdesk_bench"),
            "BENCH_DB_USER": "helpdesk_bench",
            "BENCH_DB_PASSWORD": "helpdesk_bench",
            "BENCH_DB_HOST": "127.0.0.1",
            "BENCH_DB_PORT": "5432",
            "PGPASSWORD": "helpdesk_bench",
        }
    )
    env.pop("DJANGO_SETTINGS_MODULE", None)  # the peer's manage.py sets its own
    env.pop("DATABASE_URL", None)
    return env


def prepare(peer_dir: Path = DEFAULT_PEER_DIR, workdir: Path = WORKDIR) -> Path:
    """Copy the harness to ``workdir`` (its venv and data stay there) and run its setup."""
    if not (peer_dir / "bench_http.py").exists():
        raise SystemExit(f"--peer: no django-helpdesk harness in {peer_dir}")
    workdir.mkdir(parents=True, exist_ok=True)
    shutil.copytree(
        peer_dir,
        workdir,
        dirs_exist_ok=True,
        ignore=shutil.ignore_patterns(".venv", "data", "results", "__pycache__"),
    )
    print(f"== peer: setup.sh in {workdir}", flush=True)
    subprocess.run(["bash", "setup.sh"], cwd=workdir, env=_env(workdir), check=True)
    return workdir


def _manage(workdir: Path, *args: str, capture: bool = False) -> str:
    done = subprocess.run(
        [str(workdir / ".venv" / "bin" / "python"), "manage.py", *args],
        cwd=workdir / "benchsite",
        env=_env(workdir),
        check=True,
        capture_output=capture,
        text=True,
    )
    return done.stdout if capture else ""


def ticket_count(workdir: Path) -> int:
    out = _manage(
        workdir,
        "shell",
        "-c",
        "from helpdesk.models import Ticket; print(Ticket.objects.count())",
        capture=True,
    )
    return int(out.strip().splitlines()[-1])


def seed(workdir: Path, tickets: int) -> None:
    """The peer's dataset of ``tickets`` tickets, unless it already holds exactly that many."""
    have = ticket_count(workdir)
    if have == tickets:
        print(f"== peer: {tickets:,} tickets already there", flush=True)
        return
    print(f"== peer: gen_data --tickets {tickets} (it holds {have:,})", flush=True)
    _manage(workdir, "gen_data", "--tickets", str(tickets))


def run(
    workdir: Path, *, runs: int = 1, w1_requests: int = 300, samples: int = 20, budget: float = 10
) -> dict[str, dict[str, float]]:
    """The peer's W1-W5 over HTTP behind its own gunicorn (2 workers); its results by workload."""
    (workdir / "data").mkdir(exist_ok=True)
    _manage(workdir, "cleanup_w1")
    _manage(workdir, "bench_targets", "--out", "../data/targets.json")
    port = free_port()
    log = (workdir / "data" / "gunicorn.log").open("wb")
    server = subprocess.Popen(
        [
            str(workdir / ".venv" / "bin" / "gunicorn"),
            "benchsite.wsgi:application",
            "--workers",
            "2",
            "--bind",
            f"127.0.0.1:{port}",
            "--timeout",
            "600",
        ],
        cwd=workdir / "benchsite",
        env=_env(workdir),
        stdout=log,
        stderr=subprocess.STDOUT,
        start_new_session=True,
    )
    out = workdir / "results" / f"http_supportdesk_run_{int(time.time())}.json"
    out.parent.mkdir(exist_ok=True)
    try:
        for _ in range(100):
            try:
                if requests.get(f"http://127.0.0.1:{port}/helpdesk/login/", timeout=2).ok:
                    break
            except requests.RequestException:
                pass
            time.sleep(0.2)
        subprocess.run(
            [
                str(workdir / ".venv" / "bin" / "python"),
                "bench_http.py",
                "--adapter",
                "adapter_helpdesk",
                "--base",
                f"http://127.0.0.1:{port}",
                "--targets",
                "data/targets.json",
                "--runs",
                str(runs),
                "--samples",
                str(samples),
                "--budget",
                str(budget),
                "--w1-requests",
                str(w1_requests),
                "--out",
                str(out),
            ],
            cwd=workdir,
            env=_env(workdir),
            check=True,
        )
    finally:
        os.killpg(server.pid, signal.SIGTERM)
        server.wait(timeout=60)
        log.close()
        _manage(workdir, "cleanup_w1")
    return dict(json.loads(out.read_text())["results"])
