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
from abc import ABC, abstractmethod
from collections import deque
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Awaitable, Callable
from urllib.parse import quote, urlsplit, urlunsplit

from bot.config.types import expand_env
from bot.database.connection import SECRET_PARAMETERS, split_dsn
from bot.docker_engine import DockerUnavailable
from bot.storage import OWN_BACKENDS
from bot.redaction import redact_cut

CHUNK = 1 << 20
PROGRESS_EVERY = 2.0  # seconds between progress callbacks
MAGIC = b"PGDMP"  # the custom format's first bytes
STDERR_KEPT = 64 * 1024

Progress = Callable[[int, float], Awaitable[None]]  # (bytes so far, seconds elapsed)


class BackupError(Exception):
    """One sentence for the user: what failed and what state things are in."""


class ClientMissing(BackupError):
    """The client program could not run at all (not installed, Docker unreachable, not in the image)."""


class StillRunning(BackupError):
    """A timeout in a container: the bot stopped waiting, but the command may still be running there."""

    def __init__(self, message: str, container: str):
        super().__init__(message)
        self.container = container


class CheckNotRun(BackupError):
    """A check of a file could not run (no client, Docker down, a timeout): it says nothing about the file."""


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


# --------------------------------------------------------------------------- runners

WRITE_AHEAD = 4  # chunks handed to the writer thread and not yet written: at most this many MiB held


class Runner(ABC):
    """Runs a client program with an argument list, streaming its stdout to a sink."""

    where: str = ""
    # Whether a timeout stops the program. A command in a container cannot be stopped through the
    # exec API: the bot stops waiting for it, and says it may still be running there.
    stops_on_timeout: bool = True

    @abstractmethod
    async def run(self, argv: list[str], sink: Callable[[bytes], None], *, env: dict[str, str], stdin_path: str | None = None) -> tuple[int, str]:
        """Its exit code and stderr; stdout went to `sink`."""

    def kill(self) -> None:
        """Stop the program after a timeout, where that is possible (the local client)."""


class LocalRunner(Runner):
    """The local client. Its stdout is read on the event loop; the sink (write, hash) runs on a writer
    thread, at most WRITE_AHEAD chunks behind, in order: the loop never waits on the disk."""

    where = "local client"

    def __init__(self):
        self.process: asyncio.subprocess.Process | None = None

    async def run(self, argv, sink, *, env, stdin_path=None):
        program = shutil.which(argv[0])
        if program is None:
            raise ClientMissing(
                f"{argv[0]} is not installed on the bot's host; install postgresql-client, or set container: for the database in app.yaml."
            )
        full_env = {k: v for k, v in os.environ.items() if k not in _SECRET_ENV}
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
        loop = asyncio.get_running_loop()
        writer = ThreadPoolExecutor(max_workers=1, thread_name_prefix="backup-writer")  # one thread: chunks stay in order
        pending: deque = deque()
        try:
            while True:
                block = await process.stdout.read(CHUNK)
                if not block:
                    break
                pending.append(loop.run_in_executor(writer, sink, block))
                if len(pending) >= WRITE_AHEAD:
                    await pending.popleft()
            while pending:
                await pending.popleft()
            await errors
            code = await process.wait()
        except BaseException:
            errors.cancel()
            self.kill()
            for future in pending:
                future.cancel()
            raise
        finally:
            # Queued chunks are dropped; one being written finishes (closing the file waits for it).
            writer.shutdown(wait=False, cancel_futures=True)
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
    stops_on_timeout = False

    def __init__(self, docker, container: str):
        self.docker, self.container = docker, container
        self.where = f"container {container}"

    async def run(self, argv, sink, *, env, stdin_path=None):
        try:
            code, stderr = await self.docker.exec_stream(self.container, argv, sink, env=env, stdin_path=stdin_path, max_stderr=STDERR_KEPT)
        except DockerUnavailable as exc:
            raise ClientMissing(f"{argv[0]} in {self.container} could not run: {exc}.") from None
        if code in (126, 127):  # the runtime could not start it: not in the image, or not executable
            raise ClientMissing(f"{argv[0]} could not start in {self.container} (exit {code}: {_error_line(stderr)}).")
        return code, stderr


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


