"""pg_dump, pg_restore --list and pg_restore: run locally or in the database's container, never through a shell.

Locally the client runs with asyncio.create_subprocess_exec and an argument list; in a
container through the Docker exec API (DockerGateway.exec_stream). Either way the password
travels in the command's environment (PGPASSWORD), never in its arguments, and output is
read in chunks: a dump is hashed (SHA-256) and written to `<name>.partial` as it arrives,
then renamed, so memory stays flat whatever the database's size and a dump that did not
finish never looks like a backup.
"""
from __future__ import annotations

import asyncio
import hashlib
import os
import shutil
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Awaitable, Callable
from urllib.parse import unquote, urlsplit, urlunsplit

from bot.config.types import expand_env
from bot.docker_engine import DockerUnavailable

CHUNK = 1 << 20
PROGRESS_EVERY = 2.0  # seconds between progress callbacks
MAGIC = b"PGDMP"  # the custom format's first bytes
STDERR_KEPT = 64 * 1024

Progress = Callable[[int, float], Awaitable[None]]  # (bytes so far, seconds elapsed)


class BackupError(Exception):
    """One sentence for the user: what failed and what state things are in."""


@dataclass(frozen=True)
class Connection:
    """How the client reaches one database: a conninfo without the password, the password apart."""

    database: str  # the name in app.yaml
    conninfo: str  # postgresql://user@host:port/dbname?..., no password
    password: str | None
    dbname: str  # the PostgreSQL database name
    container: str | None  # where pg_dump/pg_restore run; None: the local client
    dsn: str  # full DSN (with the password) for the bot's own connection (CREATE DATABASE)

    def with_dbname(self, dbname: str) -> "Connection":
        return Connection(self.database, _replace_db(self.conninfo, dbname), self.password, dbname, self.container, _replace_db(self.dsn, dbname))


def _replace_db(dsn: str, dbname: str) -> str:
    parts = urlsplit(dsn)
    return urlunsplit((parts.scheme, parts.netloc, "/" + dbname, parts.query, parts.fragment))


def connection(config, database: str) -> Connection:
    """The Connection for a database of app.yaml (${VAR} expanded now; the result is never logged)."""
    entry = config.databases[database]
    dsn = expand_env(entry.dsn)
    parts = urlsplit(dsn)
    password = unquote(parts.password) if parts.password is not None else None
    netloc = parts.netloc.rsplit("@", 1)
    if len(netloc) == 2:
        userinfo, host = netloc
        user = userinfo.split(":", 1)[0]
        netloc_clean = f"{user}@{host}" if user else host
    else:
        netloc_clean = netloc[0]
    conninfo = urlunsplit((parts.scheme, netloc_clean, parts.path, parts.query, parts.fragment))
    dbname = unquote(parts.path.lstrip("/")) or (unquote(parts.username or "") or "postgres")
    container = entry.container
    return Connection(database, conninfo, password, dbname, container, dsn)


# --------------------------------------------------------------------------- runners


class Runner:
    """Runs a client program with an argument list, streaming its stdout to a sink."""

    where: str = ""

    async def run(self, argv: list[str], sink: Callable[[bytes], None], *, env: dict[str, str], stdin_path: str | None = None) -> tuple[int, str]:
        raise NotImplementedError


class LocalRunner(Runner):
    where = "local client"

    def __init__(self):
        self.process: asyncio.subprocess.Process | None = None

    async def run(self, argv, sink, *, env, stdin_path=None):
        program = shutil.which(argv[0])
        if program is None:
            raise BackupError(
                f"{argv[0]} is not installed on the bot's host; install postgresql-client, or set container: for the database in app.yaml."
            )
        full_env = {k: v for k, v in os.environ.items() if k != "PGPASSWORD"}
        full_env.update(env)
        stdin = open(stdin_path, "rb") if stdin_path else asyncio.subprocess.DEVNULL
        try:
            self.process = process = await asyncio.create_subprocess_exec(
                program, *argv[1:], stdin=stdin, stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE, env=full_env, limit=CHUNK
            )
        finally:
            if stdin_path:
                stdin.close()
        _widen_pipe(process)
        stderr = bytearray()

        async def drain_stderr():
            while True:
                block = await process.stderr.read(65536)
                if not block:
                    return
                stderr.extend(block)
                if len(stderr) > STDERR_KEPT:
                    del stderr[: len(stderr) - STDERR_KEPT]

        errors = asyncio.create_task(drain_stderr())
        try:
            while True:
                block = await process.stdout.read(CHUNK)
                if not block:
                    break
                sink(block)
            await errors
            code = await process.wait()
        except BaseException:
            errors.cancel()
            self.kill()
            raise
        return code, stderr.decode("utf-8", "replace")

    def kill(self) -> None:
        if self.process is not None and self.process.returncode is None:
            try:
                self.process.kill()
            except ProcessLookupError:
                pass


