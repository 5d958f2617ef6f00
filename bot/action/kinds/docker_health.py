"""After a container was (re)started: wait until it runs and its service's checks pass, or say why not."""
from __future__ import annotations

import asyncio
import time

from bot.action.kinds.base import StepResult
from bot.check.result import CheckResult
from bot.check.service import record_run
from bot.docker_engine import DockerUnavailable
from bot.memory_kill import memory_kill
from bot.redaction import redact_lines

LOG_LINES_ON_FAILURE = 20
MAX_LOG_LINE = 2000  # as /logs shows them


async def wait_healthy(ctx, service: str, container: str, verify: dict | None, done: str) -> StepResult:
    """Poll until the container runs and (with `verify`) the service's checks pass; `done` says what happened before."""
    docker = ctx.bot.checks.docker
    deadline = time.monotonic() + (verify["deadline"] if verify else 10.0)
    interval = verify["interval"] if verify else 1.0
    verify_started = time.perf_counter()
    while True:
        problems = await _container_problem(docker, container)
        results: list[CheckResult] = []
        if problems is None and verify:
            results = await ctx.bot.checks.run(ctx.config, [service], metrics=False)
            failing = [r for r in results if r.status != "ok"]
            problems = "; ".join(f"{r.check}: {r.detail}" for r in failing) or None
        if problems is None:
            healthy_after = time.perf_counter() - verify_started
            if results:
                await record_run(ctx.bot.db, results, healthy_after * 1000, trigger="verify", user=ctx.requested_by, channel=ctx.channel)
            checks = f"{len(results)} checks pass" if results else "container running"
            return StepResult(service, True, f"{service}: {done}, healthy after {healthy_after:.1f} s ({checks})")
        if time.monotonic() >= deadline:
            if results:
                await record_run(
                    ctx.bot.db, results, (time.perf_counter() - verify_started) * 1000, trigger="verify", user=ctx.requested_by, channel=ctx.channel
                )
            state = await _state_line(docker, container)
            waited = time.perf_counter() - verify_started
            return StepResult(service, False, f"{service}: not healthy after {waited:.0f} s: {problems}. Container: {state}", await container_logs(docker, container))
        await asyncio.sleep(interval)


async def _container_problem(docker, container: str) -> str | None:
    info = await docker.inspect(container)
    if info is None:
        return f"container {container} is gone"
    state = info.get("State", {})
    if state.get("Running") and not state.get("Restarting"):
        return None
    return describe_state(info)


async def _state_line(docker, container: str) -> str:
    info = await docker.inspect(container)
    return "gone" if info is None else describe_state(info)


def describe_state(info: dict) -> str:
    state = info.get("State", {})
    parts = [state.get("Status", "unknown")]
    if not state.get("Running"):
        parts.append(f"exit code {state.get('ExitCode')}")
    killed = memory_kill(info)
    if killed:
        parts.append(f"{killed}: try --force-recreate, and check its memory limit")
    parts.append(f"restart count {info.get('RestartCount', 0)}")
    return ", ".join(parts)


async def container_logs(docker, container: str) -> str:
    """The last lines of the container's logs, redacted, for a failure message."""
    try:
        raw = await docker.logs(container, tail=LOG_LINES_ON_FAILURE)
        return "\n".join(redact_lines(raw.splitlines(), MAX_LOG_LINE)).rstrip()
    except DockerUnavailable as exc:
        return f"(no logs: {exc})"