# Never inherited from the bot's own environment: only what client_env() sets for this connection.
_SECRET_ENV = ("PGPASSWORD", "PGSERVICE", "PGSERVICEFILE")


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
    path: Path
    size: int
    sha256: str
    duration: float
    where: str


class _FileSink:
    """Writes chunks to a file while hashing them; called on whichever thread writes (never the event loop's)."""

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

    def finish(self) -> None:
        """Flush, fsync and close: blocking, run it in a thread."""
        self.file.flush()
        os.fsync(self.file.fileno())
        self.file.close()

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
            with client_environment(conn, runner) as env:
                code, stderr = await _with_progress(runner.run(argv, sink, env=env), meter, progress, timeout, runner.kill)
        except (TimeoutError, asyncio.TimeoutError):
            message = _timed_out(runner, f"pg_dump of {conn.database}", timeout, after="; no backup was kept.")
            if runner.stops_on_timeout:
                raise BackupError(message) from None
            raise StillRunning(message, runner.where) from None
        await asyncio.to_thread(sink.finish)
        if code != 0:
            raise BackupError(f"pg_dump of {conn.database} failed (exit {code}, {runner.where}): {_error_line(stderr)}; no backup was kept.")
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


DETAIL_KEPT = 200  # a DETAIL line longer than this is left out


def _error_line(stderr: str) -> str:
    """The client's error, redacted: the last line that says "error:" (with the DETAIL line after it when
    short), not the last line (pg_restore ends with "Command was: <the SQL>"); the last line when none does."""
    lines = [line.strip() for line in stderr.strip().splitlines() if line.strip()]
    if not lines:
        return "no error output"
    found = next((i for i in range(len(lines) - 1, -1, -1) if "error:" in lines[i].lower()), None)
    if found is None:
        text = lines[-1]
    else:
        text = lines[found]
        following = lines[found + 1] if found + 1 < len(lines) else ""
        if following.upper().startswith("DETAIL:") and len(following) <= DETAIL_KEPT:
            text = f"{text} {following}"
    return redact_cut(text, 300)


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


async def restore_list(docker, conn: Connection, path: Path, *, strict: bool = False) -> str | None:
    """pg_restore --list on the file: None when it reads, else why not (a sentence fragment).

    strict: CheckNotRun when the check could not run at all (no client, Docker down, a timeout),
    instead of that reason as the file's problem.
    """
    return await _read_archive(docker, conn, path, ["pg_restore", "--list"], strict=strict)


async def restore_read_all(docker, conn: Connection, path: Path, timeout: float | None = None, *, strict: bool = False) -> str | None:
    """pg_restore of the whole archive into /dev/null: every data block is read and decompressed.

    Catches a truncated or corrupted file even without a checksum to compare against.
    """
    return await _read_archive(docker, conn, path, ["pg_restore", "--file=/dev/null"], timeout, strict=strict)


async def _read_archive(docker, conn: Connection, path: Path, argv: list[str], timeout: float | None = None, *, strict: bool = False) -> str | None:
    runner = runner_for(docker, conn, "pg_restore_local_file")
    local = isinstance(runner, LocalRunner)
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
        return f"{' '.join(argv)} failed (exit {code}): {_error_line(stderr)}"
    return None


async def restore(
    docker, conn: Connection, path: Path, *, clean: bool, progress: Progress | None = None, timeout: float | None = None
) -> None:
    """pg_restore the archive into `conn`'s database, in one transaction (a failure changes nothing).

    `clean` drops the objects it restores first (--clean --if-exists): the original database.
    Streamed into the container's pg_restore through stdin when the database has a container.
    A timeout stops the local client (its transaction rolls back); in a container the command cannot
    be stopped, and StillRunning says it may still change the database.
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
        raise BackupError(f"pg_restore into {conn.dbname} failed (exit {code}, {runner.where}): {_error_line(stderr)}; its transaction was rolled back.")
