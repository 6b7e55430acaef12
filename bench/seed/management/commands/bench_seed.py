"""``manage.py bench_seed --conversations N``: a large generated desk for the benchmarks.

20 teams, 200 agents, 20 managers and an admin (password ``bench-pass``), four channels per team,
then N conversations over 400 days written with PostgreSQL ``COPY`` (see ``bench.seed``), the
scorecard facts of the whole period computed as the nightly recompute does, and a small QA sample
reviewed. Writes a JSON manifest for ``bench/`` (``--manifest``, default
``var/bench_manifest.json``). Refuses a database that already has conversations unless
``--force-wipe``.
"""

from __future__ import annotations

import json
import random
import sys
import time
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any

from django.conf import settings
from django.contrib.auth.hashers import make_password
from django.core.management.base import BaseCommand, CommandError, CommandParser
from django.core.management.color import no_style
from django.db import connection, transaction
from django.utils import timezone
from tqdm import tqdm

from bench.seed.generator import Generator
from bench.seed.tables import COLUMNS, Result, Setup, Tables
from bench.seed.vocabulary import (
    ADMIN_EMAIL,
    AGENT_EMAIL,
    AGENTS_PER_TEAM,
    DAY,
    KINDS,
    MANAGER_EMAIL,
    PASSWORD,
    TEAMS,
)
from metrics.services import JOB_CHUNK_DAYS, facts_compute_chunk, local_today
from quality.models import Criterion, QAAnswer, QAReview
from quality.services import (
    local_day_start,
    qa_sample_draw,
    review_score,
    rubric_ensure_default,
    week_start_of,
)
from supportdesk.models import Team, User
from supportdesk.services import staff_create_or_update
from surveys.models import FollowUp, Survey, SurveyResponse, SurveyUnsubscribe
from tickets.models import Contact, Conversation, Customer, Event, Identity, Message
from tickets.services import channel_create_or_update

# Tables emptied by --force-wipe (CASCADE empties what refers to them: QA, ideas, facts...).
WIPE = (
    "tickets_customer",
    "tickets_identity",
    "tickets_conversation",
    "tickets_contact",
    "tickets_message",
    "tickets_event",
    "surveys_survey",
    "surveys_surveyresponse",
    "surveys_followup",
    "surveys_surveyunsubscribe",
    "metrics_dailyfact",
    "metrics_durationbucket",
    "metrics_factday",
    "metrics_dirtyday",
    "metrics_recomputejob",
    "metrics_qasample",
    "supportdesk_notification",
    "supportdesk_outboxitem",
)
# Big tables whose secondary indexes are dropped for the load and rebuilt after it.
REINDEXED = (
    "tickets_identity",
    "tickets_conversation",
    "tickets_contact",
    "tickets_message",
    "tickets_event",
    "surveys_survey",
    "surveys_surveyresponse",
)
LOADED_MODELS = (
    Customer,
    Identity,
    Conversation,
    Contact,
    Message,
    Event,
    Survey,
    SurveyResponse,
    FollowUp,
    SurveyUnsubscribe,
)


class CopyStreams:
    """One open ``COPY ... FROM STDIN`` per table, each on its own connection, fed in chunks."""

    FLUSH_BYTES = 1 << 20

    def __init__(self, tables: dict[str, tuple[str, ...]]) -> None:
        import psycopg

        params = connection.get_connection_params()
        keys = ("dbname", "user", "password", "host", "port")
        conninfo = {k: params[k] for k in keys if params.get(k)}
        self._streams: dict[str, Any] = {}
        self._buffers: dict[str, list[str]] = {}
        self._sizes: dict[str, int] = {}
        for table, columns in tables.items():
            conn = psycopg.connect(**conninfo)
            conn.execute("SET session_replication_role = replica")
            cols = ", ".join(f'"{c}"' for c in columns)
            manager = conn.cursor().copy(f"COPY {table} ({cols}) FROM STDIN")
            self._streams[table] = (conn, manager, manager.__enter__())
            self._buffers[table] = []
            self._sizes[table] = 0

    def write(self, table: str, text: str) -> None:
        buffer = self._buffers[table]
        buffer.append(text)
        self._sizes[table] += len(text)
        if self._sizes[table] >= self.FLUSH_BYTES:
            self._flush(table)

    def _flush(self, table: str) -> None:
        if self._buffers[table]:
            self._streams[table][2].write("".join(self._buffers[table]))
            self._buffers[table] = []
            self._sizes[table] = 0

    def close(self, *, ok: bool) -> None:
        """Commit every COPY (``ok``) or cancel them all. Every connection is closed whatever
        happens: a COPY left open holds its table's lock, and a later TRUNCATE would wait for
        ever. After the first failure (a row the table refuses) the rest are cancelled, and that
        error is raised."""
        error: Exception | None = None
        for table, (conn, manager, _copy) in self._streams.items():
            try:
                if ok and error is None:
                    self._flush(table)
                    manager.__exit__(None, None, None)
                    conn.commit()
                else:
                    conn.cancel()
            except Exception as exc:  # re-raised below, after closing the rest
                error = error or exc
            finally:
                conn.close()
        if error is not None:
            raise error


