"""After a non-container restart: wait until the platform says it finished, then until the service's checks pass.

docker_health.py is the container counterpart; this one knows only the adapter protocol
(bot/targets/base.py), so every platform verifies the same way. Time comes from the bot's clock.
"""
from __future__ import annotations

from datetime import timedelta

from bot.action.kinds.base import StepResult
from bot.check.service import record_run
from bot.config.target_models import target_of
from bot.redaction import redact_lines
from bot.targets import LogQuery, TargetError, Workload

LOG_LINES_ON_FAILURE = 20
MAX_LOG_LINE = 2000  # as /logs shows them
SETTLE_WITHOUT_VERIFY = 10.0  # seconds to report it up, without verification, where the platform has no deadline of its own
SETTLE_MARGIN = 10.0  # past the platform's own deadline: its controller or job reports a moment after it


def settle_seconds(settle_within: float | None) -> float:
    """How long a change without verification waits for the platform: its own deadline
    (Workload.settle_within: a Deployment's progressDeadlineSeconds, a unit's TimeoutStopSec +
    TimeoutStartSec) and a margin."""
    if settle_within is None:
        return SETTLE_WITHOUT_VERIFY
    return settle_within + SETTLE_MARGIN


def then_phrase(service: str, verify: dict | None, settle_within: float | None) -> str:
    """How a plan line ends after "then wait until ...": the checks with their deadline, or the
    platform's own deadline when the action does not verify."""
    if verify:
        return f" and run {service}'s checks until they pass (up to {verify['deadline']:g} s)"
    return f" (up to {settle_seconds(settle_within):g} s)"


async def wait_settled(ctx, adapter, workload: Workload, verify: dict | None, done: str) -> StepResult:
    """`done` says what happened before ("restarted supervisor group worker in 1.2 s")."""
    clock, service = ctx.bot.clock, workload.service
    started = clock.now()
    deadline = started + timedelta(seconds=verify["deadline"] if verify else settle_seconds(workload.settle_within))
    try:
        settled = await adapter.settled(workload, deadline, clock)
    except TargetError as exc:
        return StepResult(service, False, f"{service}: {done}, but its state cannot be read: {exc}")
    if not settled.ok:
        return StepResult(service, False, f"{service}: {done}, but it is not up: {settled.detail}", await recent_logs(ctx, adapter, service))
    if not verify:
        return StepResult(service, True, f"{service}: {done}; {settled.detail}")
    while True:
        results = await ctx.bot.checks.run(ctx.config, [service], metrics=False)
        failing = [r for r in results if r.status != "ok"]
        elapsed = (clock.now() - started).total_seconds()
        if not failing or clock.now() >= deadline:
            if results:
                await record_run(ctx.bot.db, results, elapsed * 1000, trigger="verify", user=ctx.requested_by, channel=ctx.channel)
        if not failing:
            checks = f"{len(results)} checks pass" if results else settled.detail
            return StepResult(service, True, f"{service}: {done}, healthy after {elapsed:.1f} s ({checks})")
        if clock.now() >= deadline:
            problems = "; ".join(f"{r.check}: {r.detail}" for r in failing)
            return StepResult(service, False, f"{service}: not healthy after {elapsed:.0f} s: {problems}", await recent_logs(ctx, adapter, service))
        await clock.sleep(verify["interval"])


async def recent_logs(ctx, adapter, service: str) -> str:
    """The last lines of the service's logs, redacted, for a failure message."""
    found = target_of(ctx.config.services[service])
    try:
        read = await adapter.logs(found[1], LogQuery(tail=LOG_LINES_ON_FAILURE))
    except TargetError as exc:
        return f"(no logs: {exc})"
    return "\n".join(redact_lines(read.lines, MAX_LOG_LINE)).rstrip()
