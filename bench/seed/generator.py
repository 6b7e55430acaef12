"""``bench_seed``'s generator: a large, realistic desk written with PostgreSQL ``COPY``.

``seed_demo`` replays history through the services, which is right for a demo of a thousand
conversations but far too slow for a million. This module simulates the same history in memory
and writes the rows the services would have written, straight into the tables:

- each conversation is simulated step by step (customer messages, agent replies, notes, pending,
  solves, reopens, closes, surveys and their answers) in its own time order, and every step after
  "now" is dropped, so the recent conversations are naturally still open;
- contacts are opened by the rules of ``tickets.services.contacts.contact_reason`` (docs/metrics.md,
  "Counting contacts"), so ``conversation_recount_contacts`` finds the same counts;
- events carry the attribution and ``data`` the services record (``status_from``/``status_to``,
  ``contacts_counted``, ``new_contact``...), because the metrics and the recount read them;
- surveys follow ``survey_schedule``/``survey_send``/``survey_answer``: one per solve event,
  cancelled when the customer writes before the send, skipped when throttled, unsubscribed or
  without an email address, sent with a link that expires, answered at a realistic rate; an
  answer *no* reopens the conversation, *yes* closes it, a low score opens a follow-up;
- identities are normalised as ``tickets.identities`` does (lower-case email, E.164 phone,
  ``network:handle``).

Rows are streamed to one ``COPY`` per table, each on its own connection with foreign-key
triggers off (``session_replication_role = replica``): the generator gives consistent ids
itself. Secondary indexes of the big tables are dropped before the load and rebuilt after it.
Conversation ids follow the start time of the conversations, like a live desk.
"""

from __future__ import annotations

import random
from collections.abc import Callable
from typing import Any

from bench.seed.conversation import Conversation, cumulative
from bench.seed.tables import (
    CONSTANT_COLUMNS,
    TABLES,
    CustomerPlan,
    N,
    Result,
    Setup,
    Stamp,
    Tables,
    copy_text,
)
from bench.seed.vocabulary import (
    AGENT_BODIES,
    COMMENTS,
    CUSTOMER_BODIES,
    DAY,
    DOMAINS,
    FIRST_NAMES,
    HOUR,
    LAST_NAMES,
    MIXES,
    NETWORKS,
    NOTES,
    TEAMS,
    US_AREAS,
)


