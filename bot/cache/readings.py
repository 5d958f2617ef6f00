"""/cache status and /cache queues: what INFO and LLEN say, graded with the cache's thresholds.

The grading is pure (status_of, grade_queue) so it is tested on readings a shared test Redis
cannot be put into (a maxmemory near full); reading is one INFO call and one LLEN per queue.
"""
from __future__ import annotations

from dataclasses import dataclass, field

import redis.exceptions

from bot.cache.client import Where, connect
from bot.config.data_models import Cache

ORDER = {"ok": 0, "warning": 1, "critical": 2}


def worst(grades) -> str:
    return max(grades, key=ORDER.__getitem__, default="ok")


@dataclass
class Status:
    where: Where
    grade: str
    lines: list[str] = field(default_factory=list)


def _mb(n: int) -> str:
    return f"{n / 1048576:.1f} MB"


def status_of(cache: Cache, where: Where, info: dict) -> Status:
    """Memory against maxmemory (graded; skipped when maxmemory is 0), hit rate, clients, keys per database."""
    grades = []
    lines = []
    used, limit = int(info.get("used_memory", 0)), int(info.get("maxmemory", 0))
    if limit:
        percent = 100.0 * used / limit
        grade = cache.memory.grade(percent)
        grades.append(grade)
        lines.append(f"memory: {_mb(used)} of {_mb(limit)} maxmemory ({percent:.0f}%): {grade}")
    else:
        lines.append(f"memory: {_mb(used)}; maxmemory is 0 (no limit), so memory is not graded")
    hits, misses = int(info.get("keyspace_hits", 0)), int(info.get("keyspace_misses", 0))
    if hits + misses:
        lines.append(f"hit rate: {100.0 * hits / (hits + misses):.1f}% ({hits:,} hits, {misses:,} misses since start)")
    else:
        lines.append("hit rate: no lookups since the server started")
    lines.append(f"connected clients: {int(info.get('connected_clients', 0)):,}")
    databases = sorted(
        (int(key[2:]), value) for key, value in info.items() if key.startswith("db") and key[2:].isdigit() and isinstance(value, dict)
    )
    if databases:
        shown = ", ".join(f"db{n} {int(v.get('keys', 0)):,}{' (this cache)' if n == where.db else ''}" for n, v in databases)
        lines.append(f"keys: {shown}")
    if not any(n == where.db for n, _ in databases):
        lines.append(f"keys in db {where.db} (this cache): 0")
    return Status(where, worst(grades), lines)


async def status(name: str, cache: Cache) -> Status:
    async with connect(name, cache) as (client, where):
        info = await client.info()  # the default sections: memory, stats, clients, keyspace
    return status_of(cache, where, info)


@dataclass(frozen=True)
class QueueReading:
    key: str
    length: int | None  # None: the key holds another type
    type: str | None = None
    grade: str = "ok"


def grade_queue(cache: Cache, key: str, length: int) -> QueueReading:
    return QueueReading(key, length, grade=cache.queue_length.grade(length))


async def queues(name: str, cache: Cache) -> tuple[Where, list[QueueReading]]:
    """LLEN of each configured queue key; a key of another type is reported as such."""
    readings = []
    async with connect(name, cache) as (client, where):
        for key in cache.queues:
            try:
                readings.append(grade_queue(cache, key, int(await client.llen(key))))
            except redis.exceptions.ResponseError as exc:
                if "WRONGTYPE" not in str(exc):
                    raise
                kind = await client.type(key)
                kind = kind.decode() if isinstance(kind, bytes) else str(kind)
                readings.append(QueueReading(key, None, kind, "warning"))
    return where, readings
