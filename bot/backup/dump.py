"""pg_dump, pg_restore --list and pg_restore of one database, never through a shell.

The client runs locally or in the database's container (bot.backup.runners), with the secrets in
its environment (bot.backup.connection). A dump is hashed (SHA-256) as it streams into its target:
a file written to `<name>.partial` and renamed when whole, or an S3 multipart upload completed when
whole (bot.backup.s3); memory stays flat whatever the database's size, and a dump that did not
finish never looks like a backup. An archive is read from a path: a file, or a FIFO an object is
streamed into (`piped`: the client reads it on its standard input, which needs no seeking).
"""
from __future__ import annotations

import asyncio
import hashlib
import os
import shutil  # noqa: F401 (tests patch shutil.which through this module)
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Awaitable, Callable

from bot.backup.connection import Connection, client_env, client_environment, connection  # noqa: F401 (re-exported)
from bot.backup.errors import BackupError, CheckNotRun, ClientMissing, StillRunning, error_line
from bot.backup.runners import CHUNK, DockerRunner, LocalRunner, Runner, runner_for  # noqa: F401 (re-exported)

_error_line = error_line  # its old name, kept for callers
PROGRESS_EVERY = 2.0  # seconds between progress callbacks
MAGIC = b"PGDMP"  # the custom format's first bytes

Progress = Callable[[int, float], Awaitable[None]]  # (bytes so far, seconds elapsed)

# --------------------------------------------------------------------------- progress


class Meter:
    """Bytes so far, read by a ticker that calls `progress` every PROGRESS_EVERY seconds."""

    def __init__(self):
        self.bytes = 0
        self.started = time.monotonic()

    @property
    def elapsed(self) -> float:
        return time.monotonic() - self.started

    async def tick(self, progress: Progress | None) -> None:
        if progress is None:
            return
        while True:
            await asyncio.sleep(PROGRESS_EVERY)
            try:
                await progress(self.bytes, self.elapsed)
            except Exception:  # showing progress must never stop the dump
                pass


async def _with_progress(coro, meter: Meter, progress: Progress | None, timeout: float | None, on_timeout: Callable[[], None]):
    ticker = asyncio.create_task(meter.tick(progress))
    try:
        if timeout:
            return await asyncio.wait_for(coro, timeout)
        return await coro
    except (TimeoutError, asyncio.TimeoutError):
        on_timeout()
        raise
    finally:
        ticker.cancel()


def _timed_out(runner: Runner, what: str, timeout: float | None, *, after: str) -> str:
    """What a timeout did: the local client was stopped; one in a container may still be running."""
    if runner.stops_on_timeout:
        return f"{what} was still running after {timeout:g} s and was stopped{after}"
    return (
        f"{what} was still running after {timeout:g} s; the bot stopped waiting for it, but it may still be "
        f"running in {runner.where} (check there by hand){after}"
    )


# --------------------------------------------------------------------------- dump


@dataclass(frozen=True)
class DumpResult:
    path: Path | None  # the file, for local storage; None for an object in a store
    size: int
    sha256: str
    duration: float
    where: str


class HashingSink:
    """Hands each chunk to the target while hashing it and keeping the first bytes; called on whichever
    thread the runner writes from (never the event loop's)."""

    def __init__(self, target, meter: Meter):
        self.target = target
        self.hash = hashlib.sha256()
        self.meter = meter
        self.head = b""

    def __call__(self, chunk: bytes) -> None:
        if len(self.head) < len(MAGIC):
            self.head += chunk[: len(MAGIC) - len(self.head)]
        self.target.write(chunk)
        self.hash.update(chunk)
        self.meter.bytes += len(chunk)


class FileTarget:
    """A dump written to `<name>.partial`, renamed to `<name>` once it is whole, deleted otherwise."""

    def __init__(self, path: Path):
        self.path = path
        self.partial = path.with_name(path.name + ".partial")
        self.file = None

    async def open(self) -> None:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self.file = open(self.partial, "wb")

    def write(self, chunk: bytes) -> None:
        self.file.write(chunk)

    async def finish(self) -> None:
        def flush():
            self.file.flush()
            os.fsync(self.file.fileno())
            self.file.close()

        await asyncio.to_thread(flush)

    async def commit(self) -> None:
        os.replace(self.partial, self.path)

    async def discard(self) -> None:
        if self.file is not None:
            self.file.close()
        try:
            self.partial.unlink()
        except FileNotFoundError:
            pass


async def dump(docker, conn: Connection, target, *, progress: Progress | None = None, timeout: float | None = None) -> DumpResult:
    """pg_dump -Fc of `conn` into `target` (a Path, or a target such as an S3 multipart upload), hashed as
    it streams. BackupError on failure; the target is then discarded (a .partial file deleted, an upload aborted)."""
    if isinstance(target, Path):
        target = FileTarget(target)
    runner = runner_for(docker, conn, "pg_dump")
    meter = Meter()
    argv = ["pg_dump", "--format=custom", "--no-password", f"--dbname={conn.conninfo}"]
    ok = False
    await target.open()
    sink = HashingSink(target, meter)
    try:
        try:
            with client_environment(conn, runner) as env:
                code, stderr = await _with_progress(runner.run(argv, sink, env=env), meter, progress, timeout, runner.kill)
        except (TimeoutError, asyncio.TimeoutError):
            message = _timed_out(runner, f"pg_dump of {conn.database}", timeout, after="; no backup was kept.")
            if runner.stops_on_timeout:
                raise BackupError(message) from None
            raise StillRunning(message, runner.where) from None
        if code != 0:
            raise BackupError(f"pg_dump of {conn.database} failed (exit {code}, {runner.where}): {error_line(stderr)}; no backup was kept.")
        if sink.head != MAGIC:
            raise BackupError(f"pg_dump of {conn.database} wrote no custom-format archive (no PGDMP header); no backup was kept.")
        await target.finish()
        await target.commit()
        ok = True
    finally:
        if not ok:
            await asyncio.shield(target.discard())  # a cancelled run still aborts its upload
    return DumpResult(getattr(target, "path", None), meter.bytes, sink.hash.hexdigest(), meter.elapsed, runner.where)


