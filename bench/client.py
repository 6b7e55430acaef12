"""A bounded HTTP load client: fixed users, fixed duration or request count, loopback only.

Closed loop: each simulated user sends its next request when the previous one answered, so the
load never exceeds ``users`` requests in flight. ``paced`` users send at a fixed rate instead
(open loop, for the inbound stream). Every response is checked; latencies are wall-clock.
"""

from __future__ import annotations

import contextlib
import re
import statistics
import threading
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from email.utils import format_datetime, make_msgid

import requests

CSRF_INPUT = re.compile(r'name="csrfmiddlewaretoken" value="([^"]+)"')


class RequestFailed(Exception):
    pass


@dataclass
class Stats:
    name: str
    latencies: list[float] = field(default_factory=list)
    errors: list[str] = field(default_factory=list)
    seconds: float = 0.0
    lock: threading.Lock = field(default_factory=threading.Lock, repr=False)

    def add(self, latency: float) -> None:
        with self.lock:
            self.latencies.append(latency)

    def error(self, text: str) -> None:
        with self.lock:
            self.errors.append(text[:300])

    @property
    def count(self) -> int:
        return len(self.latencies)

    def pct(self, q: float) -> float:
        """The q-th percentile in ms (nearest rank)."""
        if not self.latencies:
            return float("nan")
        ordered = sorted(self.latencies)
        rank = max(1, min(len(ordered), round(q / 100 * len(ordered) + 0.5)))
        return ordered[rank - 1] * 1000

    @property
    def p50(self) -> float:
        return self.pct(50)

    @property
    def p95(self) -> float:
        return self.pct(95)

    @property
    def mean_ms(self) -> float:
        return statistics.fmean(self.latencies) * 1000 if self.latencies else float("nan")

    @property
    def throughput(self) -> float:
        return self.count / self.seconds if self.seconds else 0.0


def check(response: requests.Response, *expected: int) -> requests.Response:
    if response.status_code not in (expected or (200,)):
        raise RequestFailed(
            f"{response.request.method} {response.url} -> {response.status_code}: "
            f"{response.text[:200]}"
        )
    return response


def timed(stats: Stats, call: Callable[[], requests.Response], *expected: int) -> requests.Response:
    started = time.perf_counter()
    try:
        response = check(call(), *expected)
    except (requests.RequestException, RequestFailed) as exc:
        stats.error(str(exc))
        raise RequestFailed(str(exc)) from exc
    stats.add(time.perf_counter() - started)
    return response


def run_users(
    users: int,
    body: Callable[[int, Callable[[], bool]], None],
    *,
    seconds: float,
) -> float:
    """Run ``body(user_index, keep_going)`` in ``users`` threads for ``seconds``; wall time."""
    deadline = time.monotonic() + seconds

    def keep_going() -> bool:
        return time.monotonic() < deadline

    threads = [
        threading.Thread(target=body, args=(i, keep_going), daemon=True) for i in range(users)
    ]
    started = time.monotonic()
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    return time.monotonic() - started


def closed_loop(
    stats: Stats,
    users: int,
    request: Callable[[requests.Session, int], requests.Response],
    *,
    seconds: float,
    setup: Callable[[int], requests.Session] | None = None,
    expected: tuple[int, ...] = (200,),
) -> Stats:
    """``users`` sessions each repeating ``request`` for ``seconds``; fills ``stats``."""
    sessions = [setup(i) if setup else requests.Session() for i in range(users)]

    def body(i: int, keep_going: Callable[[], bool]) -> None:
        n = 0
        while keep_going():
            with contextlib.suppress(RequestFailed):
                timed(stats, lambda n=n: request(sessions[i], n), *expected)
            n += 1

    stats.seconds = run_users(users, body, seconds=seconds)
    return stats


# --- Staff sessions ---------------------------------------------------------------------------------


def login(base_url: str, email: str, password: str) -> requests.Session:
    """A browser-like session: GET the form for the CSRF token, POST it, follow to the queue."""
    session = requests.Session()
    page = check(session.get(base_url + "/login/", timeout=30))
    token = CSRF_INPUT.search(page.text)
    if token is None:
        raise RequestFailed("no CSRF token on /login/")
    response = session.post(
        base_url + "/login/",
        data={"login": email, "password": password, "csrfmiddlewaretoken": token.group(1)},
        headers={"Referer": base_url + "/login/"},
        timeout=30,
        allow_redirects=False,
    )
    if response.status_code != 302:
        raise RequestFailed(f"login of {email} failed: {response.status_code}")
    return session


def api_session(token: str) -> requests.Session:
    session = requests.Session()
    session.headers["Authorization"] = f"Token {token}"
    return session


def csrf_post(
    session: requests.Session, url: str, page_url: str, data: dict[str, str], **kwargs: object
) -> requests.Response:
    """POST a form like the browser does: the token from the cookie, the Referer of the page."""
    token = session.cookies.get("csrftoken", "")
    return session.post(
        url,
        data={**data, "csrfmiddlewaretoken": token},
        headers={"Referer": page_url, "X-CSRFToken": token},
        timeout=30,
        **kwargs,
    )


