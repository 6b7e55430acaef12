"""Find strings anywhere: every text, JSON and binary column of every table, and stored files.

Used by the erasure tests to prove that nothing of an erased customer is left. Case-insensitive;
a JSON column is searched for the string as JSON writes it too (quotes and newlines escaped).
"""

from __future__ import annotations

import json
from collections.abc import Iterable
from pathlib import Path

from django.db import connection

TEXT_TYPES = ("text", "character varying", "character", "json", "jsonb", "bytea", "tsvector")


def _like(value: str) -> str:
    escaped = value.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")
    return f"%{escaped}%"


def text_columns() -> list[tuple[str, str, str]]:
    """(table, column, data_type) of every searchable column of the public schema's tables."""
    with connection.cursor() as cursor:
        cursor.execute(
            """
            SELECT c.table_name, c.column_name, c.data_type
            FROM information_schema.columns c
            JOIN information_schema.tables t
              ON t.table_schema = c.table_schema AND t.table_name = c.table_name
            WHERE c.table_schema = 'public' AND t.table_type = 'BASE TABLE'
              AND (c.data_type = ANY(%s) OR c.data_type = 'ARRAY')
            ORDER BY c.table_name, c.column_name
            """,
            [list(TEXT_TYPES)],
        )
        return list(cursor.fetchall())


def database_hits(needles: Iterable[str]) -> dict[str, list[str]]:
    """``{"table.column": [needles found there]}`` over every text column of every table."""
    needles = sorted({n for n in needles if n})
    hits: dict[str, list[str]] = {}
    with connection.cursor() as cursor:
        for table, column, data_type in text_columns():
            if data_type == "bytea":
                expression = f"encode(\"{column}\", 'escape')"
            else:
                expression = f'"{column}"::text'
            patterns: dict[str, str] = {}
            for needle in needles:
                patterns[_like(needle)] = needle
                if data_type in ("json", "jsonb", "ARRAY"):
                    patterns[_like(json.dumps(needle)[1:-1])] = needle
                    patterns[_like(json.dumps(needle, ensure_ascii=False)[1:-1])] = needle
            cursor.execute(
                f"SELECT p FROM unnest(%s::text[]) AS p "
                f'WHERE EXISTS (SELECT 1 FROM "{table}" WHERE {expression} ILIKE p)',
                [list(patterns)],
            )
            found = sorted({patterns[row[0]] for row in cursor.fetchall()})
            if found:
                hits[f"{table}.{column}"] = found
    return hits


def file_hits(folder: str | Path, needles: Iterable[str]) -> dict[str, list[str]]:
    """``{path: [needles found in it]}`` for every file under ``folder`` (bytes, any case)."""
    lowered = [(n, n.lower().encode()) for n in needles if n]
    hits: dict[str, list[str]] = {}
    root = Path(folder)
    if not root.exists():
        return hits
    for path in root.rglob("*"):
        if path.is_file():
            content = path.read_bytes().lower()
            found = [n for n, b in lowered if b in content]
            if found:
                hits[str(path)] = found
    return hits
