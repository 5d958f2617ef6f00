"""Restoring a backup: into its own database (overwriting it) or into a scratch database.

The checksum is verified first: a file that changed since it was made is never restored (an object in
S3 is hashed in one streamed pass, then restored in a second pass pinned to the version hashed).
pg_restore runs in one transaction with --exit-on-error, so a failed restore leaves the
target as it was; the original database gets --clean --if-exists (objects dropped, then
recreated from the archive) and --no-owner. A scratch database is created when missing
(CREATE DATABASE, its name checked as a plain identifier and quoted).

The order around it (safety backup, stopping and starting dependents, health) is the
pg_restore action kind's: bot/action/kinds/pg_restore.py.
"""
from __future__ import annotations

import asyncio
import re

import asyncpg

from bot.backup import dump as pg
from bot.backup.dump import BackupError, Progress
from bot.backup.models import Backup
from bot.backup.service import SCRATCH_PREFIX, CheckNotRun, Pin, check_file
from bot.backup.stores import store_for
from bot.redaction import redact_cut
from bot.storage import OWN_BACKENDS

# At most 56 characters: its safety backups are recorded as "scratch:<name>" in a 64-character column.
MAX_SCRATCH_NAME = 64 - len(SCRATCH_PREFIX)
IDENTIFIER = re.compile(rf"^[A-Za-z_][A-Za-z0-9_]{{0,{MAX_SCRATCH_NAME - 1}}}$")
RESERVED = {"postgres", "template0", "template1"}


def check_database_name(name: str) -> str:
    """A scratch database name as typed: a plain identifier, not a system database. ValueError otherwise."""
    if not IDENTIFIER.fullmatch(name):
        raise ValueError(f"a database name is letters, digits and _ (at most {MAX_SCRATCH_NAME}, not starting with a digit)")
    if name.lower() in RESERVED:
        raise ValueError(f"{name} is a system database")
    return name


def declared_collision(config, name: str) -> str | None:
    """Why `name` may not be a scratch database: it is a database key of app.yaml, or the PostgreSQL name
    of a declared database (the backup's own included: restoring over it is /restore without --into)."""
    folded = name.casefold()
    for key, entry in config.databases.items():
        if key.casefold() == folded:
            return f"{name} is a database of app.yaml"
        try:
            dbname = pg.connection(config, key).dbname
        except Exception:  # a ${VAR} not set, a DSN that does not parse: that database cannot collide now
            continue
        if dbname.casefold() == folded:
            return f"{name} is the PostgreSQL database of {key} in app.yaml"
    return None


def quote_ident(name: str) -> str:
    return '"' + name.replace('"', '""') + '"'


async def _admin(conn: pg.Connection):
    try:
        admin = await asyncpg.connect(conn.dsn, timeout=10, server_settings={"application_name": "opsbot"})
    except (OSError, ValueError, asyncio.TimeoutError, asyncpg.PostgresError, asyncpg.InterfaceError) as exc:
        text = str(exc).strip().splitlines()[0] if str(exc).strip() else ""
        raise BackupError(f"cannot connect to {conn.database} ({exc.__class__.__name__}: {redact_cut(text, 200)})") from None
    # Known by pid while open (the callers close it), so a kill-idle meanwhile never takes it.
    started = await admin.fetchval("SELECT backend_start FROM pg_stat_activity WHERE pid = pg_backend_pid()")
    OWN_BACKENDS.add(admin, admin.get_server_pid(), started)
    admin.add_termination_listener(lambda closed: OWN_BACKENDS.discard(closed))
    return admin


# Set on every database a --into creates: only those may be restored into again, so --into can
# never overwrite a database whose owners the plan did not check (another app's, say).
SCRATCH_MARK = "opsbot scratch restore"


async def is_scratch(conn: pg.Connection, dbname: str) -> bool:
    """Whether `dbname` is a scratch database an earlier --into created."""
    admin = await _admin(conn)
    try:
        comment = await admin.fetchval(
            "SELECT shobj_description(oid, 'pg_database') FROM pg_database WHERE datname = $1", dbname
        )
        return comment == SCRATCH_MARK
    finally:
        await admin.close()


