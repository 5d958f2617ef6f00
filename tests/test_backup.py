"""Backups against the real PostgreSQL: pg_dump -Fc streamed to disk, verified, retention, /backup.

Each test makes its own source database (opsbot_bk_*, rows in it) on the server at
127.0.0.1:5432 and drops it afterwards; files go to the test's tmp_path. The pg_backup kind
is driven directly (plan, execute) and through /backup; the Docker variant runs pg_dump in
the fleet's PostgreSQL client container (tests/.fleet.env OPSBOT_FLEET_PGCLIENT) through
the Docker exec API. Retention runs on a ManualClock. No mocks of PostgreSQL or Docker.
"""
from __future__ import annotations

import asyncio
import hashlib
import re
import uuid
from datetime import datetime, timedelta, timezone
from pathlib import Path

import asyncpg
import pytest
import pytest_asyncio
import yaml
from conftest import PG_ADMIN_DSN, PG_USER, fleet
from sqlalchemy import select, update

from bot.action.kinds.base import ExecutionReport, PlanContext, RunContext
from bot.action.kinds.pg_backup import KIND as PG_BACKUP
from bot.action.params import parse_params
from bot.backup import dump as pg
from bot.backup import service as backups
from bot.backup.models import Backup
from bot.backup.stores import store_for
from bot.pipeline.reply import Outcome
from bot.pipeline.request import Request
from bot.schedule.clock import ManualClock

ROLES = {"ops": {"users": ["UOPS1", "UOPS2", "UOPS3"]}, "dev": {"users": ["UDEV1"]}}
ROWS = 500


# --------------------------------------------------------------------------- helpers shared with test_restore


def dsn_of(name: str) -> str:
    return f"postgresql://{PG_USER}@127.0.0.1:5432/{name}"


class Databases:
    """Databases a test creates on the real server; dropped (WITH FORCE) at teardown."""

    def __init__(self):
        self.made: list[str] = []

    def name(self, prefix: str = "opsbot_bk") -> str:
        name = f"{prefix}_{uuid.uuid4().hex[:10]}"
        self.made.append(name)
        return name

    async def create(self, rows: int = ROWS, prefix: str = "opsbot_bk") -> str:
        name = self.name(prefix)
        admin = await asyncpg.connect(PG_ADMIN_DSN, timeout=5)
        try:
            await admin.execute(f'CREATE DATABASE "{name}"')
        finally:
            await admin.close()
        conn = await asyncpg.connect(dsn_of(name), timeout=5)
        try:
            await conn.execute("CREATE TABLE orders (id int PRIMARY KEY, customer text NOT NULL, total numeric(10,2) NOT NULL)")
            await conn.execute(
                "INSERT INTO orders SELECT g, 'customer ' || g, g * 1.25 FROM generate_series(1, $1) g", rows
            )
        finally:
            await conn.close()
        return name

    async def drop_all(self) -> None:
        admin = await asyncpg.connect(PG_ADMIN_DSN, timeout=5)
        try:
            for name in self.made:
                await admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        finally:
            await admin.close()


async def fetch(name: str, sql: str, *args):
    conn = await asyncpg.connect(dsn_of(name), timeout=5)
    try:
        return await conn.fetchval(sql, *args)
    finally:
        await conn.close()


async def execute_sql(name: str, sql: str, *args) -> None:
    conn = await asyncpg.connect(dsn_of(name), timeout=5)
    try:
        await conn.execute(sql, *args)
    finally:
        await conn.close()


@pytest_asyncio.fixture
async def pg_databases():
    made = Databases()
    yield made
    await made.drop_all()


def config_yaml(databases: dict, directory: Path, *, services: dict | None = None, retention: dict | None = None, actions: dict | None = None) -> str:
    body = {
        "version": 1,
        "services": services or {},
        "roles": ROLES,
        "databases": {name: {"owners": ["ops"], **spec} for name, spec in databases.items()},
        "backups": {"directory": str(directory), **({"retention": retention} if retention else {})},
    }
    if actions:
        body["actions"] = actions
    return yaml.safe_dump(body, sort_keys=False)


