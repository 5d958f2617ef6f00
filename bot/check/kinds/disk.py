"""disk: filesystem usage of a path, as `df` computes it (used / (used + available))."""
from __future__ import annotations

import os

from bot.check.result import Finding
from bot.config.models import DiskCheck


async def run(check: DiskCheck, ctx) -> list[Finding]:
    try:
        st = os.statvfs(check.path)
    except OSError as exc:
        return [Finding("critical", f"cannot read {check.path}: {exc.strerror}")]
    used = (st.f_blocks - st.f_bfree) * st.f_frsize
    available = st.f_bavail * st.f_frsize
    percent = 100.0 * used / (used + available) if used + available else 0.0
    free_gb = available / 1024**3
    return [Finding(check.usage.grade(percent), f"{check.path} {percent:.0f}% used, {free_gb:.1f} GB free")]
