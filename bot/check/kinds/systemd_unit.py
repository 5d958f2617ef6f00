"""systemd_unit: the state of the service's systemd unit, read over D-Bus (bot/targets/systemd.py).

ActiveState and SubState, the last run's Result (exit-code with its status; an OOM kill, which
cgroup v1 reports as SIGKILL under a memory limit), NRestarts against `restarts`, and the time
since the last state change; graded by bot/targets/systemd_state.py.
"""
from __future__ import annotations

import time

from bot.check.result import Finding
from bot.config.target_check_models import SystemdUnitCheck
from bot.targets.systemd_state import grade_unit


async def run(check: SystemdUnitCheck, ctx) -> list[Finding]:
    if ctx.target_adapter is None or getattr(ctx.target_adapter, "platform", None) != "systemd":
        return [Finding("critical", "the service does not run on systemd")]
    props = await ctx.target_adapter.properties(ctx.target)
    reading = grade_unit(props, int(time.time() * 1e6), check.min_uptime, check.restarts)
    return [Finding(reading.status, reading.detail)]