class Recorder:
    """progress() and audit_step() of a RunContext, kept for assertions."""

    def __init__(self):
        self.progress: list[str] = []
        self.steps: list[tuple[str, str]] = []

    async def on_progress(self, text: str) -> None:
        self.progress.append(text)

    async def on_step(self, outcome: str, detail: str) -> None:
        self.steps.append((outcome, detail))

    def context(self, bot, user: str = "UOPS1") -> RunContext:
        return RunContext(bot, None, user, "C1", self.on_progress, self.on_step)


async def plan_of(kind, bot, action: str, raw: dict[str, str], user: str = "UOPS1"):
    spec = bot.config.action(action)
    params = parse_params(kind.params(spec), raw, bot.config)
    return spec, await kind.plan(PlanContext(bot, user), action, spec, params)


async def run_kind(kind, bot, action: str, raw: dict[str, str], user: str = "UOPS1") -> tuple[ExecutionReport, Recorder]:
    spec, plan = await plan_of(kind, bot, action, raw, user)
    assert await kind.recheck(PlanContext(bot, user), spec, plan) is None
    recorder = Recorder()
    report = await kind.execute(recorder.context(bot, user), spec, plan)
    return report, recorder


async def rows_of(bot) -> list[Backup]:
    async with bot.db.sessions() as session:
        return list((await session.execute(select(Backup).order_by(Backup.id))).scalars())


async def command(bot, user: str, name: str, text: str):
    """A slash command through the bot's pipeline."""
    return await bot.handle(Request(user, "C1", name, text, "console"))


def one_sentence(text: str) -> None:
    assert text.count("\n") == 0 and text.strip().endswith("."), text
    assert "Traceback" not in text


# --------------------------------------------------------------------------- the pg_backup kind


async def test_backup_through_the_kind_streams_verifies_and_records(make_bot, pg_databases, tmp_path, monkeypatch):
    source = await pg_databases.create()
    bot = await make_bot(config_yaml({"app": {"dsn": dsn_of(source)}}, tmp_path / "backups"))
    monkeypatch.setattr(pg, "PROGRESS_EVERY", 0.001)  # a tiny dump still reports progress once
    spec, plan = await plan_of(PG_BACKUP, bot, "backup", {"database": "app", "label": "before migration 42"})
    assert [s["step"] for s in plan.steps] == ["dump", "verify", "retention"]
    assert [t.key for t in plan.targets] == ["database:app"]
    assert plan.confirm is None and spec.approval.approvals == 0
    described = PG_BACKUP.describe(plan)
    assert "pg_dump --format=custom (local client)" in described[0]

    report, recorder = await run_kind(PG_BACKUP, bot, "backup", {"database": "app", "label": "before migration 42"})
    assert report.succeeded, report.summary()
    [row] = await rows_of(bot)
    assert re.fullmatch(r"app_\d{8}_\d{6}_[0-9a-f]{6}\.dump", row.file), row.file  # relative to backups.directory
    path = backups.path_of(bot.config, row)
    assert path.parent == (tmp_path / "backups").resolve()
    assert not list(path.parent.glob("*.partial"))
    data = path.read_bytes()
    assert data[:5] == b"PGDMP"
    assert row.size == len(data) and row.sha256 == hashlib.sha256(data).hexdigest()
    assert row.verified and row.verify_error is None
    assert row.made_by == "UOPS1" and row.label == "before migration 42" and row.database == "app"
    assert row.created_at.tzinfo is not None and row.duration > 0
    assert f"backup #{row.id}" in report.summary() and "verified" in report.summary()
    assert [outcome for outcome, _ in recorder.steps] == ["dumped", "verified", "retention"]
    assert recorder.progress and "app:" in recorder.progress[0]
    # The archive holds the rows: pg_restore --list names the table's data.
    assert await pg.restore_list(None, pg.connection(bot.config, "app"), path) is None


async def test_every_database_when_none_is_named(make_bot, pg_databases, tmp_path):
    first, second = await pg_databases.create(rows=10), await pg_databases.create(rows=10)
    bot = await make_bot(config_yaml({"alpha": {"dsn": dsn_of(first)}, "beta": {"dsn": dsn_of(second)}}, tmp_path / "b"))
    _, plan = await plan_of(PG_BACKUP, bot, "backup", {})
    assert plan.subject == "all databases"
    assert [t.key for t in plan.targets] == ["database:alpha", "database:beta"]
    assert [(s["step"], s["database"]) for s in plan.steps] == [
        ("dump", "alpha"), ("verify", "alpha"), ("retention", "alpha"),
        ("dump", "beta"), ("verify", "beta"), ("retention", "beta"),
    ]
    report, _ = await run_kind(PG_BACKUP, bot, "backup", {})
    assert report.succeeded and len(report.steps) == 2
    assert sorted(r.database for r in await rows_of(bot)) == ["alpha", "beta"]


