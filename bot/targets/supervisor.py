"""The supervisord adapter (runbook 004's queue workers: `supervisorctl restart laravel-worker:*`).

A target is a program or a group. A program resolves to the process named so (one process of
any group), or, for a program with numprocs > 1, to the processes of its own group; a group
resolves to all its processes. A group restarts as supervisorctl's `group:*` does
(stopProcessGroup, then startProcessGroup), a program process by process (stopProcess,
startProcess). Each waits, so a call may take stopwaitsecs or startsecs: the longer of those and
the restart's timeout is added to the call's own. The plan shows stopwaitsecs as the grace. Logs are the processes' stdout and stderr tails; supervisord
keeps no timestamps, so --since cannot be honoured and is refused in one sentence.
"""
from __future__ import annotations

from bot.targets.base import MAX_LOG_TAIL, LogLines, LogQuery, Reading, Settled, TargetError, Workload, human_age
from bot.targets.supervisor_rpc import ALREADY_STARTED, BAD_NAME, NO_FILE, NOT_RUNNING, UNKNOWN_METHOD, SupervisorFault, SupervisorRPC

POLL_SECONDS = 0.5
LOG_BYTES_PER_LINE = 200  # what a tail asks for per line wanted
MAX_LOG_BYTES = 1024 * 1024  # per stream: stdout and stderr of each process
MAX_LOG_TOTAL = 8 * 1024 * 1024  # for all the streams of one read: a group of many processes shares it
STATE_GRADES = {"RUNNING": "ok", "STARTING": "warning", "BACKOFF": "warning", "STOPPING": "warning"}


def process_id(info: dict) -> str:
    """supervisorctl's name for a process: group:name."""
    return f"{info['group']}:{info['name']}"


def grade_process(info: dict, min_uptime: float | None = None) -> Reading:
    """RUNNING is ok (a warning while younger than min_uptime: it keeps restarting); STARTING,
    BACKOFF and STOPPING are warnings; FATAL, EXITED, STOPPED and UNKNOWN are critical."""
    state = str(info.get("statename", "UNKNOWN"))
    status = STATE_GRADES.get(state, "critical")
    parts = [state]
    if state == "RUNNING":
        uptime = max(0, int(info.get("now", 0)) - int(info.get("start", 0)))
        parts.append(f"up {human_age(uptime)}")
        if min_uptime is not None and uptime < min_uptime:
            status = "warning"
            parts.append(f"restarted less than {human_age(min_uptime)} ago")
    elif state == "BACKOFF":
        parts.append("keeps restarting")
    if state in ("EXITED", "FATAL", "BACKOFF") and info.get("spawnerr"):
        parts.append(str(info["spawnerr"]))
    elif state == "EXITED":
        parts.append(f"exit status {info.get('exitstatus')}")
    return Reading(status, ", ".join(parts))


