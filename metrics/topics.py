"""Outcomes by topic: the solve facts counted per tag of the solved conversation (``TopicFact``
rows), from the same solve events as the daily facts (``metrics.facts.solve_source``)."""

from __future__ import annotations

from datetime import date, datetime
from typing import Any

from django.db.models import Count, F, Q, QuerySet

from metrics.facts import CELL_FIELDS, cell_of, day_bounds, solve_source, with_cells
from metrics.facts_sql import SOLVE_COUNTS, SOLVE_FLAG_COLUMNS, quoted

# The outcomes by topic: (fact, numerator alias, denominator alias) of ``_topic_grouped``.
TOPIC_FACTS: tuple[tuple[str, str, str], ...] = (
    ("solves", "solves", "solves"),
    ("internal_fcr", "fcr", "solves"),
    ("reopen_rate", "reopened_n", "solves"),
    ("repeat_contact_rate", "repeat_n", "solves"),
    ("resolution_rate", "yes_n", "answered_n"),
    ("partial_resolution_rate", "partly_n", "answered_n"),
    ("customer_fcr", "customer_fcr_n", "answered_n"),
    ("gap_internal_fcr", "gap_internal_n", "answered_n"),
)


def _topic_grouped(start: datetime, end: datetime) -> QuerySet[Any]:
    """The solve flags counted per cell and per tag of the solved conversation (its tags now:
    a change of tags recomputes the days of its solves). One row per tag: a conversation with
    two tags counts in both."""
    grouped: QuerySet[Any] = (
        with_cells(solve_source(start, end), team="team_id", agent="agent_id")
        .filter(conversation__tags__isnull=False)
        .annotate(cell_tag=F("conversation__tags"))
        .values(*CELL_FIELDS, "cell_tag")
        .annotate(
            solves=Count("pk"),
            fcr=Count("pk", filter=Q(contacts=1)),
            reopened_n=Count("pk", filter=Q(reopened=True)),
            repeat_n=Count("pk", filter=Q(repeat=True)),
            answered_n=Count("pk", filter=Q(answered=True)),
            yes_n=Count("pk", filter=Q(resolved="yes")),
            partly_n=Count("pk", filter=Q(resolved="partly")),
            customer_fcr_n=Count("pk", filter=Q(customer_first=True)),
            gap_internal_n=Count("pk", filter=Q(answered=True, contacts=1)),
        )
        .order_by()
    )
    return grouped


_TOPIC_COUNTS: tuple[str, ...] = (
    *("solves", "fcr", "reopened_n", "repeat_n", "answered_n", "yes_n", "partly_n"),
    *("customer_fcr_n", "gap_internal_n"),
)


def _topic_flags_grouped(start: datetime, end: datetime, connection: Any) -> list[dict[str, Any]]:
    """``_topic_grouped``'s rows with each solve's flags computed once, in a materialised CTE
    (PostgreSQL), as ``metrics.facts_sql`` does for the daily facts."""
    per_solve = (
        with_cells(solve_source(start, end), team="team_id", agent="agent_id")
        .filter(conversation__tags__isnull=False)
        .annotate(cell_tag=F("conversation__tags"))
        .values(*CELL_FIELDS, "cell_tag", *SOLVE_FLAG_COLUMNS)
        .order_by()
    )
    sql, params = per_solve.query.sql_with_params()
    conditions = dict(SOLVE_COUNTS)
    counts = ", ".join(
        f"COUNT(*) FILTER (WHERE {conditions[alias]}) AS {quoted(alias)}" for alias in _TOPIC_COUNTS
    )
    cells = "s.cell_day, s.cell_team, s.cell_agent, s.cell_channel, s.cell_tag"
    with connection.cursor() as cursor:
        cursor.execute(
            f"WITH s AS MATERIALIZED ({sql}) SELECT {cells}, {counts} FROM s GROUP BY {cells}",
            list(params),
        )
        names = [column.name for column in cursor.description]
        return [dict(zip(names, row, strict=True)) for row in cursor.fetchall()]


def topic_fact_rows(
    day_from: date, day_to: date, *, connection: Any = None
) -> list[tuple[dict[str, Any], str, int, int]]:
    """The ``TopicFact`` rows of local days ``[day_from, day_to)``: ``(cell with tag_id, metric,
    numerator, denominator)``; a fact that is 0 of 0 is left out. One query (on PostgreSQL,
    given the ``connection``, with each solve's flags computed once)."""
    start, end = day_bounds(day_from, day_to)
    grouped: Any = (
        _topic_flags_grouped(start, end, connection)
        if connection is not None and connection.vendor == "postgresql"
        else _topic_grouped(start, end)
    )
    rows = []
    for row in grouped:
        cell = {**cell_of(row), "tag_id": row["cell_tag"]}
        for metric, num, den in TOPIC_FACTS:
            numerator, denominator = int(row[num] or 0), int(row[den] or 0)
            if numerator or denominator:
                rows.append((cell, metric, numerator, denominator))
    return rows
