"""One user's rate-limit keys (runbook 004: rate:user:{id}:*), and FLUSHDB (runbook 000).

Keys are found with SCAN MATCH, never KEYS, and each pattern's scan stops after examining
about MAX_SCANNED keys (the answer then says it was capped). The user id is checked before it
is put in a pattern: no glob characters, so one user's pattern cannot match everyone's, and it
is escaped for Redis glob all the same. Deleting removes exactly the keys a plan listed.
"""
from __future__ import annotations

import re
from dataclasses import dataclass, field

import redis.asyncio as aioredis
import redis.exceptions

SCAN_COUNT = 1000  # SCAN's COUNT hint: keys examined per call
MAX_SCANNED = 100_000  # per pattern; past it the scan stops and says so
DELETE_BATCH = 500
# No ":" either: it separates key parts, so user "12" must not reach the keys of a user "12:x".
USER_ID = re.compile(r"[A-Za-z0-9_.@-]{1,64}")
GLOB = "*?[]\\"
_GLOB_CHAR = re.compile(r"([*?\[\]\\^])")


class BadUser(ValueError):
    """The user id cannot be used in a key pattern; the sentence is the whole answer."""


def check_user(raw: str) -> str:
    """The user id as typed when it names exactly one user; BadUser otherwise."""
    shown = raw[:40].encode("ascii", "backslashreplace").decode()
    if any(ch in GLOB for ch in raw):
        raise BadUser(f"'{shown}' holds a glob character (* ? [ ] \\); a user id must name exactly one user.")
    if not USER_ID.fullmatch(raw):
        raise BadUser(f"'{shown}' is not a user id: 1 to 64 letters, digits and _ . @ -.")
    return raw


def escape_glob(text: str) -> str:
    """`text` matched literally by Redis glob-style MATCH."""
    return _GLOB_CHAR.sub(r"\\\1", text)


def unsafe_pattern(pattern: str) -> str | None:
    """Why a configured pattern could match other users' keys, or None.

    'rate:{user}*': user 12 would clear 123's. 'rate:{user}-*' and 'rate:{user}.*' too: '-' and '.' may
    be part of a user id, so user 12's pattern would reach user 12-3's keys. Right after {user} comes
    the end of the pattern or a character no user id holds (':').
    """
    before, _, after = pattern.partition("{user}")
    follower = after[:1]
    if before[-1:] in ("*", "?", "]") or follower in ("*", "?", "[", "\\"):
        return (
            f"the rate-limit pattern '{pattern}' puts a wildcard right next to {{user}}, so user 12's pattern would "
            f"also match user 123's keys; put a separator there in app.yaml (rate:user:{{user}}:*)"
        )
    if follower and USER_ID.fullmatch(follower):
        return (
            f"the rate-limit pattern '{pattern}' puts '{follower}' right after {{user}}, and a user id may hold it, so "
            f"user 12's pattern would also match user 12{follower}3's keys; put ':' there in app.yaml (rate:user:{{user}}:*)"
        )
    return None


def user_patterns(patterns: list[str], user: str) -> list[str]:
    """The cache's patterns for one (checked) user; BadUser when a pattern is unsafe."""
    check_user(user)
    result = []
    for pattern in patterns:
        problem = unsafe_pattern(pattern)
        if problem:
            raise BadUser(problem[0].upper() + problem[1:] + ".")
        result.append(pattern.replace("{user}", escape_glob(user)))
    return result


@dataclass
class Found:
    patterns: list[str]
    keys: list[bytes] = field(default_factory=list)  # unique, sorted
    capped: bool = False  # some pattern's scan stopped after MAX_SCANNED keys examined
    examined: int = 0  # keys examined, about (SCAN_COUNT per call)


async def scan_keys(client: aioredis.Redis, patterns: list[str], *, max_scanned: int = MAX_SCANNED, count: int = SCAN_COUNT) -> Found:
    found = Found(patterns)
    seen: set[bytes] = set()
    for pattern in patterns:
        cursor, examined = 0, 0
        while True:
            cursor, batch = await client.scan(cursor, match=pattern, count=count)
            examined += count
            seen.update(batch)
            if int(cursor) == 0:
                break
            if examined >= max_scanned:
                found.capped = True
                break
        found.examined += examined
    found.keys = sorted(seen)
    return found


async def delete_keys(client: aioredis.Redis, keys: list[bytes], *, batch: int = DELETE_BATCH) -> int:
    """Deletes `keys` (UNLINK, DEL where UNLINK is unknown) in batches; how many existed and were deleted."""
    deleted = 0
    unlink = True
    for start in range(0, len(keys), batch):
        chunk = keys[start:start + batch]
        if unlink:
            try:
                deleted += int(await client.unlink(*chunk))
                continue
            except redis.exceptions.ResponseError as exc:
                if "unknown command" not in str(exc).lower():
                    raise
                unlink = False
        deleted += int(await client.delete(*chunk))
    return deleted


async def flush(client: aioredis.Redis) -> tuple[int, int]:
    """FLUSHDB of the client's database (ASYNC: the keys go at once, memory is freed in the background); (before, after)."""
    before = int(await client.dbsize())
    try:
        await client.flushdb(asynchronous=True)
    except redis.exceptions.ResponseError:
        await client.flushdb()  # a server without FLUSHDB ASYNC
    return before, int(await client.dbsize())


# Plans are JSON: keys that are UTF-8 are stored as text, any other bytes as hex beside them.
def keys_to_json(keys: list[bytes]) -> tuple[list[str], list[str]]:
    texts, raw = [], []
    for key in keys:
        try:
            texts.append(key.decode("utf-8"))
        except UnicodeDecodeError:
            raw.append(key.hex())
    return texts, raw


def keys_from_json(texts: list[str], raw: list[str]) -> list[bytes]:
    return [text.encode("utf-8") for text in texts] + [bytes.fromhex(h) for h in raw]


def shown_key(key: bytes) -> str:
    return key.decode("utf-8", "backslashreplace")