def _widen_pipe(process) -> None:
    """A 1 MiB pipe instead of 64 KiB: 16 times fewer wake-ups of this process per byte dumped (Linux)."""
    try:
        import fcntl

        pipe = process._transport.get_pipe_transport(1).get_extra_info("pipe")
        fcntl.fcntl(pipe.fileno(), getattr(fcntl, "F_SETPIPE_SZ", 1031), CHUNK)
    except Exception:  # not Linux, or over /proc/sys/fs/pipe-max-size: the default pipe works too
        pass


class DockerRunner(Runner):
    def __init__(self, docker, container: str):
        self.docker, self.container = docker, container
        self.where = f"container {container}"

    async def run(self, argv, sink, *, env, stdin_path=None):
        try:
            return await self.docker.exec_stream(self.container, argv, sink, env=env, stdin_path=stdin_path, max_stderr=STDERR_KEPT)
        except DockerUnavailable as exc:
            raise BackupError(f"{argv[0]} in {self.container} could not run: {exc}.") from None


def runner_for(docker, conn: Connection, program: str = "pg_dump") -> Runner:
    """The database's container when app.yaml names one; else the local client.

    Reading a file that is on the bot's host (pg_restore --list) prefers the local client when
    it is installed, so the file need not be streamed into a container.
    """
    if conn.container is None:
        return LocalRunner()
    if program == "pg_restore_local_file" and shutil.which("pg_restore"):
        return LocalRunner()
    return DockerRunner(docker, conn.container)


def client_env(conn: Connection) -> dict[str, str]:
    env = {"PGCONNECT_TIMEOUT": "10", "PGAPPNAME": "opsbot-backup"}
    if conn.password is not None:
        env["PGPASSWORD"] = conn.password
    return env


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


# --------------------------------------------------------------------------- dump


@dataclass(frozen=True)
class DumpResult:
    path: Path
    size: int
    sha256: str
    duration: float
    where: str


class _FileSink:
    """Writes chunks to a file while hashing them; called on whichever thread reads the stream."""

    def __init__(self, path: Path, meter: Meter):
        self.file = open(path, "wb")
        self.hash = hashlib.sha256()
        self.meter = meter
        self.head = b""

    def __call__(self, chunk: bytes) -> None:
        if len(self.head) < len(MAGIC):
            self.head += chunk[: len(MAGIC) - len(self.head)]
        self.file.write(chunk)
        self.hash.update(chunk)
        self.meter.bytes += len(chunk)

    def close(self) -> None:
        self.file.close()


