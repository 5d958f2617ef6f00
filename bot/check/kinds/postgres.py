"""postgres: SELECT 1 latency and connections in use against max_connections (runbook 000: 80 % / 90 %)."""
from __future__ import annotations

import time

import asyncpg

from bot.check.result import Finding, worst
from bot.config.models import PostgresCheck
from bot.config.types import expand_env


async def run(check: PostgresCheck, ctx) -> list[Finding]:
    dsn = expand_env(check.dsn).replace("postgresql+asyncpg://", "postgresql://", 1)
    try:
        conn = await asyncpg.connect(dsn, timeout=check.timeout)
    except (OSError, asyncpg.PostgresError, asyncpg.InterfaceError) as exc:
        return [Finding("critical", f"cannot connect: {_reason(exc)}")]
    try:
        started = time.perf_counter()
        await conn.fetchval("SELECT 1")
        elapsed = time.perf_counter() - started
        in_use = await conn.fetchval("SELECT count(*) FROM pg_stat_activity")
        max_connections = int(await conn.fetchval("SHOW max_connections"))
    finally:
        await conn.close()
    percent = 100.0 * in_use / max_connections
    grades = [check.connections.grade(percent), check.latency.grade(elapsed)]
    detail = f"SELECT 1 in {elapsed * 1000:.1f} ms, connections {in_use}/{max_connections} ({percent:.0f}%)"
    return [Finding(worst(grades), detail)]


def _reason(exc: Exception) -> str:
    text = str(exc).splitlines()[0] if str(exc) else exc.__class__.__name__
    return text  # the engine redacts, then shortens
