"""Migrations run both ways on PostgreSQL and SQLite; runs and audit rows land; a dead database is survived."""
import uuid

import asyncpg
import pytest
from sqlalchemy import inspect
from sqlalchemy.ext.asyncio import create_async_engine

from bot.audit.service import entries
from bot.check.service import recent_runs
from bot.migrate import downgrade, upgrade
from bot.pipeline.reply import Outcome
from bot.pipeline.request import Request
from conftest import PG_ADMIN_DSN, free_port


async def tables(url: str) -> set[str]:
    engine = create_async_engine(url)
    try:
        async with engine.connect() as conn:
            return set(await conn.run_sync(lambda c: inspect(c).get_table_names()))
    finally:
        await engine.dispose()


@pytest.fixture
async def scratch_pg():
    name = f"opsbot_migrations_{uuid.uuid4().hex[:10]}"
    admin = await asyncpg.connect(PG_ADMIN_DSN)
    await admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
    await admin.execute(f'CREATE DATABASE "{name}"')
    yield f"postgresql+asyncpg://postgres@127.0.0.1:5432/{name}"
    await admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
    await admin.close()


@pytest.mark.parametrize("backend", ["postgres", "sqlite"])
async def test_upgrade_downgrade_upgrade(backend, scratch_pg, sqlite_url):
    import asyncio

    url = scratch_pg if backend == "postgres" else sqlite_url
    await asyncio.to_thread(upgrade, url)
    assert {"check_runs", "audit_log", "alembic_version"} <= await tables(url)
    await asyncio.to_thread(downgrade, url, "base")  # audit_log is empty, so every step may drop it
    assert await tables(url) <= {"alembic_version"}
    await asyncio.to_thread(upgrade, url)
    assert {"check_runs", "audit_log"} <= await tables(url)


async def test_health_is_saved_on_postgres(make_bot, pg_database_url):
    bot = await make_bot(database_url=pg_database_url)
    reply = await bot.handle(Request("UOPS1", "C9", "health", "database cache", "slack"))
    assert reply.outcome is Outcome.ok
    run = (await recent_runs(bot.db, 1))[0]
    assert (run.requested_by, run.channel, run.status, run.trigger) == ("UOPS1", "C9", "ok", "command")
    assert {r["service"] for r in run.results} == {"database", "cache"}
    assert run.started_at.tzinfo is not None
    audit = (await entries(bot.db, 1))[0]
    assert (audit.user_id, audit.command, audit.arguments, audit.outcome, audit.transport) == ("UOPS1", "health", "database cache", "ok", "slack")


async def test_dead_database_still_answers_health(make_bot):
    dead = f"postgresql+asyncpg://postgres@127.0.0.1:{free_port()}/gone"
    bot = await make_bot(database_url=dead)
    reply = await bot.handle(Request("UOPS1", "C1", "health", "database", "console"))
    assert reply.outcome is Outcome.ok  # the checked service is fine; only the bot's own store is down
    assert "not saved: the bot's database is unreachable" in str(reply.blocks)
    assert "Not recorded in the audit log" in str(reply.blocks)
    refusal = await bot.handle(Request("UOPS1", "C1", "health", "nosuch", "console"))
    assert refusal.outcome is Outcome.usage_error


async def test_audit_arguments_are_redacted(make_bot):
    bot = await make_bot()
    await bot.handle(Request("UOPS1", "C1", "health", "token=xoxb-123-456-abcdef", "console"))
    [row] = await entries(bot.db)
    assert "xoxb-123" not in row.arguments and "[REDACTED]" in row.arguments