class Generator:
    """Plans customers and conversations, then simulates each conversation into rows."""

    def __init__(self, *, setup: Setup, conversations: int, seed: int, out: Tables) -> None:
        self.s = setup
        self.n = conversations
        self.rng = random.Random(seed)
        self.out = out
        self.buffers: dict[str, list[str]] = {table: [] for table in TABLES}
        self.stamp = Stamp()
        self.ids = dict.fromkeys(TABLES, 0)
        self.result = Result()
        self.first_ts = setup.now - setup.days * DAY
        # First day's midnight: conversations start from there.
        self.first_ts -= self.first_ts % DAY
        self.first_ts += DAY
        mixes, weights = zip(*MIXES, strict=True)
        self._mixes = mixes
        self._mix_cum = list(cumulative(weights))
        self._customer_bodies = {k: [copy_text(b) for b in v] for k, v in CUSTOMER_BODIES.items()}
        self._agent_bodies = {k: [copy_text(b) for b in v] for k, v in AGENT_BODIES.items()}
        self._notes = [copy_text(b) for b in NOTES]
        self._comments = [copy_text(b) for b in COMMENTS]

    # --- ids and rows ----------------------------------------------------------------------

    def _id(self, table: str) -> int:
        self.ids[table] += 1
        return self.ids[table]

    def _row(self, table: str, *values: Any) -> None:
        constants = tuple(value for _, value in CONSTANT_COLUMNS.get(table, ()))
        self.buffers[table].append("\t".join((*values, *constants)))

    def flush(self) -> None:
        """Hand the buffered rows to ``out``, one chunk of text per table."""
        for table, lines in self.buffers.items():
            if lines:
                lines.append("")
                self.out.write(table, "\n".join(lines))
                lines.clear()

    # --- planning ----------------------------------------------------------------------------

    def _mix(self) -> tuple[str, ...]:
        roll = self.rng.random() * self._mix_cum[-1]
        for mix, bound in zip(self._mixes, self._mix_cum, strict=True):
            if roll < bound:
                return mix
        return self._mixes[-1]

    def _start_time(self) -> int:
        rng = self.rng
        while True:
            day = rng.randrange(self.s.days)
            ts = self.first_ts + day * DAY
            weekday = (ts // DAY + 3) % 7  # 0 = Monday
            if weekday >= 5 and rng.random() < 0.55:
                continue
            sec = int(rng.triangular(5 * HOUR, 23 * HOUR, 13 * HOUR))
            ts += sec
            if ts < self.s.now - 60:
                return ts

    def plan(self) -> list[tuple[int, int, int]]:
        """(start time, customer index, flags) of every conversation, in time order."""
        rng = self.rng
        self.customers: list[CustomerPlan] = []
        # Customer 0: the heavy customer (Team 01, email+chat+phone): 20 past conversations and
        # the heavy one. Customer 1: the one searched by phone and email (Team 01).
        heavy = CustomerPlan(
            team=0,
            mix=("email", "chat", "phone"),
            first=3,
            last=7,
            domain=0,
            uk_phone=True,
            network=0,
        )
        searched = CustomerPlan(
            team=0, mix=("email", "phone"), first=11, last=23, domain=2, uk_phone=True, network=0
        )
        self.customers += [heavy, searched]
        plan: list[tuple[int, int, int]] = []
        reserved = 21 + 2
        for k in range(20):
            ts = self.first_ts + int((k + 0.5) * (self.s.days - 12) * DAY / 20) + 10 * HOUR
            plan.append((ts, 0, 0))
        plan.append((self.s.now - 6 * DAY + 9 * HOUR, 0, 1))  # flag 1: heavy
        plan.append((self.s.now - 30 * DAY + 14 * HOUR, 1, 0))
        plan.append((self.s.now - 40 * 60, 1, 2))  # flag 2: still open (the search finds it)
        remaining = max(self.n - reserved, 0)
        while remaining > 0:
            # Conversations per customer: mostly one or two, a long tail of regulars.
            k = 1
            while k < 40 and rng.random() < 0.52:
                k += 1
            k = min(k, remaining)
            remaining -= k
            index = len(self.customers)
            self.customers.append(
                CustomerPlan(
                    team=rng.randrange(TEAMS),
                    mix=self._mix(),
                    first=rng.randrange(len(FIRST_NAMES)),
                    last=rng.randrange(len(LAST_NAMES)),
                    domain=rng.randrange(len(DOMAINS)),
                    uk_phone=rng.random() < 0.2,
                    network=rng.randrange(len(NETWORKS)),
                )
            )
            for _ in range(k):
                plan.append((self._start_time(), index, 0))
        if self.n < reserved:
            plan = plan[-self.n :] if self.n else []
        plan.sort()
        return plan

    # --- customers -----------------------------------------------------------------------------

    def _customer(self, index: int, ts: int) -> CustomerPlan:
        c = self.customers[index]
        if c.id:
            return c
        c.id = self._id("tickets_customer")
        first, last = FIRST_NAMES[c.first], LAST_NAMES[c.last]
        c.email = f"{first}.{last}.{c.id}@{DOMAINS[c.domain]}".lower()
        if c.uk_phone:
            digits = f"{c.id % 10000:04d}"
            block = 7946 if c.id < 10000 else 7000 + c.id // 10000 % 1000
            c.phone = f"+4420{block:04d}{digits}"
            c.phone_display = f"+44 20 {block:04d} {digits}"
        else:
            area = US_AREAS[c.id % len(US_AREAS)]
            rest = c.id // len(US_AREAS)
            exchange = 200 + rest // 10000 % 800
            line = rest % 10000
            c.phone = f"+1{area}{exchange:03d}{line:04d}"
            c.phone_display = f"({area}) {exchange:03d}-{line:04d}"
        c.social = f"{NETWORKS[c.network]}:{first}_{last}{c.id}".lower()
        c.chat = f"visitor-{c.id:08x}"
        kinds = set(c.mix)
        if "chat" in kinds and "email" not in kinds and self.rng.random() < 0.5:
            kinds.add("email")  # many chat visitors give their email
        if kinds == {"social"}:
            c.name = f"{first}_{last}{c.id}".lower()
        elif kinds == {"phone"}:
            c.name = ""
        else:
            c.name = f"{first} {last}"
        st = self.stamp(ts)
        self._row("tickets_customer", str(c.id), st, st, c.name, N)
        for kind in ("email", "phone", "social", "chat"):
            if kind not in kinds:
                continue
            value = {"email": c.email, "phone": c.phone, "social": c.social, "chat": c.chat}[kind]
            display = {"phone": c.phone_display, "social": c.social}.get(kind, value)
            ident = self._id("tickets_identity")
            c.identity[kind] = ident
            verified = "f" if kind == "chat" else "t"
            self._row(
                "tickets_identity", str(ident), st, st, str(c.id), kind, value, display, verified, N
            )
        self.result.customers += 1
        return c

    # --- the run ---------------------------------------------------------------------------------

    def run(self, progress: Callable[[int], None] | None = None) -> Result:
        plan = self.plan()
        for done, (ts, index, flags) in enumerate(plan, 1):
            customer = self._customer(index, ts)
            sim = Conversation(self, customer, ts)
            if flags & 1:
                sim.heavy()
            elif flags & 2:
                sim.open_only()
            else:
                sim.simulate()
            sim.finish()
            if index == 0:
                self.result.heavy_customer_id = customer.id
            if index == 1:
                self.result.search_phone = customer.phone_display
                self.result.search_email = customer.email
            if done % 1000 == 0:
                self.flush()
                if progress is not None:
                    progress(1000)
        self.flush()
        if progress is not None:
            progress(len(plan) % 1000)
        self.result.conversations = self.ids["tickets_conversation"]
        self.result.messages = self.ids["tickets_message"]
        self.result.contacts = self.ids["tickets_contact"]
        self.result.events = self.ids["tickets_event"]
        self.result.surveys = self.ids["surveys_survey"]
        self.result.responses = self.ids["surveys_surveyresponse"]
        return self.result
