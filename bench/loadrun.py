"""``bench/load``: the bounded load run (docs/security/load.md), and the code its CI test reuses.

``agents`` simulated agents log in and loop: open their queue, open a conversation, reply (by
email when the customer has an address, else an internal note) and solve it, with a think time
between steps. Meanwhile an open-loop stream posts ``rate`` inbound messages a second (email and
chat alternately). At the end: every HTTP answer was an expected one, every acknowledged inbound
message is stored exactly once, and every email reply was delivered (written to the mail sink)
exactly once.
"""

from __future__ import annotations

import argparse
import json
import random
import re
import sys
import threading
import time
import uuid
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import psycopg
import requests

from bench.client import InboundSource, RequestFailed, Stats, csrf_post, login, paced, run_users

CONVERSATION_LINK = re.compile(r'href="/conversations/(\d+)/"')
SEEN_UP_TO = re.compile(r'name="seen_up_to" value="(\d+)"')
# The page offers "Solve" only while the conversation is not solved or closed.
SOLVE_FORM = re.compile(r'action="/conversations/\d+/solve/"')
EMAIL_OPTION = re.compile(
    r'<select id="reply-channel" name="channel">[^<]*(?:<option[^>]*>[^<]*</option>)*?<option value="email"'
)


@dataclass
class LoadResult:
    seconds: float = 0.0
    statuses: Counter[str] = field(default_factory=Counter)
    errors: list[str] = field(default_factory=list)
    steps: dict[str, Stats] = field(default_factory=dict)
    inbound: Stats = field(default_factory=lambda: Stats("inbound"))
    inbound_sent: int = 0
    inbound_stored: int = 0
    inbound_distinct: int = 0
    replies_email: list[str] = field(default_factory=list)
    replies_stored: int = 0
    replies_delivered: Counter[str] = field(default_factory=Counter)
    notes_added: int = 0
    held: int = 0
    solves: int = 0
    lock: threading.Lock = field(default_factory=threading.Lock, repr=False)

    @property
    def lost_inbound(self) -> int:
        return self.inbound_sent - self.inbound_stored

    @property
    def duplicated_inbound(self) -> int:
        return self.inbound_stored - self.inbound_distinct

    @property
    def undelivered(self) -> list[str]:
        return [m for m in self.replies_email if self.replies_delivered[m] == 0]

    @property
    def delivered_twice(self) -> list[str]:
        return [m for m in self.replies_email if self.replies_delivered[m] > 1]

    def problems(self) -> list[str]:
        out = []
        if self.errors:
            out.append(f"{len(self.errors)} HTTP errors, first: {self.errors[:3]}")
        if self.inbound.errors:
            out.append(
                f"{len(self.inbound.errors)} inbound errors, first: {self.inbound.errors[:3]}"
            )
        if self.lost_inbound or self.duplicated_inbound:
            out.append(
                f"inbound: {self.inbound_sent} acknowledged, {self.inbound_stored} stored, "
                f"{self.inbound_distinct} distinct"
            )
        if self.replies_stored != len(self.replies_email):
            out.append(f"replies: {len(self.replies_email)} accepted, {self.replies_stored} stored")
        if self.undelivered or self.delivered_twice:
            out.append(
                f"replies: {len(self.undelivered)} not delivered, "
                f"{len(self.delivered_twice)} delivered twice"
            )
        return out


