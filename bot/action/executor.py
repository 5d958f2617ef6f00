"""Carry out a restart plan on the Docker Engine and prove the service came back."""
from __future__ import annotations

import asyncio
import time
from dataclasses import dataclass, field

from bot.check.result import CheckResult
from bot.check.service import record_run
from bot.docker_engine import DockerUnavailable
from bot.redaction import redact_lines

LOG_LINES_ON_FAILURE = 20


@dataclass
class StepResult:
    service: str
    ok: bool
    summary: str
    logs: str = ""


@dataclass
class ExecutionReport:
    steps: list[StepResult] = field(default_factory=list)

    @property
    def succeeded(self) -> bool:
        return bool(self.steps) and all(step.ok for step in self.steps)

    def summary(self) -> str:
        return "\n".join(step.summary for step in self.steps)


async def run_restart(bot, plan: dict, *, requested_by: str, channel: str) -> ExecutionReport:
    report = ExecutionReport()
    for step in plan["steps"]:
        result = await _run_step(bot, step, plan.get("verify"), requested_by=requested_by, channel=channel)
        report.steps.append(result)
        if not result.ok:
            break  # dependents are not restarted onto a service that did not come back
    return report


async def _run_step(bot, step: dict, verify: dict | None, *, requested_by: str, channel: str) -> StepResult:
    docker, service, container = bot.checks.docker, step["service"], step["container"]
    started = time.perf_counter()
    try:
        # By id: the container the approvers saw in the plan, not whatever holds the name now.
        if step["operation"] == "recreate":
            await docker.recreate(container, step["graceful_timeout"], expected_id=step["container_id"])
        else:
            await docker.restart(step["container_id"], step["graceful_timeout"])
    except DockerUnavailable as exc:
        return StepResult(service, False, f"{service}: {exc}", await _logs(docker, container))
    restarted_in = time.perf_counter() - started

    deadline = time.monotonic() + (verify["deadline"] if verify else 10.0)
    interval = verify["interval"] if verify else 1.0
    verify_started = time.perf_counter()
    while True:
        problems = await _container_problem(docker, container)
        results: list[CheckResult] = []
        if problems is None and verify:
            results = await bot.checks.run(bot.config, [service])
            failing = [r for r in results if r.status != "ok"]
            problems = "; ".join(f"{r.check}: {r.detail}" for r in failing) or None
        if problems is None:
            healthy_after = time.perf_counter() - verify_started
            if results:
                await record_run(bot.db, results, healthy_after * 1000, trigger="verify", user=requested_by, channel=channel)
            how = "recreated" if step["operation"] == "recreate" else "restarted"
            checks = f"{len(results)} checks pass" if results else "container running"
            return StepResult(service, True, f"{service}: {how} in {restarted_in:.1f} s, healthy after {healthy_after:.1f} s ({checks})")
        if time.monotonic() >= deadline:
            if results:
                await record_run(bot.db, results, (time.perf_counter() - verify_started) * 1000, trigger="verify", user=requested_by, channel=channel)
            state = await _state_line(docker, container)
            waited = time.perf_counter() - verify_started
            return StepResult(service, False, f"{service}: not healthy after {waited:.0f} s: {problems}. Container: {state}", await _logs(docker, container))
        await asyncio.sleep(interval)


async def _container_problem(docker, container: str) -> str | None:
    info = await docker.inspect(container)
    if info is None:
        return f"container {container} is gone"
    state = info.get("State", {})
    if state.get("Running") and not state.get("Restarting"):
        return None
    return _describe_state(info)


async def _state_line(docker, container: str) -> str:
    info = await docker.inspect(container)
    return "gone" if info is None else _describe_state(info)


def _describe_state(info: dict) -> str:
    state = info.get("State", {})
    parts = [state.get("Status", "unknown")]
    if not state.get("Running"):
        parts.append(f"exit code {state.get('ExitCode')}")
    if state.get("OOMKilled"):
        parts.append("OOM-killed: try --force-recreate, and check its memory limit")
    parts.append(f"restart count {info.get('RestartCount', 0)}")
    return ", ".join(parts)


MAX_LOG_LINE = 2000  # as /logs shows them


async def _logs(docker, container: str) -> str:
    try:
        raw = await docker.logs(container, tail=LOG_LINES_ON_FAILURE)
        return "\n".join(redact_lines(raw.splitlines(), MAX_LOG_LINE)).rstrip()
    except DockerUnavailable as exc:
        return f"(no logs: {exc})"
