"""memory: host memory in use, from /proc/meminfo (MemAvailable, as `free` reports it)."""
from __future__ import annotations

from bot.check.result import Finding
from bot.config.models import MemoryCheck


async def run(check: MemoryCheck, ctx) -> list[Finding]:
    values = {}
    with open("/proc/meminfo", encoding="ascii") as handle:
        for line in handle:
            key, _, rest = line.partition(":")
            values[key] = int(rest.split()[0]) * 1024
    total, available = values["MemTotal"], values.get("MemAvailable", values.get("MemFree", 0))
    percent = 100.0 * (total - available) / total
    return [Finding(check.usage.grade(percent), f"{percent:.0f}% used, {available / 1024**3:.1f} of {total / 1024**3:.1f} GB available")]
