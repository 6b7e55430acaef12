"""A desk built on the previous release migrates forward with every row kept.

The previous release's code (a pinned commit, exported with `git archive`) migrates a fresh
PostgreSQL database and fills it with `seed_demo`; then today's code runs `migrate` on the same
database. Every table that held rows still holds the same rows: the same count, the same primary
keys, and the same values in every column that kept its name, except where a migration declares
that it rewrites a column (TRANSFORMED) or moves a table (MOVED).

When a release ships, move PREVIOUS_RELEASE to it and empty MOVED and TRANSFORMED.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import tarfile
import uuid
from io import BytesIO
from pathlib import Path

import psycopg
import pytest
from django.conf import settings

ROOT = Path(__file__).resolve().parents[1]

# `main` before the close-the-holes and house-in-order work.
PREVIOUS_RELEASE = "175def4617627a650530e1d8d6e3d8ffb1a51ea0"

# old table -> new table, for tables a migration renamed (an app carve-out keeps the rows).
MOVED: dict[str, str] = {
    # API tokens left DRF's plain-text table for a digested, sealed one (secrets at rest).
    "authtoken_token": "supportdesk_apitoken",
}

# (table, column) pairs a data migration rewrites on purpose (e.g. a secret replaced by its digest).
TRANSFORMED: set[tuple[str, str]] = set()

# Django's own bookkeeping changes with every migration; it is not the desk's data.
BOOKKEEPING = {"django_migrations", "django_content_type", "auth_permission", "django_session"}

pytestmark = pytest.mark.skipif(
    settings.DATABASES["default"]["ENGINE"] != "django.db.backends.postgresql",
    reason="the forward migration is checked on PostgreSQL, the production database",
)


def _export_previous_release(target: Path) -> None:
    found = subprocess.run(
        ["git", "-C", str(ROOT), "cat-file", "-e", f"{PREVIOUS_RELEASE}^{{commit}}"],
        capture_output=True,
    )
    assert found.returncode == 0, (
        f"commit {PREVIOUS_RELEASE} is not in this clone; the forward-migration test needs the "
        "project's history (a full `git clone`, not a shallow one)"
    )
    archive = subprocess.run(
        ["git", "-C", str(ROOT), "archive", "--format=tar", PREVIOUS_RELEASE],
        capture_output=True,
        check=True,
    ).stdout
    with tarfile.open(fileobj=BytesIO(archive)) as tar:
        tar.extractall(target, filter="data")


def _server_dsn(dbname: str) -> str:
    db = settings.DATABASES["default"]
    parts = [f"dbname={dbname}"]
    for key, name in (
        ("HOST", "host"),
        ("PORT", "port"),
        ("USER", "user"),
        ("PASSWORD", "password"),
    ):
        if db.get(key):
            parts.append(f"{name}={db[key]}")
    return " ".join(parts)


def _database_url(dbname: str) -> str:
    db = settings.DATABASES["default"]
    credentials = db.get("USER") or "postgres"
    if db.get("PASSWORD"):
        credentials += f":{db['PASSWORD']}"
    return f"postgres://{credentials}@{db.get('HOST') or '127.0.0.1'}:{db.get('PORT') or 5432}/{dbname}"


def _manage(tree: Path, env: dict[str, str], *args: str) -> None:
    done = subprocess.run(
        [sys.executable, "manage.py", *args],
        cwd=tree,
        env=env,
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert done.returncode == 0, f"{tree.name}: manage.py {' '.join(args)}\n{done.stderr[-4000:]}"


def _snapshot(dsn: str) -> dict[str, dict[str, object]]:
    """Per table with rows: its row count, its columns and a fingerprint of each column."""
    tables: dict[str, dict[str, object]] = {}
    with psycopg.connect(dsn, autocommit=True) as conn:
        names = [
            row[0]
            for row in conn.execute(
                "SELECT tablename FROM pg_tables WHERE schemaname = 'public' ORDER BY tablename"
            )
        ]
        for table in names:
            if table in BOOKKEEPING:
                continue
            quoted = '"' + table.replace('"', '""') + '"'
            count = conn.execute(f"SELECT count(*) FROM {quoted}").fetchone()[0]
            if not count:
                continue
            columns = [
                row[0]
                for row in conn.execute(
                    "SELECT column_name FROM information_schema.columns "
                    "WHERE table_schema = 'public' AND table_name = %s ORDER BY column_name",
                    [table],
                )
            ]
            order = "id" if "id" in columns else ", ".join(f'"{c}"' for c in columns)
            fingerprints = {}
            for column in columns:
                fingerprints[column] = conn.execute(
                    f"SELECT md5(string_agg(coalesce(\"{column}\"::text, '<null>'), '|' "
                    f"ORDER BY {order})) FROM {quoted}"
                ).fetchone()[0]
            tables[table] = {"count": count, "columns": fingerprints}
    return tables


def test_a_desk_seeded_on_the_previous_release_migrates_forward_with_every_row_kept(tmp_path):
    previous = tmp_path / "previous"
    previous.mkdir()
    _export_previous_release(previous)
    dbname = f"sd_forward_{uuid.uuid4().hex[:10]}"
    admin_dsn = _server_dsn("postgres")
    with psycopg.connect(admin_dsn, autocommit=True) as conn:
        conn.execute(f'CREATE DATABASE "{dbname}"')
    env = {
        **os.environ,
        "DATABASE_URL": _database_url(dbname),
        "CELERY_BROKER_URL": "memory://",  # the seed's reactions run in its own process
        "DATA_DIR": str(tmp_path / "var"),
        "MEDIA_ROOT": str(tmp_path / "media"),
        "DJANGO_SETTINGS_MODULE": "supportdesk.settings",
    }
    env.pop("PYTHONPATH", None)
    try:
        # given: the previous release's schema and a demo desk on it
        _manage(previous, env, "migrate", "--noinput")
        _manage(
            previous,
            env,
            *("seed_demo", "--customers", "12", "--conversations", "30", "--days", "20"),
            *("--seed", "5"),
        )
        before = _snapshot(_server_dsn(dbname))
        assert before["tickets_conversation"]["count"] > 0
        assert before["surveys_surveyresponse"]["count"] > 0

        # when: today's code migrates it
        _manage(ROOT, env, "migrate", "--noinput")
        after = _snapshot(_server_dsn(dbname))

        # then: every row is still there, every kept column holds the same values
        for table, old in sorted(before.items()):
            new_table = MOVED.get(table, table)
            assert new_table in after, f"{table}: its rows are gone (list it in MOVED if it moved)"
            new = after[new_table]
            assert new["count"] == old["count"], f"{table}: {old['count']} rows before"
            for column, fingerprint in old["columns"].items():
                if column not in new["columns"] or (table, column) in TRANSFORMED:
                    continue
                assert new["columns"][column] == fingerprint, f"{table}.{column} changed"
    finally:
        with psycopg.connect(admin_dsn, autocommit=True) as conn:
            conn.execute(f'DROP DATABASE IF EXISTS "{dbname}" WITH (FORCE)')
        shutil.rmtree(previous, ignore_errors=True)