async def test_a_failed_dump_keeps_no_file_and_no_row(make_bot, pg_databases, tmp_path):
    missing = pg_databases.name()  # never created
    folder = tmp_path / "backups"
    bot = await make_bot(config_yaml({"gone": {"dsn": dsn_of(missing)}}, folder))
    report, recorder = await run_kind(PG_BACKUP, bot, "backup", {"database": "gone"})
    assert not report.succeeded
    assert "pg_dump of gone failed (exit 1" in report.summary() and "no backup was kept" in report.summary()
    assert f'database "{missing}" does not exist' in report.summary()
    assert await rows_of(bot) == []
    assert not list(folder.glob("*")) if folder.exists() else True
    assert recorder.steps[0][0] == "failed"


async def test_two_backups_started_in_the_same_second_get_their_own_files(make_bot, pg_databases, tmp_path):
    # A schedule and a deploy's backup_first at one instant: no name is shared, so retention of one never takes the other.
    source = await pg_databases.create(rows=10)
    bot = await make_bot(config_yaml({"app": {"dsn": dsn_of(source)}}, tmp_path / "backups"), clock=ManualClock(day(0)))
    # Two replicas sharing the directory each choose a name before either writes: nothing is reserved between.
    store = store_for(bot.config)
    assert len({await store.new_file("app", day(0)), await store.new_file("app", day(0))}) == 2
    first, second = await asyncio.gather(
        backups.make_backup(bot, "app", made_by="schedule:nightly"), backups.make_backup(bot, "app", made_by="UOPS1")
    )
    assert first.created_at == second.created_at and first.file != second.file, (first.file, second.file)
    assert first.file.rsplit("_", 1)[0] == second.file.rsplit("_", 1)[0] == "app_20260101_020000"  # the time leads the name
    for row in (first, second):
        assert row.verified, row.verify_error
        data = backups.path_of(bot.config, row).read_bytes()
        assert row.size == len(data) and row.sha256 == hashlib.sha256(data).hexdigest()
        checked = await backups.verify_backup(bot, row.id)
        assert checked.ok, (checked.problem, checked.unchecked)
    assert not list((tmp_path / "backups").glob("*.partial"))


async def test_the_password_travels_in_the_environment_not_the_arguments(monkeypatch):
    monkeypatch.setenv("OPSBOT_TEST_BK_DSN", "postgresql://app:s3cr%40t@db.internal:6432/appdb?sslmode=require")
    from bot.config.loader import parse_config

    config = parse_config(yaml.safe_dump({"version": 1, "databases": {"app": {"dsn": "${OPSBOT_TEST_BK_DSN}"}}}))
    conn = pg.connection(config, "app")
    assert conn.password == "s3cr@t"
    assert conn.conninfo == "postgresql://app@db.internal:6432/appdb?sslmode=require"
    assert "s3cr" not in conn.conninfo and conn.dbname == "appdb"
    assert pg.client_env(conn)["PGPASSWORD"] == "s3cr@t"
    assert conn.with_dbname("scratch").conninfo == "postgresql://app@db.internal:6432/scratch?sslmode=require"


# --------------------------------------------------------------------------- verification