class Agent:
    def __init__(
        self, index: int, email: str, password: str, base_url: str, result: LoadResult, tag: str
    ) -> None:
        self.index = index
        self.email = email
        self.password = password
        self.base_url = base_url
        self.result = result
        self.tag = tag
        self.rng = random.Random(index)
        self.session: requests.Session | None = None
        self.n = 0

    def _step(
        self, name: str, call: Callable[[], requests.Response], ok: tuple[int, ...]
    ) -> requests.Response | None:
        stats = self.result.steps[name]
        started = time.perf_counter()
        try:
            response = call()
        except requests.RequestException as exc:
            with self.result.lock:
                self.result.errors.append(f"{name}: {exc}")
            return None
        stats.add(time.perf_counter() - started)
        with self.result.lock:
            self.result.statuses[f"{name} {response.status_code}"] += 1
        if response.status_code not in ok:
            with self.result.lock:
                self.result.errors.append(f"{name} {response.url} -> {response.status_code}")
            return None
        return response

    def loop(self, keep_going: Callable[[], bool], think: float) -> None:
        try:
            self.session = login(self.base_url, self.email, self.password)
        except (requests.RequestException, RequestFailed) as exc:
            with self.result.lock:
                self.result.errors.append(f"login {self.email}: {exc}")
            return
        s = self.session
        while keep_going():
            queue = self._step("queue", lambda: s.get(self.base_url + "/", timeout=60), (200,))
            time.sleep(self.rng.uniform(0, think))
            if queue is None:
                continue
            ids = [int(i) for i in CONVERSATION_LINK.findall(queue.text)]
            # Agents of a team split its queue (id modulo 10), so two never race for one: a
            # colleague's solve would answer 409 "already solved" (a designed conflict, not a fault).
            mine = [i for i in ids if i % 10 == self.index % 10]
            if not mine or not keep_going():
                continue
            cid = self.rng.choice(mine)
            url = f"{self.base_url}/conversations/{cid}/"
            page = self._step("conversation", lambda url=url: s.get(url, timeout=60), (200,))
            time.sleep(self.rng.uniform(0, think))
            if page is None or not keep_going():
                continue
            seen = SEEN_UP_TO.search(page.text)
            self.n += 1
            marker = f"LOADREPLY-{self.tag}-{self.index}-{self.n}"
            by_email = EMAIL_OPTION.search(page.text) is not None
            data = {
                "body": f"Thanks for writing. Reference {marker}.",
                "seen_up_to": seen.group(1) if seen else "",
            }
            if by_email:
                data["channel"] = "email"
            else:
                data["internal"] = "on"
            reply = self._step(
                "reply",
                lambda url=url, data=data: csrf_post(
                    s, url + "reply/", url, data, allow_redirects=False
                ),
                (302, 409),
            )
            if reply is not None:
                with self.result.lock:
                    if reply.status_code == 409:
                        self.result.held += 1  # the customer wrote meanwhile: held, by design
                    elif by_email:
                        self.result.replies_email.append(marker)
                    else:
                        self.result.notes_added += 1
            time.sleep(self.rng.uniform(0, think))
            if reply is None or reply.status_code == 409 or not keep_going():
                continue
            if not SOLVE_FORM.search(page.text):
                # Opened from a panel on the queue page (a survey follow-up, a check-in...): an
                # agent does not solve what the page shows as already solved or closed.
                continue
            solved = self._step(
                "solve",
                lambda url=url: csrf_post(s, url + "solve/", url, {}, allow_redirects=False),
                (302,),
            )
            if solved is not None:
                with self.result.lock:
                    self.result.solves += 1
            time.sleep(self.rng.uniform(0, think))


def run_load(
    *,
    base_url: str,
    dsn: str,
    mail_dir: Path,
    email_secret: str,
    chat_secret: str,
    agent_emails: list[str],
    password: str,
    rate: float,
    seconds: float,
    think: float = 2.0,
    drain_timeout: float = 120.0,
) -> LoadResult:
    result = LoadResult()
    tag = uuid.uuid4().hex[:8]
    for name in ("queue", "conversation", "reply", "solve"):
        result.steps[name] = Stats(name)
    agents = [
        Agent(i, email, password, base_url, result, tag) for i, email in enumerate(agent_emails)
    ]
    source = InboundSource(base_url, email_secret, chat_secret, senders=200)

    def inbound() -> None:
        paced(
            result.inbound,
            rate,
            lambda s, n: source.one(s, n),
            seconds=seconds,
            senders=max(4, int(rate)),
        )

    stream = threading.Thread(target=inbound, daemon=True)
    started = time.monotonic()
    stream.start()
    run_users(len(agents), lambda i, keep: agents[i].loop(keep, think), seconds=seconds)
    stream.join()
    result.seconds = time.monotonic() - started
    result.inbound_sent = source.sent

    sql, params = source.stored_sql()
    with psycopg.connect(dsn, autocommit=True) as conn:
        result.inbound_stored, result.inbound_distinct = conn.execute(sql, params).fetchone()
        result.replies_stored = conn.execute(
            "SELECT count(*) FROM tickets_message WHERE direction = 'outbound'"
            " AND body_text LIKE %s",
            (f"%LOADREPLY-{tag}-%",),
        ).fetchone()[0]
        # Wait until the worker has handled every email reply (sent or failed), then count mail.
        deadline = time.monotonic() + drain_timeout
        while time.monotonic() < deadline:
            waiting = conn.execute(
                "SELECT count(*) FROM tickets_message WHERE direction = 'outbound'"
                " AND body_text LIKE %s AND delivery_state NOT IN ('sent', 'failed')",
                (f"%LOADREPLY-{tag}-%",),
            ).fetchone()[0]
            if not waiting:
                break
            time.sleep(1)
    wanted = set(result.replies_email)
    found: Counter[str] = Counter()
    for path in sorted(mail_dir.glob("*")):
        if path.is_file():
            # The file backend writes a connection's messages into one file, each followed by a
            # line of 79 dashes; a reply's marker is in its text and its HTML part: one message.
            for mail in path.read_text(errors="replace").split("-" * 79):
                for marker in set(re.findall(rf"LOADREPLY-{tag}-\d+-\d+", mail)):
                    if marker in wanted:
                        found[marker] += 1
    result.replies_delivered = found
    return result


