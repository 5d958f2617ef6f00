"""Backups across replicas, and the one retention decision every deleting path asks.

Retention (bot.backup.retention through service.apply_retention) never deletes a backup an open
/restore request names, the newest verified backup, or one younger than backups.retention.min_age;
the pg_backup kind, the backup schedules and /backup retention all go through it. A backup row holds
its file relative to backups.directory, so a replica mounting the shared directory elsewhere finds
it; a replica that cannot see the file says so and changes nothing in the shared database.

Real PostgreSQL (the source databases), real pg_dump, a ManualClock; /backup and /restore arrive
as signed Slack HTTP requests, Socket Mode envelopes and console lines (tests/drivers.py).
"""
from __future__ import annotations

import shutil
from datetime import datetime, timezone

import pytest
import pytest_asyncio
import sqlalchemy as sa
import yaml
from conftest import PG_ADMIN_DSN, PG_USER
from drivers import drive  # noqa: F401 (fixture)
from test_backup import ROLES, command, day, dsn_of, pg_databases, rows_of, run_kind  # noqa: F401 (fixture)

from alembic import command as alembic
from bot.action import service as requests
from bot.action.kinds.pg_backup import KIND as PG_BACKUP
from bot.backup import service as backups
from bot.migrate import alembic_config, upgrade_async
from bot.schedule.clock import ManualClock
from bot.schedules.runner import run_slot


def config_text(source: str, directory, *, schedules: dict | None = None) -> str:
    body = {
        "version": 1,
        "services": {},
        "roles": ROLES,
        "databases": {"app": {"dsn": dsn_of(source), "owners": ["ops"]}},
        # Only today's newest is kept by the rules: everything older goes unless something protects it.
        "backups": {"directory": str(directory), "retention": {"daily_days": 1, "weekly_weeks": 0}},
    }
    if schedules:
        body["schedules"] = schedules
    return yaml.safe_dump(body, sort_keys=False)


async def make_at(bot, clock: ManualClock, when: datetime, label: str | None = None):
    clock.advance(when - clock.now())
    made = await backups.make_backup(bot, "app", made_by="UOPS1", label=label)
    assert made.verified, made.verify_error
    return made


async def shared_database(tmp_path) -> str:
    """A migrated SQLite file two bots share, as two replicas share one database."""
    url = f"sqlite+aiosqlite:///{tmp_path / 'shared.db'}"
    await upgrade_async(url)
    return url


# --------------------------------------------------------------------------- 4. one retention decision


@pytest.mark.parametrize("path", ["kind", "schedule", "command"])
async def test_every_path_spares_what_a_request_names_and_what_is_young(make_bot, pg_databases, tmp_path, path):
    source = await pg_databases.create(rows=10)
    clock = ManualClock(day(0, 1))
    nightly = {"nightly": {"cron": "0 3 * * *", "timezone": "UTC", "run": "backup", "database": "app", "channel": "C0OPS1"}}
    bot = await make_bot(config_text(source, tmp_path / "b", schedules=nightly), clock=clock)
    named = await make_at(bot, clock, day(0, 1))
    old = await make_at(bot, clock, day(0, 2))
    reply = await command(bot, "UOPS1", "restore", str(named.id))  # two approvals: it stays pending
    [request] = [r for r in await requests_of(bot) if r.state == "pending"]
    assert request.plan["params"]["backup"] == named.id, reply.text
    young = await make_at(bot, clock, day(2, 1), label="before the risky migration")
    clock.advance(day(2, 3) - clock.now())

    if path == "kind":
        report, _ = await run_kind(PG_BACKUP, bot, "backup", {"database": "app"})
        assert report.succeeded, report.summary()
    elif path == "schedule":
        assert await run_slot(bot, "nightly", day(2, 3), late=False) is not None
        from bot.schedules.models import ScheduleRun

        async with bot.db.sessions() as session:
            [run] = list((await session.execute(sa.select(ScheduleRun))).scalars())
        item = run.items["backup:app"]
        assert item["status"] == "ok" and "retention deleted 1" in item["detail"], item
    else:
        await backups.make_backup(bot, "app", made_by="UOPS1")
        reply = await command(bot, "UOPS1", "backup", "retention app")
        assert f"deleted #{old.id} " in reply.text and f"keeps #{named.id} " in reply.text, reply.text

    rows = {r.id: r for r in await rows_of(bot)}
    newest = max(rows)
    assert [i for i, r in rows.items() if r.deleted_at is not None] == [old.id]
    assert not backups.path_of(bot.config, old).exists()
    for kept in (named, young, rows[newest]):
        assert backups.path_of(bot.config, kept).exists()
    reasons = (await backups.retention_plan(bot, "app")).reasons
    assert reasons[named.id] == "named by an open request"
    assert reasons[young.id] == "younger than 1d"
    assert reasons[newest] == "newest verified backup"

    # Once the request is decided, nothing names the backup any more: the next retention takes it.
    await requests.deny(bot.db, request.id, "UOPS2")
    after = await backups.apply_retention(bot, "app")
    assert [b.id for b in after.delete] == [named.id]