# --- Inbound messages ---------------------------------------------------------------------------------


@dataclass
class InboundSource:
    """Builds inbound emails and chat messages whose ids all carry ``tag`` (to count them later).

    Email: a pool of senders, some new, some replying to an earlier message of theirs
    (threading by In-Reply-To). Chat: sessions of a few messages by the same visitor.
    """

    base_url: str
    email_secret: str
    chat_secret: str
    tag: str = field(default_factory=lambda: uuid.uuid4().hex[:10])
    senders: int = 400
    # 201: stored now (a synchronous channel); 202: accepted, stored by the ingest workers.
    accepted_status: int = 201
    lock: threading.Lock = field(default_factory=threading.Lock, repr=False)
    sent_email: int = 0
    sent_chat: int = 0
    acknowledged: list[str] = field(default_factory=list, repr=False)
    _last_msgid: dict[int, str] = field(default_factory=dict, repr=False)
    _n: int = 0

    def _next(self) -> int:
        with self.lock:
            self._n += 1
            return self._n

    def email(self, session: requests.Session) -> requests.Response:
        n = self._next()
        sender = n % self.senders
        msgid = make_msgid(idstring=f"{self.tag}.{n}", domain="inbound.bench.example")
        with self.lock:
            parent = self._last_msgid.get(sender)
            self._last_msgid[sender] = msgid
        headers = [
            f"From: Sender {sender} <w1-{self.tag}-{sender}@inbound.bench.example>",
            "To: support@bench.example",
            f"Subject: {'Re: ' if parent else ''}Order question {self.tag}-{sender}",
            f"Message-ID: {msgid}",
            f"Date: {format_datetime(datetime.now(UTC))}",
            "MIME-Version: 1.0",
            "Content-Type: text/plain; charset=utf-8",
        ]
        if parent:
            headers += [f"In-Reply-To: {parent}", f"References: {parent}"]
        raw = "\r\n".join(headers) + f"\r\n\r\nHello, message {n} of run {self.tag}.\r\n"
        response = session.post(
            self.base_url + "/api/v1/inbound/email/",
            data=raw.encode(),
            headers={"Content-Type": "message/rfc822", "X-Channel-Token": self.email_secret},
            timeout=30,
        )
        if response.status_code == self.accepted_status:
            with self.lock:
                self.sent_email += 1
                self.acknowledged.append(msgid.strip("<>"))
        return response

    def chat(self, session: requests.Session) -> requests.Response:
        n = self._next()
        visitor = n % self.senders
        payload = {
            "external_id": f"w1-{self.tag}-chat-{n}",
            "session_id": f"w1-{self.tag}-s{visitor}-{n // (self.senders * 4)}",
            "visitor_id": f"w1-{self.tag}-v{visitor}",
            "email": f"w1-{self.tag}-chat{visitor}@inbound.bench.example",
            "name": f"Visitor {visitor}",
            "body": f"Chat message {n} of run {self.tag}.",
            "sent_at": datetime.now(UTC).isoformat(),
        }
        response = session.post(
            self.base_url + "/api/v1/inbound/chat/",
            json=payload,
            headers={"X-Channel-Token": self.chat_secret},
            timeout=30,
        )
        if response.status_code == self.accepted_status:
            with self.lock:
                self.sent_chat += 1
                self.acknowledged.append(payload["external_id"])
        return response

    def one(self, session: requests.Session, n: int) -> requests.Response:
        return self.email(session) if n % 2 == 0 else self.chat(session)

    @property
    def sent(self) -> int:
        return self.sent_email + self.sent_chat

    def stored_sql(self) -> tuple[str, tuple[object, ...]]:
        """SQL giving (rows, distinct ids) stored for the acknowledged (201 or 202) messages."""
        return (
            "SELECT count(*), count(DISTINCT external_id) FROM tickets_message "
            "WHERE direction = 'inbound' AND external_id = ANY(%s)",
            (list(self.acknowledged),),
        )


def paced(
    stats: Stats,
    rate: float,
    request: Callable[[requests.Session, int], requests.Response],
    *,
    seconds: float,
    senders: int = 4,
    expected: tuple[int, ...] = (201,),
) -> Stats:
    """Open loop: request number k is due at k / rate s; ``senders`` threads share the schedule."""
    started = time.monotonic()
    total = int(rate * seconds)
    counter = iter(range(total))
    lock = threading.Lock()

    def body(i: int, keep_going: Callable[[], bool]) -> None:
        session = requests.Session()
        while True:
            with lock:
                k = next(counter, None)
            if k is None:
                return
            delay = started + k / rate - time.monotonic()
            if delay > 0:
                time.sleep(delay)
            with contextlib.suppress(RequestFailed):
                timed(stats, lambda k=k: request(session, k), *expected)

    stats.seconds = run_users(senders, body, seconds=seconds + 600)
    return stats
