"""/readyz says 503 while the bot could not do its work: a database below the Alembic head (or
never migrated), or an audit log that cannot be written. Real PostgreSQL and SQLite files."""
from __future__ import annotations

import uuid

import asyncpg
import pytest_asyncio

from conftest import PG_ADMIN_DSN, PG_USER
from test_slack_http import serve_bot  # noqa: F401  (the fixture: a bot served as `opsbot serve` wires it)

from bot.migrate import head_revision, upgrade_async


@pytest_asyncio.fixture
async def scratch_pg():
    """scratch_pg() -> the URL of a new, empty PostgreSQL database; dropped after the test."""
    admin = await asyncpg.connect(PG_ADMIN_DSN, timeout=5)
    names: list[str] = []

    async def factory() -> str:
        name = f"opsbot_ready_{uuid.uuid4().hex[:10]}"
        await admin.execute(f'CREATE DATABASE "{name}"')
        names.append(name)
        return name

    yield factory
    for name in names:
        await admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
    await admin.close()


def pg_url(name: str) -> str:
    return f"postgresql+asyncpg://{PG_USER}@127.0.0.1:5432/{name}"


async def test_unmigrated_postgres_is_not_ready_and_says_so(serve_bot, scratch_pg):  # noqa: F811
    served = await serve_bot(database_url=pg_url(await scratch_pg()))
    status, doc = await served.get("/readyz")
    assert status == 503, doc
    assert doc["checks"]["database"]["status"] == "healthy"  # it answers: only the schema is missing
    migrations = doc["checks"]["migrations"]
    assert migrations["status"] == "unhealthy"
    assert "no revision found" in migrations["message"] and head_revision() in migrations["message"]
    assert doc["checks"]["audit_log"]["status"] == "unhealthy"


async def test_postgres_below_head_names_the_revision_it_found(serve_bot, scratch_pg):  # noqa: F811
    name = await scratch_pg()
    await upgrade_async(pg_url(name), "0009")
    served = await serve_bot(database_url=pg_url(name))
    status, doc = await served.get("/readyz")
    assert status == 503, doc
    assert doc["checks"]["migrations"]["message"].startswith("at revision 0009, expected ")

    await upgrade_async(pg_url(name))
    status, doc = await served.get("/readyz")
    assert status == 200, doc
    assert doc["checks"]["migrations"] == {"status": "healthy", "message": f"at revision {head_revision()}"}
    assert doc["checks"]["audit_log"]["status"] == "healthy"


async def test_a_schema_migrated_by_a_newer_release_keeps_the_old_replica_ready(serve_bot, scratch_pg):  # noqa: F811
    # A rolling upgrade runs the new release's `opsbot migrate` while old replicas still serve: the
    # database is at a revision the old release has never heard of. Failing readiness then would
    # take every old replica out of the Service before a new one is ready.
    name = await scratch_pg()
    await upgrade_async(pg_url(name))
    admin = await asyncpg.connect(f"postgresql://{PG_USER}@127.0.0.1:5432/{name}", timeout=5)
    try:
        await admin.execute("UPDATE alembic_version SET version_num = '9999_from_a_newer_release'")
    finally:
        await admin.close()
    served = await serve_bot(database_url=pg_url(name))
    status, doc = await served.get("/readyz")
    assert status == 200, doc
    assert doc["checks"]["migrations"]["status"] == "healthy"
    assert doc["checks"]["migrations"]["message"].startswith("at revision 9999_from_a_newer_release, newer than this release's ")


async def test_read_only_postgres_is_not_ready_because_audit_rows_cannot_be_written(serve_bot, scratch_pg):  # noqa: F811
    # What a bot pointed at a hot standby (or a database switched read-only) meets: reads work,
    # every audit write fails.
    name = await scratch_pg()
    await upgrade_async(pg_url(name))
    admin = await asyncpg.connect(PG_ADMIN_DSN, timeout=5)
    try:
        await admin.execute(f'ALTER DATABASE "{name}" SET default_transaction_read_only = on')
    finally:
        await admin.close()
    served = await serve_bot(database_url=pg_url(name))
    status, doc = await served.get("/readyz")
    assert status == 503, doc
    assert doc["checks"]["database"]["status"] == "healthy"
    assert doc["checks"]["migrations"]["status"] == "healthy"
    assert doc["checks"]["audit_log"]["status"] == "unhealthy"
    assert doc["checks"]["audit_log"]["message"].endswith(": cannot be written")


async def test_readiness_probe_leaves_no_audit_row_and_no_gap_in_ids(serve_bot, scratch_pg):  # noqa: F811
    name = await scratch_pg()
    await upgrade_async(pg_url(name))
    served = await serve_bot(database_url=pg_url(name))
    for _ in range(3):
        assert (await served.get("/readyz"))[0] == 200
    conn = await asyncpg.connect(f"postgresql://{PG_USER}@127.0.0.1:5432/{name}", timeout=5)
    try:
        assert await conn.fetchval("SELECT count(*) FROM audit_log") == 0
        await conn.execute(
            "INSERT INTO audit_log (at, user_id, command, target, arguments, channel, transport, outcome, detail)"
            " VALUES (now(), 'U1', '/health', '', '', 'C1', 'http', 'ok', '')"
        )
        assert await conn.fetchval("SELECT min(id) FROM audit_log") == 1  # the probes took no sequence values
    finally:
        await conn.close()


async def test_unmigrated_sqlite_is_not_ready(serve_bot, tmp_path):  # noqa: F811
    served = await serve_bot(database_url=f"sqlite+aiosqlite:///{tmp_path / 'empty.db'}")
    status, doc = await served.get("/readyz")
    assert status == 503, doc
    assert "no revision found" in doc["checks"]["migrations"]["message"]
