"""The Docker Engine API, reached through the docker SDK (which honours DOCKER_HOST).

The SDK is blocking, so every call runs on a dedicated thread pool: the default pool
has only cpu+4 threads, which would serialise a /health of many containers.
"""
from __future__ import annotations

import asyncio
import importlib
import math
import threading
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass

from bot.output_tail import OutputTail

# The docker SDK (and requests under it) is imported on first use: a bot whose
# app.yaml has no container checks or actions never pays its memory.
docker = None
# Checks run on worker threads: an exec importing docker.utils.socket while another check imported
# the SDK met a deadlock in the import machinery (each held one module's import lock), and the other
# check then saw no docker.errors. One thread imports everything used here; the name is bound only
# once that is complete.
_SDK_IMPORT = threading.Lock()


def _sdk():
    global docker
    if docker is None:
        with _SDK_IMPORT:
            if docker is None:
                sdk = importlib.import_module("docker")
                importlib.import_module("docker.errors")
                importlib.import_module("docker.utils.socket")  # exec streams frames with it
                docker = sdk
    return docker


class DockerUnavailable(RuntimeError):
    """The engine cannot be reached: the sentence says which address was tried."""


# What a one-shot exec (a job's dry run, a docker_exec action, an exec check) keeps of its output.
EXEC_OUTPUT_KEPT = 256 * 1024


@dataclass(frozen=True)
class ExecResult:
    exit_code: int
    output: str
    dropped: int = 0  # bytes of output before the kept tail