def report(result: LoadResult, *, agents: int, rate: float, seconds: float, context: str) -> str:
    rows = [
        f"| {name} | {s.count} | {s.p50:.0f} | {s.p95:.0f} | {s.count / result.seconds:.1f} |"
        for name, s in [*result.steps.items(), ("inbound (email + chat)", result.inbound)]
    ]
    delivered_once = sum(1 for m in result.replies_email if result.replies_delivered[m] == 1)
    problems = result.problems()
    lines = [
        f"{context}",
        "",
        f"Load: {agents} simulated agents (log in, open the queue, open a conversation, reply, "
        f"solve; think time up to 2 s between steps) and {rate:g} inbound messages a second "
        f"(email and chat alternately, open loop) for {seconds:.0f} s; wall time "
        f"{result.seconds:.0f} s.",
        "",
        "| step | requests | p50 ms | p95 ms | per second |",
        "| --- | ---: | ---: | ---: | ---: |",
        *rows,
        "",
        f"- HTTP errors (any answer other than the expected 200/201/302, or a held 409 reply): "
        f"**{len(result.errors) + len(result.inbound.errors)}**",
        f"- Inbound: {result.inbound_sent} acknowledged (201), {result.inbound_stored} stored, "
        f"{result.inbound_distinct} distinct: **{result.lost_inbound} lost, "
        f"{result.duplicated_inbound} duplicated**",
        f"- Email replies: {len(result.replies_email)} accepted, {result.replies_stored} stored, "
        f"{delivered_once} delivered exactly once to the mail sink, "
        f"{len(result.undelivered)} not delivered, {len(result.delivered_twice)} twice",
        f"- Internal notes (customer without an email address): {result.notes_added}; replies "
        f"held because the customer wrote meanwhile (409, by design): {result.held}; "
        f"solves: {result.solves}",
        f"- Status counts: {', '.join(f'{k}: {v}' for k, v in sorted(result.statuses.items()))}",
        "",
        "Verdict: "
        + (
            "**PASS** (no errors, nothing lost, every reply delivered once)"
            if not problems
            else "**FAIL**: " + "; ".join(problems)
        ),
    ]
    return "\n".join(lines) + "\n"


def main(argv: list[str]) -> int:
    from bench.harness import PG_BASE, machine_facts
    from bench.stack import ROOT, RssSampler, Stack, free_port, manage, stack_env

    p = argparse.ArgumentParser(prog="bench/load", description=__doc__)
    p.add_argument("--db", default="bench_run_100k", help="a database bench/run seeded")
    p.add_argument("--agents", type=int, default=50)
    p.add_argument("--rate", type=float, default=20.0)
    p.add_argument("--seconds", type=float, default=300.0)
    p.add_argument("--broker", default="redis://127.0.0.1:6379/2")
    p.add_argument("--queue", default="q_bench")
    p.add_argument("--out", default=str(ROOT / "docs" / "security" / "load.md"))
    a = p.parse_args(argv)
    workdir = ROOT / "var" / "bench" / a.db
    manifest: dict[str, Any] = json.loads((workdir / "manifest.json").read_text())
    dsn = f"{PG_BASE}/{a.db}"
    port = free_port()
    env = stack_env(
        database_url=dsn,
        broker_url=a.broker,
        queue=a.queue,
        workdir=workdir / "load",
        port=port,
        # Every simulated agent logs in from 127.0.0.1: the per-address login limit (20/m) is
        # meant for one person's address, not for a whole team behind one. The per-username
        # limit and django-axes stay as in production.
        extra={"LOGIN_RATE_LIMIT_IP": "10000/m"},
    )
    manage(env, "collectstatic", "--noinput", quiet=True)
    stack = Stack(env, port, workdir / "load")
    sampler = RssSampler(stack)
    print(f"== stack on {stack.base_url}", flush=True)
    try:
        stack.start()
        with sampler:
            result = run_load(
                base_url=stack.base_url,
                dsn=dsn,
                mail_dir=stack.mail_dir,
                email_secret=manifest["channels"]["email"]["secret"],
                chat_secret=manifest["channels"]["chat"]["secret"],
                agent_emails=[f"agent{i:03d}@bench.example" for i in range(a.agents)],
                password="bench-pass",
                rate=a.rate,
                seconds=a.seconds,
            )
        load = " ".join(f"{x:.1f}" for x in __import__("os").getloadavg())
    finally:
        stack.stop()
    f = machine_facts(dsn, a.broker)
    context = (
        f"Run {time.strftime('%Y-%m-%d %H:%M', time.gmtime())} UTC with `bench/load --db {a.db}` "
        f"on a seeded database ({manifest['conversations']:,} conversations): "
        f"gunicorn -w 2, a Celery worker (--concurrency=2) and beat, DEBUG=0, on {f['nproc']} "
        f"cores ({f['cpu']}), PostgreSQL {f['postgresql']}, Redis {f['redis']}, loopback only. "
        f"Load average at the end: {load}. Peak RSS: web worker "
        f"{sampler.peak.get('web', 0):.0f} MB, Celery worker process "
        f"{sampler.peak.get('celery', 0):.0f} MB."
    )
    text = "# Bounded load run\n\n" + report(
        result, agents=a.agents, rate=a.rate, seconds=a.seconds, context=context
    )
    out = Path(a.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(text)
    print(text)
    return 0 if not result.problems() else 1


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
