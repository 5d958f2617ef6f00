"""audit_log is append-only in the database itself, not only by convention.

Through SQLAlchemy, as the app connects, UPDATE and DELETE are refused on PostgreSQL and
SQLite (and TRUNCATE on PostgreSQL) and the rows stay as they were; inserts still work.
A downgrade that would drop the table, a column of it or the triggers refuses while rows
exist and leaves schema and rows intact; on an empty table it runs (see also
tests/test_storage.py::test_upgrade_downgrade_upgrade).
"""
import asyncio
import inspect
import uuid

import asyncpg
import pytest
from alembic import command
from alembic.util import CommandError
from sqlalchemy import delete, inspect as sa_inspect, select, text, update
from sqlalchemy.exc import DBAPIError

from bot.audit.models import AuditEntry
from bot.audit.service import entries, record
from bot.migrate import alembic_config, downgrade, upgrade
from bot.storage import Database
from conftest import PG_ADMIN_DSN

REFUSED = "audit_log is append-only"
BACKENDS = ["postgres", "sqlite"]


@pytest.fixture
async def scratch_pg():
    name = f"opsbot_append_only_{uuid.uuid4().hex[:10]}"
    admin = await asyncpg.connect(PG_ADMIN_DSN)
    await admin.execute(f'CREATE DATABASE "{name}"')
    yield f"postgresql+asyncpg://postgres@127.0.0.1:5432/{name}"
    await admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
    await admin.close()


@pytest.fixture
def url_for(scratch_pg, sqlite_url):
    return lambda backend: scratch_pg if backend == "postgres" else sqlite_url


async def migrate(fn, url: str, revision: str) -> None:
    await asyncio.to_thread(fn, url, revision)


async def rows(db: Database) -> list[tuple]:
    async with db.engine.connect() as conn:
        return [tuple(r) for r in await conn.execute(text("SELECT * FROM audit_log ORDER BY id"))]


async def version(db: Database) -> str:
    async with db.engine.connect() as conn:
        return (await conn.execute(text("SELECT version_num FROM alembic_version"))).scalar_one()


async def schema(db: Database) -> dict[str, list[str]]:
    def read(conn):
        insp = sa_inspect(conn)
        return {t: sorted(c["name"] for c in insp.get_columns(t)) for t in insp.get_table_names()}

    async with db.engine.connect() as conn:
        return await conn.run_sync(read)


async def seed(db: Database, n: int = 3) -> None:
    for i in range(n):
        await record(db, user_id=f"UOPS{i}", command="health", arguments=f"database {i}", channel="C1",
                     transport="console", outcome="ok", target="database")


async def refused(db: Database, statement, match: str = REFUSED) -> None:
    async with db.engine.connect() as conn:
        with pytest.raises(DBAPIError, match=match):
            async with conn.begin():
                await conn.execute(statement)


async def assert_append_only(db: Database, backend: str) -> None:
    """Every way of changing or removing a row is refused and nothing changes."""
    before = await rows(db)
    assert before
    for statement in (
        text("UPDATE audit_log SET outcome = 'ok-edited', detail = 'rewritten'"),
        text("UPDATE audit_log SET user_id = 'UINNOCENT' WHERE id = :id").bindparams(id=before[0][0]),
        text("DELETE FROM audit_log"),
        text("DELETE FROM audit_log WHERE id = :id").bindparams(id=before[-1][0]),
        update(AuditEntry).values(detail="rewritten"),
        delete(AuditEntry).where(AuditEntry.id == before[0][0]),
    ):
        await refused(db, statement)
    if backend == "postgres":
        await refused(db, text("TRUNCATE audit_log"))
        await refused(db, text("TRUNCATE TABLE audit_log RESTART IDENTITY CASCADE"))
        upsert = (
            "INSERT INTO audit_log (id, at, user_id, command, arguments, channel, transport, outcome, detail, target) "
            "SELECT id, at, 'UFORGED', command, arguments, channel, transport, outcome, detail, target FROM audit_log WHERE id = :id "
            "ON CONFLICT (id) DO UPDATE SET user_id = EXCLUDED.user_id"
        )
        await refused(db, text(upsert).bindparams(id=before[0][0]))
    else:
        # SQLite's REPLACE deletes the old row without firing delete triggers.
        for verb in ("INSERT OR REPLACE", "REPLACE"):
            forged = (
                f"{verb} INTO audit_log (id, at, user_id, command, arguments, channel, transport, outcome, detail, target) "
                "SELECT id, at, 'UFORGED', command, arguments, channel, transport, outcome, detail, target FROM audit_log WHERE id = :id"
            )
            await refused(db, text(forged).bindparams(id=before[0][0]))

    # The ORM unit of work goes the same way: a dirty or deleted entity is refused at flush.
    async with db.sessions() as session:
        entry = (await session.execute(select(AuditEntry).order_by(AuditEntry.id))).scalars().first()
        entry.outcome = "ok-edited"
        with pytest.raises(DBAPIError, match=REFUSED):
            await session.commit()
    async with db.sessions() as session:
        entry = (await session.execute(select(AuditEntry).order_by(AuditEntry.id))).scalars().first()
        await session.delete(entry)
        with pytest.raises(DBAPIError, match=REFUSED):
            await session.commit()

    assert await rows(db) == before


