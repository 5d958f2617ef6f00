"""Time, injected: everything that waits or compares against "now" takes a Clock.

SystemClock is the wall clock. ManualClock only moves when a test advances it, so a test
of a two-hour escalation runs in milliseconds and never depends on how fast the host is.

What "now" means for claims, leases and expiry is the clock's to say (`is_database_clock`).
A wall clock, real or skewed, defers to the database: the claim, recovery and lease statements
use PostgreSQL's now(), so a replica whose clock is minutes off neither takes a job early, nor
recovers a live lease, nor waits minutes for a due one. (SQLite serves one process, so its own
clock is the database's.) A ManualClock keeps supplying its time there too: it *is* the test's
database clock, which is how hours of schedule run in seconds. bot.coordination.AgreedTime turns
that choice into SQL.
"""
from __future__ import annotations

import asyncio
from datetime import datetime, timedelta, timezone
from typing import Protocol


class Clock(Protocol):
    # True: claims and expiry are judged by this clock's now() (a test's ManualClock);
    # False: by the database's (a wall clock, which may be off on one replica).
    is_database_clock: bool

    def now(self) -> datetime:
        """Timezone-aware UTC."""

    async def sleep(self, seconds: float, *, busy: bool = False) -> None:
        """`busy`: the sleeper waits while work it started still runs (the scheduler's loop waiting
        for its jobs, or for the next one to fall due): not idle, so ManualClock.sleepers leaves it out."""


class SystemClock:
    is_database_clock = False

    def now(self) -> datetime:
        return datetime.now(timezone.utc)

    async def sleep(self, seconds: float, *, busy: bool = False) -> None:
        await asyncio.sleep(max(0.0, seconds))


class ManualClock:
    """A clock that stands still until advance(); sleepers wake when their time is passed."""

    is_database_clock = True

    def __init__(self, start: datetime | None = None):
        start = start or datetime.now(timezone.utc)
        if start.tzinfo is None:
            raise ValueError("ManualClock needs a timezone-aware start")
        self._now = start.astimezone(timezone.utc)
        self._sleepers: list[tuple[datetime, asyncio.Future, bool]] = []  # (deadline, future, busy)

    def now(self) -> datetime:
        return self._now

    async def sleep(self, seconds: float, *, busy: bool = False) -> None:
        if seconds <= 0:
            await asyncio.sleep(0)  # still a scheduling point, as asyncio.sleep(0) is
            return
        future = asyncio.get_running_loop().create_future()
        entry = (self._now + timedelta(seconds=seconds), future, busy)
        self._sleepers.append(entry)
        try:
            await future
        finally:
            if entry in self._sleepers:
                self._sleepers.remove(entry)

    def advance(self, delta: timedelta | float) -> datetime:
        """Move time forward and wake every sleeper whose deadline is now passed."""
        self._now += delta if isinstance(delta, timedelta) else timedelta(seconds=delta)
        for deadline, future, _ in list(self._sleepers):
            if deadline <= self._now and not future.done():
                future.set_result(None)
        return self._now

    @property
    def sleepers(self) -> int:
        """How many coroutines wait on this clock with nothing of theirs running (busy sleepers are
        left out): a test knows the loop is idle when it is one."""
        return sum(1 for _, future, busy in self._sleepers if not future.done() and not busy)
