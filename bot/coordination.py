"""What several bot processes must agree on: what time it is in a claim, and which Slack delivery ran.

PostgreSQL is the only coordinator a deployment needs:
- Time. AgreedTime is "now" inside a statement: the database's now() on PostgreSQL when the
  caller's clock is a wall clock (one replica's may be minutes off), the clock's own time when it
  is the database's (a test's ManualClock; see bot.schedule.clock), and this process's clock on
  SQLite, which serves a single process. Scheduler claims and leases and the expiry below use it.
- Retried deliveries (X-Slack-Retry-Num, Socket Mode re-deliveries) are claimed once in
  `delivery_claims`: INSERT ... ON CONFLICT on the key, which only overwrites a row whose expiry
  passed, so a key claims once per `ttl`. Expired rows are purged on the way, now and then.
  Keys are stored as SHA-256 digests: fixed width, and no Slack text in the table.

Redis, when REDIS_URL is set, holds the same claims faster. When it is set but down, claims go to
the database, not to this process's memory (another replica shares the one, not the other). Only
when the database cannot be reached either does memory stand in, so one replica still runs a
delivery once while commands answer that the database is unavailable.
"""
from __future__ import annotations

import asyncio
import hashlib
import logging
import time
from datetime import datetime, timedelta, timezone

import redis.asyncio as aioredis
from sqlalchemy import ColumnElement, String, func, literal, select, type_coerce
from sqlalchemy.orm import Mapped, mapped_column

from bot.storage import Base, Database, UtcDateTime, connection_trouble

log = logging.getLogger(__name__)

PURGE_EVERY = 600.0  # seconds between one process's purges of expired claims
PURGE_BATCH = 10000  # rows deleted per purge: a backlog goes over several, none holds locks long
MEMORY_LIMIT = 10000  # keys the last-resort memory holds before forgetting expired ones
# A claim made before Slack's ack (a modal submission's, whose answer is the ack), due within 3 s:
# a database that hangs (rather than refusing) must not hold the ack past that.
DATABASE_CLAIM_BUDGET = 1.5  # seconds
# A claim made after the ack (commands, buttons, shortcuts, events) waits for a slow database this long.
# Giving up is not free: memory says yes while the cancelled INSERT leaves no row, so a retry that
# reaches another replica runs the delivery again (bench/rolling_restart.py saw 30 of 1,000 under load).
AFTER_ACK_CLAIM_BUDGET = 10.0  # seconds


class DeliveryClaim(Base):
    __tablename__ = "delivery_claims"

    key: Mapped[str] = mapped_column(String(64), primary_key=True)  # SHA-256 of the delivery key, hex
    expires_at: Mapped[datetime] = mapped_column(UtcDateTime, index=True)  # the purge reads by expiry


CLAIMS = DeliveryClaim.__table__


def fixed_now(clock) -> datetime | None:
    """The time a clock imposes on claims: its own when it is the database's clock, None (the database's now()) otherwise."""
    return clock.now() if getattr(clock, "is_database_clock", False) else None


class AgreedTime:
    """"Now" for one statement on `dialect`: `fixed` when given (or on SQLite), the database's now() otherwise.

    An offset is added on the side that holds the time: SQLite stores datetimes as text, so
    `literal + interval` has no meaning there, while PostgreSQL adds an interval to now()."""

    def __init__(self, dialect: str, fixed: datetime | None):
        if fixed is None and dialect != "postgresql":
            fixed = datetime.now(timezone.utc)  # SQLite: one process, whose clock is the database's
        self.fixed = fixed

    def at(self, offset: timedelta = timedelta(0)) -> ColumnElement:
        if self.fixed is not None:
            return literal(self.fixed + offset, UtcDateTime())
        moment = func.now()  # the transaction's start: one instant for every row of a claim
        return type_coerce(moment + offset if offset else moment, UtcDateTime())

    async def read(self, session) -> datetime:
        """The instant as a datetime (a periodic job's next slot is computed from it)."""
        if self.fixed is not None:
            return self.fixed
        return await session.scalar(select(self.at()))


def _insert(dialect: str):
    if dialect == "postgresql":
        from sqlalchemy.dialects.postgresql import insert
    else:
        from sqlalchemy.dialects.sqlite import insert
    return insert