class DockerGateway:
    def __init__(self, max_workers: int = 32):
        self._executor = ThreadPoolExecutor(max_workers=max_workers, thread_name_prefix="docker")
        self._client = None
        # Calls run on the worker threads, so the first ones race to create the client: one creates it
        # under the lock, the others wait and use it (or get the same error, rather than each retrying in turn).
        self._client_lock = threading.Lock()
        self._attempts = 0
        self._last_failure: str | None = None

    def _docker(self):
        client = self._client
        if client is not None:
            return client
        seen = self._attempts
        with self._client_lock:
            if self._client is not None:
                return self._client
            if self._attempts != seen and self._last_failure is not None:
                raise DockerUnavailable(self._last_failure)  # the attempt this call waited on just failed
            self._attempts += 1
            _sdk()
            client = None
            try:
                client = docker.from_env(timeout=30)
                client.ping()
            except docker.errors.DockerException as exc:
                if client is not None:
                    client.close()
                self._last_failure = f"the Docker Engine is not reachable ({_reason(exc)})"
                raise DockerUnavailable(self._last_failure) from None
            except BaseException:  # a dropped connection surfaces from requests; _guarded words it
                if client is not None:
                    client.close()
                raise
            self._last_failure = None
            self._client = client
            return client

    async def _run(self, fn, *args):
        loop = asyncio.get_running_loop()
        return await loop.run_in_executor(self._executor, self._guarded, fn, args)

    def _guarded(self, fn, args):
        """A lost engine connection surfaces from requests, not as a DockerException."""
        import requests.exceptions

        try:
            return fn(*args)
        except requests.exceptions.RequestException as exc:
            raise DockerUnavailable(f"the Docker Engine is not reachable ({exc.__class__.__name__})") from None

    async def inspect(self, name: str) -> dict | None:
        """The container's inspect document, or None when no such container exists."""

        def call():
            try:
                return self._docker().api.inspect_container(name)
            except docker.errors.NotFound:
                return None
            except docker.errors.APIError as exc:
                raise DockerUnavailable(f"the Docker Engine refused to inspect {name} ({_reason(exc)})") from None

        return await self._run(call)

    async def exec(self, name: str, argv: list[str], *, keep: int = EXEC_OUTPUT_KEPT) -> ExecResult:
        """Run an argument list inside a running container; no shell is involved.

        Output (stdout and stderr, in the order they arrive) is read frame by frame on a worker
        thread and only its last `keep` bytes are held, so a command that prints 40 MB neither
        fills memory nor hands the event loop 40 MB to decode. When output was dropped, the kept
        part starts at a line boundary: a line cut in half could be a secret cut from its key.
        """
        tail = OutputTail(keep)
        code, _ = await self.exec_stream(name, argv, tail.add, stderr_sink=tail.add)
        return ExecResult(code, *tail.finish())

    async def exec_stream(
        self,
        name: str,
        argv: list[str],
        sink,
        *,
        env: dict[str, str] | None = None,
        stdin_path: str | None = None,
        max_stderr: int = 64 * 1024,
        stderr_sink=None,
    ) -> tuple[int, str]:
        """Run an argument list in a container, handing its stdout to `sink(chunk)` as it arrives.

        Memory stays flat whatever the output size: Docker's multiplexed stream is read frame
        by frame on a worker thread and each stdout chunk goes straight to `sink` (called on
        that thread); stderr is kept separately (its last `max_stderr` bytes), or handed to
        `stderr_sink` when one is given. `stdin_path` streams a file to the command's standard
        input (pg_restore of a dump on this host). `env` reaches the command's environment only
        (PGPASSWORD), never its argument list. Returns (exit code, stderr text). Cancelling the
        awaiting task (a timeout) shuts the stream down, so `sink` is not called afterwards, but
        it does not stop the command in the container (the exec API cannot): the caller says it
        may still be running there.
        """
        import socket as pysocket

        abandoned = threading.Event()
        open_socket: list = []

        def abandon_socket() -> None:
            for raw in open_socket:
                try:
                    raw.shutdown(pysocket.SHUT_RDWR)  # wakes the reading thread; its finally closes it
                except OSError:
                    pass

        def call():
            api = self._docker().api  # imports the SDK first, once: see _sdk
            from docker.utils.socket import frames_iter

            try:
                exec_id = api.exec_create(name, argv, stdout=True, stderr=True, stdin=stdin_path is not None, environment=env)["Id"]
                sock = api.exec_start(exec_id, socket=True)
            except docker.errors.NotFound:
                raise DockerUnavailable(f"container {name} does not exist") from None
            except docker.errors.APIError as exc:
                raise DockerUnavailable(f"exec in {name} failed ({_reason(exc)})") from None
            api._disable_socket_timeout(sock)  # a dump may print nothing for minutes (a lock wait)
            raw = getattr(sock, "_sock", sock)
            open_socket.append(raw)
            if abandoned.is_set():
                abandon_socket()
            writer = None
            write_error: list[BaseException] = []
            if stdin_path is not None:

                def feed():
                    try:
                        with open(stdin_path, "rb") as source:
                            while True:
                                block = source.read(1 << 20)
                                if not block:
                                    break
                                raw.sendall(block)
                    except BaseException as exc:  # the command may exit before reading everything
                        write_error.append(exc)
                    finally:
                        try:
                            raw.shutdown(pysocket.SHUT_WR)  # end of stdin
                        except OSError:
                            pass

                writer = threading.Thread(target=feed, name="docker-exec-stdin", daemon=True)
                writer.start()
            stderr = bytearray()
            try:
                for stream, data in frames_iter(sock, tty=False):
                    if abandoned.is_set():
                        break
                    if stream == 2 and stderr_sink is not None:
                        stderr_sink(data)
                    elif stream == 2:
                        stderr += data
                        if len(stderr) > max_stderr:
                            del stderr[: len(stderr) - max_stderr]
                    else:
                        sink(data)
            except Exception:  # after a timeout: the shut socket, or a sink whose file was closed
                if not abandoned.is_set():
                    raise
            finally:
                if writer is not None:
                    writer.join(timeout=5)
                try:
                    sock.close()
                except OSError:
                    pass
            if abandoned.is_set():
                return -1, stderr.decode("utf-8", "replace")  # nobody waits for it any more
            try:
                code = api.exec_inspect(exec_id)["ExitCode"]
                for _ in range(50):  # the stream can end a moment before the engine records the exit
                    if code is not None:
                        break
                    import time as _time

                    _time.sleep(0.1)
                    code = api.exec_inspect(exec_id)["ExitCode"]
            except docker.errors.APIError as exc:
                raise DockerUnavailable(f"exec in {name} failed ({_reason(exc)})") from None
            return (code if code is not None else -1), stderr.decode("utf-8", "replace")

        try:
            return await self._run(call)
        except asyncio.CancelledError:
            abandoned.set()
            abandon_socket()
            raise

    async def restart(self, name: str, timeout: float) -> None:
        """Docker's restart: SIGTERM, up to `timeout` seconds grace, then SIGKILL, then start."""

        def call():
            try:
                self._docker().api.restart(name, timeout=math.ceil(timeout))
            except docker.errors.NotFound:
                raise DockerUnavailable(f"container {name} does not exist") from None
            except docker.errors.APIError as exc:
                raise DockerUnavailable(f"restarting {name} failed ({_reason(exc)})") from None

        await self._run(call)

    async def stop(self, name: str, timeout: float) -> None:
        """SIGTERM, up to `timeout` seconds grace, then SIGKILL. Stopping a stopped container is fine."""

        def call():
            try:
                self._docker().api.stop(name, timeout=math.ceil(timeout))
            except docker.errors.NotFound:
                raise DockerUnavailable(f"container {name} does not exist") from None
            except docker.errors.APIError as exc:
                raise DockerUnavailable(f"stopping {name} failed ({_reason(exc)})") from None

        await self._run(call)

    async def start(self, name: str) -> None:
        """Start a stopped container; starting a running one is fine."""

        def call():
            try:
                self._docker().api.start(name)
            except docker.errors.NotFound:
                raise DockerUnavailable(f"container {name} does not exist") from None
            except docker.errors.APIError as exc:
                raise DockerUnavailable(f"starting {name} failed ({_reason(exc)})") from None

        await self._run(call)

    async def recreate(self, name: str, timeout: float, expected_id: str | None = None) -> str:
        """compose's --force-recreate: a new container from the same image and settings; the old one goes.

        When the new container cannot be created or started, the old one is put back.
        `expected_id` refuses to touch a container that is not the one the plan named.
        Returns the new container's id.
        """

        def call():
            api = self._docker().api
            try:
                info = api.inspect_container(name)
            except docker.errors.NotFound:
                raise DockerUnavailable(f"container {name} does not exist") from None
            if expected_id is not None and info["Id"] != expected_id:
                raise DockerUnavailable(f"container {name} was replaced since the plan was made")
            from bot.docker_images import create_arguments  # shared with deploys' containers made like another

            arguments = create_arguments(info, None, info["Config"]["Image"], name)
            parked = f"{name}-replaced-{info['Id'][:12]}"
            try:
                api.stop(info["Id"], timeout=math.ceil(timeout))
                api.rename(info["Id"], parked)
            except docker.errors.APIError as exc:
                raise DockerUnavailable(f"stopping {name} failed ({_reason(exc)})") from None
            created = None
            try:
                created = api.create_container(**arguments)
                api.start(created["Id"])
            except docker.errors.APIError as exc:
                restored = _restore(api, created, info["Id"], name)
                outcome = "the old container is back" if restored else f"and putting the old one back failed too: it is stopped as {parked}"
                raise DockerUnavailable(f"recreating {name} failed ({_reason(exc)}); {outcome}") from None
            api.remove_container(info["Id"], force=True)
            return created["Id"]

        return await self._run(call)

    async def logs(self, name: str, *, tail: int | None = None, since: float | None = None) -> str:
        """stdout and stderr of the container, oldest first, with Docker's timestamps stripped."""

        def call():
            kwargs = {"stdout": True, "stderr": True, "tail": tail if tail is not None else "all"}
            if since is not None:
                kwargs["since"] = since  # a float keeps sub-second precision
            try:
                raw = self._docker().api.logs(name, **kwargs)
            except docker.errors.NotFound:
                raise DockerUnavailable(f"container {name} does not exist") from None
            except docker.errors.APIError as exc:
                raise DockerUnavailable(f"reading the logs of {name} failed ({_reason(exc)})") from None
            return raw.decode("utf-8", "replace")

        return await self._run(call)

    def close(self) -> None:
        if self._client is not None:
            self._client.close()
        self._executor.shutdown(wait=False, cancel_futures=True)


def _restore(api, created: dict | None, old_id: str, name: str) -> bool:
    """Put the parked container back under its name and start it; True when that worked."""
    try:
        if created is not None:
            api.remove_container(created["Id"], force=True)
        api.rename(old_id, name)
        api.start(old_id)
    except docker.errors.APIError:
        return False
    return True


def _reason(exc: Exception) -> str:
    explanation = getattr(exc, "explanation", None)
    text = str(explanation or exc)
    return text.splitlines()[0] if text else exc.__class__.__name__