# --------------------------------------------------------------------------- checks of a file


def file_sha256(path: Path) -> tuple[int, str]:
    """(size, sha256) read in chunks: flat memory. Blocking: run it in a thread."""
    digest, size = hashlib.sha256(), 0
    with open(path, "rb", buffering=0) as source:
        buffer = bytearray(CHUNK)
        view = memoryview(buffer)
        while True:
            n = source.readinto(buffer)
            if not n:
                break
            digest.update(view[:n])
            size += n
    return size, digest.hexdigest()


def has_header(path: Path) -> bool:
    with open(path, "rb") as source:
        return source.read(len(MAGIC)) == MAGIC


async def restore_list(docker, conn: Connection, path: Path, *, strict: bool = False, piped: bool = False) -> str | None:
    """pg_restore --list on the file: None when it reads, else why not (a sentence fragment).

    strict: CheckNotRun when the check could not run at all (no client, Docker down, a timeout),
    instead of that reason as the file's problem.
    """
    return await _read_archive(docker, conn, path, ["pg_restore", "--list"], strict=strict, piped=piped)


async def restore_read_all(
    docker, conn: Connection, path: Path, timeout: float | None = None, *, strict: bool = False, piped: bool = False
) -> str | None:
    """pg_restore of the whole archive into /dev/null: every data block is read and decompressed.

    Catches a truncated or corrupted file even without a checksum to compare against.
    """
    return await _read_archive(docker, conn, path, ["pg_restore", "--file=/dev/null"], timeout, strict=strict, piped=piped)


async def _read_archive(
    docker, conn: Connection, path: Path, argv: list[str], timeout: float | None = None, *, strict: bool = False, piped: bool = False
) -> str | None:
    runner = runner_for(docker, conn, "pg_restore_local_file")
    # pg_restore opens a named file twice (format check, then read): a FIFO goes to its standard input.
    local = isinstance(runner, LocalRunner) and not piped
    meter = Meter()

    def count(chunk: bytes) -> None:
        meter.bytes += len(chunk)

    try:
        try:
            code, stderr = await _with_progress(
                runner.run(argv + ([str(path)] if local else []), count, env={}, stdin_path=None if local else str(path)),
                meter,
                None,
                timeout,
                runner.kill,
            )
        except (TimeoutError, asyncio.TimeoutError):
            raise CheckNotRun(_timed_out(runner, argv[0], timeout, after="")) from None
        except ClientMissing as exc:
            raise CheckNotRun(str(exc).rstrip(".")) from None
    except CheckNotRun as exc:
        if strict:
            raise
        return str(exc).rstrip(".")
    if code != 0:
        return f"{' '.join(argv)} failed (exit {code}): {error_line(stderr)}"
    return None


async def restore(
    docker,
    conn: Connection,
    path: Path,
    *,
    clean: bool,
    progress: Progress | None = None,
    timeout: float | None = None,
    piped: bool = False,
) -> None:
    """pg_restore the archive into `conn`'s database, in one transaction (a failure changes nothing).

    `clean` drops the objects it restores first (--clean --if-exists): the original database.
    Streamed into the container's pg_restore through stdin when the database has a container.
    A timeout stops the local client (its transaction rolls back); in a container the command cannot
    be stopped, and StillRunning says it may still change the database.
    """
    runner = runner_for(docker, conn, "pg_restore")
    local = isinstance(runner, LocalRunner) and not piped
    argv = ["pg_restore", "--no-owner", "--no-password", "--exit-on-error", "--single-transaction", f"--dbname={conn.conninfo}"]
    if clean:
        argv += ["--clean", "--if-exists"]
    if local:
        argv.append(str(path))
    meter = Meter()

    def count(chunk: bytes) -> None:
        meter.bytes += len(chunk)

    try:
        with client_environment(conn, runner) as env:
            code, stderr = await _with_progress(
                runner.run(argv, count, env=env, stdin_path=None if local else str(path)),
                meter,
                progress,
                timeout,
                runner.kill,
            )
    except (TimeoutError, asyncio.TimeoutError):
        what = f"pg_restore into {conn.dbname}"
        if runner.stops_on_timeout:
            raise BackupError(_timed_out(runner, what, timeout, after=" (its transaction rolls back)")) from None
        raise StillRunning(
            _timed_out(runner, what, timeout, after="; the database may change when it finishes"), runner.where
        ) from None
    if code != 0:
        raise BackupError(f"pg_restore into {conn.dbname} failed (exit {code}, {runner.where}): {error_line(stderr)}; its transaction was rolled back.")