async def requests_of(bot):
    from bot.action.models import ActionRequest

    async with bot.db.sessions() as session:
        return list((await session.execute(sa.select(ActionRequest).order_by(ActionRequest.id))).scalars())


async def test_backup_retention_over_every_transport_keeps_named_and_young_backups(drive, pg_databases, tmp_path):
    source = await pg_databases.create(rows=10)
    clock = ManualClock(day(0, 1))
    d = await drive(config_text(source, tmp_path / "b"), clock=clock)
    named = await make_at(d.bot, clock, day(0, 1))
    old = await make_at(d.bot, clock, day(0, 2))
    seen = await d.command("UOPS1", "/restore", str(named.id))
    assert "request #" in seen.words.lower(), seen.words  # pending: two approvals, none given
    young = await make_at(d.bot, clock, day(2, 1), label="before the risky migration")
    newest = await make_at(d.bot, clock, day(2, 3))

    seen = await d.command("UOPS1", "/backup", "retention app")
    words = seen.words
    assert "app: keeps 3, deleted 1" in words, words
    assert f"deleted #{old.id} " in words
    assert f"keeps #{named.id} {named.file_name} (named by an open request)" in words, words
    assert f"keeps #{young.id} {young.file_name} (younger than 1d)" in words, words
    assert f"keeps #{newest.id} {newest.file_name} (newest verified backup)" in words, words
    assert "never deletes a backup an open /restore request names" in words, words
    assert not backups.path_of(d.bot.config, old).exists()
    assert all(backups.path_of(d.bot.config, b).exists() for b in (named, young, newest))


def test_min_age_defaults_to_a_day_and_takes_a_duration():
    from bot.config.data_models import Retention

    assert Retention().min_age == 86400.0
    assert Retention(min_age="90m").min_age == 5400.0


# --------------------------------------------------------------------------- 18. across replicas


async def test_a_replica_that_cannot_see_the_file_says_so_and_changes_nothing(drive, make_bot, pg_databases, tmp_path):
    source = await pg_databases.create(rows=10)
    shared = await shared_database(tmp_path)
    clock_a, clock_b = ManualClock(day(0, 1)), ManualClock(day(2, 3))
    replica_a = await make_bot(config_text(source, tmp_path / "a"), shared, clock=clock_a)
    first = await make_at(replica_a, clock_a, day(0, 1))
    second = await make_at(replica_a, clock_a, day(0, 2))
    # Replica B mounts no shared directory: its backups.directory is its own, empty one.
    d = await drive(config_text(source, tmp_path / "b-local"), shared, clock=clock_b)

    seen = await d.command("UOPS1", "/backup", f"verify {second.id}")
    assert f"Backup #{second.id} (app, {second.file_name}) could not be checked: this replica cannot see its file" in seen.one_line, seen.words
    assert "backups.directory must be the same shared directory on every replica" in seen.one_line
    assert "it stays marked verified." in seen.one_line
    assert (await backups.get_backup(replica_a.db, second.id)).verified  # still restorable

    seen = await d.command("UOPS1", "/backup", "retention app")
    assert f"left #{first.id} {first.file_name} as it is: this replica cannot see its file" in seen.words, seen.words
    assert "app: keeps 1, deleted 0" in seen.words, seen.words
    rows = {r.id: r for r in await rows_of(replica_a)}
    assert rows[first.id].deleted_at is None and rows[first.id].verified
    assert backups.path_of(replica_a.config, first).exists()

    # Replica A, which sees the directory, verifies and prunes as ever.
    assert (await backups.verify_backup(replica_a, second.id)).ok
    clock_a.advance(day(2, 3) - clock_a.now())
    pruned = await backups.apply_retention(replica_a, "app")
    assert [b.id for b in pruned.delete] == [first.id] and not pruned.unseen


