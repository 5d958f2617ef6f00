"""Where dumps are kept, as backups.storage says: files under backups.directory, or objects in S3.

The service asks a store for a new dump's target, for an archive to read (a path, or a FIFO an
object streams into), for its bytes' size and SHA-256, and to delete a dump retention let go.
A row records which store holds its dump (Backup.storage) and where in it (Backup.file): a
replica whose backups.storage is another one cannot see it, and changes nothing about it.
"""
from __future__ import annotations

import asyncio
import secrets
from contextlib import asynccontextmanager
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path

from bot.backup import dump as pg
from bot.backup import s3
from bot.backup.errors import BackupError, CheckNotRun
from bot.backup.models import Backup


def dump_name(database: str, at: datetime) -> str:
    """<database>_<YYYYmmdd_HHMMSS>_<6 random hex>.dump (UTC).

    The random suffix makes two dumps started in the same second (a schedule and a deploy's
    backup_first, or two replicas) distinct without anything to reserve between choosing a name
    and writing it; the time first keeps names sorted by time. Rows made before hold names without
    the suffix (or _2, _3...): they are read as recorded, never parsed.
    """
    stamp = at.astimezone(timezone.utc).strftime("%Y%m%d_%H%M%S")
    stem = database.replace(":", "_")  # scratch:x -> scratch_x
    return f"{stem}_{stamp}_{secrets.token_hex(3)}.dump"


@dataclass
class Digest:
    size: int
    sha256: str
    head: bytes


class LocalStore:
    kind = "local"

    def __init__(self, config):
        self.base = Path(config.backups.directory).expanduser().resolve()

    def path_of(self, backup: Backup) -> Path:
        """Under backups.directory, or the absolute path a row made before migration 0012 holds."""
        recorded = Path(backup.file)
        return recorded if recorded.is_absolute() else self.base / recorded

    async def new_file(self, database: str, at: datetime) -> str:
        while True:  # a name already there is a 1 in 16.7 million draw: draw again
            path = self.base / dump_name(database, at)
            if not path.exists() and not path.with_name(path.name + ".partial").exists():
                return path.name  # relative: the same on every replica that mounts the directory

    def target(self, file: str):
        return pg.FileTarget(self.base / file)

    async def stored_size(self, file: str) -> int:
        return (self.base / file).stat().st_size

    def unseen(self, backup: Backup) -> str | None:
        if backup.storage != "local":
            return f"it is in {backup.storage} storage, and this replica's backups.storage is local"
        path = self.path_of(backup)
        if path.is_file():
            return None
        return (
            f"this replica cannot see its file {path.name} in {path.parent} "
            "(backups.directory must be the same shared directory on every replica)"
        )

    async def digest(self, backup: Backup) -> Digest:
        path = self.path_of(backup)
        size, sha = await asyncio.to_thread(pg.file_sha256, path)
        return Digest(size, sha, b"PGDMP" if pg.has_header(path) else b"")

    async def delete(self, backup: Backup) -> None:
        try:
            self.path_of(backup).unlink()
        except FileNotFoundError:
            pass  # another replica's retention took it meanwhile

    @asynccontextmanager
    async def archive(self, backup: Backup, *, drain: bool, if_match: str | None = None):
        """The file itself: pg_restore reads it by name."""
        yield Archive(str(self.path_of(backup)), piped=False)


@dataclass
class Archive:
    path: str
    piped: bool
    stream: s3.ObjectStream | None = None


class S3Store:
    kind = "s3"

    def __init__(self, config):
        self.storage = config.backups.storage

    def where(self, file: str) -> str:
        return f"s3://{self.storage.bucket}/{file}"

    async def new_file(self, database: str, at: datetime) -> str:
        # The HEAD also finds an unreadable bucket before pg_dump starts; a key already there is a 1 in 16.7 million draw.
        async with s3.client(self.storage) as client:
            while True:
                key = self.storage.prefix + dump_name(database, at)
                try:
                    await client.head_object(Bucket=self.storage.bucket, Key=key)
                except Exception as exc:
                    if s3.missing(exc):
                        return key
                    raise BackupError(f"the bucket {self.storage.bucket} cannot be read ({s3.failure(exc)}); no backup was made.") from None

    def target(self, file: str):
        return s3.MultipartUpload(self.storage, file)

    async def stored_size(self, file: str) -> int:
        async with s3.client(self.storage) as client:
            try:
                return (await client.head_object(Bucket=self.storage.bucket, Key=file))["ContentLength"]
            except Exception as exc:
                raise BackupError(f"{self.where(file)} cannot be read back ({s3.failure(exc)})") from None

    def unseen(self, backup: Backup) -> str | None:
        if backup.storage != "s3":
            return f"it is in {backup.storage} storage, and this replica's backups.storage is s3"
        return None

    async def digest(self, backup: Backup) -> Digest:
        seen = await s3.read_through(self.storage, backup.file)
        self._check_read(backup, seen)
        return Digest(seen.size, seen.sha256, seen.head)

    def _check_read(self, backup: Backup, seen: s3.ObjectStream) -> None:
        if seen.error:
            raise CheckNotRun(f"{self.where(backup.file)} could not be read ({seen.error})")

    async def delete(self, backup: Backup) -> None:
        async with s3.client(self.storage) as client:
            try:
                await client.delete_object(Bucket=self.storage.bucket, Key=backup.file)  # gone already: no error
            except Exception as exc:
                raise BackupError(f"deleting {self.where(backup.file)} failed ({s3.failure(exc)})") from None

    @asynccontextmanager
    async def archive(self, backup: Backup, *, drain: bool, if_match: str | None = None):
        """A FIFO the object streams into; after the block, Archive.stream holds its size and SHA-256
        (CheckNotRun when the store could not be read: that says nothing about the dump)."""
        async with s3.stream(self.storage, backup.file, drain=drain, if_match=if_match) as seen:
            archive = Archive(seen.path, piped=True, stream=seen)
            yield archive
        self._check_read(backup, seen)


def store_for(config):
    return S3Store(config) if config.backups.storage.kind == "s3" else LocalStore(config)
