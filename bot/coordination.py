"""What several bot processes must agree on, through Redis when REDIS_URL is set.

Without Redis a single-process fallback is used (and /readyz says so): fine for one
replica, not for two.
"""
from __future__ import annotations

import time

import redis.asyncio as aioredis


class Coordinator:
    def __init__(self, redis_url: str | None):
        self.redis = aioredis.from_url(redis_url, socket_timeout=2, socket_connect_timeout=2) if redis_url else None
        self._seen: dict[str, float] = {}

    async def claim(self, key: str, ttl: int = 3600) -> bool:
        """True for the first caller to claim `key` (across replicas when Redis is set); False for every later one.

        Used so that a retried Slack delivery never runs a handler twice.
        """
        if self.redis is not None:
            try:
                return bool(await self.redis.set(f"opsbot:claim:{key}", b"1", nx=True, ex=ttl))
            except (aioredis.RedisError, OSError):
                pass  # Redis down: fall back to this process's memory rather than dropping commands
        now = time.monotonic()
        if len(self._seen) > 10000:
            self._seen = {k: t for k, t in self._seen.items() if now - t < ttl}
        if key in self._seen and now - self._seen[key] < ttl:
            return False
        self._seen[key] = now
        return True

    async def ping(self) -> None:
        if self.redis is not None:
            await self.redis.ping()

    async def close(self) -> None:
        if self.redis is not None:
            await self.redis.aclose()