class Coordinator:
    def __init__(self, redis_url: str | None, db: Database, clock):
        self.redis = aioredis.from_url(redis_url, socket_timeout=2, socket_connect_timeout=2) if redis_url else None
        self.db = db
        self.clock = clock
        self._purged_at: float | None = None  # monotonic time of this process's last purge
        self._memory: dict[str, float] = {}  # last resort, while the database is unreachable
        self._purging: asyncio.Task | None = None
        self._redis_failing = False

    @property
    def database_kind(self) -> str:
        return "PostgreSQL" if self.db.engine.dialect.name == "postgresql" else "SQLite"

    async def claim(self, key: str, ttl: int = 3600, budget: float = DATABASE_CLAIM_BUDGET) -> bool:
        """True for the first caller to claim `key` within `ttl` seconds, across replicas; False for every later one.

        Used so that a retried Slack delivery never runs a handler twice. `budget`: how long a database
        that does not answer is waited for before this process's memory stands in."""
        if self.redis is not None:
            try:
                claimed = bool(await self.redis.set(f"opsbot:claim:{key}", b"1", nx=True, ex=ttl))
            except (aioredis.RedisError, OSError):
                if not self._redis_failing:
                    log.warning("Redis unreachable: retried deliveries are de-duplicated in %s meanwhile", self.database_kind)
                self._redis_failing = True
            else:
                self._redis_failing = False
                return claimed
        try:
            async with asyncio.timeout(budget):
                return await self._claim_in_database(key, ttl)
        except Exception as exc:
            if not connection_trouble(exc):
                raise
            log.warning("database unreachable: this replica alone de-duplicates deliveries meanwhile")
            return self._claim_in_memory(key, ttl)

    async def _claim_in_database(self, key: str, ttl: int) -> bool:
        dialect = self.db.engine.dialect.name
        now = AgreedTime(dialect, fixed_now(self.clock))
        digest = hashlib.sha256(key.encode("utf-8", "surrogatepass")).hexdigest()
        statement = _insert(dialect)(CLAIMS).values(key=digest, expires_at=now.at(timedelta(seconds=ttl)))
        # An existing row is taken over only once it expired; a live one leaves the statement without a row.
        statement = statement.on_conflict_do_update(
            index_elements=[CLAIMS.c.key], set_={"expires_at": statement.excluded.expires_at}, where=CLAIMS.c.expires_at <= now.at()
        )
        async with self.db.sessions() as session, session.begin():
            claimed = (await session.execute(statement.returning(CLAIMS.c.key))).first() is not None
        if self._purged_at is None or time.monotonic() - self._purged_at >= PURGE_EVERY:
            self._purged_at = time.monotonic()
            self._purging = asyncio.get_running_loop().create_task(self._purge_quietly())  # after the ack, not before
        return claimed

    async def _purge_quietly(self) -> None:
        try:
            await self.purge()
        except Exception as exc:  # the next purge takes what this one left
            log.warning("could not purge expired delivery claims (%s)", exc.__class__.__name__)

    async def purge(self) -> int:
        """Delete up to PURGE_BATCH expired claims; how many went."""
        dialect = self.db.engine.dialect.name
        now = AgreedTime(dialect, fixed_now(self.clock))
        expired = select(CLAIMS.c.key).where(CLAIMS.c.expires_at <= now.at()).limit(PURGE_BATCH)
        async with self.db.sessions() as session, session.begin():
            return (await session.execute(CLAIMS.delete().where(CLAIMS.c.key.in_(expired)))).rowcount

    def _claim_in_memory(self, key: str, ttl: int) -> bool:
        now = time.monotonic()
        if len(self._memory) > MEMORY_LIMIT:
            self._memory = {k: t for k, t in self._memory.items() if now - t < ttl}
        if key in self._memory and now - self._memory[key] < ttl:
            return False
        self._memory[key] = now
        return True

    async def ping(self) -> None:
        if self.redis is not None:
            await self.redis.ping()

    async def close(self) -> None:
        if self._purging is not None:  # before the database closes under it
            await asyncio.gather(self._purging, return_exceptions=True)
        if self.redis is not None:
            await self.redis.aclose()