async def dump(docker, conn: Connection, path: Path, *, progress: Progress | None = None, timeout: float | None = None) -> DumpResult:
    """pg_dump -Fc of `conn` into `path` (via `path`.partial), hashed as it streams. BackupError on failure."""
    path.parent.mkdir(parents=True, exist_ok=True)
    partial = path.with_name(path.name + ".partial")
    runner = runner_for(docker, conn, "pg_dump")
    meter = Meter()
    sink = _FileSink(partial, meter)
    argv = ["pg_dump", "--format=custom", "--no-password", f"--dbname={conn.conninfo}"]
    ok = False
    try:
        try:
            code, stderr = await _with_progress(
                runner.run(argv, sink, env=client_env(conn)), meter, progress, timeout, getattr(runner, "kill", lambda: None)
            )
        except (TimeoutError, asyncio.TimeoutError):
            raise BackupError(f"pg_dump of {conn.database} was still running after {timeout:g} s and was stopped; no backup was kept.") from None
        sink.file.flush()
        os.fsync(sink.file.fileno())
        sink.close()
        if code != 0:
            raise BackupError(f"pg_dump of {conn.database} failed (exit {code}, {runner.where}): {_last_line(stderr)}; no backup was kept.")
        if sink.head != MAGIC:
            raise BackupError(f"pg_dump of {conn.database} wrote no custom-format archive (no PGDMP header); no backup was kept.")
        os.replace(partial, path)
        ok = True
    finally:
        sink.close()
        if not ok:
            try:
                partial.unlink()
            except FileNotFoundError:
                pass
    return DumpResult(path, meter.bytes, sink.hash.hexdigest(), meter.elapsed, runner.where)


def _last_line(stderr: str) -> str:
    lines = [line.strip() for line in stderr.strip().splitlines() if line.strip()]
    text = lines[-1] if lines else "no error output"
    return text[:300]


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


async def restore_list(docker, conn: Connection, path: Path) -> str | None:
    """pg_restore --list on the file: None when it reads, else why not (a sentence fragment)."""
    return await _read_archive(docker, conn, path, ["pg_restore", "--list"])


async def restore_read_all(docker, conn: Connection, path: Path, timeout: float | None = None) -> str | None:
    """pg_restore of the whole archive into /dev/null: every data block is read and decompressed.

    Catches a truncated or corrupted file even without a checksum to compare against.
    """
    return await _read_archive(docker, conn, path, ["pg_restore", "--file=/dev/null"], timeout)


async def _read_archive(docker, conn: Connection, path: Path, argv: list[str], timeout: float | None = None) -> str | None:
    runner = runner_for(docker, conn, "pg_restore_local_file")
    local = isinstance(runner, LocalRunner)
    meter = Meter()

    def count(chunk: bytes) -> None:
        meter.bytes += len(chunk)

    try:
        code, stderr = await _with_progress(
            runner.run(argv + ([str(path)] if local else []), count, env={}, stdin_path=None if local else str(path)),
            meter,
            None,
            timeout,
            getattr(runner, "kill", lambda: None),
        )
    except (TimeoutError, asyncio.TimeoutError):
        return f"{argv[0]} did not finish within {timeout:g} s"
    except BackupError as exc:
        return str(exc).rstrip(".")
    if code != 0:
        return f"{' '.join(argv)} failed (exit {code}): {_last_line(stderr)}"
    return None


async def restore(
    docker, conn: Connection, path: Path, *, clean: bool, progress: Progress | None = None, timeout: float | None = None
) -> None:
    """pg_restore the archive into `conn`'s database, in one transaction (a failure changes nothing).

    `clean` drops the objects it restores first (--clean --if-exists): the original database.
    Streamed into the container's pg_restore through stdin when the database has a container.
    """
    runner = runner_for(docker, conn, "pg_restore")
    local = isinstance(runner, LocalRunner)
    argv = ["pg_restore", "--no-owner", "--no-password", "--exit-on-error", "--single-transaction", f"--dbname={conn.conninfo}"]
    if clean:
        argv += ["--clean", "--if-exists"]
    if local:
        argv.append(str(path))
    meter = Meter()

    def count(chunk: bytes) -> None:
        meter.bytes += len(chunk)

    try:
        code, stderr = await _with_progress(
            runner.run(argv, count, env=client_env(conn), stdin_path=None if local else str(path)),
            meter,
            progress,
            timeout,
            getattr(runner, "kill", lambda: None),
        )
    except (TimeoutError, asyncio.TimeoutError):
        raise BackupError(f"pg_restore into {conn.dbname} was still running after {timeout:g} s and was stopped (its transaction rolls back).") from None
    if code != 0:
        raise BackupError(f"pg_restore into {conn.dbname} failed (exit {code}, {runner.where}): {_last_line(stderr)}; its transaction was rolled back.")
