"""Connecting to a configured database, and the read-only transaction every read runs in."""
from __future__ import annotations

import asyncio
import contextlib
import re
from collections.abc import AsyncIterator
from dataclasses import dataclass
from urllib.parse import unquote, urlsplit, urlunsplit

import asyncpg

from bot.config.data_models import Database
from bot.config.types import MissingEnvironment, expand_env, format_duration
from bot.redaction import redact_cut
from bot.redaction_rules import is_secret_name
from bot.storage import OWN_BACKENDS

CONNECT_TIMEOUT = 5.0  # seconds; at least this, or the database's statement_timeout when longer
APPLICATION_NAME = "opsbot"
OWN_BACKEND_START_QUERY = "SELECT backend_start FROM pg_stat_activity WHERE pid = pg_backend_pid()"
# Past the server's statement_timeout the client gives up too, in case the server cannot answer at all.
CLIENT_MARGIN = 5.0


class DatabaseError(Exception):
    """Something about a database went wrong; the message is one sentence for the user."""


class DatabaseUnavailable(DatabaseError):
    """The database cannot be reached (connection refused, authentication, lost connection)."""


class QueryFailed(DatabaseError):
    """The database answered with an error (timeout, missing table, permission)."""


# SQLAlchemy's spelling of a driver (postgresql+asyncpg://, postgres+psycopg://): libpq and asyncpg
# know only postgresql:// and postgres://.
_DRIVER_SCHEME = re.compile(r"^postgres(?:ql)?\+[A-Za-z0-9_]+://", re.IGNORECASE)
# Query parameters that carry a secret: never put on a command line (ps shows it); the environment
# variable that carries it instead, or None when libpq reads it from nowhere but the conninfo.
SECRET_PARAMETERS = {"password": "PGPASSWORD", "sslpassword": None}


def libpq_dsn(dsn: str) -> str:
    """The DSN as libpq and asyncpg take it: postgresql+asyncpg:// (what SQLAlchemy wants) becomes postgresql://."""
    return _DRIVER_SCHEME.sub("postgresql://", dsn.strip(), count=1)


def dsn_of(database: Database) -> str:
    return libpq_dsn(expand_env(database.dsn))


@dataclass(frozen=True)
class ClientDsn:
    """A DSN split for a client program: what may go in its arguments, and the secrets apart."""

    conninfo: str  # postgresql://user@host:port/dbname?..., no password, no secret query parameter
    secrets: dict[str, str]  # libpq keyword (password, sslpassword) -> value
    dbname: str  # the PostgreSQL database name
    dsn: str  # the whole DSN, scheme rewritten (libpq_dsn), secrets included: for the bot's own connection

    @property
    def password(self) -> str | None:
        return self.secrets.get("password")


def split_dsn(dsn: str) -> ClientDsn:
    """Rewrite the scheme (libpq_dsn), take the password out of user:password@ and every secret-named
    query parameter (password=, sslpassword=, anything named like a secret) out of the query.

    The password of the query wins over the one of the user info, as in libpq. ValueError for what is
    not a postgresql:// URL.
    """
    full = libpq_dsn(dsn)
    parts = urlsplit(full)
    if parts.scheme.lower() not in ("postgresql", "postgres"):
        raise ValueError("the DSN is not a postgresql:// URL")
    secrets: dict[str, str] = {}
    if parts.password is not None:
        secrets["password"] = unquote(parts.password)
    netloc = parts.netloc.rsplit("@", 1)
    if len(netloc) == 2:
        userinfo, host = netloc
        user = userinfo.split(":", 1)[0]
        netloc = f"{user}@{host}" if user else host
    else:
        netloc = netloc[0]
    kept = []
    for piece in parts.query.split("&") if parts.query else []:
        raw_key, _, raw_value = piece.partition("=")
        key = unquote(raw_key)
        if key in SECRET_PARAMETERS:
            secrets[key] = unquote(raw_value)
        elif not is_secret_name(key):
            kept.append(piece)  # as written: libpq decodes it
        # any other secret-named parameter is no libpq keyword (libpq would refuse it): dropped, never shown
    conninfo = urlunsplit((parts.scheme, netloc, parts.path, "&".join(kept), parts.fragment))
    dbname = unquote(parts.path.lstrip("/")) or (unquote(parts.username or "") or "postgres")
    return ClientDsn(conninfo, secrets, dbname, full)


