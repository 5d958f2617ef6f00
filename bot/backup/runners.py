"""Running pg_dump / pg_restore with an argument list: the local client, or the database's container.

Locally the client runs with asyncio.create_subprocess_exec; in a container through the Docker
exec API (DockerGateway.exec_stream). Output is read in chunks and handed to a sink on a writer
thread, so the event loop never waits on a disk or an upload, and memory stays flat.
"""
from __future__ import annotations

import asyncio
import os
import shutil
from abc import ABC, abstractmethod
from collections import deque
from concurrent.futures import ThreadPoolExecutor
from typing import Callable

from bot.backup.errors import ClientMissing, error_line
from bot.docker_engine import DockerUnavailable

CHUNK = 1 << 20
STDERR_KEPT = 64 * 1024
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
        full_env = {k: v for k, v in os.environ.items() if k not in SECRET_ENV}
        full_env.update(env)
        # In a thread: opening a FIFO (an object streamed from the store) waits for its writer.
        stdin = await asyncio.to_thread(open, stdin_path, "rb") if stdin_path else asyncio.subprocess.DEVNULL
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
            raise ClientMissing(f"{argv[0]} could not start in {self.container} (exit {code}: {error_line(stderr)}).")
        return code, stderr


def runner_for(docker, conn, program: str = "pg_dump") -> Runner:
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
SECRET_ENV = ("PGPASSWORD", "PGSERVICE", "PGSERVICEFILE")

