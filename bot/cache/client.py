"""A short-lived redis.asyncio client per call, closed after; every failure is CacheUnavailable.

The URL is expanded (${VAR}) at use time, so the loaded config never holds the password, and
error text goes through the redactor before it reaches chat.
"""
from __future__ import annotations

import asyncio
from contextlib import asynccontextmanager
from dataclasses import dataclass
from typing import AsyncIterator

import redis.asyncio as aioredis
import redis.exceptions
from redis.asyncio.connection import parse_url

from bot.config.data_models import Cache
from bot.config.types import MissingEnvironment, expand_env
from bot.redaction import redact

TIMEOUT = 5.0  # seconds, to connect and for each command


class CacheUnavailable(Exception):
    """The cache cannot be reached or refused a command: the sentence is the whole answer."""


@dataclass(frozen=True)
class Where:
    """Which Redis database a cache is: its server (host:port or socket path, no credentials) and db number."""

    server: str
    db: int

    def __str__(self) -> str:
        return f"db {self.db} on {self.server}"


def _first_line(exc: BaseException) -> str:
    text = (str(exc).strip().splitlines() or [""])[0].strip() or exc.__class__.__name__
    return redact(text[:300]).rstrip(".")


def _url(name: str, cache: Cache) -> str:
    try:
        url = expand_env(cache.url)
    except MissingEnvironment as exc:
        raise CacheUnavailable(f"Cache {name} cannot be reached: {exc}.") from None
    try:
        parse_url(url)
    except (ValueError, TypeError) as exc:
        raise CacheUnavailable(f"Cache {name} has an unusable url in app.yaml: {_first_line(exc)}.") from None
    return url


def _where(url: str) -> Where:
    kwargs = parse_url(url)
    server = kwargs.get("path") or f"{kwargs.get('host', 'localhost')}:{kwargs.get('port', 6379)}"
    return Where(str(server), int(kwargs.get("db") or 0))


def where(name: str, cache: Cache) -> Where:
    """The server and database the cache's URL names, read without connecting."""
    return _where(_url(name, cache))


@asynccontextmanager
async def connect(name: str, cache: Cache, timeout: float = TIMEOUT) -> AsyncIterator[tuple[aioredis.Redis, Where]]:
    """(client, where) for one call. Redis and socket errors inside the block become CacheUnavailable."""
    url = _url(name, cache)
    client = aioredis.from_url(url, socket_timeout=timeout, socket_connect_timeout=timeout)
    try:
        yield client, _where(url)
    except redis.exceptions.ResponseError as exc:
        raise CacheUnavailable(f"Cache {name} refused a command: {_first_line(exc)}.") from None
    except (redis.exceptions.RedisError, OSError, asyncio.TimeoutError) as exc:
        raise CacheUnavailable(f"Cannot reach cache {name}: {_first_line(exc)}.") from None
    finally:
        try:
            await client.aclose()
        except (redis.exceptions.RedisError, OSError):
            pass


class UnknownCache(LookupError):
    """The name is not under caches: in app.yaml; the sentence is the whole answer."""


def cache_named(config, name: str) -> Cache:
    cache = config.caches.get(name)
    if cache is None:
        known = ", ".join(sorted(config.caches)[:20]) or "none: app.yaml declares no caches"
        raise UnknownCache(f"Unknown cache '{name[:60]}'. Known: {known}.")
    return cache
