"""container: running, health status, restart count, OOMKilled, uptime (runbook 000 section 1.1).

On a service whose target is not a container, the platform adapter's state readings (bot/targets).
"""
from __future__ import annotations

from datetime import datetime, timezone

from bot.check.result import Finding, worst
from bot.config.models import ContainerCheck
from bot.demo_fleet import missing_hint
from bot.memory_kill import memory_kill
from bot.targets.base import human_age


async def run(check: ContainerCheck, ctx) -> list[Finding]:
    name = check.container or ctx.container
    if name is None and ctx.target_adapter is not None:
        # `- kind: container` on a service running elsewhere means "the workload is up": its platform says.
        readings = await ctx.target_adapter.state(ctx.target)
        return [Finding(r.status, r.detail, r.part) for r in readings]
    info = await ctx.docker.inspect(name)
    if info is None:
        return [Finding("critical", f"container {name} does not exist{missing_hint(name)}")]
    state = info.get("State", {})
    restarts = int(info.get("RestartCount", 0))
    killed = memory_kill(info)
    if killed:
        return [Finding("critical", f"{killed}; it needs a force-recreate, not a plain restart")]
    if state.get("Restarting"):
        return [Finding("critical", f"restarting in a loop (restart count {restarts}, last exit {state.get('ExitCode')})")]
    if not state.get("Running"):
        return [Finding("critical", f"{state.get('Status', 'not running')} with exit code {state.get('ExitCode')}")]

    grades = [check.restart_count.grade(restarts)]
    uptime = _uptime(state.get("StartedAt"))
    parts = [f"running, up {human_age(uptime)}" if uptime is not None else "running", f"restarts {restarts}"]
    health = (state.get("Health") or {}).get("Status")
    if health:
        parts.append(f"health {health}")
        grades.append({"healthy": "ok", "starting": "warning"}.get(health, "critical"))
    if check.min_uptime is not None and uptime is not None and uptime < check.min_uptime:
        grades.append("warning")
        parts.append("recently restarted")
    return [Finding(worst(grades), ", ".join(parts))]


def _uptime(started_at: str | None) -> float | None:
    if not started_at or started_at.startswith("0001-"):
        return None
    # Docker gives nanoseconds; Python parses microseconds.
    trimmed = started_at.rstrip("Z").split(".")[0]
    started = datetime.fromisoformat(trimmed).replace(tzinfo=timezone.utc)
    return (datetime.now(timezone.utc) - started).total_seconds()
