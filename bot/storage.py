"""The bot's own database: one async engine, SQLite by default, PostgreSQL (asyncpg) in production."""
from __future__ import annotations

import secrets
from contextlib import contextmanager

from datetime import datetime, timezone

from sqlalchemy import DateTime, MetaData, TypeDecorator, event
from sqlalchemy.exc import DBAPIError, InterfaceError, OperationalError
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


class OwnBackends:
    """The PostgreSQL backends of this process's own connections, as (pid, backend_start): what kill-idle spares.

    Named by pid *and* backend_start, as the server knows them: a pid alone may be another server's, or
    reused by a later connection. application_name is no mark of ours, since any client may set it.
    """

    def __init__(self):
        self._open: dict[int, tuple[int, datetime]] = {}  # id() of the connection -> its backend
        self._names: set[str] = set()

    def add(self, connection: object, pid: int, started: datetime) -> None:
        self._open[id(connection)] = (pid, started)

    def discard(self, connection: object) -> None:
        self._open.pop(id(connection), None)

    def snapshot(self) -> list[tuple[int, datetime]]:
        return list(self._open.values())

    @contextmanager
    def secret_name(self, prefix: str):
        """An application_name nobody can guess, ours while the block runs: for clients whose backend
        pid this process never learns (pg_dump and pg_restore, started by a runner, maybe in a
        container). Not a name anyone may set: 96 random bits, never shown in a plan or a log."""
        name = f"{prefix}-{secrets.token_hex(12)}"
        self._names.add(name)
        try:
            yield name
        finally:
            self._names.discard(name)

    def names(self) -> list[str]:
        return list(self._names)


OWN_BACKENDS = OwnBackends()  # one per process: every pool and connection of this replica registers here
OWN_BACKEND_QUERY = "SELECT pid, backend_start FROM pg_stat_activity WHERE pid = pg_backend_pid()"


def _remember_pooled(dbapi_connection, connection_record) -> None:
    cursor = dbapi_connection.cursor()
    try:
        cursor.execute(OWN_BACKEND_QUERY)
        row = cursor.fetchone()
    finally:
        cursor.close()
    if row is not None:
        OWN_BACKENDS.add(dbapi_connection, row[0], row[1])


def _forget_pooled(dbapi_connection, connection_record=None, exception=None) -> None:
    OWN_BACKENDS.discard(dbapi_connection)


SQLITE_LOCK_WAIT = 30.0  # seconds


def _sqlite_write_ahead(dbapi_connection, connection_record) -> None:
    """Write-ahead logging: readers never hold up a writer's commit, nor a writer a reader. In the
    default rollback journal a commit waits for every open read, and a busy console (a schedule's
    run, a command's audit row, the activity feed polling) ran out of lock time. An in-memory
    database answers "memory" and is unaffected."""
    cursor = dbapi_connection.cursor()
    try:
        cursor.execute("PRAGMA journal_mode=WAL")
    finally:
        cursor.close()


def connection_trouble(exc: BaseException) -> bool:
    """The database could not be reached or the connection broke (or SQLite was locked): the same
    write may well succeed later. A constraint or a bad statement fails the same way every time."""
    if isinstance(exc, (OSError, TimeoutError)):  # refused, reset, timed out before SQLAlchemy saw it
        return True
    if isinstance(exc, DBAPIError):
        return exc.connection_invalidated or isinstance(exc, (OperationalError, InterfaceError))
    return False


class Database:
    def __init__(self, url: str):
        self.url = url
        # hide_parameters: an error message (and its traceback) never quotes a row's values, i.e. user text.
        kwargs = {"pool_pre_ping": True, "hide_parameters": True}
        if url.startswith("postgresql"):
            # A dead database must answer quickly, not hang a slash command.
            # application_name "opsbot": how people tell the bot's connections apart in pg_stat_activity
            # (kill-idle goes by OWN_BACKENDS, not by this name: any client may set it).
            kwargs["connect_args"] = {"timeout": 5, "command_timeout": 10, "server_settings": {"application_name": APPLICATION_NAME}}
        else:
            # SQLite's timeout is how long a writer waits for another's lock. The console runs the
            # scheduler, the activity feed and commands on one file: a busy moment must queue, not fail.
            kwargs["connect_args"] = {"timeout": SQLITE_LOCK_WAIT}
        self.engine: AsyncEngine = create_async_engine(url, **kwargs)
        self.sessions = async_sessionmaker(self.engine, expire_on_commit=False)
        if url.startswith("postgresql"):
            # Every pooled connection's backend is known by pid, so /db kill-idle never takes one of them.
            event.listen(self.engine.sync_engine, "connect", _remember_pooled)
            for gone in ("close", "close_detached", "invalidate"):
                event.listen(self.engine.sync_engine, gone, _forget_pooled)
        else:
            event.listen(self.engine.sync_engine, "connect", _sqlite_write_ahead)

    async def ping(self) -> None:
        from sqlalchemy import text

        async with self.engine.connect() as conn:
            await conn.execute(text("SELECT 1"))

    async def close(self) -> None:
        await self.engine.dispose()