@pytest.mark.parametrize("backend", BACKENDS)
async def test_update_delete_truncate_are_refused(backend, url_for, open_db):
    url = url_for(backend)
    await migrate(upgrade, url, "head")
    db = open_db(url)
    await seed(db)
    await assert_append_only(db, backend)

    # The app's only write, an insert, still works, and the new row is protected too.
    await record(db, user_id="UOPS9", command="audit", arguments="", channel="C1", transport="console", outcome="ok")
    assert [e.user_id for e in await entries(db)] == ["UOPS9", "UOPS2", "UOPS1", "UOPS0"]
    await refused(db, text("DELETE FROM audit_log WHERE user_id = 'UOPS9'"))
    assert len(await rows(db)) == 4


async def test_postgres_refusal_names_the_operation(scratch_pg, open_db):
    await migrate(upgrade, scratch_pg, "head")
    db = open_db(scratch_pg)
    await seed(db, 1)
    await refused(db, text("UPDATE audit_log SET detail = 'x'"), match=f"{REFUSED}: UPDATE refused")
    await refused(db, text("DELETE FROM audit_log"), match=f"{REFUSED}: DELETE refused")
    await refused(db, text("TRUNCATE audit_log"), match=f"{REFUSED}: TRUNCATE refused")


@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("target", ["0002", "0001", "base"])
async def test_downgrade_with_audit_rows_refuses_and_changes_nothing(backend, target, url_for, open_db):
    url = url_for(backend)
    await migrate(upgrade, url, "0003")  # later revisions do not touch audit_log; this is the one that refuses
    db = open_db(url)
    await seed(db)
    before_rows, before_schema = await rows(db), await schema(db)

    with pytest.raises(CommandError) as refusal:
        await migrate(downgrade, url, target)
    message = str(refusal.value)
    assert message.startswith("Refusing to downgrade 0003: it drops the triggers that keep audit_log append-only")
    assert "audit_log holds 3 row(s)" in message and "Export the rows first" in message

    assert await version(db) == "0003"
    assert await schema(db) == before_schema
    assert "target" in before_schema["audit_log"] and "action_requests" in before_schema
    assert await rows(db) == before_rows
    await assert_append_only(db, backend)  # the triggers are still there


@pytest.mark.parametrize("backend", BACKENDS)
async def test_older_revisions_refuse_to_drop_audit_data(backend, url_for, open_db):
    """A database still at 0002 or 0001 (before the triggers) is protected by the downgrades themselves."""
    url = url_for(backend)
    await migrate(upgrade, url, "0002")
    db = open_db(url)
    async with db.engine.begin() as conn:
        await conn.execute(text(
            "INSERT INTO audit_log (at, user_id, command, arguments, channel, transport, outcome, detail, target) "
            "VALUES (CURRENT_TIMESTAMP, 'UOPS1', 'restart', 'web', 'C1', 'slack', 'ok', '', 'web')"
        ))
    before_rows, before_schema = await rows(db), await schema(db)

    with pytest.raises(CommandError, match=r"Refusing to downgrade 0002: it drops the column audit_log\.target, "
                                           r"and audit_log holds 1 row\(s\)"):
        await migrate(downgrade, url, "0001")
    assert await version(db) == "0002"
    assert await schema(db) == before_schema  # the action tables too: the check runs before any drop
    assert await rows(db) == before_rows

    # At 0001 (as if 0002 had been downgraded before any audit row existed).
    async with db.engine.begin() as conn:
        await conn.execute(text("DROP TABLE action_locks"))
        await conn.execute(text("DROP TABLE action_approvals"))
        await conn.execute(text("DROP TABLE action_requests"))
        await conn.execute(text("UPDATE alembic_version SET version_num = '0001'"))
    before_schema = await schema(db)
    with pytest.raises(CommandError, match=r"Refusing to downgrade 0001: it drops audit_log, and audit_log holds 1 row"):
        await migrate(downgrade, url, "base")
    assert await version(db) == "0001"
    assert await schema(db) == before_schema
    assert await rows(db) == before_rows