class SupervisorAdapter:
    platform = "supervisor"
    log_times = False  # supervisord's logs carry no timestamps: logs() refuses query.since

    def __init__(self, connection):
        self.rpc = SupervisorRPC(connection)

    async def processes(self, target) -> list[dict]:
        """getProcessInfo of each of the target's processes, sorted; TargetError when there are none."""
        every = await self.rpc.call("supervisor.getAllProcessInfo")
        if target.group:
            found = [p for p in every if p["group"] == target.group]
        else:
            found = [p for p in every if p["name"] == target.program] or [p for p in every if p["group"] == target.program]
            if len({p["group"] for p in found}) > 1:
                raise TargetError(f"program {target.program} is in several groups ({', '.join(sorted({p['group'] for p in found}))}); name the group instead")
        if not found:
            raise TargetError(f"{self.rpc.where} has no {'group' if target.group else 'program'} named {target.group or target.program}")
        return sorted(found, key=process_id)

    async def describe(self, service: str, target) -> Workload:
        members = tuple(process_id(p) for p in await self.processes(target))
        kind = "group" if target.group else "program"
        stop, start = await self._clocks(members)
        return Workload("supervisor", service, target.label, f"{kind}:{target.group or target.program}", members, stop_grace=stop, settle_within=start)

    async def _clocks(self, members: tuple[str, ...]) -> tuple[float | None, float | None]:
        """The members' longest stopwaitsecs and startsecs (getAllConfigInfo, supervisor 3.3+)."""
        try:
            every = await self.rpc.call("supervisor.getAllConfigInfo")
        except SupervisorFault as fault:
            if fault.code == UNKNOWN_METHOD:  # an older supervisord: the plan shows no grace
                return None, None
            raise
        mine = [c for c in every if f"{c.get('group')}:{c.get('name')}" in members]
        stops = [float(c["stopwaitsecs"]) for c in mine if isinstance(c.get("stopwaitsecs"), int)]
        starts = [float(c["startsecs"]) for c in mine if isinstance(c.get("startsecs"), int)]
        return (max(stops) if stops else None), (max(starts) if starts else None)

    async def restart(self, workload: Workload, timeout: float) -> str:
        kind, name = workload.ident.split(":", 1)
        # Each call waits for supervisord: a stop up to stopwaitsecs, a start up to startsecs.
        timeout = max(timeout, workload.stop_grace or 0, workload.settle_within or 0)
        if kind == "group":
            await self.rpc.call("supervisor.stopProcessGroup", name, True, extra_time=timeout)
            results = await self.rpc.call("supervisor.startProcessGroup", name, True, extra_time=timeout)
            failed = [r for r in results if r.get("status") not in (80, ALREADY_STARTED)]  # 80: SUCCESS
            if failed:
                raise TargetError(f"{failed[0]['group']}:{failed[0]['name']} did not start ({failed[0].get('description', 'no reason given')})")
        else:
            for member in workload.members:
                await self._ignoring(NOT_RUNNING, "supervisor.stopProcess", member, True, extra_time=timeout)
                await self._ignoring(ALREADY_STARTED, "supervisor.startProcess", member, True, extra_time=timeout)
        return f"restarted supervisor {kind} {workload.name} ({', '.join(workload.members)})"

    async def _ignoring(self, code: int, method: str, *params, extra_time: float):
        try:
            return await self.rpc.call(method, *params, extra_time=extra_time)
        except SupervisorFault as fault:
            if fault.code != code:
                raise TargetError(f"{params[0]} did not {'stop' if 'stop' in method else 'start'}: {fault}") from None

    async def logs(self, target, query: LogQuery) -> LogLines:
        if query.since is not None:
            raise TargetError("supervisord keeps no timestamps in its logs, so --since cannot be applied; use --tail")
        processes = await self.processes(target)
        length = tail_bytes(query.tail, 2 * len(processes))
        streams: list[list[str]] = []
        for info in processes:
            for stream in ("Stdout", "Stderr"):
                tail = await self._tail(process_id(info), stream, length)
                label = f"[{info['name']} {stream.lower()}] " if len(processes) > 1 or stream == "Stderr" else ""
                streams.append([label + line for line in tail[-query.tail :]])
        lines = [line for kept in newest_shares(streams, query.tail) for line in kept]
        return LogLines(lines, f"supervisor {target.label}")

    async def _tail(self, process: str, stream: str, length: int) -> list[str]:
        try:
            text, _, overflow = await self.rpc.call(f"supervisor.tailProcess{stream}Log", process, 0, length)
        except SupervisorFault as fault:
            if fault.code in (NO_FILE, BAD_NAME):  # no such log (stderr redirected to stdout), or a process gone since
                return []
            raise
        lines = str(text).splitlines()
        # A tail that starts mid-file starts mid-line: that part-line could be a secret cut from its key.
        return lines[1:] if overflow and lines else lines

    async def state(self, target) -> list[Reading]:
        try:
            processes = await self.processes(target)
        except SupervisorFault as fault:
            return [Reading("critical", str(fault))]
        single = len(processes) == 1
        return [Reading(r.status, r.detail, None if single else info["name"]) for info in processes for r in [grade_process(info)]]

    async def settled(self, workload: Workload, deadline, clock) -> Settled:
        while True:
            every = {process_id(p): p for p in await self.rpc.call("supervisor.getAllProcessInfo")}
            states = {member: str(every.get(member, {}).get("statename", "gone")) for member in workload.members}
            fatal = [m for m, state in states.items() if state in ("FATAL", "gone")]
            if fatal:
                return Settled(False, f"{fatal[0]} is {states[fatal[0]]}")
            if all(state == "RUNNING" for state in states.values()):
                return Settled(True, f"{len(states)} process{'es' if len(states) > 1 else ''} RUNNING")
            if clock.now() >= deadline:
                waiting = [f"{m} {s}" for m, s in states.items() if s != "RUNNING"]
                return Settled(False, f"not all RUNNING in time: {', '.join(waiting)}")
            await clock.sleep(POLL_SECONDS)

    async def close(self) -> None:
        await self.rpc.close()


def tail_bytes(tail: int, streams: int) -> int:
    """Bytes asked of each stream: enough for `tail` lines, within the per-stream and per-read caps."""
    return max(1, min(tail * LOG_BYTES_PER_LINE, MAX_LOG_BYTES, MAX_LOG_TOTAL // max(1, streams)))


def newest_shares(streams: list[list[str]], total: int) -> list[list[str]]:
    """The newest lines of each stream, `total` in all, shared out evenly: the streams carry no
    timestamps to merge by, and a quiet stream leaves its share to the others."""
    taken = [0] * len(streams)
    left = min(total, MAX_LOG_TAIL)
    while left > 0 and any(taken[i] < len(lines) for i, lines in enumerate(streams)):
        for i, lines in enumerate(streams):
            if left > 0 and taken[i] < len(lines):
                taken[i] += 1
                left -= 1
    return [lines[len(lines) - n :] if n else [] for lines, n in zip(streams, taken)]


def build(connection, adapters) -> SupervisorAdapter:
    return SupervisorAdapter(connection)
