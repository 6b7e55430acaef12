"""The demo desk's replay: plan each conversation of the script, then replay history through the services.

Nothing here writes conversations, messages or contacts directly. The command plans each
conversation (who writes, on which channel, what the agents answer, when it is solved or
reopened), then replays every planned step of every conversation in one global time order
through the same services the API uses, passing ``received_at=`` / ``sent_at=`` /
``started_at=`` / ``at=`` so that the history is spread over the last ``--days`` days. Contact
counting, threading, identity matching, reopen and close rules are therefore the real ones.

The agents' email replies of a replayed history "went out" back then: they are written with
``deliver=False``, so the worker does not mail hundreds of made-up customers when it starts.
"""

from __future__ import annotations

import contextlib
import random
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from email.message import EmailMessage
from email.policy import SMTP
from email.utils import format_datetime, formataddr
from functools import partial
from typing import Any

from django.db import transaction
from django.db.models import Count
from django.utils import timezone
from tqdm import tqdm

from supportdesk import extensions
from supportdesk.errors import ApplicationError
from supportdesk.models import User
from supportdesk.services import staff_create_or_update
from tickets.demo.scenarios import (
    AMOUNTS,
    BATCH_STEPS,
    BROWSERS,
    CHANNEL_ADDRESSES,
    CHANNEL_MIXES,
    CHECKING,
    DEMO_ADMIN,
    DEMO_PASSWORD,
    DEMO_STAFF,
    DEVICES,
    EMAIL_DOMAINS,
    FEATURES,
    FIRST_NAMES,
    FORCED_MIXES,
    GENERIC_EXCHANGES,
    GREETINGS,
    LAST_NAMES,
    ORGANISATIONS,
    PHONE_PREFIXES,
    PLANS,
    SCENARIOS,
    SCREEN_POP_PHONE,
    SIGNOFFS,
    SOCIAL_NETWORKS,
    TEAMS,
    THANKS,
)
from tickets.models import (
    Channel,
    ChannelKind,
    Contact,
    Conversation,
    Customer,
    Message,
    Organisation,
    QuarantinedMessage,
    Tag,
)
from tickets.services import (
    HandleTaken,
    channel_create_or_update,
    conversation_assign,
    conversation_reopen,
    conversation_reply,
    conversation_solve,
    conversation_triage,
    conversations_close_solved,
    customer_merge,
    identity_link,
    inbound_chat,
    inbound_email_raw,
    inbound_phone,
    inbound_social,
    organisation_create_or_update,
    saved_replies_seed_defaults,
    saved_reply_create_or_update,
    tag_create,
)

# --- The plan --------------------------------------------------------------------------------------


@dataclass
class Persona:
    """A demo customer: their handles and the channels they use."""

    name: str
    email: str
    phone: str
    network: str
    handle: str
    visitor: str
    channels: tuple[str, ...]
    chat_gives_email: bool
    customer_id: int | None = None
    social_customer_id: int | None = None  # for the "two customers, then merged" mix
    linked: set[str] = field(default_factory=set)

    @property
    def first(self) -> str:
        return self.name.split()[0]


@dataclass
class Thread:
    """One planned conversation and what the replay learns about it while it runs."""

    rng: random.Random
    number: int
    persona: Persona
    scenario: dict[str, Any]
    kind: str
    values: dict[str, str]
    subject: str
    agent_index: int
    conversation_ids: list[int] = field(default_factory=list)
    last_reply_id: str = ""  # our last email reply's Message-ID, for the customer's In-Reply-To
    references: list[str] = field(default_factory=list)
    session: int = 0
    seq: int = 0

    @property
    def conversation_id(self) -> int | None:
        return self.conversation_ids[-1] if self.conversation_ids else None


Step = tuple[datetime, int, int, Callable[[], None]]