def reason(exc: BaseException) -> str:
    """The first line of an error, redacted (a DSN may echo a password) and cut."""
    text = str(exc).strip().splitlines()[0] if str(exc).strip() else exc.__class__.__name__
    return redact_cut(text, 200).rstrip(".")


@contextlib.asynccontextmanager
async def connect(name: str, database: Database, statement_timeout: float | None = None) -> AsyncIterator[asyncpg.Connection]:
    """A connection to `database`, closed afterwards; statement_timeout (seconds) applies to the whole session.

    Connection problems and errors from statements become DatabaseUnavailable / QueryFailed sentences.
    """
    timeout = statement_timeout if statement_timeout is not None else database.statement_timeout
    settings = {"application_name": APPLICATION_NAME, "statement_timeout": str(max(1, int(timeout * 1000)))}
    try:
        conn = await asyncpg.connect(
            dsn_of(database),
            timeout=max(CONNECT_TIMEOUT, database.statement_timeout),
            command_timeout=timeout + CLIENT_MARGIN,
            server_settings=settings,
        )
    except MissingEnvironment as exc:
        raise DatabaseUnavailable(f"Cannot connect to database {name}: {exc}; set it in the bot's environment.") from None
    except (OSError, asyncio.TimeoutError, asyncpg.PostgresError, asyncpg.InterfaceError, ValueError) as exc:
        raise DatabaseUnavailable(f"Cannot connect to database {name}: {reason(exc)}.") from None
    clean = False
    try:
        # Known by pid while open, so a kill-idle running meanwhile never takes it (storage.OWN_BACKENDS).
        started = await conn.fetchval(OWN_BACKEND_START_QUERY)
        OWN_BACKENDS.add(conn, conn.get_server_pid(), started)
        yield conn
        clean = True
    except asyncpg.QueryCanceledError:
        raise QueryFailed(f"The query on {name} ran longer than its statement timeout ({format_duration(timeout)}) and was cancelled.") from None
    except (asyncio.TimeoutError, TimeoutError):
        raise DatabaseUnavailable(f"Database {name} did not answer within {format_duration(timeout + CLIENT_MARGIN)}.") from None
    except asyncpg.PostgresConnectionError as exc:
        raise DatabaseUnavailable(f"Lost the connection to database {name}: {reason(exc)}.") from None
    except asyncpg.PostgresError as exc:
        raise QueryFailed(f"The query on {name} failed: {reason(exc)}.") from None
    except (OSError, asyncpg.InterfaceError) as exc:
        raise DatabaseUnavailable(f"Lost the connection to database {name}: {reason(exc)}.") from None
    finally:
        OWN_BACKENDS.discard(conn)
        if clean:
            try:
                await asyncio.wait_for(conn.close(), CONNECT_TIMEOUT)
            except (OSError, asyncio.TimeoutError, asyncpg.InterfaceError, asyncpg.PostgresError):
                conn.terminate()
        else:
            conn.terminate()


@contextlib.asynccontextmanager
async def reading(name: str, database: Database) -> AsyncIterator[asyncpg.Connection]:
    """A READ ONLY transaction with SET LOCAL statement_timeout from the database's config, rolled back after."""
    async with connect(name, database) as conn:
        transaction = conn.transaction(readonly=True)
        await transaction.start()
        try:
            # SET LOCAL, as a function so the value is bound: it ends with the transaction.
            await conn.execute("SELECT set_config('statement_timeout', $1, true)", str(max(1, int(database.statement_timeout * 1000))))
            yield conn
        finally:
            if not conn.is_closed():
                try:
                    await transaction.rollback()  # it only read: nothing to commit
                except (asyncpg.PostgresError, asyncpg.InterfaceError, OSError):
                    pass

