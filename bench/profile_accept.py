"""``bench/profile_accept.py``: the asynchronous mode's two halves, in one process.

1. N chat messages POSTed to a chat channel in the asynchronous mode through Django's test client
   (every middleware, DRF, the accept's insert): CPU and wall milliseconds and queries a request;
2. the worker's drain of those N rows (``inbound_queue_process``): CPU and wall milliseconds and
   queries a row.

No HTTP server and no network: what is left is Django's and the service's own cost. Runs on the
database of ``DATABASE_URL`` (migrated); each run uses fresh visitors. ``--profile`` prints the
queries by table and the top of a cProfile of each half.

    DATABASE_URL=postgres://root@127.0.0.1:5432/bench_prof SECRET_KEY=... \\
        .venv/bin/python -m bench.profile_accept --messages 1000 [--profile]
"""

from __future__ import annotations

import argparse
import json
import os
import uuid

import django

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "supportdesk.settings")
django.setup()

from django.conf import settings  # noqa: E402
from django.test import Client  # noqa: E402

from bench.profile_ingest import measure  # noqa: E402
from tickets.models import InboundQueueItem  # noqa: E402
from tickets.services import channel_create_or_update  # noqa: E402
from tickets.services.inbound_queue import inbound_queue_process  # noqa: E402

WARM_UP = 100
VISITORS = 200


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--messages", type=int, default=1000)
    parser.add_argument("--profile", action="store_true", help="queries by table and cProfile")
    args = parser.parse_args()
    settings.ALLOWED_HOSTS = [*settings.ALLOWED_HOSTS, "testserver"]
    channel = channel_create_or_update(
        kind="chat", name="Profile async chat", team_name="Support", ingest_mode="async"
    )
    run = uuid.uuid4().hex[:8]
    client = Client(headers={"X-Channel-Token": channel.secret})
    bodies = [
        json.dumps(
            {
                "external_id": f"{run}-{n}",
                "session_id": f"{run}-v{n % VISITORS}-s{n // (VISITORS * 3)}",
                "visitor_id": f"{run}-v{n % VISITORS}",
                "body": f"Message {n} about order #{n * 7}",
            }
        )
        for n in range(WARM_UP + args.messages)
    ]

    def post(chunk: list[str]) -> None:
        for body in chunk:
            response = client.post(
                "/api/v1/inbound/chat/", data=body, content_type="application/json"
            )
            assert response.status_code == 202, response.content

    post(bodies[:WARM_UP])
    inbound_queue_process()
    measure("accept", args.messages, lambda: post(bodies[WARM_UP:]), args.profile)
    pending = InboundQueueItem.objects.filter(status=InboundQueueItem.Status.PENDING).count()
    measure("drain", pending, lambda: inbound_queue_process(budget_seconds=600), args.profile)


if __name__ == "__main__":
    main()
