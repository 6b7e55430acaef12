"""``bench/profile_ingest.py``: the synchronous ingestion path of an email, in one process.

Stores N generated emails (the IMAP benchmark's mix: new and returning senders, replies, HTML,
some attachments) with ``inbound_email_raw`` in groups of 20 per transaction and outbox batch,
as the IMAP import does, after 200 to warm up, on the database of ``DATABASE_URL`` (migrated,
and fresh: the same messages stored twice are skipped). Prints messages per second, CPU and wall milliseconds per
message, and with ``--profile`` the queries per message by table and the top of a cProfile.

    DATABASE_URL=postgres://root@127.0.0.1:5432/bench_prof SECRET_KEY=... \\
        .venv/bin/python -m bench.profile_ingest --messages 1000 [--profile]
"""

from __future__ import annotations

import argparse
import contextlib
import cProfile
import io
import os
import pstats
import random
import re
import time
from collections import Counter
from collections.abc import Callable

import django

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "supportdesk.settings")
django.setup()

from django.db import connection, transaction  # noqa: E402 (needs settings)
from django.test.utils import CaptureQueriesContext  # noqa: E402

from bench.imap import make_message  # noqa: E402
from supportdesk.outbox import outbox_batch  # noqa: E402
from tickets.services import channel_create_or_update  # noqa: E402
from tickets.services.inbound_email import inbound_email_raw  # noqa: E402

WARM_UP = 200
GROUP = 20


def store(channel, messages: list[bytes]) -> None:  # type: ignore[no-untyped-def]
    for start in range(0, len(messages), GROUP):
        with transaction.atomic(), outbox_batch():
            for raw in messages[start : start + GROUP]:
                # Each ingestion has its own savepoint (``ingest``), as in the IMAP import.
                inbound_email_raw(channel=channel, raw=raw, source="imap")


def tally(queries: list[dict[str, str]], n: int) -> list[str]:
    kinds: Counter[str] = Counter()
    for query in queries:
        sql = query["sql"]
        verb = sql.split(" ", 1)[0]
        table = re.search(r'(?:FROM|INTO|UPDATE) "(\w+)"', sql)
        kinds[f"{verb} {table.group(1) if table else ''}".strip()] += 1
    return [f"{count / n:6.2f}  {kind}" for kind, count in kinds.most_common(25)]


def measure(name: str, n: int, work: Callable[[], None], profile: bool) -> None:
    profiler = cProfile.Profile() if profile else None
    capture = CaptureQueriesContext(connection)
    with capture if profile else contextlib.nullcontext():
        cpu, wall = time.process_time(), time.monotonic()
        if profiler:
            profiler.enable()
        work()
        if profiler:
            profiler.disable()
        cpu, wall = time.process_time() - cpu, time.monotonic() - wall
    print(
        f"{name}: {n} in {wall:.1f} s, {n / wall:.0f} a second; CPU {cpu * 1000 / n:.2f} ms and "
        f"wall {wall * 1000 / n:.2f} ms each; load {os.getloadavg()[0]:.1f}"
    )
    if profiler:
        print(f"{len(capture.captured_queries) / n:.2f} queries each:")
        print("\n".join(tally(capture.captured_queries, n)))
        out = io.StringIO()
        pstats.Stats(profiler, stream=out).sort_stats("cumulative").print_stats(
            int(os.environ.get("PROFILE_LINES", "35"))
        )
        print(out.getvalue())


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--messages", type=int, default=1000)
    parser.add_argument("--profile", action="store_true", help="queries by table and cProfile")
    args = parser.parse_args()
    channel = channel_create_or_update(
        kind="email", name="Profile", team_name="Support", address="support@desk.test"
    )
    rng = random.Random(17)
    messages = [make_message(i, rng) for i in range(WARM_UP + args.messages)]
    store(channel, messages[:WARM_UP])
    measure("messages", args.messages, lambda: store(channel, messages[WARM_UP:]), args.profile)


if __name__ == "__main__":
    main()
