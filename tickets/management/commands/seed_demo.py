"""``manage.py seed_demo``: fill a realistic demo desk by replaying history through the services.

The script is data (``tickets.demo.scenarios``); ``tickets.demo.replay`` plans every conversation
and replays it in one global time order through the same services the API uses.
"""

from __future__ import annotations

from typing import Any

from django.core.management.base import BaseCommand, CommandParser

from tickets.demo.replay import DemoReplay


class Command(BaseCommand):
    help = (
        "Fill a realistic demo desk (staff, channels, customers, conversations) via the services."
    )

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("--customers", type=int, default=200)
        parser.add_argument("--conversations", type=int, default=1000)
        parser.add_argument("--days", type=int, default=90, help="spread history over these days")
        parser.add_argument("--seed", type=int, default=42, help="same seed, same desk")
        parser.add_argument("--force", action="store_true", help="seed even if demo data exists")

    def handle(self, *args: Any, **options: Any) -> None:
        DemoReplay(stdout=self.stdout, style=self.style).run(**options)
