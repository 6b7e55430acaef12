"""One conversation's history, simulated step by step in time order with the services' rules."""

from __future__ import annotations

import contextlib
import math
from collections.abc import Iterator
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from bench.seed.generator import Generator
from bench.seed.tables import CustomerPlan, N, copy_text
from bench.seed.vocabulary import (
    CHASER_AFTER,
    CLOSE_AFTER,
    CUSTOMER_BODIES,
    DAY,
    DOMAINS,
    HOUR,
    KINDS,
    NPS_INTERVAL,
    SUBJECTS,
    SUPPORT_DOMAIN,
    SURVEY_DELAY,
    SURVEY_MIN_BETWEEN,
    SURVEY_REMINDER,
    SURVEY_WINDOW,
)


def cumulative(weights: Any) -> Iterator[float]:
    total = 0.0
    for weight in weights:
        total += weight
        yield total


class Stop(Exception):
    """The simulation reached "now": later steps have not happened yet."""


class Conversation:
    """One conversation's history, simulated in time order."""

    def __init__(self, gen: Generator, customer: CustomerPlan, start: int) -> None:
        self.g = gen
        self.c = customer
        self.rng = gen.rng
        self.now = gen.s.now
        self.id = gen._id("tickets_conversation")
        self.team = customer.team
        self.team_id = gen.s.team_ids[customer.team]
        agents = gen.s.agent_ids[customer.team]
        self.agent = agents[int(len(agents) * self.rng.random() ** 1.4)]
        self.assignee: int | None = None
        self.start = start
        self.t = start
        self.status = "new"
        self.channels: list[str] = []
        self.contacts = 0
        self.first_in: int | None = None
        self.last_in: int | None = None
        self.last_activity = start
        self.solved_at: int | None = None
        self.closed_at: int | None = None
        self.version = 1
        self.updated = start
        # Contact counting state (tickets.services.contacts.contact_reason).
        self.prev_kind = ""
        self.prev_t = 0
        self.prev_talk = 0
        self.prev_contact = 0
        self.prev_contact_kind = ""
        self.prev_session = ""
        self.last_out = -1
        self.last_contact_kind = ""
        self.session_no = 0
        self.session = ""
        self.last_email_mid = ""
        self.solves = 0
        n = self.rng.randrange(10000, 99999)
        self.subject = copy_text(SUBJECTS[self.rng.randrange(len(SUBJECTS))].format(n=n))
        self.n = n
        self.cust_id = str(customer.id)
        self.sid = str(self.id)
        self.team_s = str(self.team_id)
        self.events: list[str] = []
        kinds = [k for k in customer.mix if k in KINDS]
        self.kind = kinds[0] if self.rng.random() < 0.7 else self.rng.choice(kinds)
        self.created = False

    # --- helpers -----------------------------------------------------------------------------------

    def _at(self, ts: int) -> int:
        if ts > self.now:
            raise Stop
        self.t = ts
        return ts

    def _event(
        self,
        kind: str,
        ts: int,
        *,
        message: int | None = None,
        actor: int | None = None,
        agent: int | None = None,
        channel_kind: str = "",
        data: str = "{}",
    ) -> int:
        g = self.g
        event_id = g._id("tickets_event")
        g._row(
            "tickets_event",
            str(event_id),
            kind,
            g.stamp(ts),
            self.sid,
            self.cust_id,
            N if message is None else str(message),
            N if actor is None else str(actor),
            self.team_s,
            N if agent is None else str(agent),
            channel_kind,
            data,
        )
        self.updated = max(self.updated, ts)
        return event_id

    def _status(
        self,
        to: str,
        ts: int,
        *,
        kind: str = "conversation.status_changed",
        message: int | None = None,
        actor: int | None = None,
        agent: int | None = None,
        channel_kind: str = "",
        extra: str = "",
    ) -> int:
        data = f'{{"status_from": "{self.status}", "status_to": "{to}"{extra}}}'
        self.status = to
        if to == "solved":
            self.solved_at = ts
        if to == "closed":
            self.closed_at = ts
        if to in ("new", "open", "pending"):
            self.closed_at = None
        self.version += 1
        return self._event(
            kind,
            ts,
            message=message,
            actor=actor,
            agent=agent,
            channel_kind=channel_kind,
            data=data,
        )

    def _channel(self, kind: str) -> int:
        return self.g.s.channel_ids[(self.team, kind)]

    def _touch(self, kind: str, ts: int) -> None:
        if kind and kind not in self.channels:
            self.channels.append(kind)
        self.last_activity = max(self.last_activity, ts)

    def _body(self, bodies: dict[str, list[str]], kind: str) -> str:
        options = bodies.get(kind) or bodies["email"]
        return options[self.rng.randrange(len(options))].replace("{n}", str(self.n))

    # --- steps -------------------------------------------------------------------------------------

    def inbound(
        self,
        kind: str,
        ts: int,
        *,
        call: tuple[int, int, int, int, str] | None = None,
        new_session: bool = False,
    ) -> None:
        """A customer message (``_ingest_once``): contact rule, reopen, INBOUND event."""
        ts = self._at(ts)
        g, c = self.g, self.c
        if not self.created:
            self._create(kind, ts)
        if kind == "chat" and (new_session or not self.session):
            self.session_no += 1
            self.session = f"s-{self.id}-{self.session_no}"
        thread_key = self.session if kind == "chat" else ""
        # tickets.services.contacts.contact_reason
        if kind == "phone":
            reason = "call"
        elif not self.prev_kind:
            reason = "first"
        elif self.prev_kind != kind:
            reason = "channel_change"
        elif kind == "chat":
            same = self.prev_contact_kind == "chat" and self.prev_session == thread_key
            reason = "" if same else "chat_session"
        elif self.status in ("solved", "pending", "closed"):
            reason = "reopen"
        else:
            if self.prev_kind == "phone":
                answered = self.prev_talk > 0
            else:
                answered = self.last_out >= self.prev_t
            reason = "chaser" if not answered and ts - self.prev_t > CHASER_AFTER else ""
        message_id = g._id("tickets_message")
        channel = self._channel(kind)
        contact = self.prev_contact
        if reason:
            contact = g._id("tickets_contact")
            self.contacts += 1
            if call is not None:
                wait, talk, hold, wrap, ended_by = call
                call_cols = (str(wait), str(talk), str(hold), str(wrap), ended_by, str(self.agent))
            else:
                call_cols = (N, N, N, N, "", N)
            g._row(
                "tickets_contact",
                str(contact),
                self.sid,
                str(channel),
                kind,
                reason,
                g.stamp(ts),
                thread_key,
                *call_cols,
            )
            self.prev_contact_kind = kind
            self.prev_session = thread_key
            self.last_contact_kind = kind
        identity_kind = "email" if kind == "chat" and "email" in c.identity else kind
        identity = c.identity.get(identity_kind) or c.identity.get(kind)
        st = g.stamp(ts)
        subject = external = mid = in_reply = ""
        if kind == "email":
            mid = f"m{message_id}.{self.id}@{DOMAINS[c.domain]}"
            external = mid
            subject = self.subject if not self.last_email_mid else f"Re: {self.subject}"
            in_reply = self.last_email_mid
            body = self._body(g._customer_bodies, kind)
        elif kind == "phone":
            wait, talk, hold, wrap, ended_by = call or (0, 0, 0, 0, "customer")
            external = f"call-{message_id}"
            subject = f"Phone call from {c.phone}"
            body = (
                f"Phone call from {c.phone}: waited {wait}s, talked {talk // 60}m {talk % 60}s, "
                f"ended by {ended_by}."
            )
        else:
            external = f"{kind}-{message_id}"
            body = self._body(g._customer_bodies, kind)
        g._row(
            "tickets_message",
            str(message_id),
            self.sid,
            str(contact) if contact else N,
            str(channel),
            kind,
            "inbound",
            N,
            str(identity) if identity else N,
            external,
            mid,
            in_reply,
            in_reply,
            thread_key if kind in ("chat",) else "",
            subject,
            body,
            "",
            "",
            "",
            st,
            st,
            "",
            "",
            N,
            "0",
            N,
            "",
        )
        self.prev_kind = kind
        self.prev_t = ts
        self.prev_talk = call[1] if call is not None else 0
        self.prev_contact = contact
        if self.first_in is None:
            self.first_in = ts
        self.last_in = ts
        if self.status == "solved":
            self._status(
                "open",
                ts,
                kind="conversation.reopened",
                message=message_id,
                agent=self.assignee,
                extra=', "by": "customer"',
            )
        elif self.status == "pending":
            self._status("open", ts, message=message_id)
        if call is not None and self.assignee is None:
            self.assignee = self.agent
        self._touch(kind, ts)
        self.version += 1
        new_contact = "true" if reason else "false"
        self._event(
            "message.inbound",
            ts,
            message=message_id,
            channel_kind=kind,
            data=f'{{"new_contact": {new_contact}, "automated": ""}}',
        )

    def _create(self, kind: str, ts: int) -> None:
        self.created = True
        if kind == "phone":
            self.subject = f"Phone call from {self.c.phone}"
        elif kind in ("chat", "social"):
            body = CUSTOMER_BODIES[kind][self.rng.randrange(len(CUSTOMER_BODIES[kind]))]
            self.subject = copy_text(body.replace("{n}", str(self.n)).splitlines()[0][:80])
        self._event(
            "conversation.created",
            ts,
            channel_kind=kind,
            data='{"status_to": "new", "follow_up_of": null}',
        )

    def reply(self, ts: int, *, kind: str = "") -> bool:
        """An agent's public reply (``conversation_reply`` with ``deliver=False``)."""
        kind = kind or self.prev_kind or "email"
        if kind == "phone":
            kind = "email"
        if kind not in self.c.identity:
            return False
        ts = self._at(ts)
        g = self.g
        author = self.assignee or self.agent
        message_id = g._id("tickets_message")
        subject = mid = ""
        if kind == "email":
            mid = f"sd.{message_id}.{self.rng.getrandbits(24):06x}@{SUPPORT_DOMAIN}"
            subject = f"Re: {self.subject} [#{self.id}]"
            self.last_email_mid = mid
        st = g.stamp(ts)
        g._row(
            "tickets_message",
            str(message_id),
            self.sid,
            N,
            str(self._channel(kind)),
            kind,
            "outbound",
            str(author),
            str(self.c.identity[kind]),
            N,
            mid,
            "",
            "",
            "",
            subject,
            self._body(g._agent_bodies, kind),
            "",
            "",
            "",
            st,
            st,
            "sent",
            "",
            st,
            "0",
            N,
            "",
        )
        self._touch(kind, ts)
        if self.status == "new":
            self._status("open", ts, message=message_id, actor=author)
        if self.assignee is None:
            self.assignee = author
        self.version += 1
        self._event(
            "message.replied", ts, message=message_id, actor=author, agent=author, channel_kind=kind
        )
        self.last_out = ts
        return True

    def note(self, ts: int) -> None:
        ts = self._at(ts)
        g = self.g
        st = g.stamp(ts)
        g._row(
            "tickets_message",
            str(g._id("tickets_message")),
            self.sid,
            N,
            N,
            "",
            "note",
            str(self.assignee or self.agent),
            N,
            N,
            "",
            "",
            "",
            "",
            "",
            g._notes[self.rng.randrange(len(g._notes))],
            "",
            "",
            "",
            st,
            st,
            "",
            "",
            N,
            "0",
            N,
            "",
        )
        self.last_activity = max(self.last_activity, ts)
        self.version += 1

    def pending(self, ts: int) -> None:
        ts = self._at(ts)
        self._status("pending", ts, actor=self.assignee or self.agent)

    def solve(self, ts: int) -> tuple[int, int]:
        ts = self._at(ts)
        actor = self.assignee or self.agent
        self.assignee = actor
        kind = self.last_contact_kind
        event = self._status(
            "solved",
            ts,
            kind="conversation.solved",
            actor=actor,
            agent=actor,
            channel_kind=kind,
            extra=f', "contacts_counted": {self.contacts}, "channel": "{kind}"',
        )
        self.last_activity = max(self.last_activity, ts)
        self.solves += 1
        return event, ts

    def reopen_by_survey(self, ts: int, resolved: str) -> None:
        ts = self._at(ts)
        self._status(
            "open",
            ts,
            kind="conversation.reopened",
            agent=self.assignee,
            extra=f', "by": "system", "reason": "Survey: the customer answered '
            f'resolved = {resolved}."',
        )
        self.last_activity = max(self.last_activity, ts)

    def close(self, ts: int, *, by_survey: str = "") -> None:
        ts = self._at(ts)
        extra = (
            f', "by": "system", "reason": "Survey: the customer answered resolved = {by_survey}."'
            if by_survey
            else ""
        )
        self._status("closed", ts, kind="conversation.closed", extra=extra)

    # --- surveys ------------------------------------------------------------------------------------

    def survey(self, event: int, solved: int, *, customer_writes_at: int | None) -> str:
        """The survey of a solve; returns the answer's effect: "reopen", "close" or ""."""
        g, c, rng = self.g, self.c, self.rng
        survey_id = g._id("surveys_survey")
        due = solved + SURVEY_DELAY
        status, skip, sent, cancelled = "scheduled", "", None, None
        claimed, attempts = None, 0
        identity, email, asks_nps, expires, message_id = None, "", False, None, ""
        if (
            customer_writes_at is not None
            and customer_writes_at < due
            and customer_writes_at <= self.now
        ):
            status, cancelled = "cancelled", customer_writes_at
        elif due <= self.now:
            attempts = 1
            if c.unsubscribed:
                status, skip = "skipped", "unsubscribed"
            elif c.last_survey_sent > due - SURVEY_MIN_BETWEEN:
                status, skip = "skipped", "throttled"
            elif "email" not in c.identity:
                status, skip = "skipped", "no_email"
            else:
                status = "sent"
                sent = due + rng.randrange(5, 90)
                claimed = due
                identity, email = c.identity["email"], c.email
                asks_nps = c.last_nps <= sent - NPS_INTERVAL
                if asks_nps:
                    c.last_nps = sent
                c.last_survey_sent = sent
                expires = sent + SURVEY_WINDOW
                message_id = f"{sent}.{survey_id}.{rng.getrandbits(40)}@{SUPPORT_DOMAIN}"
        effect = ""
        self._answered_at = 0
        reminded = opened = None
        response = None
        if status == "sent" and customer_writes_at is None and rng.random() < 0.3:
            delay = int(rng.lognormvariate(math.log(5 * HOUR), 1.3)) + 60
            answered = sent + delay
            if answered < expires and answered <= self.now:
                response = answered
        if status == "sent":
            if response is not None:
                opened = response - rng.randrange(20, 300)
            if (response is None or response > sent + SURVEY_REMINDER) and (
                sent + SURVEY_REMINDER <= self.now
            ):
                reminded = sent + SURVEY_REMINDER + rng.randrange(5, 120)
        st = g.stamp
        g._row(
            "surveys_survey",
            str(survey_id),
            str(event),
            self.sid,
            self.cust_id,
            str(self.assignee),
            self.team_s,
            self.last_contact_kind,
            st(solved),
            str(self.contacts),
            status,
            skip,
            st(due),
            str(identity) if identity else N,
            email,
            "email" if status == "sent" else "",  # the generated desk surveys by email only
            "t" if asks_nps else "f",
            st(claimed),
            str(attempts),
            st(sent),
            message_id,
            st(reminded),
            st(reminded),
            st(opened),
            N,
            st(cancelled),
            f"b{survey_id:x}{rng.getrandbits(96):024x}",
            st(expires),
            st(solved),
        )
        if response is not None:
            self._answered_at = response
            effect = self._response(survey_id, response, asks_nps=asks_nps)
            if rng.random() < 0.01 and not c.unsubscribed:
                c.unsubscribed = True
                g._row(
                    "surveys_surveyunsubscribe",
                    str(g._id("surveys_surveyunsubscribe")),
                    c.email,
                    self.cust_id,
                    str(survey_id),
                    st(response + 30),
                )
        return effect

    def _response(self, survey_id: int, at: int, *, asks_nps: bool) -> str:
        g, rng = self.g, self.rng
        many = self.contacts > 1
        roll = rng.random()
        p_yes = 0.78 if not many else 0.6
        if roll < p_yes:
            resolved = "yes"
        elif roll < p_yes + 0.1:
            resolved = "partly"
        elif roll < 0.97:
            resolved = "no"
        else:
            resolved = ""
        needs_nothing_more = resolved == "partly" and rng.random() < 0.5
        declared = N
        if rng.random() < 0.85:
            declared = str(
                max(1, min(5, self.contacts + (rng.random() < 0.3) * rng.choice((1, 1, -1))))
            )
        if resolved == "yes":
            csat = rng.choice((5, 5, 5, 4, 4, 3))
        elif resolved == "partly":
            csat = rng.choice((4, 3, 3, 2))
        else:
            csat = rng.choice((1, 1, 2, 2, 3))
        csat_s = str(csat) if rng.random() < 0.92 else N
        nps = None
        if asks_nps and rng.random() < 0.8:
            nps = max(0, min(10, csat * 2 + rng.randrange(-1, 2)))
        comment = (
            self.g._comments[rng.randrange(len(self.g._comments))] if rng.random() < 0.25 else ""
        )
        shout = csat == 5 and rng.random() < 0.12
        escalated = resolved == "no" or (resolved == "partly" and not needs_nothing_more)
        st = g.stamp
        response_id = g._id("surveys_surveyresponse")
        g._row(
            "surveys_surveyresponse",
            str(response_id),
            str(survey_id),
            resolved,
            declared,
            str(self.contacts),
            csat_s,
            N if nps is None else str(nps),
            comment,
            "t" if shout else "f",
            "t" if needs_nothing_more else "f",
            st(at),
            st(at),
            "1",
            st(at) if escalated else N,
            st(at) if shout else N,
        )
        low = (csat_s != N and csat <= 2) or (nps is not None and nps <= 6)
        if low:
            done = at < self.now - 10 * DAY
            manager = g.s.manager_ids[self.team]
            g._row(
                "surveys_followup",
                str(g._id("surveys_followup")),
                str(survey_id),
                self.team_s,
                str(manager),
                "low_csat" if csat_s != N and csat <= 2 else "detractor",
                "done" if done else "open",
                "Called the customer back." if done else "",
                st(at),
                st(at + 2 * DAY) if done else N,
                str(manager) if done else N,
            )
        if escalated:
            return "reopen:" + resolved
        if resolved == "yes" or needs_nothing_more:
            return "close:" + resolved
        return ""

    # --- scripts ---------------------------------------------------------------------------------------

    def _gap(self, median: float, sigma: float = 1.0, low: int = 20) -> int:
        return max(low, int(self.rng.lognormvariate(math.log(median), sigma)))

    def _frt(self, kind: str) -> int:
        return {
            "email": self._gap(3 * HOUR, 1.1),
            "social": self._gap(40 * 60, 1.0),
            "chat": self._gap(50, 0.6, 5),
        }.get(kind, self._gap(2 * HOUR))

    def _call(self) -> tuple[int, int, int, int, str]:
        rng = self.rng
        if rng.random() < 0.06:
            return (rng.randrange(30, 600), 0, 0, 0, rng.choice(("customer", "system")))
        talk = self._gap(5 * 60, 0.7, 30)
        hold = rng.choice((0, 0, 0, rng.randrange(10, 240)))
        ended = "system" if rng.random() < 0.03 else rng.choice(("customer", "agent"))
        return (rng.randrange(5, 300), talk, hold, rng.randrange(0, 180), ended)

    def _exchange(self, kind: str, *, new_session: bool = False) -> None:
        """The customer writes (or calls) and an agent answers."""
        rng = self.rng
        t = self.t
        if kind == "phone":
            call = self._call()
            self.inbound("phone", t, call=call)
            if rng.random() < 0.45 and "email" in self.c.identity:
                self.reply(self.t + self._gap(30 * 60), kind="email")
            return
        if kind == "chat":
            self.inbound("chat", t, new_session=new_session)
            for _ in range(rng.choice((1, 2, 2, 3, 3))):
                self.reply(self.t + self._frt("chat"), kind="chat")
                if rng.random() < 0.7:
                    self.inbound("chat", self.t + self._gap(60, 0.7, 5))
            return
        self.inbound(kind, t)
        frt = self._frt(kind)
        if kind == "email" and frt > CHASER_AFTER + HOUR and rng.random() < 0.35:
            self.inbound(kind, self.t + CHASER_AFTER + rng.randrange(HOUR // 2, HOUR))
        self.reply(max(self.t + 30, t + frt), kind=kind)

    def _other_kind(self, kind: str) -> str:
        kinds = [k for k in self.c.mix if k != kind]
        return self.rng.choice(kinds) if kinds else kind

    def simulate(self) -> None:
        rng = self.rng
        try:
            self._exchange(self.kind)
            if rng.random() < 0.05:
                self.note(self.t + self._gap(600))
            rounds = 0
            while rounds < 3 and rng.random() < (0.65 if rounds == 0 else 0.35):
                rounds += 1
                if self.kind != "phone" and rng.random() < 0.1:
                    self.pending(self.t + 60)
                kind = self._other_kind(self.prev_kind) if rng.random() < 0.2 else self.prev_kind
                self.t += self._gap(5 * HOUR, 1.2, 120)
                self._exchange(kind, new_session=True)
            self._solve_cycle(self.t + self._gap(15 * 60, 1.0, 30), reopens_left=1)
        except Stop:
            pass

    def open_only(self) -> None:
        """The customer wrote and was answered; not solved yet."""
        with contextlib.suppress(Stop):
            self._exchange(self.kind)

    def _solve_cycle(self, at: int, *, reopens_left: int) -> None:
        rng = self.rng
        event, solved = self.solve(at)
        writes_at = None
        if reopens_left and rng.random() < 0.08:
            writes_at = solved + self._gap(20 * HOUR, 1.3, 300)
            if writes_at > solved + CLOSE_AFTER - HOUR:
                writes_at = None
        effect = self.survey(event, solved, customer_writes_at=writes_at)
        if writes_at is not None:
            kind = self._other_kind(self.prev_kind) if rng.random() < 0.3 else self.prev_kind
            self.t = writes_at
            self._exchange(kind, new_session=True)
            self._solve_cycle(self.t + self._gap(20 * 60, 1.0, 30), reopens_left=reopens_left - 1)
            return
        auto_close = solved + CLOSE_AFTER + rng.randrange(60, HOUR)
        answered = self._answered_at
        if effect.startswith("reopen:"):
            # survey_answer: "no" reopens the conversation (solved, or closed meanwhile).
            if auto_close < answered:
                self.close(auto_close)
            self.reopen_by_survey(answered, effect.partition(":")[2])
            self.reply(answered + self._gap(2 * HOUR))
            self._solve_cycle(self.t + self._gap(30 * 60), reopens_left=0)
            return
        if effect.startswith("close:") and answered < auto_close:
            self.close(answered, by_survey=effect.partition(":")[2])
            return
        self.close(auto_close)

    def heavy(self) -> None:
        """The manifest's heavy conversation: 50 messages on email, chat and phone, open,
        assigned to agent000 (Team 01)."""
        self.assignee = self.agent = self.g.s.agent_ids[0][0]
        self.g.result.heavy_conversation_id = self.id
        cycle = (
            ("in", "email", False),
            ("out", "email", False),
            ("in", "chat", True),
            ("out", "chat", False),
            ("in", "chat", False),
            ("out", "chat", False),
            ("in", "phone", False),
            ("out", "email", False),
        )
        steps = [*(cycle * 6), *cycle[:2]]  # 50 messages
        t = self.start
        for direction, kind, new_session in steps:
            t += 40 if kind == "chat" and not new_session else 2 * HOUR
            if direction == "out":
                self.reply(t, kind=kind)
            elif kind == "phone":
                self.inbound("phone", t, call=self._call())
            else:
                self.inbound(kind, t, new_session=new_session)

    # --- the conversation row --------------------------------------------------------------------------

    def finish(self) -> None:
        g = self.g
        st = g.stamp
        if not self.created:  # the first message lies in the future: nothing happened yet
            g.ids["tickets_conversation"] -= 1
            return
        channels = "[" + ", ".join(f'"{k}"' for k in self.channels) + "]"
        g._row(
            "tickets_conversation",
            self.sid,
            st(self.start),
            st(max(self.updated, self.last_activity)),
            self.cust_id,
            self.team_s,
            str(self.assignee) if self.assignee else N,
            self.subject,
            self.status,
            channels,
            str(self.contacts),
            st(self.first_in),
            st(self.last_in),
            st(self.last_activity),
            st(self.solved_at),
            st(self.closed_at),
            N,
            str(self.version),
        )
        by = g.result.by_status
        by[self.status] = by.get(self.status, 0) + 1
