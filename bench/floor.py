"""The floor: hand-written SQL that reads what each page reads, timed on the same data.

Each function returns the statements (SQL, params) one request of the page needs at the least;
``time_floor`` runs them in one connection, as many times as the page was requested (at most 40),
and keeps the per-repetition wall time. No ORM, no templates, no HTTP: what is left when all of that is free.
"""

from __future__ import annotations

import re
import time
from datetime import date
from typing import Any

import psycopg

from bench.client import Stats

ACTIVE = ("new", "open", "pending")
Statement = tuple[str, tuple[Any, ...]]

_VISIBLE = "(c.team_id = ANY(%s) OR c.team_id IS NULL)"
# As the app counts: the open views over active conversations only (their partial index), and
# "recently solved" over a week of solves by its own index; the customer is joined for a search.
_ACTIVE_COUNTS = (
    "SELECT count(*),"
    " count(*) FILTER (WHERE c.assignee_id = %s),"
    " count(*) FILTER (WHERE c.assignee_id IS NULL),"
    " count(*) FILTER (WHERE c.status = 'pending'),"
    " count(*) FILTER (WHERE c.solved_at IS NOT NULL)"
    " FROM tickets_conversation c{join}"
    f" WHERE {_VISIBLE} AND c.status IN ('new','open','pending') AND {{where}}"
)
_SOLVED_COUNT = (
    "SELECT count(*) FROM tickets_conversation c{join}"
    f" WHERE {_VISIBLE} AND c.status IN ('solved','closed')"
    " AND c.solved_at >= now() - interval '7 days' AND {where}"
)
_CUSTOMER_JOIN = " JOIN tickets_customer cu ON cu.id = c.customer_id"
_PAGE = (
    "SELECT c.id, c.subject, c.status, c.channels, c.last_activity_at, cu.id, cu.name, t.name,"
    " u.full_name FROM tickets_conversation c JOIN tickets_customer cu ON cu.id = c.customer_id"
    " LEFT JOIN supportdesk_team t ON t.id = c.team_id"
    " LEFT JOIN supportdesk_user u ON u.id = c.assignee_id"
    f" WHERE {_VISIBLE} AND c.status IN ('new','open','pending') AND {{where}}"
    " ORDER BY c.last_activity_at DESC, c.id DESC LIMIT 26"
)


def _queue(
    team_ids: list[int], agent_id: int, where: str, params: tuple[Any, ...], *, customer: bool
) -> list[Statement]:
    join = _CUSTOMER_JOIN if customer else ""
    return [
        (_ACTIVE_COUNTS.format(join=join, where=where), (agent_id, team_ids, *params)),
        (_SOLVED_COUNT.format(join=join, where=where), (team_ids, *params)),
        (_PAGE.format(where=where), (team_ids, *params)),
    ]


def queue_filtered(m: dict[str, Any], team_ids: list[int]) -> list[Statement]:
    """The agent's first page of "All open" narrowed to email conversations."""
    return _queue(
        team_ids, m["agent000_id"], "c.channels @> %s::jsonb", ('["email"]',), customer=False
    )


def _search_where(query: str, e164: str | None) -> tuple[str, tuple[Any, ...]]:
    like = f"%{query}%"
    identity = ["i.value LIKE %s"]
    params: list[Any] = [f"%{query.lower()}%"]
    if e164:
        identity.append("(i.kind = 'phone' AND i.value = %s)")
        params.append(e164)
    digits = re.sub(r"\D", "", query)
    if len(digits) >= 4 and not re.search(r"[a-zA-Z@]", query):
        identity.append("(i.kind = 'phone' AND i.value LIKE %s)")
        params.append(f"%{digits}%")
    where = (
        "(c.subject ILIKE %s OR cu.name ILIKE %s OR EXISTS (SELECT 1 FROM tickets_identity i"
        f" WHERE i.customer_id = c.customer_id AND ({' OR '.join(identity)})))"
    )
    return where, (like, like, *params)


def queue_search(
    m: dict[str, Any], team_ids: list[int], query: str, e164: str | None
) -> list[Statement]:
    where, params = _search_where(query, e164)
    return _queue(team_ids, m["agent000_id"], where, params, customer=True)


