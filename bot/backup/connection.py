"""How the client reaches one database: the conninfo without secrets, and the environment that carries them.

The password travels in the command's environment (PGPASSWORD), never in its arguments.
"""
from __future__ import annotations

import os
import shutil
from contextlib import contextmanager
from dataclasses import dataclass, replace
from urllib.parse import quote, urlsplit, urlunsplit

from bot.backup.errors import BackupError
from bot.backup.runners import LocalRunner, Runner
from bot.config.types import expand_env
from bot.database.connection import SECRET_PARAMETERS, split_dsn
from bot.redaction import redact_cut
from bot.storage import OWN_BACKENDS


@dataclass(frozen=True)
class Connection:
    """How the client reaches one database: a conninfo without any secret, the secrets apart."""

    database: str  # the name in app.yaml (or "scratch:<name>" for a scratch database's safety backup)
    conninfo: str  # postgresql://user@host:port/dbname?..., no password, no secret query parameter
    password: str | None
    dbname: str  # the PostgreSQL database name
    container: str | None  # where pg_dump/pg_restore run; None: the local client
    dsn: str  # full DSN (with the password) for the bot's own connection (CREATE DATABASE); postgresql://
    secrets: tuple[tuple[str, str], ...] = ()  # libpq keyword -> value (password, sslpassword): never in argv

    def with_dbname(self, dbname: str, database: str | None = None) -> "Connection":
        return replace(
            self,
            database=database if database is not None else self.database,
            conninfo=_replace_db(self.conninfo, dbname),
            dbname=dbname,
            dsn=_replace_db(self.dsn, dbname),
        )


def _replace_db(dsn: str, dbname: str) -> str:
    parts = urlsplit(dsn)
    return urlunsplit((parts.scheme, parts.netloc, "/" + quote(dbname, safe=""), parts.query, parts.fragment))


def connection(config, database: str) -> Connection:
    """The Connection for a database of app.yaml (${VAR} expanded now; the result is never logged).

    postgresql+asyncpg:// (SQLAlchemy's spelling, e.g. ${DATABASE_URL}) is rewritten for libpq;
    BackupError when the DSN is not a postgresql:// URL.
    """
    entry = config.databases[database]
    try:
        split = split_dsn(expand_env(entry.dsn))
    except ValueError as exc:
        raise BackupError(f"the DSN of {database} cannot be used ({redact_cut(str(exc), 120)})") from None
    return Connection(database, split.conninfo, split.password, split.dbname, entry.container, split.dsn, tuple(split.secrets.items()))



def client_env(conn: Connection) -> dict[str, str]:
    """The client's environment: PGPASSWORD for a password (of the user info or of password=)."""
    env = {"PGCONNECT_TIMEOUT": "10", "PGAPPNAME": "opsbot-backup"}
    for keyword, value in conn.secrets:
        variable = SECRET_PARAMETERS.get(keyword)
        if variable:
            env[variable] = value
    if conn.password is not None and "PGPASSWORD" not in env:
        env["PGPASSWORD"] = conn.password
    return env


@contextmanager
def client_environment(conn: Connection, runner: Runner):
    """client_env(), plus the secrets libpq reads from no environment variable (sslpassword=): for the
    local client in a service file only this user can read (PGSERVICEFILE), removed afterwards. In a
    container there is no such file, and the argument list is no place for them: BackupError."""
    with OWN_BACKENDS.secret_name("opsbot-backup") as name:  # kill-idle spares the client while it runs
        with _with_service_file(conn, runner, {**client_env(conn), "PGAPPNAME": name}) as env:
            yield env


@contextmanager
def _with_service_file(conn: Connection, runner: Runner, env: dict[str, str]):
    rest = [(k, v) for k, v in conn.secrets if not SECRET_PARAMETERS.get(k) and k in SECRET_PARAMETERS]
    if not rest:
        yield env
        return
    names = ", ".join(f"{k}=" for k, _ in rest)
    if not isinstance(runner, LocalRunner):
        raise BackupError(
            f"the DSN of {conn.database} holds {names}, which {runner.where} could only get on its command line; "
            "use a client key without a passphrase there, or run the client on the bot's host (no container:)"
        )
    if any("\n" in v or "\r" in v for _, v in rest):
        raise BackupError(f"the DSN of {conn.database} holds {names} with a line break, which the client cannot take")
    import tempfile

    folder = tempfile.mkdtemp(prefix="opsbot-pg-")  # mode 0700
    path = os.path.join(folder, "pg_service.conf")
    try:
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(fd, "w") as service:
            service.write("[opsbot]\n" + "".join(f"{k}={v}\n" for k, v in rest))
        yield {**env, "PGSERVICEFILE": path, "PGSERVICE": "opsbot"}
    finally:
        shutil.rmtree(folder, ignore_errors=True)