async def database_exists(conn: pg.Connection, dbname: str) -> bool:
    """Whether the server `conn` points at has a database named `dbname`."""
    admin = await _admin(conn)
    try:
        return bool(await admin.fetchval("SELECT 1 FROM pg_database WHERE datname = $1", dbname))
    finally:
        await admin.close()


async def create_database(conn: pg.Connection, dbname: str) -> bool:
    """CREATE DATABASE when missing, marked as a scratch database; True when it was created now."""
    check_database_name(dbname)
    admin = await _admin(conn)
    try:
        if await admin.fetchval("SELECT 1 FROM pg_database WHERE datname = $1", dbname):
            return False
        try:
            await admin.execute(f"CREATE DATABASE {quote_ident(dbname)}")
            await admin.execute(f"COMMENT ON DATABASE {quote_ident(dbname)} IS '{SCRATCH_MARK}'")
        except asyncpg.DuplicateDatabaseError:
            return False
        except asyncpg.PostgresError as exc:
            raise BackupError(f"CREATE DATABASE {dbname} failed ({str(exc)[:200]})") from None
        return True
    finally:
        await admin.close()


async def restore_backup(
    bot,
    backup: Backup,
    *,
    into: str | None = None,
    create: bool = True,
    progress: Progress | None = None,
    timeout: float | None = None,
    conn: pg.Connection | None = None,
) -> pg.Connection:
    """Restore `backup` into its database (into=None: --clean over the original) or into `into`
    (created when missing; an existing one is cleaned like the original).

    The file's size and SHA-256 are checked against the row first (BackupError when they differ).
    `into` may not be a declared database; whether it exists is looked at now, not taken from the
    plan (`create` is kept for callers and no longer decides): an existing one must be a scratch
    database an earlier --into made, else BackupError before pg_restore runs.
    Returns the connection of the database restored into.
    """
    if backup.deleted_at is not None:
        raise BackupError(f"backup #{backup.id}'s file was deleted by retention; nothing was restored")
    source = conn or pg.connection(bot.config, backup.database)
    pin = Pin()
    try:
        problem = await check_file(bot, backup, deep=False, conn=source, pin=pin)
    except CheckNotRun as exc:
        raise BackupError(f"backup #{backup.id} could not be checked before restoring ({str(exc).rstrip('.')}); nothing was restored") from None
    if problem:
        raise BackupError(f"backup #{backup.id} cannot be restored: {problem}; nothing was restored")
    if into is None or into == source.dbname:
        target, clean = source, True
    else:
        check_database_name(into)
        collision = declared_collision(bot.config, into)
        if collision:
            raise BackupError(f"--into {into}: {collision}, not a scratch database; nothing was restored")
        target = source.with_dbname(into)
        # A new scratch database is empty; an existing one is overwritten like the original (--clean),
        # but only one an earlier --into made: a database that appeared since the plan is not touched.
        created = await create_database(source, into)
        if not created and not await is_scratch(source, into):
            raise BackupError(
                f"database {into} exists now and is not a scratch database an earlier --into made, so it was not "
                "overwritten; nothing was restored"
            )
        clean = not created
    # An object streams into pg_restore's standard input (-Fc needs no seeking for a whole restore), read
    # at the version the check above hashed (If-Match): one replaced since then is never restored.
    archive = None
    try:
        async with store_for(bot.config).archive(backup, drain=False, if_match=pin.etag) as archive:
            await pg.restore(bot.checks.docker, target, archive.path, clean=clean, progress=progress, timeout=timeout, piped=archive.piped)
    except BackupError:
        if archive is not None and archive.stream is not None and archive.stream.error:
            raise BackupError(
                f"backup #{backup.id} could not be read from the store ({archive.stream.error}); pg_restore's transaction "
                "was rolled back, nothing was restored"
            ) from None
        raise
    return target
