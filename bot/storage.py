"""The bot's own database: one async engine, SQLite by default, PostgreSQL (asyncpg) in production."""
from __future__ import annotations

from datetime import datetime, timezone

from sqlalchemy import DateTime, MetaData, TypeDecorator
from sqlalchemy.ext.asyncio import AsyncEngine, async_sessionmaker, create_async_engine
from sqlalchemy.orm import DeclarativeBase

# Stable constraint names, so Alembic migrations are the same on both databases.
NAMING = {
    "ix": "ix_%(column_0_label)s",
    "uq": "uq_%(table_name)s_%(column_0_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}


APPLICATION_NAME = "opsbot"  # what PostgreSQL shows for the bot's own connections (pg_stat_activity)


class Base(DeclarativeBase):
    metadata = MetaData(naming_convention=NAMING)


class UtcDateTime(TypeDecorator):
    """Timezone-aware UTC on PostgreSQL and SQLite alike (SQLite forgets the zone)."""

    impl = DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value, dialect):
        if value is None:
            return None
        if value.tzinfo is None:
            raise ValueError("naive datetime")
        # SQLite keeps only the clock time: 13:00+02:00 must be stored as 11:00, not 13:00.
        return value.astimezone(timezone.utc)

    def process_result_value(self, value, dialect):
        if value is not None and value.tzinfo is None:
            value = value.replace(tzinfo=timezone.utc)
        return value


def utcnow() -> datetime:
    return datetime.now(timezone.utc)


class Database:
    def __init__(self, url: str):
        self.url = url
        # hide_parameters: an error message (and its traceback) never quotes a row's values, i.e. user text.
        kwargs = {"pool_pre_ping": True, "hide_parameters": True}
        if url.startswith("postgresql"):
            # A dead database must answer quickly, not hang a slash command.
            # application_name "opsbot": /db kill-idle never lists the bot's own pooled connections.
            kwargs["connect_args"] = {"timeout": 5, "command_timeout": 10, "server_settings": {"application_name": APPLICATION_NAME}}
        else:
            kwargs["connect_args"] = {"timeout": 5}
        self.engine: AsyncEngine = create_async_engine(url, **kwargs)
        self.sessions = async_sessionmaker(self.engine, expire_on_commit=False)

    async def ping(self) -> None:
        from sqlalchemy import text

        async with self.engine.connect() as conn:
            await conn.execute(text("SELECT 1"))

    async def close(self) -> None:
        await self.engine.dispose()
