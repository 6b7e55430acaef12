"""The daily facts written set-based on PostgreSQL: ``facts_insert`` runs each fact query of
``metrics.facts`` as one ``INSERT ... SELECT``, the solve facts with each solve's flags computed
once in a materialised CTE (``SOLVE_FLAG_COLUMNS``, ``SOLVE_COUNTS``; ``metrics.topics`` reuses
them). The rows never travel to Python."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import date, datetime
from typing import Any

from metrics.facts import (
    BUCKET_KEYS,
    CELL_FIELDS,
    SOLVE_FACTS,
    day_bounds,
    fact_queries,
    solve_source,
    with_cells,
)

# The per-solve flags ``metrics.facts._solve_grouped`` counts, and the SQL of each of its counts
# over them (the same conditions, in the same order): ``_solve_flags_grouped`` computes the flags
# once per solve in a materialised CTE and aggregates over it, where the ORM's
# ``Count(filter=...)`` would re-run ``solve_source``'s correlated subqueries in every filter.
SOLVE_FLAG_COLUMNS = (
    "contacts",
    "reopened",
    "repeat",
    "dropped",
    "interactions_bucket",
    "answered",
    "resolved",
    "customer_first",
    "delivered",
    "unreachable",
    "responded",
    "window_over",
    "resolution_in_window",
    "comment",
    "shout_out",
    "csat_answer",
    "nps_answer",
)
SOLVE_COUNTS: tuple[tuple[str, str], ...] = (
    ("solves", "TRUE"),
    ("fcr", "s.contacts = 1"),
    ("reopened_n", "s.reopened"),
    ("repeat_n", "s.repeat"),
    ("dropped_n", "s.dropped"),
    ("i1", "s.interactions_bucket = '1'"),
    ("i2", "s.interactions_bucket = '2-4'"),
    ("i5", "s.interactions_bucket = '5-9'"),
    ("i10", "s.interactions_bucket = '10+'"),
    ("answered_n", "s.answered"),
    ("yes_n", "s.resolved = 'yes'"),
    ("partly_n", "s.resolved = 'partly'"),
    ("customer_fcr_n", "s.customer_first"),
    ("gap_internal_n", "s.answered AND s.contacts = 1"),
    ("delivered_n", "s.delivered"),
    ("unreachable_n", "s.unreachable"),
    ("responded_n", "s.delivered AND s.responded"),
    ("decided_n", "s.delivered AND (s.window_over OR s.answered)"),
    ("unconfirmed_n", "s.delivered AND s.window_over AND NOT s.resolution_in_window"),
    ("responses_n", "s.responded"),
    ("comments_n", "s.responded AND s.comment <> ''"),
    ("shout_outs_n", "s.responded AND s.shout_out"),
    ("csat_n", "s.csat_answer IS NOT NULL"),
    ("csat_good", "s.csat_answer >= 4"),
    ("nps_n", "s.nps_answer IS NOT NULL"),
    *(
        count
        for bucket, key in BUCKET_KEYS
        for count in (
            (f"csat_{key}_good", f"s.interactions_bucket = '{bucket}' AND s.csat_answer >= 4"),
            (f"csat_{key}_n", f"s.interactions_bucket = '{bucket}' AND s.csat_answer IS NOT NULL"),
        )
    ),
)


def _solve_flags_grouped(start: datetime, end: datetime) -> tuple[str, list[Any]]:
    """The SQL and parameters of ``_solve_grouped``'s rows (same columns, same values), with
    each solve's flags computed once (PostgreSQL)."""
    per_solve = (
        with_cells(solve_source(start, end), team="team_id", agent="agent_id")
        .values(*CELL_FIELDS, *SOLVE_FLAG_COLUMNS)
        .order_by()
    )
    sql, params = per_solve.query.sql_with_params()
    counts = ", ".join(
        f"COUNT(*) FILTER (WHERE {condition}) AS {quoted(alias)}"
        for alias, condition in SOLVE_COUNTS
    )
    return (
        f"WITH s AS MATERIALIZED ({sql}) "
        f"SELECT s.cell_day, s.cell_team, s.cell_agent, s.cell_channel, {counts}, "
        "COALESCE(SUM(s.csat_answer), 0) AS csat_sum, "
        "COUNT(*) FILTER (WHERE s.nps_answer >= 9) - COUNT(*) FILTER (WHERE s.nps_answer <= 6)"
        " AS nps_net "
        "FROM s GROUP BY s.cell_day, s.cell_team, s.cell_agent, s.cell_channel",
        list(params),
    )


def facts_insert(day_from: date, day_to: date, *, connection: Any) -> int:
    """Write the rows of ``fact_rows`` with one ``INSERT ... SELECT`` per fact query, on
    PostgreSQL: the rows never travel to Python. Returns how many were written."""
    written = 0
    cells = "g.cell_day, g.cell_team, g.cell_agent, g.cell_channel"
    start, end = day_bounds(day_from, day_to)
    with connection.cursor() as cursor:
        # JIT compiling these wide plans costs far more than it saves (minutes for one day
        # at 1M rows, docs/query-plans.md): off for this transaction only.
        cursor.execute("SET LOCAL jit = off")
        sql: str
        params: Sequence[Any]  # a list from _solve_flags_grouped, a tuple from the ORM
        for query in fact_queries(day_from, day_to):
            if query.facts is SOLVE_FACTS:
                sql, params = _solve_flags_grouped(start, end)
            else:
                sql, params = query.qs.query.sql_with_params()
            if query.metric:
                cursor.execute(
                    "INSERT INTO metrics_durationbucket "
                    "(day, team_id, agent_id, channel_kind, metric, bucket, count) "
                    f"SELECT {cells}, %s, g.bucket, g.n FROM ({sql}) AS g",
                    [query.metric, *params],
                )
            else:
                values = ", ".join(
                    f"(%s, g.{quoted(num)}, g.{quoted(den)})" for _m, num, den in query.facts
                )
                cursor.execute(
                    "INSERT INTO metrics_dailyfact "
                    "(day, team_id, agent_id, channel_kind, metric, numerator, denominator) "
                    f"SELECT {cells}, v.metric, v.n, v.d FROM ({sql}) AS g "
                    f"CROSS JOIN LATERAL (VALUES {values}) AS v(metric, n, d) "
                    "WHERE v.n <> 0 OR v.d <> 0",
                    [*params, *(metric for metric, _n, _d in query.facts)],
                )
            written += cursor.rowcount
    return written


def quoted(alias: str) -> str:
    assert alias.replace("_", "").isalnum()
    return f'"{alias}"'
