"""The systemd adapter: a service's `systemd: {unit}` over D-Bus (bot/targets/systemd_bus.py).

A unit resolves to itself, pinned with its unit file (FragmentPath): a unit whose file moved
between approval and execution is another plan. A restart (and systemd_start/stop/reload) is a
Manager job with mode "replace": `restart()` starts the job and keeps it, and `settled()` waits
for its JobRemoved result (done, failed, timeout, canceled, dependency, skipped) and reads the
unit's state once it is done. The graceful timeout of /restart is the unit's own TimeoutStopSec:
systemd has no per-call stop timeout, so the plan shows the unit's (Workload.stop_grace), and a
restart without verification waits TimeoutStopSec + TimeoutStartSec (Workload.settle_within). Logs are the unit's journal
(bot/targets/systemd_journal.py); state is graded by bot/targets/systemd_state.py.
"""
from __future__ import annotations

import time

from bot.targets.base import LogLines, LogQuery, Reading, Settled, TargetError, Workload
from bot.targets.systemd_bus import Job, SystemdBus
from bot.targets.systemd_journal import read_journal
from bot.targets.systemd_state import grade_unit, stop_reason

POLL_SECONDS = 0.2
USEC_INFINITY = 2**64 - 1  # how D-Bus spells a TimeoutStartSec=infinity (a oneshot's default)
MAX_SETTLE = 3600.0  # the longest a restart without verification waits for systemd's job
JOB_METHODS = {"restart": "RestartUnit", "reload": "ReloadUnit", "start": "StartUnit", "stop": "StopUnit"}
# What a finished job must leave the unit in (besides the job's own result "done").
WANTED_STATE = {"stop": ("inactive", "failed")}


class SystemdAdapter:
    platform = "systemd"
    log_times = True

    def __init__(self, connection):
        self.bus = SystemdBus(connection.bus)
        self.journal_directory = connection.journal_directory
        self._jobs: dict[str, tuple[str, Job]] = {}  # unit -> (operation, the job started for it by this process)

    async def properties(self, target) -> dict:
        return await self.bus.unit_properties(target.unit)

    async def describe(self, service: str, target) -> Workload:
        props = await self.properties(target)
        if props.get("LoadState") != "loaded":
            raise TargetError(f"systemd unit {target.unit} of {service} is {props.get('LoadState', 'not-found')} on {self.bus.where}")
        stop, start = _seconds(props.get("TimeoutStopUSec")), _seconds(props.get("TimeoutStartUSec"))
        detail = {"unit_file": str(props.get("FragmentPath", ""))}
        # A restart job is a stop then a start, each under its own timeout; "infinity" is capped.
        settle = None if stop is None and start is None else min((stop or 0) + (start or 0), MAX_SETTLE)
        return Workload("systemd", service, target.unit, target.unit, (), detail, stop_grace=stop, settle_within=settle)

    async def run_job(self, workload: Workload, operation: str) -> str:
        """Start the unit's job for `operation` (restart, reload, start, stop); settled() waits for it."""
        job = await self.bus.start_job(JOB_METHODS[operation], workload.ident)
        self._jobs[workload.ident] = (operation, job)
        return f"systemd {operation} job {job.number} for {workload.name}"

    async def restart(self, workload: Workload, timeout: float) -> str:
        return await self.run_job(workload, "restart")

    async def settled(self, workload: Workload, deadline, clock) -> Settled:
        operation, job = self._jobs.pop(workload.ident, ("restart", None))
        try:
            while job is not None and job.result is None:
                if clock.now() >= deadline:
                    return Settled(False, f"systemd's {operation} job {job.number} of {workload.name} had not finished in time")
                await clock.sleep(POLL_SECONDS)
        finally:
            if job is not None:
                self.bus.forget(job)
        props = await self.bus.unit_properties(workload.ident)
        state = f"{props.get('ActiveState')} ({props.get('SubState')})"
        if job is not None and job.result != "done":
            reason = stop_reason(props)
            return Settled(False, f"systemd's {operation} job {job.number} ended '{job.result}': {workload.name} is {state}" + (f", {reason}" if reason else ""))
        wanted = WANTED_STATE.get(operation, ("active",))
        if props.get("ActiveState") not in wanted:
            reason = stop_reason(props)
            return Settled(False, f"{workload.name} is {state} after the {operation} job" + (f", {reason}" if reason else ""))
        if job is None:  # nothing this process started is pending (the job was waited for already): the state says
            return Settled(True, f"{workload.name} is {state}")
        return Settled(True, f"systemd {operation} job {job.number} done, {workload.name} is {state}")

    async def logs(self, target, query: LogQuery) -> LogLines:
        return await read_journal(target.unit, query, self.journal_directory)

    async def state(self, target) -> list[Reading]:
        return [grade_unit(await self.properties(target), int(time.time() * 1e6))]

    async def close(self) -> None:
        await self.bus.close()


def _seconds(usec) -> float | None:
    """A Timeout*USec property in seconds; None for infinity or an absent one."""
    if usec is None or int(usec) >= USEC_INFINITY:
        return None
    return int(usec) / 1e6


def build(connection, adapters) -> SystemdAdapter:
    return SystemdAdapter(connection)
