"""redis: PING, memory against maxmemory, keyspace hit rate (runbook 001)."""
from __future__ import annotations

import time

import redis.asyncio as aioredis
import redis.exceptions

from bot.check.result import Finding, worst
from bot.config.models import RedisCheck
from bot.config.types import expand_env


async def run(check: RedisCheck, ctx) -> list[Finding]:
    client = aioredis.from_url(expand_env(check.url), socket_timeout=check.timeout, socket_connect_timeout=check.timeout)
    try:
        started = time.perf_counter()
        await client.ping()
        elapsed = time.perf_counter() - started
        memory = await client.info("memory")
        stats = await client.info("stats")
    except (redis.exceptions.RedisError, OSError) as exc:
        return [Finding("critical", f"cannot reach Redis: {(str(exc).splitlines() or [''])[0] or exc.__class__.__name__}")]
    finally:
        await client.aclose()

    grades = [check.latency.grade(elapsed)]
    parts = [f"PING {elapsed * 1000:.1f} ms"]
    used, limit = int(memory.get("used_memory", 0)), int(memory.get("maxmemory", 0))
    if limit:
        percent = 100.0 * used / limit
        grades.append(check.memory.grade(percent))
        parts.append(f"memory {_mb(used)}/{_mb(limit)} ({percent:.0f}%)")
    else:
        parts.append(f"memory {_mb(used)} (no maxmemory)")
    hits, misses = int(stats.get("keyspace_hits", 0)), int(stats.get("keyspace_misses", 0))
    if hits + misses:
        rate = 100.0 * hits / (hits + misses)
        parts.append(f"hit rate {rate:.1f}%")
        if check.hit_rate_warn_below is not None and rate < check.hit_rate_warn_below:
            grades.append("warning")
    return [Finding(worst(grades), ", ".join(parts))]


def _mb(n: int) -> str:
    return f"{n / 1048576:.1f} MB"
