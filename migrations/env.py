"""Alembic environment: async engine on DATABASE_URL (PostgreSQL via asyncpg, or SQLite)."""
import asyncio
import os

from alembic import context
from sqlalchemy.ext.asyncio import create_async_engine

import bot.audit.models  # noqa: F401  (registers tables)
import bot.check.models  # noqa: F401
import bot.action.models  # noqa: F401
import bot.schedule.models  # noqa: F401
import bot.incident.models  # noqa: F401
import bot.oncall.models  # noqa: F401
import bot.job.models  # noqa: F401
import bot.backup.models  # noqa: F401
import bot.schedules.models  # noqa: F401
import bot.maintenance.models  # noqa: F401
import bot.coordination  # noqa: F401  (delivery_claims)
import bot.alerts.models  # noqa: F401
import bot.deploy.models  # noqa: F401
from bot.settings import DEFAULT_DATABASE_URL
from bot.storage import Base

config = context.config
target_metadata = Base.metadata


def database_url() -> str:
    return config.attributes.get("database_url") or os.environ.get("DATABASE_URL") or DEFAULT_DATABASE_URL


def do_run_migrations(connection) -> None:
    context.configure(
        connection=connection,
        target_metadata=target_metadata,
        render_as_batch=connection.dialect.name == "sqlite",  # SQLite cannot ALTER most things
    )
    with context.begin_transaction():
        context.run_migrations()


async def run_async() -> None:
    engine = create_async_engine(database_url())
    try:
        async with engine.connect() as connection:
            await connection.run_sync(do_run_migrations)
            await connection.commit()
    finally:
        await engine.dispose()


if context.is_offline_mode():
    context.configure(url=database_url(), target_metadata=target_metadata, literal_binds=True)
    with context.begin_transaction():
        context.run_migrations()
else:
    asyncio.run(run_async())