async def test_verify_catches_truncated_and_corrupted_files(make_bot, pg_databases, tmp_path):
    source = await pg_databases.create(rows=5000)
    bot = await make_bot(config_yaml({"app": {"dsn": dsn_of(source)}}, tmp_path / "backups"))
    report, _ = await run_kind(PG_BACKUP, bot, "backup", {"database": "app"})
    assert report.succeeded, report.summary()
    [row] = await rows_of(bot)
    good = await backups.verify_backup(bot, row.id)
    assert good.ok and good.backup.verified

    path = backups.path_of(bot.config, row)
    original = path.read_bytes()
    # Truncated: the size and checksum no longer match; the row says so.
    path.write_bytes(original[: len(original) // 2])
    truncated = await backups.verify_backup(bot, row.id)
    assert not truncated.ok and "truncated" in truncated.problem
    assert not (await backups.get_backup(bot.db, row.id)).verified

    # One byte flipped in the middle: same size, another SHA-256.
    corrupted = bytearray(original)
    corrupted[len(corrupted) // 2] ^= 0xFF
    path.write_bytes(bytes(corrupted))
    bad = await backups.verify_backup(bot, row.id)
    assert not bad.ok and "SHA-256 does not match" in bad.problem

    # Even a row whose checksum was taken of the truncated file fails: pg_restore reads every block.
    cut = original[: len(original) - 200]
    path.write_bytes(cut)
    async with bot.db.sessions() as session, session.begin():
        await session.execute(update(Backup).where(Backup.id == row.id).values(size=len(cut), sha256=hashlib.sha256(cut).hexdigest()))
    unreadable = await backups.verify_backup(bot, row.id)
    assert not unreadable.ok and "pg_restore" in unreadable.problem, unreadable.problem

    path.write_bytes(original)
    async with bot.db.sessions() as session, session.begin():
        await session.execute(update(Backup).where(Backup.id == row.id).values(size=len(original), sha256=hashlib.sha256(original).hexdigest()))
    assert (await backups.verify_backup(bot, row.id)).ok

    # A file this replica cannot see is no finding about the backup: the row stays verified.
    path.unlink()
    missing = await backups.verify_backup(bot, row.id)
    assert not missing.ok and missing.problem is None and "this replica cannot see its file" in missing.unchecked
    assert (await backups.get_backup(bot.db, row.id)).verified


# --------------------------------------------------------------------------- retention


def day(n: int, hour: int = 2) -> datetime:
    # 2026-01-01 is a Thursday; day(36) is Friday 2026-02-06 (ISO week 6).
    return datetime(2026, 1, 1, hour, tzinfo=timezone.utc) + timedelta(days=n)


async def test_retention_keeps_days_weeks_and_never_the_newest_verified(make_bot, pg_databases, tmp_path):
    source = await pg_databases.create(rows=10)
    clock = ManualClock(day(0))
    folder = tmp_path / "backups"
    bot = await make_bot(config_yaml({"app": {"dsn": dsn_of(source)}}, folder), clock=clock)
    made: dict[str, Backup] = {}
    for key, at in [("d0a", day(0)), ("d0b", day(0, 14)), ("d1", day(1)), ("d2", day(2)), ("d10", day(10)),
                    ("d20", day(20)), ("d33", day(33)), ("d35a", day(35)), ("d35b", day(35, 9))]:
        clock.advance(at - clock.now())
        made[key] = await backups.make_backup(bot, "app", made_by="schedule:nightly")
        assert made[key].verified
    clock.advance(day(36) - clock.now())
    ids = {key: b.id for key, b in made.items()}

    dry = await backups.apply_retention(bot, "app", dry_run=True)
    # Daily for 7 days: d33 and d35b (newest of 2026-02-05); weekly for 4 weeks: d20 (week 4);
    # d35b is also week 6's newest, d33 week 6 too -> only by the daily rule. Older than 30 days: d0a, d0b, d1, d2.
    assert sorted(b.id for b in dry.keep) == sorted([ids["d33"], ids["d35b"], ids["d20"]])
    assert sorted(b.id for b in dry.delete) == sorted([ids[k] for k in ("d0a", "d0b", "d1", "d2", "d10", "d35a")])
    assert all(backups.path_of(bot.config, b).exists() for b in made.values()), "a dry run deletes nothing"

    done = await backups.apply_retention(bot, "app")
    assert sorted(b.id for b in done.delete) == sorted(b.id for b in dry.delete)
    for key, backup in made.items():
        assert backups.path_of(bot.config, backup).exists() == (key in ("d33", "d35b", "d20")), key
    rows = {r.id: r for r in await rows_of(bot)}
    assert rows[ids["d0a"]].deleted_at == day(36) and rows[ids["d35b"]].deleted_at is None
    assert [b.id for b in await backups.list_backups(bot.db, "app")] == [ids["d35b"], ids["d33"], ids["d20"]]

    # Much later, every remaining backup is past max_age_days, and the newer ones did not verify:
    # the newest VERIFIED one stays whatever its age.
    async with bot.db.sessions() as session, session.begin():
        await session.execute(update(Backup).where(Backup.id.in_([ids["d35b"], ids["d33"]])).values(verified=False))
    clock.advance(timedelta(days=200))
    late = await backups.apply_retention(bot, "app")
    assert [b.id for b in late.keep] == [ids["d20"]]
    assert late.reasons[ids["d20"]] == "newest verified backup"
    assert backups.path_of(bot.config, made["d20"]).exists()
    assert not backups.path_of(bot.config, made["d35b"]).exists() and not backups.path_of(bot.config, made["d33"]).exists()


async def test_retention_runs_after_each_backup_of_the_kind(make_bot, pg_databases, tmp_path):
    source = await pg_databases.create(rows=10)
    clock = ManualClock(day(0))
    # min_age 1h: the three hours between the two backups are past it (test_retention_never_takes_... covers min_age).
    bot = await make_bot(config_yaml({"app": {"dsn": dsn_of(source)}}, tmp_path / "b", retention={"min_age": "1h"}), clock=clock)
    first, _ = await run_kind(PG_BACKUP, bot, "backup", {"database": "app"})
    clock.advance(timedelta(hours=3))
    second, recorder = await run_kind(PG_BACKUP, bot, "backup", {"database": "app"})
    assert first.succeeded and second.succeeded
    older, newer = await rows_of(bot)
    # Same day: only the newest of the day is kept.
    assert older.deleted_at is not None and not backups.path_of(bot.config, older).exists()
    assert newer.deleted_at is None and backups.path_of(bot.config, newer).exists()
    assert f"retention deleted 1 (#{older.id})" in second.summary()
    assert ("retention", f"app: kept 1, deleted 1: #{older.id}") in recorder.steps


# --------------------------------------------------------------------------- /backup


async def test_backup_commands_list_verify_retention_and_bad_input(make_bot, pg_databases, tmp_path):
    source = await pg_databases.create(rows=10)
    bot = await make_bot(config_yaml({"app": {"dsn": dsn_of(source)}}, tmp_path / "b"))
    made = await backups.make_backup(bot, "app", made_by="UOPS1", label="nightly")

    listing = await command(bot, "UOPS1", "backup", "list")
    assert listing.outcome == Outcome.ok, listing.text
    assert f"#{made.id}" in listing.text and made.file_name in listing.text and "(nightly)" in listing.text
    assert "verified" in listing.text and "yes" in listing.text and "UOPS1" in listing.text

    verified = await command(bot, "UOPS1", "backup", f"verify {made.id}")
    assert verified.outcome == Outcome.ok and f"Backup #{made.id}" in verified.text and "verified" in verified.text
    backups.path_of(bot.config, made).write_bytes(backups.path_of(bot.config, made).read_bytes()[:100])
    failed = await command(bot, "UOPS1", "backup", f"verify {made.id}")
    assert failed.outcome == Outcome.critical and "FAILED verification" in failed.text

    dry = await command(bot, "UOPS1", "backup", "retention app --dry-run")
    assert "app: keeps 1, would delete 0" in dry.text

    for text, expected in [
        ("nosuch", "Unknown database 'nosuch'. Known: app."),
        ("list nosuch", "Unknown database 'nosuch'. Known: app."),
        ("verify 999999", "There is no backup #999999; /backup list shows them."),
        ("verify abc", "'abc' is not a backup id; /backup list shows them."),
        ("retention nosuch --dry-run", "Unknown database 'nosuch'. Known: app."),
    ]:
        reply = await command(bot, "UOPS1", "backup", text)
        assert reply.text == expected, (text, reply.text)
        one_sentence(reply.text)
    # Outside the database's owners: refused, nothing listed.
    denied = await command(bot, "UDEV1", "backup", "list app")
    assert denied.outcome == Outcome.denied and made.file_name not in denied.text


async def test_backup_command_requests_the_backup_action(make_bot, pg_databases, tmp_path):
    """/backup app goes through request_action (approvals 0 by default): it runs and reports."""
    source = await pg_databases.create(rows=10)
    bot = await make_bot(config_yaml({"app": {"dsn": dsn_of(source)}}, tmp_path / "b"))
    reply = await command(bot, "UOPS1", "backup", 'app --label "via the command"')
    rows = await rows_of(bot)
    assert len(rows) == 1, reply.text
    assert rows[0].verified and rows[0].label == "via the command" and rows[0].made_by == "UOPS1"
    assert "Succeeded" in reply.text and f'backup #{rows[0].id} "via the command" {rows[0].file_name}' in reply.text, reply.text


# --------------------------------------------------------------------------- in a container (Docker exec)


async def test_pg_dump_runs_in_the_database_container_through_docker_exec(make_bot, pg_databases, tmp_path):
    values = fleet()
    container = values.get("OPSBOT_FLEET_PGCLIENT")
    if not container:
        pytest.fail("tests/.fleet.env has no OPSBOT_FLEET_PGCLIENT: run scripts/test-env.sh (make test does) to build the pg client container.")
    source = await pg_databases.create(rows=2000)
    bot = await make_bot(config_yaml({"app": {"dsn": dsn_of(source), "container": container}}, tmp_path / "b"))
    _, plan = await plan_of(PG_BACKUP, bot, "backup", {"database": "app"})
    assert plan.steps[0]["via"] == f"container {container}"
    report, _ = await run_kind(PG_BACKUP, bot, "backup", {"database": "app"})
    assert report.succeeded, report.summary()
    [row] = await rows_of(bot)
    data = backups.path_of(bot.config, row).read_bytes()
    assert data[:5] == b"PGDMP" and row.sha256 == hashlib.sha256(data).hexdigest() and row.verified
    # The same file read back by the container's pg_restore, streamed in through stdin.
    conn = pg.connection(bot.config, "app")
    code, err = await bot.checks.docker.exec_stream(container, ["pg_restore", "--list"], lambda chunk: None, stdin_path=str(backups.path_of(bot.config, row)))
    assert code == 0, err
    # A failing pg_dump in the container is reported with its exit code and stderr, and keeps nothing.
    bot.config.databases["app"] = bot.config.databases["app"].model_copy(update={"dsn": dsn_of(pg_databases.name())})
    failed, _ = await run_kind(PG_BACKUP, bot, "backup", {"database": "app"})
    assert not failed.succeeded and f"container {container}" in failed.summary() and "does not exist" in failed.summary()
    assert len(await rows_of(bot)) == 1
    assert conn.container == container


# --------------------------------------------------------------------------- DSNs, secrets, error lines


async def test_an_sqlalchemy_dsn_and_secret_query_parameters_never_reach_the_arguments(monkeypatch):
    from bot.config.loader import parse_config

    monkeypatch.setenv(
        "OPSBOT_TEST_BK_URL", "postgresql+asyncpg://app:userinfo-pw@db.internal:6432/appdb?sslmode=require&password=query-pw&sslpassword=key-pass"
    )
    config = parse_config(yaml.safe_dump({"version": 1, "databases": {"app": {"dsn": "${OPSBOT_TEST_BK_URL}"}}}))
    conn = pg.connection(config, "app")
    assert conn.conninfo == "postgresql://app@db.internal:6432/appdb?sslmode=require"
    assert conn.dsn.startswith("postgresql://app:userinfo-pw@") and conn.dbname == "appdb"
    env = pg.client_env(conn)
    assert env["PGPASSWORD"] == "query-pw"  # the query's password wins, as in libpq
    assert "key-pass" not in " ".join(env.values())
    # sslpassword has no environment variable: a private service file for the local client...
    with pg.client_environment(conn, pg.LocalRunner()) as local:
        service = Path(local["PGSERVICEFILE"])
        assert local["PGSERVICE"] == "opsbot" and "sslpassword=key-pass" in service.read_text()
        assert service.stat().st_mode & 0o077 == 0
    assert not service.exists()
    # ...and a refusal in a container, where it could only go on the command line.
    with pytest.raises(pg.BackupError, match="sslpassword="):
        with pg.client_environment(conn, pg.DockerRunner(None, "db-container")):
            pass
    assert conn.with_dbname("scratch").conninfo == "postgresql://app@db.internal:6432/scratch?sslmode=require"


async def test_a_database_given_as_postgresql_asyncpg_is_dumped_and_restored(make_bot, pg_databases, tmp_path, monkeypatch):
    """${DATABASE_URL} in SQLAlchemy's spelling works for pg_dump, pg_restore and the admin connection."""
    from bot.backup.restore import database_exists, restore_backup

    source = await pg_databases.create(rows=10)
    scratch = pg_databases.name("opsbot_scratch")
    monkeypatch.setenv("OPSBOT_TEST_BK_ASYNCPG", f"postgresql+asyncpg://{PG_USER}:unused-pw@127.0.0.1:5432/{source}?password=unused-pw")
    bot = await make_bot(config_yaml({"app": {"dsn": "${OPSBOT_TEST_BK_ASYNCPG}"}}, tmp_path / "b"))
    made = await backups.make_backup(bot, "app", made_by="UOPS1")
    assert made.verified, made.verify_error
    conn = pg.connection(bot.config, "app")
    assert await database_exists(conn, source)
    await restore_backup(bot, made, into=scratch)
    assert await fetch(scratch, "SELECT count(*) FROM orders") == 10


async def test_an_unusable_admin_dsn_is_one_sentence():
    from bot.backup.restore import database_exists

    conn = pg.Connection("app", "postgresql://u@127.0.0.1/db", "s3cret-pw", "db", None, "postgresql://u:s3cret-pw@127.0.0.1:notaport/db")
    with pytest.raises(pg.BackupError) as caught:
        await database_exists(conn, "x")
    text = str(caught.value)
    assert text.startswith("cannot connect to app (") and "\n" not in text and "s3cret-pw" not in text


def test_the_error_line_is_the_last_error_with_its_detail_redacted():
    stderr = (
        "pg_restore: connecting to database for restore\n"
        "pg_restore: error: could not execute query: ERROR:  role \"x\" does not exist\n"
        "DETAIL:  Key (id)=(1) already exists.\n"
        "Command was: ALTER ROLE x PASSWORD 'hunter2secret';\n"
    )
    line = pg._error_line(stderr)
    assert line.startswith('pg_restore: error: could not execute query: ERROR:  role "x" does not exist DETAIL:  Key (id)=(1)')
    assert "hunter2secret" not in line and "Command was" not in line
    assert pg._error_line("pg_dump: error: connection to server failed: password=hunter2secret\n") == "pg_dump: error: connection to server failed: password=[REDACTED]"
    assert pg._error_line("just one line\n") == "just one line"
    assert pg._error_line("") == "no error output"


# --------------------------------------------------------------------------- timeouts


async def _locked(name: str):
    """A transaction holding an ACCESS EXCLUSIVE lock on orders: pg_dump and pg_restore wait for it."""
    holder = await asyncpg.connect(dsn_of(name), timeout=5)
    await holder.execute("BEGIN; LOCK TABLE orders IN ACCESS EXCLUSIVE MODE")
    return holder


async def test_a_local_timeout_stops_the_client_and_keeps_nothing(pg_databases, tmp_path):
    source = await pg_databases.create(rows=10)
    conn = pg.Connection("app", dsn_of(source), None, source, None, dsn_of(source))
    holder = await _locked(source)
    try:
        with pytest.raises(pg.BackupError) as caught:
            await pg.dump(None, conn, tmp_path / "x.dump", timeout=1)
    finally:
        await holder.close()
    assert str(caught.value) == "pg_dump of app was still running after 1 s and was stopped; no backup was kept."
    assert not isinstance(caught.value, pg.StillRunning)
    assert not list(tmp_path.glob("x.dump*"))


async def test_a_timeout_in_a_container_says_it_may_still_be_running(pg_databases, tmp_path):
    container = fleet().get("OPSBOT_FLEET_PGCLIENT")
    if not container:
        pytest.fail("tests/.fleet.env has no OPSBOT_FLEET_PGCLIENT: run scripts/test-env.sh (make test does) to build the pg client container.")
    from bot.docker_engine import DockerGateway

    docker_gateway = DockerGateway(max_workers=4)
    source = await pg_databases.create(rows=10)
    local = pg.Connection("app", dsn_of(source), None, source, None, dsn_of(source))
    backup = tmp_path / "good.dump"
    await pg.dump(None, local, backup)
    conn = pg.Connection("app", dsn_of(source), None, source, container, dsn_of(source))
    holder = await _locked(source)
    try:
        with pytest.raises(pg.StillRunning) as dumped:
            await pg.dump(docker_gateway, conn, tmp_path / "x.dump", timeout=1)
        with pytest.raises(pg.StillRunning) as restored:
            await pg.restore(docker_gateway, conn, backup, clean=True, timeout=1)
    finally:
        await holder.close()
    text = str(dumped.value)
    assert "was stopped" not in text and f"may still be running in container {container} (check there by hand)" in text
    assert text.endswith("; no backup was kept.")
    assert not list(tmp_path.glob("x.dump*"))
    text = str(restored.value)
    assert "rolls back" not in text and f"may still be running in container {container}" in text
    assert "the database may change when it finishes" in text
    assert restored.value.container == f"container {container}"


def test_a_restore_timeout_in_a_container_is_not_reported_as_unchanged():
    from bot.action.kinds.base import Plan
    from bot.action.kinds.pg_restore import _where_things_stand

    steps = [{"step": "restore", "backup": 7, "into": "appdb"}, {"step": "report"}]
    plan = Plan(action="restore", kind="pg_restore", subject="app", params={}, steps=steps, targets=[])
    state = {"stopped": ["backend"], "safety": 8, "restored": False, "running": "container pg"}
    where = _where_things_stand(plan, steps[0], state)
    assert "unchanged" not in where and "may still change: pg_restore may still be running in container pg" in where
    state["running"] = None
    assert "is unchanged (pg_restore runs in one transaction)" in _where_things_stand(plan, steps[0], state)


# --------------------------------------------------------------------------- verify that cannot run


async def test_verify_that_cannot_run_leaves_the_flag_and_says_so(make_bot, pg_databases, tmp_path, monkeypatch):
    source = await pg_databases.create(rows=10)
    bot = await make_bot(config_yaml({"app": {"dsn": dsn_of(source), "container": "opsbot-test-no-such-container"}}, tmp_path / "b"))
    # Made with the local client; then verified where no pg_restore can run: no local client, no such container.
    from dataclasses import replace

    made = await backups.make_backup(bot, "app", made_by="UOPS1", conn=replace(pg.connection(bot.config, "app"), container=None))
    assert made.verified
    real_which = pg.shutil.which
    monkeypatch.setattr(pg.shutil, "which", lambda name: None if name == "pg_restore" else real_which(name))
    result = await backups.verify_backup(bot, made.id)
    assert not result.ok and result.problem is None and "opsbot-test-no-such-container" in result.unchecked
    assert (await backups.get_backup(bot.db, made.id)).verified  # not a finding about the file
    reply = await command(bot, "UOPS1", "backup", f"verify {made.id}")
    assert reply.outcome == Outcome.error and "could not be checked" in reply.text and "stays marked verified" in reply.text
    one_sentence(reply.text)
    # A file that is bad is still found bad without pg_restore: the checksum needs no client.
    backups.path_of(bot.config, made).write_bytes(b"PGDMP broken")
    bad = await backups.verify_backup(bot, made.id)
    assert bad.problem and not (await backups.get_backup(bot.db, made.id)).verified


async def test_a_scratch_safety_backup_is_verified_by_checksum_and_said_so(make_bot, pg_databases, tmp_path):
    source = await pg_databases.create(rows=10)
    bot = await make_bot(config_yaml({"app": {"dsn": dsn_of(source)}}, tmp_path / "b"))
    conn = pg.connection(bot.config, "app").with_dbname(source, backups.scratch_key("somescratch"))
    made = await backups.make_backup(bot, backups.scratch_key("somescratch"), made_by="UOPS1", conn=conn)
    assert made.database == "scratch:somescratch" and made.file_name.startswith("scratch_somescratch_")
    reply = await command(bot, "UOPS1", "backup", f"verify {made.id}")
    assert reply.outcome == Outcome.ok and "pg_restore was not run on it" in reply.text
    assert "reads every block" not in reply.text
    # Retention of app never sees it.
    plan = await backups.retention_plan(bot, "app")
    assert made.id not in {b.id for b in plan.keep + plan.delete}