class DemoReplay:
    """Plans the demo desk's conversations and replays them through the services.

    ``run(**options)`` takes the command's options (customers, conversations, days, seed, force,
    verbosity) and writes progress and the summary to ``stdout``.
    """

    def __init__(self, *, stdout: Any, style: Any) -> None:
        self.stdout = stdout
        self.style = style

    def run(self, **options: Any) -> None:
        started = time.monotonic()
        if (
            not options["force"]
            and User.objects.filter(email=DEMO_ADMIN).exists()
            and Customer.objects.exists()
        ):
            self.stdout.write(
                f"Demo data already present ({DEMO_ADMIN} and {Customer.objects.count()} customers); "
                "nothing to do. Use --force to add another round."
            )
            return
        customers = max(1, options["customers"])
        conversations = max(1, options["conversations"])
        days = max(1, options["days"])
        self.seed = options["seed"]
        self.rng = random.Random(self.seed)
        # A rerun with --force must not collide with the external ids of the first round.
        self.salt = f"{options['seed']}-{Message.objects.count()}"
        self.now = timezone.now()
        self._current_at = self.now

        self._create_staff_and_channels()
        saved_replies_seed_defaults()  # the macros of the composer, if someone deleted them
        # A macro that does more than reply: the refund answer that tags and solves in one click.
        saved_reply_create_or_update(
            title="Refund released (tag and solve)",
            body=(
                "Hi {customer_first_name}, I've released your refund: it reaches your card within "
                "3 to 5 business days. Is there anything else I can do?\n\n{agent_first_name}"
            ),
            add_tags=[tag] if (tag := self._tag("refund")) is not None else [],
            set_status="solved",
            set_assignee="me",
        )
        personas = self._personas(customers)
        steps = self._plan(personas, conversations, days)
        skipped = self._replay(steps, show_progress=options["verbosity"] > 0)
        self._screen_pop_and_organisations(personas)
        # Higher apps (survey answers, QA reviews, ideas...) add theirs through their own services.
        for name, seed in extensions.seeders():
            self.stdout.write(f"Seeding {name}...")
            seed(rng=random.Random(f"{self.seed}-{name}"), stdout=self.stdout)
        self._summary(time.monotonic() - started, skipped)

    # --- staff and channels ------------------------------------------------------------------

    def _create_staff_and_channels(self) -> None:
        with transaction.atomic():
            self.staff: dict[str, User] = {}
            for email, role, teams, name in DEMO_STAFF:
                user, _ = staff_create_or_update(
                    email=email, role=role, team_names=teams, password=DEMO_PASSWORD, full_name=name
                )
                self.staff[email] = user
            self.manager = self.staff["manager@demo.example"]
            self.agents: dict[str, list[User]] = {team: [] for team in TEAMS}
            for email, role, teams, _name in DEMO_STAFF:
                for team in teams if role == "agent" else ():
                    self.agents[team].append(self.staff[email])
            self.channels: dict[tuple[str, str], Channel] = {}
            for team in TEAMS:
                for kind in ChannelKind.values:
                    self.channels[team, kind] = channel_create_or_update(
                        kind=kind,
                        name=f"{team} {kind}",
                        team_name=team,
                        address=CHANNEL_ADDRESSES[team] if kind == ChannelKind.EMAIL else None,
                    )

    # --- customers ------------------------------------------------------------------------------

    def _personas(self, count: int) -> list[Persona]:
        rng = self.rng
        names = [f"{first} {last}" for first in FIRST_NAMES for last in LAST_NAMES]
        rng.shuffle(names)
        mixes, weights = zip(*CHANNEL_MIXES, strict=True)
        personas = []
        for index in range(count):
            name = names[index % len(names)]
            first, last = name.split()[0], name.split()[-1]
            local = rng.choice(
                (f"{first}.{last}", f"{first}{last}", f"{first[0]}{last}", f"{first}.{last[0]}")
            )
            local = "".join(
                ch for ch in local.lower() if ch.isascii() and (ch.isalnum() or ch == ".")
            )
            if index >= len(names) or rng.random() < 0.3:
                local += str(rng.randint(2, 99))
            mix = (
                FORCED_MIXES[index] if index < len(FORCED_MIXES) else rng.choices(mixes, weights)[0]
            )
            handle = rng.choice(
                (f"{first}{last}", f"{first}_{last[0]}", f"{first}.{last}{rng.randint(1, 99)}")
            )
            personas.append(
                Persona(
                    name=name,
                    email=f"{local}@{rng.choice(EMAIL_DOMAINS)}",
                    phone=self._phone(index),
                    network=rng.choice(SOCIAL_NETWORKS),
                    handle="".join(
                        ch for ch in handle.lower() if ch.isascii() and (ch.isalnum() or ch in "._")
                    ),
                    visitor=f"v-{rng.getrandbits(48):012x}",
                    channels=mix,
                    chat_gives_email="email" in mix or rng.random() < 0.5,
                )
            )
        return personas

    @staticmethod
    def _phone(index: int) -> str:
        """Fictional numbers by index; the first customer has ``SCREEN_POP_PHONE`` (and the
        customer who would have had it gets the first one's)."""
        screen_pop_index = 142  # +1 415 555 0142 in the numbering below

        def numbered(i: int) -> str:
            return f"{PHONE_PREFIXES[i // 100 % len(PHONE_PREFIXES)]}{i % 100:02d}"

        if index == 0:
            return SCREEN_POP_PHONE
        if index == screen_pop_index:
            return numbered(0)
        return numbered(index)

    def _screen_pop_and_organisations(self, personas: list[Persona]) -> None:
        """The first customer answers the README's screen pop by phone whatever the seed size,
        and the demo's companies link their people by email domain."""
        with transaction.atomic():
            first = personas[0] if personas else None
            if first is not None and first.customer_id is not None:
                customer = Customer.objects.get(pk=first.customer_id)
                # Already someone's (a rerun with --force): the lookup finds them anyway.
                with contextlib.suppress(HandleTaken):
                    identity_link(
                        customer=customer, kind="phone", value=first.phone, actor=self.manager
                    )
            for name, domain in ORGANISATIONS:
                existing = Organisation.objects.filter(name=name).first()
                organisation_create_or_update(
                    name=name, domain=domain, organisation=existing, actor=self.manager
                )

    # --- planning -------------------------------------------------------------------------------

    def _plan(self, personas: list[Persona], total: int, days: int) -> list[Step]:
        rng = self.rng
        # Everyone writes at least once; people on several channels use each of them; the rest
        # goes to a minority of frequent customers, as on a real desk.
        per_persona = [0] * len(personas)
        for i in range(min(total, len(personas))):
            per_persona[i] = 1
        left = total - sum(per_persona)
        for i, persona in enumerate(personas):
            extra = min(left, max(0, len(persona.channels) - per_persona[i]))
            if per_persona[i]:
                per_persona[i] += extra
                left -= extra
        activity = [rng.paretovariate(1.5) for _ in personas]
        while left > 0:
            i = rng.choices(range(len(personas)), activity)[0]
            if per_persona[i]:
                per_persona[i] += 1
                left -= 1

        # Days count back from the start of today (desk time), not from this second, so that the
        # same seed gives the same desk all day long.
        today = timezone.localtime(self.now).replace(hour=0, minute=0, second=0, microsecond=0)
        steps: list[Step] = []
        number = 0
        for persona, count in zip(personas, per_persona, strict=True):
            if not count:
                continue
            starts = sorted(self._start_time(today, days) for _ in range(count))
            for position, start in enumerate(starts):
                if position == 0:
                    kind = persona.channels[0]
                elif position < len(persona.channels):
                    kind = persona.channels[position]
                else:
                    kind = rng.choice(persona.channels)
                if kind == "phone" and position == 0:  # unreachable by the mixes; keep it so
                    kind = "email"
                number += 1
                steps.extend(self._plan_thread(number, persona, kind, start))
        # Every evening, close what was solved more than the survey window ago, as beat does.
        day = today - timedelta(days=days - 1) + timedelta(hours=23, minutes=59)
        while day < self.now:
            steps.append((day, 0, 0, self._close_solved))
            day += timedelta(days=1)
        return steps

    def _start_time(self, today: datetime, days: int) -> datetime:
        rng = self.rng
        # Most people write in the daytime.
        at = (
            today
            - timedelta(days=rng.randrange(days))
            + timedelta(
                hours=int(rng.triangular(6, 23, 13)),
                minutes=rng.randint(0, 59),
                seconds=rng.randint(0, 59),
            )
        )
        return min(at, self.now - timedelta(minutes=rng.randint(3, 90)))

    def _values(self, persona: Persona, start: datetime, rng: random.Random) -> dict[str, str]:
        order = rng.randint(10000, 99999)
        when = start - timedelta(days=rng.randint(2, 12))
        return {
            "first": persona.first,
            "order": f"#{order}",
            "order_digits": str(order),
            "amount": rng.choice(AMOUNTS),
            "plan": rng.choice(PLANS),
            "last4": f"{rng.randint(0, 9999):04d}",
            "device": rng.choice(DEVICES),
            "feature": rng.choice(FEATURES),
            "browser": rng.choice(BROWSERS),
            "invoice": f"INV-{start:%Y}-{rng.randint(1000, 9999)}",
            "when": f"{when:%B} {when.day}",
        }

    def _plan_thread(self, number: int, persona: Persona, kind: str, start: datetime) -> list[Step]:
        """The steps of one conversation, in time order; cut off at the present."""
        # Each conversation draws from its own generator: what happens to one (cut short because
        # it is recent, say) does not change the others.
        rng = random.Random(self.seed * 1_000_003 + number)
        scenario = rng.choice(SCENARIOS)
        values = self._values(persona, start, rng)
        thread = Thread(
            rng=rng,
            number=number,
            persona=persona,
            scenario=scenario,
            kind=kind,
            values=values,
            subject=rng.choice(scenario["subjects"]).format(**values),
            agent_index=rng.randrange(2),
        )
        plan: list[tuple[datetime, Callable[[], None]]] = []
        t = start

        def add(at: datetime, action: Callable[[], None]) -> None:
            plan.append((at, action))

        def minutes(low: float, high: float) -> timedelta:
            return timedelta(minutes=rng.uniform(low, high))

        def reply_delay() -> timedelta:
            if thread.kind == "chat":
                return minutes(0.5, 4)
            # Skewed: most answers within hours, some the next day.
            return timedelta(minutes=min(rng.expovariate(1 / 240), 60 * 30) + 5)

        # The customer gets in touch.
        if (
            kind in ("phone", "social")
            and kind not in persona.linked
            and persona.channels[0] != kind
        ):
            # An agent adds the number (or handle) to the customer's profile before the first call.
            persona.linked.add(kind)
            add(t - timedelta(minutes=1), partial(self._link, thread, kind))
        opening = rng.choice(scenario[kind if kind != "phone" else "call"]).format(**values)
        if kind == "chat":
            for line in scenario["chat"]:
                add(t, partial(self._inbound, thread, "chat", line.format(**values)))
                t += minutes(0.3, 1.5)
        else:
            add(t, partial(self._inbound, thread, kind, opening))
        if kind == "phone" and rng.random() < 0.1:
            # Dropped in the queue; the customer calls again (a second contact).
            plan[-1] = (t, partial(self._inbound, thread, "phone", opening, dropped=True))
            t += minutes(5, 30)
            add(t, partial(self._inbound, thread, "phone", opening))

        just_arrived = rng.random() < 0.5
        if t > self.now - timedelta(hours=2) and just_arrived:
            return self._steps(thread, plan)  # just arrived: still new, waiting in the queue
        if rng.random() < 0.2:
            t += minutes(2, 30)
            add(t, partial(self._assign, thread))

        # The first answer.
        t += reply_delay() if kind != "phone" else minutes(1, 10)
        if kind == "phone":
            note = rng.choice(scenario["reply"]).format(**values)
            add(t, partial(self._reply, thread, f"Call notes: {note}", internal=True))
            if rng.random() < 0.5:
                t += minutes(2, 20)
                add(t, partial(self._reply, thread, note, kind="email"))
        else:
            if kind in ("email", "social") and rng.random() < 0.15:
                add(t, partial(self._reply, thread, rng.choice(CHECKING), kind=kind))
                t += reply_delay()
            add(t, partial(self._reply, thread, self._answer(thread, "reply"), kind=kind))

        if persona.channels == ("social", "email") and kind == "email":
            t += minutes(1, 30)
            add(t, partial(self._merge, thread))

        # Back and forth.
        exchanges = [
            *zip(scenario["followup"], scenario["answer"], strict=True),
            rng.choice(GENERIC_EXCHANGES),
        ]
        rounds = rng.choices((0, 1, 2), (50, 38, 12))[0]
        for question, answer in (rng.choice(exchanges[:-1]), exchanges[-1])[:rounds]:
            t += timedelta(minutes=rng.uniform(10, 60 * 20))
            follow_kind = self._follow_kind(thread)
            body = question.format(**values)
            if follow_kind == "phone":
                body = f"Called back about the earlier request. {body}"
            add(t, partial(self._inbound, thread, follow_kind, body, new_session=True))
            t += reply_delay()
            reply_kind = "email" if follow_kind == "phone" else follow_kind
            add(t, partial(self._reply, thread, answer.format(**values), kind=reply_kind))

        if t > self.now - timedelta(hours=rng.uniform(3, 30)):
            return self._steps(thread, plan)  # recent: still open
        if rng.random() < 0.015:
            return self._steps(thread, plan)  # forgotten in the queue
        t += minutes(5, 180)
        add(t, partial(self._solve, thread))

        # After the solve.
        roll = rng.random()
        if roll < 0.09:
            # "Still broken": the customer writes again, which reopens it.
            t += timedelta(hours=rng.uniform(2, 96))
            body = rng.choice(scenario["still_broken"]).format(**values)
            add(t, partial(self._inbound, thread, thread.kind, body, new_session=True))
            t += reply_delay()
            add(t, partial(self._reply, thread, self._answer(thread, "reply"), kind=kind))
            t += minutes(30, 60 * 24)
            add(t, partial(self._solve, thread))
        elif roll < 0.14:
            # An agent finds the fix did not stick and reopens it.
            t += timedelta(hours=rng.uniform(1, 48))
            reason = "Checked again: the fix did not go through on the provider's side."
            add(t, partial(self._reopen, thread, reason))
            t += minutes(5, 60)
            body = self._answer(thread, "answer")
            add(t, partial(self._reply, thread, f"A quick follow-up: {body}", kind=None))
            t += minutes(10, 120)
            add(t, partial(self._solve, thread))
        elif roll < 0.24 and kind != "phone":
            # A thank-you after the solve: a customer message, so it reopens; the agent solves again.
            t += minutes(10, 60 * 30)
            body = rng.choice(THANKS)
            add(t, partial(self._inbound, thread, thread.kind, body, new_session=True))
            t += minutes(5, 240)
            add(t, partial(self._solve, thread))
        return self._steps(thread, plan)

    def _steps(self, thread: Thread, plan: list[tuple[datetime, Callable[[], None]]]) -> list[Step]:
        cutoff = self.now - timedelta(minutes=1)
        steps: list[Step] = []
        for index, (at, action) in enumerate(plan):
            if at >= cutoff:
                break  # the rest has not happened yet
            steps.append((at, thread.number, index, action))
        return steps

    def _follow_kind(self, thread: Thread) -> str:
        """Mostly the same channel; sometimes the customer switches (calls, or chats)."""
        options = [
            k for k in thread.persona.channels if k != thread.kind and k in ("phone", "chat")
        ]
        if options and thread.kind != "phone" and thread.rng.random() < 0.25:
            kind = thread.rng.choice(options)
            return kind if kind != "phone" or "phone" in thread.persona.linked else thread.kind
        return thread.kind

    def _answer(self, thread: Thread, key: str) -> str:
        template: str = thread.rng.choice(thread.scenario[key])
        return template.format(**thread.values)

    def _email_text(self, thread: Thread, text: str, agent: str) -> str:
        greeting = thread.rng.choice(GREETINGS).format(first=thread.persona.first)
        signoff = thread.rng.choice(SIGNOFFS).format(agent=agent)
        return f"{greeting}\n\n{text}\n\n{signoff}"

    # --- replay: every action goes through a service ---------------------------------------------

    def _replay(self, steps: list[Step], *, show_progress: bool) -> int:
        # One global time order: each conversation's steps in sequence, all interleaved as they
        # happened, so that every service sees the desk as it was at that moment.
        ordered = sorted(steps, key=lambda step: step[:3])
        skipped = 0
        with tqdm(
            total=len(ordered),
            file=sys.stderr,
            desc="Replaying history",
            unit="step",
            disable=not show_progress,
            mininterval=0.25,
        ) as bar:
            for begin in range(0, len(ordered), BATCH_STEPS):
                batch = ordered[begin : begin + BATCH_STEPS]
                with transaction.atomic():
                    for at, _number, _index, action in batch:
                        self._current_at = at
                        try:
                            action()
                        except ApplicationError:
                            # The desk refused (e.g. solving what a customer's earlier message
                            # moved elsewhere): real agents meet the same refusals; carry on.
                            skipped += 1
                        bar.update()
        return skipped

    def _agent(self, thread: Thread, conversation: Conversation | None = None) -> User:
        """The thread's agent, in the conversation's team (a message may land in another's)."""
        team = thread.scenario["team"]
        if conversation is not None and conversation.team is not None:
            team = conversation.team.name
        agents = self.agents.get(team) or self.agents[thread.scenario["team"]]
        return agents[thread.agent_index % len(agents)]

    def _conversation(self, thread: Thread) -> Conversation | None:
        if thread.conversation_id is None:
            return None
        return Conversation.objects.select_related("team", "assignee").get(
            pk=thread.conversation_id
        )

    def _link(self, thread: Thread, kind: str) -> None:
        persona = thread.persona
        if persona.customer_id is None:
            return
        value = persona.phone if kind == "phone" else f"{persona.network}:@{persona.handle}"
        customer = Customer.objects.get(pk=persona.customer_id)
        identity_link(customer=customer, kind=kind, value=value, actor=self._agent(thread))

    def _merge(self, thread: Thread) -> None:
        persona = thread.persona
        if persona.social_customer_id is None or persona.customer_id is None:
            return
        if persona.social_customer_id == persona.customer_id:
            return
        target = Customer.objects.get(pk=persona.customer_id)
        other = Customer.objects.get(pk=persona.social_customer_id)
        if other.merged_into_id is None:
            customer_merge(target=target, other=other, actor=self._agent(thread))
        persona.social_customer_id = persona.customer_id

    def _inbound(
        self,
        thread: Thread,
        kind: str,
        body: str,
        *,
        new_session: bool = False,
        dropped: bool = False,
    ) -> None:
        persona, rng = thread.persona, thread.rng
        at = self._current_at
        channel = self.channels[thread.scenario["team"], kind]
        thread.seq += 1
        external_id = f"demo-{self.salt}-{thread.number}-{thread.seq}"
        if kind == "email":
            emailed = inbound_email_raw(
                channel=channel, raw=self._email_bytes(thread, body, at), received_at=at
            )
            if isinstance(emailed, QuarantinedMessage):
                raise ApplicationError(f"demo email was quarantined: {emailed.error}")
            result = emailed
        elif kind == "chat":
            if new_session or thread.session == 0:
                thread.session += 1
            result = inbound_chat(
                channel=channel,
                external_id=external_id,
                session_id=f"demo-{self.salt}-{thread.number}-s{thread.session}",
                visitor_id=persona.visitor,
                email=persona.email if persona.chat_gives_email else "",
                name=persona.name,
                body=body,
                sent_at=at,
            )
        elif kind == "social":
            result = inbound_social(
                channel=channel,
                external_id=external_id,
                network=persona.network,
                handle=f"@{persona.handle}",
                body=body,
                thread_id=f"demo-{self.salt}-{thread.number}",
                sent_at=at,
            )
        else:
            talk = 0 if dropped else int(rng.triangular(45, 1200, 240))
            result = inbound_phone(
                channel=channel,
                external_id=external_id,
                from_number=persona.phone,
                started_at=at,
                wait_seconds=int(rng.triangular(5, 600, 40)),
                talk_seconds=talk,
                hold_seconds=0 if dropped else int(rng.triangular(0, 240, 0)),
                wrap_seconds=0 if dropped else int(rng.triangular(15, 180, 45)),
                ended_by="customer" if dropped else rng.choice(("customer", "agent")),
                agent_email="" if dropped else self._agent(thread).email,
                notes=body,
            )
        if result.conversation_id not in thread.conversation_ids:
            thread.conversation_ids.append(result.conversation_id)
        if persona.channels == ("social", "email") and kind == "social":
            persona.social_customer_id = persona.social_customer_id or result.customer_id
            if persona.customer_id is None:
                persona.customer_id = result.customer_id
        elif persona.channels == ("social", "email") and kind == "email":
            if persona.customer_id == persona.social_customer_id:
                persona.customer_id = result.customer_id
        elif persona.customer_id is None:
            persona.customer_id = result.customer_id

    def _email_bytes(self, thread: Thread, body: str, at: datetime) -> bytes:
        persona = thread.persona
        message = EmailMessage()
        message["From"] = formataddr((persona.name, persona.email))
        message["To"] = CHANNEL_ADDRESSES[thread.scenario["team"]]
        message["Subject"] = thread.subject
        if thread.last_reply_id:
            message.replace_header("Subject", f"Re: {thread.subject}")
            message["In-Reply-To"] = f"<{thread.last_reply_id}>"
            message["References"] = " ".join(f"<{ref}>" for ref in thread.references[-10:])
        message["Date"] = format_datetime(at)
        message_id = (
            f"demo.{self.salt}.{thread.number}.{thread.seq}@{persona.email.partition('@')[2]}"
        )
        message["Message-ID"] = f"<{message_id}>"
        message.set_content(body)
        thread.references.append(message_id)
        return message.as_bytes(policy=SMTP)

    def _reply(
        self, thread: Thread, body: str, *, kind: str | None = None, internal: bool = False
    ) -> None:
        conversation = self._conversation(thread)
        if conversation is None:
            return
        if kind == "phone":
            kind = "email"  # a call is answered by calling back; in writing, by email
        agent = self._agent(thread, conversation)
        if kind == "email" and not internal:
            body = self._email_text(thread, body, agent.first_name)
        message = conversation_reply(
            conversation=conversation,
            author=agent,
            body=body,
            channel_kind=kind,
            internal=internal,
            at=self._current_at,
            deliver=False,  # history: these replies went out back then
        )
        if message.message_id:
            thread.last_reply_id = message.message_id
            thread.references.append(message.message_id)

    def _close_solved(self) -> None:
        conversations_close_solved(now=self._current_at)

    def _assign(self, thread: Thread) -> None:
        conversation = self._conversation(thread)
        if conversation is None:
            return
        conversation_assign(
            conversation=conversation, actor=self.manager, agent=self._agent(thread, conversation)
        )

    def _solve(self, thread: Thread) -> None:
        # Everything the customer's messages opened under this thread gets solved together,
        # tagged with the scenario's topic first (outcomes by topic on the dashboard).
        tag = self._tag(thread.scenario.get("tag", ""))
        for pk in thread.conversation_ids:
            conversation = Conversation.objects.select_related("team", "assignee").get(pk=pk)
            if conversation.is_active:
                agent = conversation.assignee or self._agent(thread, conversation)
                if tag is not None:
                    conversation_triage(conversation=conversation, actor=agent, tags=[tag])
                conversation_solve(conversation=conversation, actor=agent, at=self._current_at)

    def _tag(self, name: str) -> Tag | None:
        """The demo's topic ``name``, created by the manager the first time."""
        if not name:
            return None
        tag = Tag.objects.filter(name__iexact=name).first()
        return tag or tag_create(name=name, actor=self.manager)

    def _reopen(self, thread: Thread, reason: str) -> None:
        conversation = self._conversation(thread)
        if conversation is None or conversation.status != Conversation.Status.SOLVED:
            return
        conversation_reopen(
            conversation=conversation,
            actor=self._agent(thread, conversation),
            reason=reason,
            at=self._current_at,
        )

    # --- the end ---------------------------------------------------------------------------------

    def _summary(self, elapsed: float, skipped: int) -> None:
        by_status = dict(
            Conversation.objects.values_list("status")
            .annotate(n=Count("id"))
            .values_list("status", "n")
        )
        statuses = ", ".join(f"{by_status.get(s, 0)} {s}" for s in Conversation.Status.values)
        multi = sum(1 for kinds in _channel_kinds_by_customer().values() if len(kinds) > 1)
        self.stdout.write(
            f"Seeded in {elapsed:.1f}s: {Customer.objects.filter(merged_into__isnull=True).count()} "
            f"customers ({multi} on several channels), {Conversation.objects.count()} conversations "
            f"({statuses}), {Message.objects.count()} messages, {Contact.objects.count()} contacts"
            + (f"; {skipped} steps refused by the desk rules" if skipped else "")
            + "."
        )
        self.stdout.write(f"Demo logins (password {DEMO_PASSWORD}):")
        for email, role, teams, name in DEMO_STAFF:
            self.stdout.write(f"  {email:<24} {role:<8} {', '.join(teams):<20} {name}")


def _channel_kinds_by_customer() -> dict[int, set[str]]:
    kinds: dict[int, set[str]] = {}
    for customer_id, kind in (
        Message.objects.filter(direction=Message.Direction.INBOUND)
        .values_list("conversation__customer_id", "channel_kind")
        .distinct()
    ):
        kinds.setdefault(customer_id, set()).add(kind)
    return kinds
