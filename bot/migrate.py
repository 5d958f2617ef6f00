"""Alembic, configured from the installed package so `opsbot migrate` works from any directory."""
from __future__ import annotations

import asyncio
import functools
from pathlib import Path

from alembic import command
from alembic.config import Config
from alembic.script import ScriptDirectory
from sqlalchemy import inspect, text

import migrations


def alembic_config(database_url: str) -> Config:
    cfg = Config()
    cfg.set_main_option("script_location", str(Path(migrations.__file__).parent))
    cfg.attributes["database_url"] = database_url
    return cfg


def upgrade(database_url: str, revision: str = "head") -> None:
    command.upgrade(alembic_config(database_url), revision)


def downgrade(database_url: str, revision: str) -> None:
    """Downgrade to `revision`, always named by the caller ("base" included): there is no default.

    A step that would drop audit_log, its columns or its append-only triggers refuses
    (alembic.util.CommandError) while audit rows exist; see migrations/audit_guard.py.
    """
    command.downgrade(alembic_config(database_url), revision)


async def upgrade_async(database_url: str, revision: str = "head") -> None:
    """env.py runs its own event loop, so from async code it goes on a worker thread."""
    await asyncio.to_thread(upgrade, database_url, revision)



@functools.lru_cache(maxsize=1)
def head_revision() -> str:
    """The revision `opsbot migrate` brings a database to, read from the installed scripts once."""
    return ScriptDirectory.from_config(alembic_config("")).get_current_head() or ""


@functools.lru_cache(maxsize=64)
def known_revision(revision: str) -> bool:
    """Whether this release's scripts know `revision`. One they do not know was written by a newer
    release: during a rolling upgrade its `opsbot migrate` runs before the old replicas stop."""
    from alembic.util import CommandError

    try:
        return ScriptDirectory.from_config(alembic_config("")).get_revision(revision) is not None
    except CommandError:
        return False


async def schema_revision(db) -> str | None:
    """The revision the database is at; None when it was never migrated (no alembic_version table)."""
    async with db.engine.connect() as conn:
        if not await conn.run_sync(lambda sync: inspect(sync).has_table("alembic_version")):
            return None
        row = (await conn.execute(text("SELECT version_num FROM alembic_version"))).first()
    return row[0] if row else None
