"""The Docker Engine API, reached through the docker SDK (which honours DOCKER_HOST).

The SDK is blocking, so every call runs on a dedicated thread pool: the default pool
has only cpu+4 threads, which would serialise a /health of many containers.
"""
from __future__ import annotations

import asyncio
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass

# The docker SDK (and requests under it) is imported on first use: a bot whose
# app.yaml has no container checks or actions never pays its memory.
docker = None


def _sdk():
    global docker
    if docker is None:
        import docker as sdk
        import docker.errors  # noqa: F401

        docker = sdk
    return docker


class DockerUnavailable(RuntimeError):
    """The engine cannot be reached: the sentence says which address was tried."""


@dataclass(frozen=True)
class ExecResult:
    exit_code: int
    output: str


class DockerGateway:
    def __init__(self, max_workers: int = 32):
        self._executor = ThreadPoolExecutor(max_workers=max_workers, thread_name_prefix="docker")
        self._client = None

    def _docker(self):
        if self._client is None:
            _sdk()
            try:
                client = docker.from_env(timeout=30)
                client.ping()
            except docker.errors.DockerException as exc:
                raise DockerUnavailable(f"the Docker Engine is not reachable ({_reason(exc)})") from None
            self._client = client
        return self._client

    async def _run(self, fn, *args):
        loop = asyncio.get_running_loop()
        return await loop.run_in_executor(self._executor, fn, *args)

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

    async def exec(self, name: str, argv: list[str]) -> ExecResult:
        """Run an argument list inside a running container; no shell is involved."""

        def call():
            api = self._docker().api
            try:
                exec_id = api.exec_create(name, argv, stdout=True, stderr=True)["Id"]
                output = api.exec_start(exec_id)
                code = api.exec_inspect(exec_id)["ExitCode"]
            except docker.errors.NotFound:
                raise DockerUnavailable(f"container {name} does not exist") from None
            except docker.errors.APIError as exc:
                raise DockerUnavailable(f"exec in {name} failed ({_reason(exc)})") from None
            return ExecResult(code if code is not None else -1, output.decode("utf-8", "replace"))

        return await self._run(call)

    async def restart(self, name: str, timeout: float) -> None:
        """Docker's restart: SIGTERM, up to `timeout` seconds grace, then SIGKILL, then start."""

        def call():
            try:
                self._docker().api.restart(name, timeout=int(timeout))
            except docker.errors.NotFound:
                raise DockerUnavailable(f"container {name} does not exist") from None
            except docker.errors.APIError as exc:
                raise DockerUnavailable(f"restarting {name} failed ({_reason(exc)})") from None

        await self._run(call)

    async def recreate(self, name: str, timeout: float) -> str:
        """compose's --force-recreate: a new container from the same image and settings; the old one goes.

        When the new container cannot be created or started, the old one is put back.
        Returns the new container's id.
        """

        def call():
            api = self._docker().api
            try:
                info = api.inspect_container(name)
            except docker.errors.NotFound:
                raise DockerUnavailable(f"container {name} does not exist") from None
            config, host_config = info["Config"], info["HostConfig"]
            networks = (info.get("NetworkSettings") or {}).get("Networks") or {}
            endpoints = {
                net: {k: v for k, v in (ep or {}).items() if k in ("Aliases", "IPAMConfig", "Links")}
                for net, ep in networks.items()
                if net not in ("host", "none", "bridge")
            }
            parked = f"{name}-replaced-{info['Id'][:12]}"
            try:
                api.stop(info["Id"], timeout=int(timeout))
                api.rename(info["Id"], parked)
            except docker.errors.APIError as exc:
                raise DockerUnavailable(f"stopping {name} failed ({_reason(exc)})") from None
            try:
                created = api.create_container(
                    image=config["Image"],
                    command=config.get("Cmd"),
                    entrypoint=config.get("Entrypoint"),
                    environment=config.get("Env"),
                    labels=config.get("Labels"),
                    working_dir=config.get("WorkingDir") or None,
                    user=config.get("User") or None,
                    healthcheck=config.get("Healthcheck"),
                    name=name,
                    host_config=host_config,
                    networking_config={"EndpointsConfig": endpoints} if endpoints else None,
                )
                api.start(created["Id"])
            except docker.errors.APIError as exc:
                try:  # put the old container back as it was
                    if "created" in locals():
                        api.remove_container(created["Id"], force=True)
                    api.rename(info["Id"], name)
                    api.start(info["Id"])
                except docker.errors.APIError:
                    pass
                raise DockerUnavailable(f"recreating {name} failed, the old container is back ({_reason(exc)})") from None
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


def _reason(exc: Exception) -> str:
    explanation = getattr(exc, "explanation", None)
    text = str(explanation or exc)
    return text.splitlines()[0][:200] if text else exc.__class__.__name__
