"""``manage.py mailbox_poll [NAME]``: poll one mailbox (by its channel's name), or all, once.

Prints one line per mailbox and, on the last line, ``imported N, skipped N, quarantined N``
(the totals). Exits non-zero when a poll failed; the failure is recorded on the mailbox too.
"""

from __future__ import annotations

from typing import Any

from django.core.management.base import BaseCommand, CommandError, CommandParser

from tickets.services import PollResult, mailbox_poll_by_name


class Command(BaseCommand):
    help = "Poll a mailbox (the channel NAME, or every active mailbox) once."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("name", nargs="?", help="the email channel's name (default: all)")

    def handle(self, *args: Any, **options: Any) -> None:
        name = options["name"]
        polled = mailbox_poll_by_name(name=name.strip() if name else None)
        if name and not polled:
            raise CommandError(f"No mailbox is connected to a channel named {name!r}.")
        total = PollResult()
        failed = []
        for mailbox, result in polled:
            if not mailbox.is_active:
                state = "paused: fetching is turned off for this mailbox"
            elif result.busy:
                state = "busy: another poll holds it"
            elif result.error:
                state = f"FAILED: {result.error}"
                failed.append(mailbox.channel.name)
            else:
                state = result.summary()
            self.stdout.write(f"{mailbox.channel.name}: {state}")
            total.imported += result.imported
            total.skipped += result.skipped
            total.quarantined += result.quarantined
        self.stdout.write(total.summary())
        if failed:
            raise CommandError(f"Polling failed for {', '.join(failed)}.")