class Command(BaseCommand):
    help = "Fill an empty database with a large generated desk for the benchmarks (bench/)."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("--conversations", type=int, required=True)
        parser.add_argument(
            "--manifest", default=str(Path(settings.DATA_DIR) / "bench_manifest.json")
        )
        parser.add_argument("--seed", type=int, default=7)
        parser.add_argument("--days", type=int, default=400)
        parser.add_argument(
            "--force-wipe", action="store_true", help="Empty the desk's tables first."
        )
        parser.add_argument("--no-facts", action="store_true", help="Skip the facts recompute.")

    def handle(self, *args: Any, **options: Any) -> None:
        if connection.vendor != "postgresql":
            raise CommandError("bench_seed writes with COPY: it needs PostgreSQL (DATABASE_URL).")
        n = options["conversations"]
        if n < 1:
            raise CommandError("--conversations must be at least 1.")
        if Conversation.objects.exists():
            if not options["force_wipe"]:
                raise CommandError(
                    "This database already holds conversations; bench_seed fills an empty one "
                    "(use --force-wipe to empty it first)."
                )
            self._wipe()
        started = time.monotonic()
        setup, staff = self._setup(days=options["days"])
        self._log(f"Staff, teams and channels ready ({time.monotonic() - started:.1f}s).")

        result = self._load(setup, n=n, seed=options["seed"])
        load_seconds = time.monotonic() - started
        self._log(
            f"Loaded {result.conversations} conversations, {result.messages} messages, "
            f"{result.customers} customers, {result.events} events, {result.surveys} surveys "
            f"in {load_seconds:.1f}s."
        )
        t0 = time.monotonic()
        reviews = self._qa(seed=options["seed"])
        qa_seconds = time.monotonic() - t0
        self._log(f"QA: {reviews} reviews submitted in {qa_seconds:.1f}s.")

        facts_seconds = 0.0
        if not options["no_facts"]:
            t0 = time.monotonic()
            rows = self._facts(days=options["days"])
            facts_seconds = time.monotonic() - t0
            self._log(f"Full facts recompute: {rows} rows in {facts_seconds:.1f}s.")
        today = local_today()
        first_day = datetime.fromtimestamp(setup.now - setup.days * DAY + DAY, UTC)
        manifest = {
            "conversations": result.conversations,
            "messages": result.messages,
            "customers": result.customers,
            "contacts": result.contacts,
            "events": result.events,
            "surveys": result.surveys,
            "survey_responses": result.responses,
            "statuses": result.by_status,
            "days": options["days"],
            "seed": options["seed"],
            "seeded_at": timezone.now().isoformat(),
            "seconds": round(load_seconds, 1),
            "facts_seconds": round(facts_seconds, 1),
            "qa_seconds": round(qa_seconds, 1),
            "total_seconds": round(time.monotonic() - started, 1),
            "password": PASSWORD,
            "tokens": staff["tokens"],
            "channels": staff["channels"],
            "team01_id": setup.team_ids[0],
            "agent000_id": setup.agent_ids[0][0],
            "manager01_id": setup.manager_ids[0],
            "heavy_conversation_id": result.heavy_conversation_id,
            "heavy_customer_id": result.heavy_customer_id,
            "search_phone": result.search_phone,
            "search_email": result.search_email,
            "first_day": first_day.date().isoformat(),
            "last_day": today.isoformat(),
        }
        path = Path(options["manifest"])
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(json.dumps(manifest, indent=2) + "\n")
        self._log(f"Manifest written to {path}.")
        self.stdout.write(
            json.dumps(
                {k: manifest[k] for k in ("conversations", "messages", "seconds", "facts_seconds")}
            )
        )

    def _log(self, text: str) -> None:
        self.stderr.write(text)

    # --- steps ------------------------------------------------------------------------------------

    def _wipe(self) -> None:
        with connection.cursor() as cursor:
            cursor.execute(f"TRUNCATE {', '.join(WIPE)} RESTART IDENTITY CASCADE")
        self._log("Wiped the desk's tables.")

    @transaction.atomic
    def _setup(self, *, days: int) -> tuple[Setup, dict[str, Any]]:
        team_names = [f"Team {i + 1:02d}" for i in range(TEAMS)]
        agent_ids: list[list[int]] = []
        manager_ids: list[int] = []
        tokens: dict[str, str] = {}
        for t, team in enumerate(team_names):
            ids = []
            for a in range(AGENTS_PER_TEAM):
                number = t * AGENTS_PER_TEAM + a
                user, token = staff_create_or_update(
                    email=AGENT_EMAIL.format(number),
                    role="agent",
                    team_names=[team],
                    full_name=f"Agent {number:03d}",
                )
                ids.append(user.pk)
                if number == 0:
                    tokens["agent000"] = token.key
            agent_ids.append(ids)
            manager, token = staff_create_or_update(
                email=MANAGER_EMAIL.format(t + 1),
                role="manager",
                team_names=[team],
                full_name=f"Manager {t + 1:02d}",
            )
            manager_ids.append(manager.pk)
            if t == 0:
                tokens["manager01"] = token.key
        _admin, token = staff_create_or_update(
            email=ADMIN_EMAIL, role="admin", team_names=team_names, full_name="Bench Admin"
        )
        tokens["admin"] = token.key
        # One hash for every account: hashing 221 passwords one by one takes a minute.
        User.objects.filter(email__endswith="@bench.example").update(
            password=make_password(PASSWORD)
        )
        teams = {team.name: team.pk for team in Team.objects.filter(name__in=team_names)}
        channel_ids: dict[tuple[int, str], int] = {}
        channels: dict[str, Any] = {}
        for t, team in enumerate(team_names):
            for kind in KINDS:
                channel = channel_create_or_update(
                    kind=kind,
                    name=f"{team} {kind}",
                    team_name=team,
                    address=f"team{t + 1:02d}@bench.example" if kind == "email" else None,
                )
                channel_ids[(t, kind)] = channel.pk
                if t == 0:
                    channels[kind] = {"id": channel.pk, "secret": channel.secret, "team": team}
        rubric_ensure_default()
        setup = Setup(
            team_ids=[teams[name] for name in team_names],
            agent_ids=agent_ids,
            manager_ids=manager_ids,
            channel_ids=channel_ids,
            now=int(time.time()),
            days=days,
        )
        return setup, {"tokens": tokens, "channels": channels}

    def _secondary_indexes(self) -> list[tuple[str, str]]:
        with connection.cursor() as cursor:
            cursor.execute(
                """
                SELECT i.indexrelid::regclass::text, pg_get_indexdef(i.indexrelid)
                FROM pg_index i JOIN pg_class t ON t.oid = i.indrelid
                WHERE t.relname = ANY(%s) AND NOT i.indisprimary
                  AND NOT EXISTS (SELECT 1 FROM pg_constraint c WHERE c.conindid = i.indexrelid)
                ORDER BY 1
                """,
                [list(REINDEXED)],
            )
            return list(cursor.fetchall())

    def _load(self, setup: Setup, *, n: int, seed: int) -> Result:
        indexes = self._secondary_indexes()
        with connection.cursor() as cursor:
            for name, _definition in indexes:
                cursor.execute(f"DROP INDEX IF EXISTS {name}")
        ok = False
        streams = CopyStreams(COLUMNS)
        try:
            generator = Generator(
                setup=setup, conversations=n, seed=seed, out=Tables(write=streams.write)
            )
            with tqdm(total=n, desc="conversations", unit="conv", file=sys.stderr) as bar:
                result = generator.run(progress=bar.update)
            ok = True
        finally:
            t0 = time.monotonic()
            streams.close(ok=ok)
            self._log(f"COPY finished {time.monotonic() - t0:.1f}s after the generator.")
            t0 = time.monotonic()
            with connection.cursor() as cursor:
                cursor.execute("SET maintenance_work_mem = '512MB'")
                for _name, definition in tqdm(indexes, desc="indexes", file=sys.stderr):
                    cursor.execute(
                        definition.replace(
                            "CREATE INDEX ", "CREATE INDEX IF NOT EXISTS ", 1
                        ).replace("CREATE UNIQUE INDEX ", "CREATE UNIQUE INDEX IF NOT EXISTS ", 1)
                    )
                cursor.execute("RESET maintenance_work_mem")
            self._log(f"Rebuilt {len(indexes)} indexes in {time.monotonic() - t0:.1f}s.")
        with connection.cursor() as cursor:
            for sql in connection.ops.sequence_reset_sql(no_style(), LOADED_MODELS):
                cursor.execute(sql)
            t0 = time.monotonic()
            cursor.execute("ANALYZE")
            self._log(f"ANALYZE in {time.monotonic() - t0:.1f}s.")
        return result

    def _facts(self, *, days: int) -> int:
        """The nightly recompute's work (``facts_recompute_retention`` runs the same chunks of
        ``JOB_CHUNK_DAYS`` in the worker, on ``METRICS_RECOMPUTE_CONNECTIONS`` connections), run
        here in the foreground and timed."""
        today = local_today()
        first = today - timedelta(days=min(days, settings.METRICS_RETENTION_DAYS) - 1)
        written = 0
        day = first
        chunks = -(-((today - first).days + 1) // JOB_CHUNK_DAYS)
        with tqdm(total=chunks, desc="facts", unit="chunk", file=sys.stderr) as bar:
            while day <= today:
                end = min(day + timedelta(days=JOB_CHUNK_DAYS), today + timedelta(days=1))
                written += facts_compute_chunk(day_from=day, day_to=end)
                day = end
                bar.update(1)
        return written

    def _qa(self, *, seed: int, weeks: int = 6) -> int:
        """Weekly QA samples of the last weeks, drawn by ``qa_sample_draw``; most of the reviews
        scored, as ``qa_review_submit`` scores them (``review_score``), in bulk and without the
        notifications (history, like ``survey_record_past``). This week's sample stays to do."""
        rng = random.Random(seed)
        this_week = week_start_of(local_today())
        now = timezone.now()
        submitted = 0
        for weeks_back in range(weeks, -1, -1):
            week: date = this_week - timedelta(days=7 * weeks_back)
            sample = qa_sample_draw(week_start=week, seed=f"bench-{week.isoformat()}")
            if weeks_back == 0:
                continue
            reviews = list(
                sample.reviews.filter(state=QAReview.State.PENDING)
                .select_related("rubric")
                .order_by("pk")
            )
            criteria: dict[int, list[Criterion]] = {}
            answers: list[QAAnswer] = []
            done: list[QAReview] = []
            for review in reviews:
                if rng.random() < 0.15:
                    continue  # never got to it
                if review.rubric_id not in criteria:
                    criteria[review.rubric_id] = list(review.rubric.criteria.all())
                values: list[tuple[Criterion, int | None]] = []
                for criterion in criteria[review.rubric_id]:
                    low, high = criterion.bounds
                    roll = rng.random()
                    if criterion.allow_na and roll < 0.08:
                        value = None
                    elif roll < 0.75:
                        value = high
                    else:
                        value = rng.randint(low, high)
                    values.append((criterion, value))
                    answers.append(QAAnswer(review=review, criterion=criterion, value=value))
                review.score, review.critical_failed = review_score(values)
                review.submitted_at = min(
                    now, local_day_start(week) + timedelta(days=7, hours=rng.randrange(8, 120))
                )
                review.state = QAReview.State.SUBMITTED
                done.append(review)
            with transaction.atomic():
                QAAnswer.objects.bulk_create(answers, batch_size=2000)
                QAReview.objects.bulk_update(
                    done, ["score", "critical_failed", "submitted_at", "state"], batch_size=1000
                )
            submitted += len(done)
        return submitted
