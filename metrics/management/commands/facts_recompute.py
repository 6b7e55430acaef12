"""``manage.py facts_recompute [--full]``: the nightly recompute now, in this process.

Without ``--full``: the days whose sources changed since the last nightly run (metrics/nightly.py).
With ``--full``: every day of the retention window, as one recompute job run here chunk by chunk.
Prints the days recomputed on its last line.
"""

from __future__ import annotations

import time
from typing import Any

from django.core.management.base import BaseCommand, CommandParser

from metrics.models import RecomputeJob
from metrics.nightly import facts_recompute_nightly
from metrics.services import facts_recompute_retention, recompute_job_run


class Command(BaseCommand):
    help = "Recompute scorecard facts: the changed days (default) or the whole window (--full)."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument(
            "--full",
            action="store_true",
            help="recompute every day of the retention window (METRICS_RETENTION_DAYS)",
        )

    def handle(self, *args: Any, **options: Any) -> None:
        if not options["full"]:
            days = facts_recompute_nightly()
            self.stdout.write(f"recomputed {len(days)} days")
            return
        job = facts_recompute_retention()
        # Chunk by chunk here; a worker that takes a chunk first (the job is queued as well)
        # computes it instead, each chunk once.
        while job.state in (RecomputeJob.State.QUEUED, RecomputeJob.State.RUNNING):
            if recompute_job_run(job_id=job.pk) is None:
                time.sleep(0.5)
            job.refresh_from_db()
        self.stdout.write(f"recomputed {job.days_done} days ({job.state})")
