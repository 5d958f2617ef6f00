"""What a stopped container's inspect document says about a memory kill.

The Docker Engine sets State.OOMKilled from the kernel's OOM event; under load on cgroup v1 it
can miss that event, and the container is left as a plain exit 137 (128 + SIGKILL). An exit of
137 from a container that has a memory limit is then most likely the same kill, and the remedy
is the same: a new container (--force-recreate) and a look at the limit. Nothing else in the
house reads a container's memory state, so /health, the daily check and /restart say it alike.
"""
from __future__ import annotations

SIGKILL_EXIT = 137


def memory_kill(info: dict) -> str | None:
    """A short reading ("OOM-killed (exit 137)", or "killed by SIGKILL (exit 137), probably out
    of memory: its limit is 16 MiB"), or None when nothing points at a memory kill."""
    state = info.get("State") or {}
    code = state.get("ExitCode")
    if state.get("OOMKilled"):
        return f"OOM-killed (exit {code})"
    limit = int((info.get("HostConfig") or {}).get("Memory") or 0)
    if not state.get("Running") and not state.get("Restarting") and code == SIGKILL_EXIT and limit > 0:
        return f"killed by SIGKILL (exit {SIGKILL_EXIT}), probably out of memory: its limit is {_size(limit)}"
    return None


def _size(n: int) -> str:
    for unit, size in (("GiB", 1 << 30), ("MiB", 1 << 20), ("KiB", 1 << 10)):
        if n >= size:
            value = n / size
            return f"{value:.0f} {unit}" if value == int(value) else f"{value:.1f} {unit}"
    return f"{n} bytes"
