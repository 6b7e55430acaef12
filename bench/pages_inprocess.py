"""The queue and the heavy conversation page, in one process: median ms of N requests each.

    DATABASE_URL=... .venv/bin/python -m bench.pages_inprocess --manifest var/bench_manifest.json

Runs against a database seeded by ``manage.py bench_seed`` (its heavy conversation: 50 messages,
a customer with 20 past conversations), with Django's test client logged in as agent000 (Team 01),
``DEBUG`` off, the configured cache. No HTTP server, no network: what is left is the view, its
queries and the templates. The first request of each page is not counted (cold cache; it fills
the fragment caches); ``--cold`` clears the cache before every request instead. The CPU time of
this process (Python: Django, the ORM, templates) is printed beside the wall time, which also
holds PostgreSQL's time and whatever else the machine runs.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import time


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--manifest", default="var/bench_manifest.json")
    parser.add_argument("--requests", type=int, default=30)
    parser.add_argument("--cold", action="store_true", help="Clear the cache before each request.")
    args = parser.parse_args()
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "supportdesk.settings")
    import django

    django.setup()
    from django.conf import settings
    from django.core.cache import cache
    from django.db import connection
    from django.test import Client
    from django.test.utils import CaptureQueriesContext

    from bench.seed.vocabulary import AGENT_EMAIL
    from supportdesk.models import User

    settings.ALLOWED_HOSTS = [*settings.ALLOWED_HOSTS, "testserver"]
    # Static URLs without collectstatic's manifest (what they cost is not what is measured).
    settings.STORAGES = {
        **settings.STORAGES,
        "staticfiles": {"BACKEND": "django.contrib.staticfiles.storage.StaticFilesStorage"},
    }
    with open(args.manifest) as f:
        manifest = json.load(f)
    client = Client()
    client.force_login(User.objects.get(email=AGENT_EMAIL.format(0)))
    pages = {
        "queue": "/",
        "queue poll (htmx)": "/",
        "conversation": f"/conversations/{manifest['heavy_conversation_id']}/",
    }
    for name, url in pages.items():
        headers = {"HX-Request": "true"} if "htmx" in name else {}
        cache.clear()
        assert client.get(url, headers=headers).status_code == 200
        times, cpu = [], []
        for _ in range(args.requests):
            if args.cold:
                cache.clear()
            with CaptureQueriesContext(connection) as queries:
                start, start_cpu = time.perf_counter(), time.process_time()
                response = client.get(url, headers=headers)
                times.append((time.perf_counter() - start) * 1000)
                cpu.append((time.process_time() - start_cpu) * 1000)
            assert response.status_code == 200, response.status_code
        sql = sum(float(q["time"]) for q in queries.captured_queries) * 1000
        print(
            f"{name:18} median {statistics.median(times):6.1f} ms (CPU of this process "
            f"{statistics.median(cpu):5.1f} ms)  min {min(times):6.1f}  "
            f"({len(queries.captured_queries)} queries, "
            f"{sql:.1f} ms SQL in the last)"
        )


if __name__ == "__main__":
    main()
