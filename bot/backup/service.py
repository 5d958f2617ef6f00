"""Making, verifying, listing and pruning backups: what the pg_backup kind and /backup call.

make_backup   pg_dump -Fc streamed to <database>_<YYYYmmdd_HHMMSS>.dump in the store (bot.backup.stores:
              a file under backups.directory, or an S3 object), then verified (pg_dump exit 0, PGDMP
              header, size stored, pg_restore --list) and recorded with its SHA-256
verify_backup the dump again: size and SHA-256 against the row, header, pg_restore --list, and a
              full read of every data block (pg_restore into /dev/null): truncation or corruption fails
apply_retention  bot.backup.retention's plan; dumps deleted by the store, rows kept with deleted_at set
Time comes from bot.clock (a ManualClock in tests).

A row records its store and its file there: relative to backups.directory (rows made before 0012 may
hold an absolute path, read as it is), or the object's key. Every replica finds it under its own mount
of the shared directory, or in the same bucket. A replica that cannot see a dump changes nothing about
it: verify says so and leaves the row, and retention leaves the row as it is.
"""
from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path

from sqlalchemy import select, update

from bot.action.service import open_plan_values
from bot.backup import dump as pg
from bot.backup.dump import BackupError, CheckNotRun, Progress
from bot.backup.models import Backup
from bot.backup.retention import RetentionPlan, plan_retention
from bot.backup.stores import store_for

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


def destination(config) -> str:
    """Where new dumps go, as a plan shows it: the directory, or s3://bucket/prefix."""
    storage = config.backups.storage
    return f"s3://{storage.bucket}/{storage.prefix}".rstrip("/") if storage.kind == "s3" else str(directory(config))


def path_of(config, backup: Backup) -> Path:
    """Where this replica finds a local backup's file: under backups.directory, or the absolute path an older row holds."""
    recorded = Path(backup.file)
    return recorded if recorded.is_absolute() else directory(config) / recorded


def unseen(config, backup: Backup) -> str | None:
    """Why this replica cannot see the backup's dump (a sentence fragment), or None when it can."""
    return store_for(config).unseen(backup)


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
    store = store_for(bot.config)
    file = await store.new_file(database, started_at)
    result = await pg.dump(bot.checks.docker, conn, store.target(file), progress=progress, timeout=timeout)
    row = Backup(database=database, file=file, storage=store.kind)
    problem = None
    stored = await store.stored_size(file)
    if stored != result.size:
        problem = f"the store holds {stored} bytes but pg_dump wrote {result.size}"
    elif store.kind == "local" and not pg.has_header(path_of(bot.config, row)):
        problem = "the file does not start with the PGDMP header"
    else:
        try:
            async with store.archive(row, drain=False) as archive:
                problem = await pg.restore_list(bot.checks.docker, conn, archive.path, piped=archive.piped)
        except CheckNotRun as exc:
            problem = str(exc).rstrip(".")
    row = Backup(
        database=database,
        file=file,
        storage=store.kind,
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


async def check_file(bot, backup: Backup, *, deep: bool, conn: pg.Connection | None = None, pin: "Pin | None" = None) -> str | None:
    """None when the backup's file is what was recorded and readable; else what is wrong.

    CheckNotRun when pg_restore could not run at all (no client, Docker down, a timeout), or when this
    replica cannot see the file: that says nothing about the file.
    """
    if backup.deleted_at is not None:
        return f"its file was deleted by retention on {backup.deleted_at:%Y-%m-%d}"
    store = store_for(bot.config)
    hidden = store.unseen(backup)
    if hidden:
        raise CheckNotRun(hidden)
    unusable = None  # why the database's connection cannot be used: the archive checks cannot run
    if conn is None and backup.database in bot.config.databases:
        try:
            conn = pg.connection(bot.config, backup.database)
        except BackupError as exc:
            unusable = str(exc).rstrip(".")
    if store.kind == "s3" and conn is not None:
        return await _check_object(bot, store, backup, conn, deep=deep, pin=pin)
    digest = await store.digest(backup)  # a file, or an object read through once
    problem = _digest_problem(backup, digest.size, digest.sha256, digest.head)
    if problem:
        return problem
    if unusable:
        raise CheckNotRun(unusable)
    if conn is None:
        return None  # a scratch database's safety backup: checksum and header are all we can check without its connection
    path = path_of(bot.config, backup)
    problem = await pg.restore_list(bot.checks.docker, conn, path, strict=True)
    if problem is None and deep:
        problem = await pg.restore_read_all(bot.checks.docker, conn, path, strict=True)
    return problem


def _digest_problem(backup: Backup, size: int, sha256: str, head: bytes) -> str | None:
    if size != backup.size:
        return f"the file holds {size} bytes but the backup was {backup.size} bytes (truncated or replaced)"
    if sha256 != backup.sha256:
        return "its SHA-256 does not match the one recorded when it was made (the file changed or is corrupted)"
    if head != pg.MAGIC:
        return "the file does not start with the PGDMP header"
    return None


@dataclass
class Pin:
    """The object version a check read (its ETag): a restore after the check reads that same version."""

    etag: str | None = None


async def _check_object(bot, store, backup: Backup, conn, *, deep: bool, pin: Pin | None) -> str | None:
    """One streamed pass over the object: pg_restore lists it (deep: reads every block) while every
    byte is hashed; a wrong size or SHA-256 is reported before what pg_restore said of the bytes."""
    async with store.archive(backup, drain=True) as archive:
        read = pg.restore_read_all if deep else pg.restore_list
        problem = await read(bot.checks.docker, conn, archive.path, strict=True, piped=True)
    seen = archive.stream
    if pin is not None:
        pin.etag = seen.etag
    return _digest_problem(backup, seen.size, seen.sha256, seen.head) or problem


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
    store = store_for(bot.config)
    for backup in plan.delete:
        await store.delete(backup)  # the plan decided; the store only executes it
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
    "destination",
    "directory",
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
