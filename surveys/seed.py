"""``seed_demo``'s survey history: realistic answers for the seeded solves, emailing nobody.

Registered with ``supportdesk.extensions.register_seeder("surveys", ...)``. Seeded solves lie in
the past, so every solve event gets its survey recorded directly as sent (and sometimes
answered) through ``survey_record_past``; the live handler then finds it and sends nothing.
Answers follow what happened: a conversation reopened after the solve is rarely "resolved", and
more contacts mean lower satisfaction.
"""

from __future__ import annotations

import random
from collections import defaultdict
from datetime import datetime, timedelta
from typing import Any

from django.db import transaction
from django.utils import timezone

from surveys.models import Survey
from surveys.services import Answer, survey_policy, survey_record_past
from tickets.models import Event

BATCH = 200

COMMENTS = {
    "yes": (
        "Quick and clear, thank you.",
        "Sorted on the first reply. Much appreciated!",
        "Friendly and knew exactly what to do.",
        "Thanks for explaining the steps so clearly.",
        "The refund arrived the next day, great.",
    ),
    "partly": (
        "The main issue is fixed but I am still waiting on the invoice.",
        "It works now, but I had to explain it twice.",
        "Helpful, although the answer took a while.",
    ),
    "no": (
        "Still not working, and I had to chase three times.",
        "I was told it was fixed but it is not.",
        "Nobody answered my last message.",
        "The problem came back the next day.",
    ),
}


def _answer(rng: random.Random, *, reopened: bool, contacts: int, asks_nps: bool) -> Answer:
    if reopened:
        resolved = rng.choices(["no", "partly", "yes"], weights=[60, 30, 10])[0]
    else:
        weights = [78, 14, 8] if contacts <= 1 else [60, 24, 16]
        resolved = rng.choices(["yes", "partly", "no"], weights=weights)[0]
    csat_weights = {
        "yes": [1, 1, 6, 30, 62],
        "partly": [6, 18, 40, 28, 8],
        "no": [45, 30, 15, 8, 2],
    }[resolved]
    csat = rng.choices([1, 2, 3, 4, 5], weights=csat_weights)[0] if rng.random() < 0.92 else None
    nps = None
    if asks_nps and rng.random() < 0.8:
        base = {"yes": 8, "partly": 6, "no": 3}[resolved]
        nps = max(0, min(10, base + rng.choice([-2, -1, 0, 0, 1, 1, 2])))
    declared: int | None = min(5, max(1, contacts + rng.choice([0, 0, 0, 0, 1, 1, 2])))
    if rng.random() < 0.12:
        declared = None
    comment = rng.choice(COMMENTS[resolved]) if rng.random() < 0.35 else ""
    return Answer(
        resolved=resolved,
        contacts_declared=declared,
        csat=csat,
        nps=nps,
        comment=comment,
        shout_out=resolved == "yes" and rng.random() < 0.18,
        needs_nothing_more=resolved == "partly" and rng.random() < 0.5,
    )


def seed_surveys(*, rng: random.Random, stdout: Any) -> None:
    """Records a survey for every seeded solve event that has none (or only a scheduled one)."""
    now = timezone.now()
    policy = survey_policy()
    solves = [
        (event, event.conversation)
        for event in Event.objects.filter(kind=Event.Kind.SOLVED, conversation__isnull=False)
        .exclude(survey__status__in=[Survey.Status.SENT, Survey.Status.SKIPPED])
        .select_related("conversation")
        .order_by("occurred_at", "id")
        if event.conversation is not None
    ]
    reopens: dict[int, list[datetime]] = defaultdict(list)
    for conversation_id, at in Event.objects.filter(kind=Event.Kind.REOPENED).values_list(
        "conversation_id", "occurred_at"
    ):
        reopens[conversation_id].append(at)
    last_sent: dict[int, datetime] = {
        customer_id: sent_at
        for customer_id, sent_at in Survey.objects.filter(sent_at__isnull=False)
        .order_by("customer_id", "sent_at")
        .values_list("customer_id", "sent_at")
        if sent_at is not None
    }
    counts = {"sent": 0, "answered": 0, "skipped": 0}
    for start in range(0, len(solves), BATCH):
        with transaction.atomic():
            for event, conversation in solves[start : start + BATCH]:
                customer_id = conversation.customer_id
                sent_at = min(event.occurred_at + policy.delay, now)
                previous = last_sent.get(customer_id)
                skip = ""
                if previous is not None and sent_at - previous < timedelta(
                    days=policy.min_days_between
                ):
                    skip = Survey.SkipReason.THROTTLED
                reopened = any(
                    event.occurred_at < at <= event.occurred_at + timedelta(days=7)
                    for at in reopens.get(conversation.pk, ())
                )
                answered_at = sent_at + timedelta(minutes=rng.randint(5, 60 * 48))
                answers = not skip and answered_at <= now and rng.random() < 0.42
                survey = survey_record_past(event=event, sent_at=sent_at, skip_reason=skip)
                if survey.status != Survey.Status.SENT:
                    counts["skipped"] += 1
                    continue
                counts["sent"] += 1
                last_sent[customer_id] = sent_at
                if answers:
                    answer = _answer(
                        rng,
                        reopened=reopened,
                        contacts=int(event.data.get("contacts_counted") or 1),
                        asks_nps=survey.asks_nps,
                    )
                    survey_record_past(
                        event=event, sent_at=sent_at, answer=answer, answered_at=answered_at
                    )
                    counts["answered"] += 1
    stdout.write(
        f"  surveys: {counts['sent']} sent, {counts['answered']} answered, "
        f"{counts['skipped']} skipped"
    )
