"""supervisor_program: the state of the service's supervisord program or group, one finding per process.

RUNNING is ok (a warning while younger than min_uptime: it keeps restarting), STARTING, BACKOFF
and STOPPING are warnings, FATAL, EXITED and STOPPED critical (bot/targets/supervisor.py grades).
"""
from __future__ import annotations

from bot.check.result import Finding
from bot.config.target_check_models import SupervisorProgramCheck
from bot.targets.supervisor import grade_process


async def run(check: SupervisorProgramCheck, ctx) -> list[Finding]:
    if ctx.target_adapter is None or getattr(ctx.target_adapter, "platform", None) != "supervisor":
        return [Finding("critical", "the service does not run on supervisor")]
    processes = await ctx.target_adapter.processes(ctx.target)
    single = len(processes) == 1
    findings = []
    for info in processes:
        reading = grade_process(info, check.min_uptime)
        findings.append(Finding(reading.status, reading.detail, None if single else info["name"]))
    return findings
