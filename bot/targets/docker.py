"""The Docker adapter: a service's `container:` over bot/docker_engine.py.

The generic restart kind hands container steps to docker_restart (recreate, dependents, the
OOM note stay its own); this adapter is what the other generic paths use: /logs, the
`container` check's readings, and restart/settle for callers that only know the protocol.
"""
from __future__ import annotations

import time

from bot.demo_fleet import missing_hint
from bot.docker_engine import DockerGateway, DockerUnavailable
from bot.memory_kill import memory_kill
from bot.targets.base import LogLines, LogQuery, Reading, Settled, TargetError, Workload

POLL_SECONDS = 1.0


class DockerAdapter:
    platform = "container"
    log_times = True

    def __init__(self, docker: DockerGateway):
        self.docker = docker

    async def _inspect(self, container: str) -> dict | None:
        try:
            return await self.docker.inspect(container)
        except DockerUnavailable as exc:
            raise TargetError(str(exc)) from None

    async def describe(self, service: str, target: str) -> Workload:
        info = await self._inspect(target)
        if info is None:
            raise TargetError(f"container {target} of {service} does not exist on the Docker Engine{missing_hint(target)}")
        return Workload("container", service, target, info["Id"])

    async def restart(self, workload: Workload, timeout: float) -> str:
        try:
            await self.docker.restart(workload.ident, timeout)
        except DockerUnavailable as exc:
            raise TargetError(str(exc)) from None
        return f"restarted container {workload.name} ({workload.ident[:12]})"

    async def logs(self, target: str, query: LogQuery) -> LogLines:
        since = time.time() - query.since if query.since else None  # the Engine wants a Unix time
        try:
            raw = await self.docker.logs(target, tail=query.tail, since=since)
        except DockerUnavailable as exc:
            raise TargetError(str(exc)) from None
        return LogLines(raw.splitlines(), f"container {target}")

    async def state(self, target: str) -> list[Reading]:
        info = await self._inspect(target)
        if info is None:
            return [Reading("critical", f"container {target} does not exist{missing_hint(target)}")]
        return [_reading(info)]

    async def settled(self, workload: Workload, deadline, clock) -> Settled:
        while True:
            info = await self._inspect(workload.name)
            if info is None:
                return Settled(False, f"container {workload.name} is gone")
            reading = _reading(info)
            if reading.status == "ok":
                return Settled(True, f"container {workload.name} is running")
            if clock.now() >= deadline:
                return Settled(False, f"container {workload.name} is {reading.detail}")
            await clock.sleep(POLL_SECONDS)


def _reading(info: dict) -> Reading:
    state = info.get("State", {})
    killed = memory_kill(info)
    if killed:
        return Reading("critical", f"{killed}; it needs a force-recreate, not a plain restart")
    if state.get("Restarting"):
        return Reading("critical", f"restarting in a loop (restart count {info.get('RestartCount', 0)})")
    if not state.get("Running"):
        return Reading("critical", f"{state.get('Status', 'not running')} with exit code {state.get('ExitCode')}")
    return Reading("ok", "running")


def build(connection, adapters) -> DockerAdapter:
    return DockerAdapter(adapters.docker)