def conversation_page(m: dict[str, Any]) -> list[Statement]:
    cid, cust = m["heavy_conversation_id"], m["heavy_customer_id"]
    return [
        (
            "SELECT c.*, cu.name, t.name, u.full_name FROM tickets_conversation c"
            " JOIN tickets_customer cu ON cu.id = c.customer_id"
            " LEFT JOIN supportdesk_team t ON t.id = c.team_id"
            " LEFT JOIN supportdesk_user u ON u.id = c.assignee_id WHERE c.id = %s",
            (cid,),
        ),
        (
            "SELECT m.*, a.full_name, i.value, ct.reason, ct.started_at FROM tickets_message m"
            " LEFT JOIN supportdesk_user a ON a.id = m.author_id"
            " LEFT JOIN tickets_identity i ON i.id = m.identity_id"
            " LEFT JOIN tickets_contact ct ON ct.id = m.contact_id"
            " WHERE m.conversation_id = %s ORDER BY m.sent_at, m.id",
            (cid,),
        ),
        (
            "SELECT a.* FROM tickets_attachment a JOIN tickets_message m ON m.id = a.message_id"
            " WHERE m.conversation_id = %s ORDER BY a.id",
            (cid,),
        ),
        (
            "SELECT e.* FROM tickets_event e WHERE e.conversation_id = %s ORDER BY e.occurred_at",
            (cid,),
        ),
        ("SELECT * FROM tickets_identity WHERE customer_id = %s ORDER BY kind, value", (cust,)),
        (
            "SELECT c.id, c.subject, c.status, c.last_activity_at, s.status, r.resolved"
            " FROM tickets_conversation c LEFT JOIN LATERAL (SELECT id, status FROM surveys_survey"
            "  WHERE conversation_id = c.id ORDER BY solved_at DESC, id DESC LIMIT 1) s ON true"
            " LEFT JOIN surveys_surveyresponse r ON r.survey_id = s.id"
            " WHERE c.customer_id = %s AND c.id <> %s ORDER BY c.last_activity_at DESC",
            (cust, cid),
        ),
        (
            "SELECT u.id, u.full_name FROM supportdesk_user u"
            " JOIN supportdesk_user_teams ut ON ut.user_id = u.id"
            " WHERE ut.team_id = %s AND u.is_active ORDER BY u.full_name",
            (m["team01_id"],),
        ),
    ]


def customer_api(m: dict[str, Any], team_ids: list[int]) -> list[Statement]:
    cust = m["heavy_customer_id"]
    return [
        ("SELECT * FROM tickets_customer WHERE id = %s", (cust,)),
        ("SELECT * FROM tickets_identity WHERE customer_id = %s ORDER BY kind, value", (cust,)),
        (
            "SELECT c.id, c.subject, c.status, c.channels, c.team_id, c.assignee_id,"
            " c.last_activity_at FROM tickets_conversation c WHERE c.customer_id = %s"
            f" AND {_VISIBLE} ORDER BY c.last_activity_at DESC",
            (cust, team_ids),
        ),
    ]


def scorecard(day_from: date, day_to: date, team_id: int | None) -> list[Statement]:
    """Sums of the daily facts and duration buckets per agent over the period."""
    team = " AND team_id = %s" if team_id else ""
    extra: tuple[Any, ...] = (team_id,) if team_id else ()
    return [
        (
            "SELECT agent_id, metric, sum(numerator), sum(denominator) FROM metrics_dailyfact"
            f" WHERE day >= %s AND day < %s{team} GROUP BY agent_id, metric",
            (day_from, day_to, *extra),
        ),
        (
            "SELECT agent_id, metric, bucket, sum(count) FROM metrics_durationbucket"
            f" WHERE day >= %s AND day < %s{team} GROUP BY agent_id, metric, bucket",
            (day_from, day_to, *extra),
        ),
        (
            "SELECT max(computed_at) FROM metrics_factday WHERE day >= %s AND day < %s",
            (day_from, day_to),
        ),
    ]


def dashboard(day_from: date, day_to: date, team_id: int) -> list[Statement]:
    """The team scorecard, its per-agent comparison and the weekly trend."""
    return [
        *scorecard(day_from, day_to, team_id),
        (
            "SELECT metric, sum(numerator), sum(denominator) FROM metrics_dailyfact"
            " WHERE day >= %s AND day < %s AND team_id = %s GROUP BY metric",
            (day_from, day_to, team_id),
        ),
        (
            "SELECT date_trunc('week', day), metric, sum(numerator), sum(denominator)"
            " FROM metrics_dailyfact WHERE day >= %s AND day < %s AND team_id = %s"
            " GROUP BY 1, 2",
            (day_from, day_to, team_id),
        ),
    ]


MAX_REPETITIONS = 40  # enough for a p95; a fast page requested thousands of times needs no more


def time_floor(dsn: str, name: str, statements: list[Statement], repetitions: int) -> Stats:
    """Run the statements as many times as the page was requested (at most ``MAX_REPETITIONS``,
    after one warm-up) in one connection; per-repetition times."""
    stats = Stats(name)
    with psycopg.connect(dsn, autocommit=True) as conn:
        for i in range(min(repetitions, MAX_REPETITIONS) + 1):
            started = time.perf_counter()
            for sql, params in statements:
                with conn.cursor() as cur:
                    cur.execute(sql, params)
                    cur.fetchall()
            if i:
                stats.add(time.perf_counter() - started)
    stats.seconds = sum(stats.latencies)
    return stats
