"""What several bot processes must agree on, through Redis when REDIS_URL is set.

Without Redis a single-process fallback is used (and /readyz says so): fine for one
replica, not for two.
"""
from __future__ import annotations

import contextlib
import time
import uuid

import redis.asyncio as aioredis

# Delete the lock only if it is still ours (it may have expired and been taken since).
_RELEASE = "if redis.call('get', KEYS[1]) == ARGV[1] then return redis.call('del', KEYS[1]) else return 0 end"


class Coordinator:
    def __init__(self, redis_url: str | None):
        self.redis = aioredis.from_url(redis_url, socket_timeout=2, socket_connect_timeout=2) if redis_url else None
        self._seen: dict[str, float] = {}

    async def claim(self, key: str, ttl: int = 3600) -> bool:
        """True for the first caller to claim `key` (across replicas when Redis is set); False for every later one.

        Used for retried Slack deliveries and for starting an approved action.
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

    @contextlib.asynccontextmanager
    async def lock(self, key: str, ttl: int):
        """A Redis lock across replicas (yields False when someone else holds it).

        Without Redis it always yields True: the database's conditional update is the
        authority either way; this only keeps a second replica from starting at all.
        The key expires after `ttl`, so a replica that dies cannot hold it forever.
        """
        if self.redis is None:
            yield True
            return
        token = uuid.uuid4().hex.encode()
        name = f"opsbot:lock:{key}"
        try:
            acquired = bool(await self.redis.set(name, token, nx=True, ex=ttl))
        except (aioredis.RedisError, OSError):
            acquired = True  # Redis down: the database still decides
            token = None
        try:
            yield acquired
        finally:
            if acquired and token is not None:
                try:
                    await self.redis.eval(_RELEASE, 1, name, token)
                except (aioredis.RedisError, OSError):
                    pass

    async def ping(self) -> None:
        if self.redis is not None:
            await self.redis.ping()

    async def close(self) -> None:
        if self.redis is not None:
            await self.redis.aclose()
