"""Alembic, configured from the installed package so `opsbot migrate` works from any directory."""
from __future__ import annotations

import asyncio
from pathlib import Path

from alembic import command
from alembic.config import Config

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
