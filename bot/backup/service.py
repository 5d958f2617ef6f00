"""Making, verifying, listing and pruning backups: what the pg_backup kind and /backup call.

make_backup   pg_dump -Fc streamed to <directory>/<database>_<YYYYmmdd_HHMMSS>.dump, then verified
              (pg_dump exit 0, PGDMP header, size on disk, pg_restore --list) and recorded with its SHA-256
verify_backup the file again: size and SHA-256 against the row, header, pg_restore --list, and a
              full read of every data block (pg_restore into /dev/null): truncation or corruption fails
apply_retention  bot.backup.retention's plan; files deleted, rows kept with deleted_at set
Time comes from bot.clock (a ManualClock in tests).

A row records its file relative to backups.directory (rows made before 0012 may hold an absolute
path, read as it is): every replica finds the file under its own mount of the shared directory.
A replica that cannot see a file changes nothing about it: verify says so and leaves the row, and
retention leaves the file's row as it is.
"""
from __future__ import annotations

import asyncio
import os
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path

from sqlalchemy import select, update

from bot.action.service import open_plan_values
from bot.backup import dump as pg
from bot.backup.dump import BackupError, CheckNotRun, Progress
from bot.backup.models import Backup
from bot.backup.retention import RetentionPlan, plan_retention

# Safety backups of a scratch database (/restore --into) are recorded as "scratch:<name>": never one of
# app.yaml's databases (whose keys have no ":"), so retention and /restore never take them for its backups.
SCRATCH_PREFIX = "scratch:"


def scratch_key(dbname: str) -> str:
    return SCRATCH_PREFIX + dbname


def is_scratch_key(database: str) -> bool:
    return database.startswith(SCRATCH_PREFIX)


class NoSuchBackup(LookupError):
    def __init__(self, backup_id: int):
        super().__init__(f"There is no backup #{backup_id}; /backup list shows them.")
        self.backup_id = backup_id


def directory(config) -> Path:
    return Path(config.backups.directory).expanduser().resolve()


def path_of(config, backup: Backup) -> Path:
    """Where this replica finds the backup's file: under backups.directory, or the absolute path an older row holds."""
    recorded = Path(backup.file)
    return recorded if recorded.is_absolute() else directory(config) / recorded


def unseen(config, backup: Backup) -> str | None:
    """Why this replica cannot see the backup's file (a sentence fragment), or None when it can."""
    path = path_of(config, backup)
    if path.is_file():
        return None
    return (
        f"this replica cannot see its file {path.name} in {path.parent} "
        "(backups.directory must be the same shared directory on every replica)"
    )


def file_for(config, database: str, at: datetime) -> Path:
    """<directory>/<database>_<YYYYmmdd_HHMMSS>.dump (UTC); _2, _3... when that second is taken."""
    base = directory(config)
    stamp = at.astimezone(timezone.utc).strftime("%Y%m%d_%H%M%S")
    stem = database.replace(":", "_")  # scratch:x -> scratch_x
    path = base / f"{stem}_{stamp}.dump"
    n = 2
    while path.exists() or path.with_name(path.name + ".partial").exists():
        path = base / f"{stem}_{stamp}_{n}.dump"
        n += 1
    return path


def _now(bot) -> datetime:
    clock = getattr(bot, "clock", None)
    if clock is not None:
        return clock.now()
    return datetime.now(timezone.utc)


async def make_backup(
    bot,
    database: str,
    *,
    made_by: str,
    label: str | None = None,
    progress: Progress | None = None,
    timeout: float | None = None,
    conn: pg.Connection | None = None,
) -> Backup:
    """Dump `database` (a name of app.yaml's databases:), verify the file, record the row.

    Returns the row; `verified` False with `verify_error` when the file was written but did
    not verify. BackupError when no file could be made (nothing is recorded then).
    `conn` overrides the connection (a restore's safety backup of a scratch database, recorded
    under scratch_key(its name)).
    """
    conn = conn or pg.connection(bot.config, database)
    started_at = _now(bot)
    path = file_for(bot.config, database, started_at)
    result = await pg.dump(bot.checks.docker, conn, path, progress=progress, timeout=timeout)
    problem = None
    on_disk = os.stat(path).st_size
    if on_disk != result.size:
        problem = f"the file holds {on_disk} bytes but pg_dump wrote {result.size}"
    elif not pg.has_header(path):
        problem = "the file does not start with the PGDMP header"
    else:
        problem = await pg.restore_list(bot.checks.docker, conn, path)
    row = Backup(
        database=database,
        file=str(path.relative_to(directory(bot.config))),  # the same on every replica that mounts the directory
        size=result.size,
        duration=round(result.duration, 3),
        sha256=result.sha256,
        verified=problem is None,
        verify_error=problem,
        label=label,
        made_by=made_by[:64],
        created_at=started_at,
        verified_at=_now(bot),
    )
    async with bot.db.sessions() as session, session.begin():
        session.add(row)
    return row


async def get_backup(db, backup_id: int) -> Backup:
    async with db.sessions() as session:
        row = await session.get(Backup, backup_id)
    if row is None:
        raise NoSuchBackup(backup_id)
    return row


async def list_backups(db, database: str | None = None, *, limit: int = 20, include_deleted: bool = False) -> list[Backup]:
    query = select(Backup).order_by(Backup.created_at.desc(), Backup.id.desc()).limit(limit)
    if database is not None:
        query = query.where(Backup.database == database)
    if not include_deleted:
        query = query.where(Backup.deleted_at.is_(None))
    async with db.sessions() as session:
        return list((await session.execute(query)).scalars())