@pytest.mark.parametrize("backend", BACKENDS)
async def test_downgrade_on_empty_audit_log_drops_the_triggers(backend, url_for, open_db):
    url = url_for(backend)
    await migrate(upgrade, url, "head")
    await migrate(downgrade, url, "0002")
    db = open_db(url)
    assert await version(db) == "0002"
    if backend == "postgres":
        async with db.engine.connect() as conn:
            leftovers = (await conn.execute(text(
                "SELECT count(*) FROM pg_trigger WHERE tgname LIKE 'audit_log%' "
                "UNION ALL SELECT count(*) FROM pg_proc WHERE proname = 'audit_log_append_only'"
            ))).scalars().all()
        assert leftovers == [0, 0]
    else:
        async with db.engine.connect() as conn:
            assert (await conn.execute(text("SELECT count(*) FROM sqlite_master WHERE type = 'trigger'"))).scalar_one() == 0

    await migrate(upgrade, url, "head")  # and back: the triggers are created again
    await seed(db, 1)
    await assert_append_only(db, backend)


def test_migrate_downgrade_has_no_default_target(sqlite_url):
    parameter = inspect.signature(downgrade).parameters["revision"]
    assert parameter.default is inspect.Parameter.empty
    with pytest.raises(TypeError):
        downgrade(sqlite_url)  # type: ignore[call-arg]


def test_offline_downgrade_refuses_when_it_cannot_look(scratch_pg, capsys):
    # `alembic downgrade --sql` writes a script and never sees the table's rows.
    with pytest.raises(CommandError, match=r"Refusing to downgrade 0003 in offline \(--sql\) mode"):
        command.downgrade(alembic_config(scratch_pg), "0003:0002", sql=True)
    # Upgrades are unaffected offline.
    command.upgrade(alembic_config(scratch_pg), "0002:0003", sql=True)
    assert "CREATE TRIGGER audit_log_no_update_delete" in capsys.readouterr().out


async def test_readme_grants_for_a_non_owner_app_role(scratch_pg, open_db):
    """The production setup of docs/operating.md: the bot's role inserts and reads, and can neither change rows nor drop the triggers."""
    await migrate(upgrade, scratch_pg, "head")
    role = f"opsbot_app_{uuid.uuid4().hex[:8]}"
    database = scratch_pg.rsplit("/", 1)[1]
    admin = await asyncpg.connect(PG_ADMIN_DSN.rsplit("/", 1)[0] + f"/{database}")
    try:
        await admin.execute(f'CREATE ROLE "{role}" LOGIN')
        await admin.execute(f'GRANT SELECT, INSERT ON audit_log TO "{role}"')
        await admin.execute(f'GRANT USAGE ON SEQUENCE audit_log_id_seq TO "{role}"')
        await admin.execute(f'REVOKE UPDATE, DELETE, TRUNCATE ON audit_log FROM "{role}"')
        db = open_db(f"postgresql+asyncpg://{role}@127.0.0.1:5432/{database}")
        await seed(db, 2)
        assert [e.user_id for e in await entries(db)] == ["UOPS1", "UOPS0"]
        before = await rows(db)
        for statement in ("UPDATE audit_log SET detail = 'x'", "DELETE FROM audit_log", "TRUNCATE audit_log"):
            await refused(db, text(statement), match="permission denied")
        await refused(db, text("DROP TRIGGER audit_log_no_update_delete ON audit_log"), match="must be owner")
        await refused(db, text("ALTER TABLE audit_log DISABLE TRIGGER USER"), match="must be owner")
        assert await rows(db) == before
        await db.close()  # before DROP ROLE
    finally:
        if await admin.fetchval("SELECT count(*) FROM pg_roles WHERE rolname = $1", role):
            await admin.execute(f'DROP OWNED BY "{role}"')  # its grants; roles outlive databases
            await admin.execute(f'DROP ROLE "{role}"')
        await admin.close()
