"""``bench/imap``: IMAP import speed and memory (docs/benchmarks.md, "IMAP import").

Starts a throwaway Dovecot (the tests' recipe, tests/dovecot.py) on a loopback port, APPENDs N
realistic messages (plain and HTML, replies in threads, some attachments, returning senders),
connects it to a fresh database with ``create_channel --imap`` and times the first import:
``manage.py mailbox_poll`` in its own process, its RSS sampled every 0.1 s. Writes
``docs/benchmarks/imap_<N>.md``. Run as root (Dovecot's test recipe): ``bench/imap --messages 10000``.
"""

from __future__ import annotations

import argparse
import os
import platform
import random
import secrets
import subprocess
import sys
import tempfile
import time
from datetime import UTC, datetime
from email.message import EmailMessage
from email.utils import format_datetime
from pathlib import Path

import django

from bench.harness import recreate_database
from bench.stack import ROOT, manage, stack_env

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "supportdesk.settings")
os.environ.setdefault("SECRET_KEY", "bench-imap-" + secrets.token_urlsafe(40))
django.setup()

from tests.dovecot import PASSWORD, USER, dovecot_server  # noqa: E402 (needs settings)

WORDS = [
    "order",
    "parcel",
    "invoice",
    "refund",
    "delivery",
    "account",
    "password",
    "login",
    "tracking",
    "address",
    "payment",
    "subscription",
    "upgrade",
    "cancel",
    "broken",
    "screen",
    "charger",
    "warranty",
    "receipt",
    "discount",
    "coupon",
]


def make_message(i: int, rng: random.Random) -> bytes:
    sender = rng.randrange(max(1, i // 3 + 1))  # about one message in three from a returning sender
    message = EmailMessage()
    message["From"] = f"Customer {sender} <customer{sender}@bench.example>"
    message["To"] = USER
    message["Subject"] = f"{rng.choice(WORDS).title()} question #{i}"
    message["Message-ID"] = f"<bench-{i}@bench.example>"
    message["Date"] = format_datetime(datetime.now(UTC))
    if i > 10 and rng.random() < 0.3:  # a reply in an earlier thread
        earlier = rng.randrange(i)
        message["In-Reply-To"] = f"<bench-{earlier}@bench.example>"
        message["References"] = f"<bench-{earlier}@bench.example>"
    text = "\n\n".join(
        " ".join(rng.choice(WORDS) for _ in range(rng.randint(20, 60))).capitalize() + "."
        for _ in range(rng.randint(1, 4))
    )
    message.set_content(f"Hello,\n\n{text}\n\nThanks,\nCustomer {sender}\n")
    if rng.random() < 0.5:
        paragraphs = "".join(f"<p>{p}</p>" for p in text.split("\n\n"))
        message.add_alternative(
            f"<html><body><p>Hello,</p>{paragraphs}</body></html>", subtype="html"
        )
    if rng.random() < 0.05:
        message.add_attachment(
            rng.randbytes(20_000),
            maintype="application",
            subtype="pdf",
            filename=f"invoice-{i}.pdf",
        )
    return message.as_bytes()


def sample_rss(process: subprocess.Popen[bytes], interval: float = 0.1) -> float:
    """Wait for ``process``; the peak RSS (MB) seen while it ran."""
    import psutil

    peak = 0.0
    handle = psutil.Process(process.pid)
    while process.poll() is None:
        try:
            peak = max(peak, handle.memory_info().rss / 2**20)
        except psutil.Error:
            break
        time.sleep(interval)
    return peak


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--messages", type=int, default=10_000)
    parser.add_argument("--db", default="bench_imap")
    parser.add_argument("--batch", type=int, default=100, help="MAILBOX_BATCH_SIZE")
    parser.add_argument(
        "--out", default="", help="results file (default docs/benchmarks/imap_<N>.md)"
    )
    parser.add_argument(
        "--profile", default="", help="write a cProfile of the first import to this file"
    )
    args = parser.parse_args()
    rng = random.Random(17)
    workdir = Path(tempfile.mkdtemp(prefix="bench-imap-"))
    database_url = recreate_database(args.db)
    env = stack_env(
        database_url=database_url,
        broker_url="redis://127.0.0.1:6379/2",
        queue="q_bench_imap",
        workdir=workdir,
        port=1,
        extra={
            "SECRET_KEY": os.environ["SECRET_KEY"],
            "MAILBOX_BATCH_SIZE": str(args.batch),
            "LOG_LEVEL": "WARNING",
        },
    )
    print(f"migrating {args.db}", flush=True)
    manage(env, "migrate", "--noinput", quiet=True)
    with dovecot_server() as dovecot:
        print(f"appending {args.messages} messages to Dovecot on port {dovecot.port}", flush=True)
        started = time.monotonic()
        total_bytes = 0
        with dovecot.imap() as client:
            for i in range(args.messages):
                raw = make_message(i, rng)
                total_bytes += len(raw)
                client.append("INBOX", "", None, raw)
        append_seconds = time.monotonic() - started
        manage(
            env,
            "create_channel",
            "email",
            "Bench",
            "--team",
            "Support",
            "--address",
            USER,
            "--imap",
            f"imap://support%40desk.test:{PASSWORD}@127.0.0.1:{dovecot.port}/INBOX?security=none",
            "--imap-after",
            "seen",
            quiet=True,
        )
        print("first import: manage.py mailbox_poll Bench", flush=True)
        started = time.monotonic()
        poll = subprocess.Popen(
            [
                sys.executable,
                *(["-m", "cProfile", "-o", args.profile] if args.profile else []),
                str(ROOT / "manage.py"),
                "mailbox_poll",
                "Bench",
            ],
            cwd=ROOT,
            env=env,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
        )
        peak_mb = sample_rss(poll)
        seconds = time.monotonic() - started
        load = os.getloadavg()[0]
        output = (poll.stdout.read() if poll.stdout else b"").decode(errors="replace")
        if poll.returncode != 0:
            raise SystemExit(f"mailbox_poll failed:\n{output}")
        summary = output.strip().splitlines()[-1]
        second = manage(env, "mailbox_poll", "Bench", quiet=True).strip().splitlines()[-1]
    rate = args.messages / seconds
    lines = [
        f"# IMAP import, {args.messages} messages",
        "",
        f"Measured {datetime.now(UTC):%Y-%m-%d %H:%M} UTC on {platform.node()} "
        f"({os.cpu_count()} CPUs, Python {platform.python_version()}), PostgreSQL database "
        f"`{args.db}`, Dovecot on loopback (no TLS), batch size {args.batch}.",
        "",
        "| figure | value |",
        "| --- | --- |",
        f"| messages | {args.messages} ({total_bytes / 2**20:.1f} MB; APPEND took {append_seconds:.1f} s) |",
        f"| first import (wall clock, `mailbox_poll` process) | {seconds:.1f} s |",
        f"| messages per second | {rate:.0f} (target: at least 50) |",
        f"| peak RSS of the poll process | {peak_mb:.0f} MB |",
        f"| load average (1 min) at the end | {load:.1f} on {os.cpu_count()} CPUs |",
        f"| first poll says | `{summary}` |",
        f"| second poll says | `{second}` |",
        "",
    ]
    out = Path(args.out) if args.out else ROOT / "docs" / "benchmarks" / f"imap_{args.messages}.md"
    out.write_text("\n".join(lines))
    print("\n".join(lines))
    print(f"written to {out}")


if __name__ == "__main__":
    main()