@dataclass(frozen=True)
class Verification:
    backup: Backup
    problem: str | None  # None: no check found anything wrong
    unchecked: str | None = None  # the archive checks could not run (why): the verified flag was left as it was
    archive_read: bool = True  # pg_restore listed and read it; False: checksum and header only (a scratch safety backup)

    @property
    def ok(self) -> bool:
        return self.problem is None and self.unchecked is None


async def check_file(bot, backup: Backup, *, deep: bool, conn: pg.Connection | None = None) -> str | None:
    """None when the backup's file is what was recorded and readable; else what is wrong.

    CheckNotRun when pg_restore could not run at all (no client, Docker down, a timeout), or when this
    replica cannot see the file: that says nothing about the file.
    """
    path = path_of(bot.config, backup)
    if backup.deleted_at is not None:
        return f"its file was deleted by retention on {backup.deleted_at:%Y-%m-%d}"
    hidden = unseen(bot.config, backup)
    if hidden:
        raise CheckNotRun(hidden)
    size, digest = await asyncio.to_thread(pg.file_sha256, path)
    if size != backup.size:
        return f"the file holds {size} bytes but the backup was {backup.size} bytes (truncated or replaced)"
    if digest != backup.sha256:
        return "its SHA-256 does not match the one recorded when it was made (the file changed or is corrupted)"
    if not pg.has_header(path):
        return "the file does not start with the PGDMP header"
    if conn is None and backup.database in bot.config.databases:
        try:
            conn = pg.connection(bot.config, backup.database)
        except BackupError as exc:
            raise CheckNotRun(str(exc).rstrip(".")) from None
    if conn is None:
        return None  # a scratch database's safety backup: checksum and header are all we can check without its connection
    problem = await pg.restore_list(bot.checks.docker, conn, path, strict=True)
    if problem is None and deep:
        problem = await pg.restore_read_all(bot.checks.docker, conn, path, strict=True)
    return problem


async def verify_backup(bot, backup_id: int, *, deep: bool = True) -> Verification:
    """/backup verify: re-hash the file, list and read the archive; the row's verified flag follows.

    When the archive checks could not run (Docker down, no pg_restore), or this replica cannot see the
    file, the row is left as it was and Verification.unchecked says why: that is no finding about the file.
    """
    backup = await get_backup(bot.db, backup_id)
    archive_read = backup.database in bot.config.databases
    try:
        problem = await check_file(bot, backup, deep=deep)
    except CheckNotRun as exc:
        return Verification(backup, None, unchecked=str(exc).rstrip("."), archive_read=archive_read)
    values = {"verified": problem is None, "verify_error": problem, "verified_at": _now(bot)}
    if backup.deleted_at is None:
        async with bot.db.sessions() as session, session.begin():
            await session.execute(update(Backup).where(Backup.id == backup.id).values(**values))
        for key, value in values.items():
            setattr(backup, key, value)
    return Verification(backup, problem, archive_read=archive_read)


async def backups_in_use(bot) -> set[int]:
    """Backups an open request names (a pending, approved or running /restore of it)."""
    return {int(value) for value in await open_plan_values(bot.db, "pg_restore", "backup")}


async def retention_plan(bot, database: str) -> RetentionPlan:
    """What may go of `database`'s backups now: the one decision every deleting path asks (retention module)."""
    async with bot.db.sessions() as session:
        rows = list(
            (await session.execute(select(Backup).where(Backup.database == database, Backup.deleted_at.is_(None)))).scalars()
        )
    plan = plan_retention(rows, bot.config.backups.retention, _now(bot), await backups_in_use(bot))
    # A file this replica cannot see may well be on the shared directory another replica mounts: never
    # marked deleted from here.
    plan.unseen = [b for b in plan.delete if unseen(bot.config, b)]
    plan.delete = [b for b in plan.delete if b not in plan.unseen]
    return plan


async def apply_retention(bot, database: str, *, dry_run: bool = False) -> RetentionPlan:
    """Delete the files retention does not keep (rows stay, marked deleted); `dry_run` only says which.

    The pg_backup kind (after a backup), /backup retention and the backup schedules all call this.
    Of two replicas pruning at once, the conditional UPDATE lets only one of them report each deletion.
    """
    plan = await retention_plan(bot, database)
    if dry_run or not plan.delete:
        return plan
    now = _now(bot)
    deleted = []
    for backup in plan.delete:
        try:
            path_of(bot.config, backup).unlink()
        except FileNotFoundError:
            pass  # another replica's retention took it meanwhile
        async with bot.db.sessions() as session, session.begin():
            marked = await session.execute(
                update(Backup).where(Backup.id == backup.id, Backup.deleted_at.is_(None)).values(deleted_at=now)
            )
        if marked.rowcount == 1:
            backup.deleted_at = now
            deleted.append(backup)
    plan.delete = deleted
    return plan


__all__ = [
    "BackupError",
    "CheckNotRun",
    "SCRATCH_PREFIX",
    "NoSuchBackup",
    "Verification",
    "apply_retention",
    "check_file",
    "directory",
    "file_for",
    "get_backup",
    "list_backups",
    "make_backup",
    "path_of",
    "unseen",
    "backups_in_use",
    "retention_plan",
    "scratch_key",
    "is_scratch_key",
    "verify_backup",
]
