"""tcp: the port accepts a connection."""
from __future__ import annotations

import asyncio
import time

from bot.check.result import Finding
from bot.config.models import TcpCheck


async def run(check: TcpCheck, ctx) -> list[Finding]:
    started = time.perf_counter()
    try:
        _, writer = await asyncio.open_connection(check.host, check.port)
    except OSError as exc:
        return [Finding("critical", f"cannot connect to {check.host}:{check.port} ({exc.strerror or exc.__class__.__name__})")]
    elapsed = time.perf_counter() - started
    writer.close()
    grade = check.latency.grade(elapsed)
    return [Finding(grade, f"{check.host}:{check.port} accepts connections" + ("" if grade == "ok" else " slowly"))]