async def test_a_replica_finds_the_file_wherever_it_mounts_the_shared_directory(make_bot, pg_databases, tmp_path):
    source = await pg_databases.create(rows=10)
    shared = await shared_database(tmp_path)
    replica_a = await make_bot(config_text(source, tmp_path / "mount-a"), shared)
    made = await backups.make_backup(replica_a, "app", made_by="UOPS1")
    assert made.file == made.file_name  # relative to backups.directory
    # Replica B sees the same volume at another path.
    shutil.copytree(tmp_path / "mount-a", tmp_path / "mount-b")
    replica_b = await make_bot(config_text(source, tmp_path / "mount-b"), shared)
    checked = await backups.verify_backup(replica_b, made.id)
    assert checked.ok, (checked.problem, checked.unchecked)
    assert backups.path_of(replica_b.config, made) == (tmp_path / "mount-b" / made.file_name).resolve()


@pytest_asyncio.fixture
async def pg_url():
    """A fresh PostgreSQL database for a migration test; dropped after."""
    import uuid

    import asyncpg

    name = f"opsbot_mig_{uuid.uuid4().hex[:10]}"
    admin = await asyncpg.connect(PG_ADMIN_DSN, timeout=5)
    await admin.execute(f'CREATE DATABASE "{name}"')
    try:
        yield f"postgresql+asyncpg://{PG_USER}@127.0.0.1:5432/{name}"
    finally:
        await admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        await admin.close()


@pytest.mark.parametrize("engine", ["sqlite", "postgresql"])
async def test_migration_0012_makes_paths_under_the_directory_relative(tmp_path, pg_url, engine):
    import asyncio

    url = f"sqlite+aiosqlite:///{tmp_path / 'old.db'}" if engine == "sqlite" else pg_url
    folder = (tmp_path / "backups").resolve()
    elsewhere = "/srv/elsewhere/app_20260101_010000.dump"

    def migrate(to: str, down: bool = False) -> None:
        cfg = alembic_config(url)
        cfg.attributes["backups_directory"] = str(folder)
        (alembic.downgrade if down else alembic.upgrade)(cfg, to)

    await asyncio.to_thread(migrate, "0011")
    from bot.storage import Database

    db = Database(url)
    try:
        at = datetime(2026, 1, 1, 1, tzinfo=timezone.utc)
        async with db.engine.begin() as conn:
            for file in (f"{folder}/app_20260101_010000.dump", elsewhere):
                await conn.execute(
                    sa.text(
                        "INSERT INTO backups (database, file, size, duration, sha256, verified, made_by, created_at) "
                        "VALUES ('app', :file, 1, 0.1, '', true, 'UOPS1', :at)"
                    ),
                    {"file": file, "at": at},
                )
        await asyncio.to_thread(migrate, "0012")
        async with db.engine.connect() as conn:
            files = [row[0] for row in await conn.execute(sa.text("SELECT file FROM backups ORDER BY id"))]
        assert files == ["app_20260101_010000.dump", elsewhere]
        await asyncio.to_thread(migrate, "0011", True)
        async with db.engine.connect() as conn:
            files = [row[0] for row in await conn.execute(sa.text("SELECT file FROM backups ORDER BY id"))]
        assert files == [f"{folder}/app_20260101_010000.dump", elsewhere]
    finally:
        await db.close()


async def test_an_old_absolute_row_is_read_where_it_points(make_bot, pg_databases, tmp_path):
    source = await pg_databases.create(rows=10)
    bot = await make_bot(config_text(source, tmp_path / "now"))
    made = await backups.make_backup(bot, "app", made_by="UOPS1")
    absolute = str(backups.path_of(bot.config, made))
    from bot.backup.models import Backup

    async with bot.db.sessions() as session, session.begin():
        await session.execute(sa.update(Backup).where(Backup.id == made.id).values(file=absolute))
    row = await backups.get_backup(bot.db, made.id)
    assert str(backups.path_of(bot.config, row)) == absolute
    assert (await backups.verify_backup(bot, made.id)).ok
