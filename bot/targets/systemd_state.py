"""How a systemd unit is doing, graded from its D-Bus properties (the systemd_unit check and the adapter's state()).

- active is ok (a warning while younger than min_uptime, or past the restart thresholds);
  activating, deactivating and reloading are warnings (auto-restart: it keeps crashing);
  failed and inactive are critical; a unit systemd cannot load (not-found, masked) is critical.
- The last run's Result says why it stopped: exit-code (with its status), signal, timeout,
  core-dump, oom-kill, start-limit-hit.
- NRestarts: systemd's automatic restarts (Restart=) since the unit was last started by hand.
- The time since the last state change (StateChangeTimestamp, µs since the epoch).
"""
from __future__ import annotations

from bot.targets.base import Reading, human_age

UNLIMITED = 2**64 - 1  # systemd's "infinity" for a memory limit
SIGKILL = 9
CLD_KILLED, CLD_DUMPED = 2, 3  # ExecMainCode: the main process was killed by a signal (siginfo's si_code)
ACTIVE_GRADES = {"active": "ok", "activating": "warning", "deactivating": "warning", "reloading": "warning"}


def memory_limit(props: dict) -> int | None:
    """MemoryMax (cgroup v2) or MemoryLimit (v1's older name), when the unit has one."""
    for name in ("MemoryMax", "MemoryLimit"):
        value = props.get(name)
        if isinstance(value, int) and 0 < value < UNLIMITED:
            return value
    return None


def mebibytes(size: int) -> str:
    return f"{size / 1048576:g} MiB"


def stop_reason(props: dict) -> str | None:
    """Why the unit's last run ended, when not cleanly: one phrase, or None."""
    result = str(props.get("Result", "success"))
    status, code = int(props.get("ExecMainStatus", 0) or 0), int(props.get("ExecMainCode", 0) or 0)
    limit = memory_limit(props)
    if result == "oom-kill":
        return "killed by the OOM killer" + (f" (memory limit {mebibytes(limit)})" if limit else "")
    # On cgroup v1 systemd is not told of the memory cgroup's OOM kill: it only sees its main
    # process die of SIGKILL (Result=signal, ExecMainStatus=9). Under a memory limit, nothing
    # else sends SIGKILL to a unit's main process (a stop would be Result=success or timeout),
    # so that is read as the OOM kill it is.
    if result == "signal" and status == SIGKILL and code in (CLD_KILLED, CLD_DUMPED) and limit:
        return f"killed by the OOM killer (SIGKILL under its {mebibytes(limit)} memory limit)"
    if result == "exit-code":
        return f"exit-code, status {status}"
    if result in ("signal", "core-dump"):
        return f"{result}, signal {status}"
    if result != "success":
        return result
    return None


def grade_unit(props: dict, now_usec: int, min_uptime: float | None = None, restarts=None) -> Reading:
    """One reading of the unit: `restarts` is a Thresholds for NRestarts (None: not graded)."""
    load = str(props.get("LoadState", "not-found"))
    if load != "loaded":
        reason = props.get("LoadError")
        detail = f"unit {load}" + (f" ({reason[1]})" if isinstance(reason, (list, tuple)) and len(reason) > 1 and reason[1] else "")
        return Reading("critical", detail)
    active, sub = str(props.get("ActiveState", "unknown")), str(props.get("SubState", "unknown"))
    status = ACTIVE_GRADES.get(active, "critical")
    parts = [f"{active} ({sub})"]
    changed = int(props.get("StateChangeTimestamp", 0) or 0)
    age = max(0, (now_usec - changed) // 1_000_000) if changed else None
    if age is not None:
        parts.append(f"{'up' if active == 'active' else 'since'} {human_age(age)}")
    if active == "active" and min_uptime is not None and age is not None and age < min_uptime:
        status = "warning"
        parts.append(f"restarted less than {human_age(min_uptime)} ago")
    restart_count = int(props.get("NRestarts", 0) or 0)
    parts.append(f"restarts {restart_count}")
    if restarts is not None:
        status = worse(status, restarts.grade(restart_count))
    reason = stop_reason(props)
    if reason and active != "active":
        parts.append(f"last run: {reason}")
    return Reading(status, ", ".join(parts))


def worse(a: str, b: str) -> str:
    order = ("ok", "warning", "critical")
    return a if order.index(a) >= order.index(b) else b
