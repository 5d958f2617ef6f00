"""What keeps /health cheap under load: concurrent runs are shared and each user's runs are capped.

/health is public and every run opens database connections and runs `docker exec`, so:

- Coalescing (single flight): requests for the same set of services while a run of that set is
  in progress wait for that run instead of starting another; every caller gets the same report
  (one check_runs row, saved under the first requester's name and channel). Only runs still in
  progress are shared: a finished run is never served again, there is no cache of results.
- Per-user cap: a user may start at most HEALTH_RUNS_PER_USER runs in any HEALTH_WINDOW seconds
  (a sliding window). Joining a run already in progress starts nothing and costs nothing, so it
  does not count and is never refused. `opsbot run` (trigger "cli"), scheduled runs and action
  verification are not capped (UNCAPPED_TRIGGERS); interactive /health from Slack and the console is.

Both are per replica: the state lives in this process, so with N replicas behind Slack a user may
start up to N times the cap, and the same set may run once per replica at the same time.
"""
from __future__ import annotations

import asyncio
import math
import time
from collections import deque
from dataclasses import dataclass
from typing import Awaitable, Callable, Generic, Hashable, TypeVar

# Module constants rather than app.yaml settings: a field there also means regenerating docs/config-reference.md.
HEALTH_RUNS_PER_USER = 6
HEALTH_WINDOW = 60.0  # seconds
UNCAPPED_TRIGGERS = frozenset({"cli", "schedule", "verify"})

T = TypeVar("T")
Clock = Callable[[], float]


class SingleFlight(Generic[T]):
    """Concurrent calls with the same key share one run of the work; a finished run is forgotten at once."""

    def __init__(self) -> None:
        self._flights: dict[Hashable, asyncio.Task] = {}
        self._waiters: dict[Hashable, int] = {}

    def in_progress(self, key: Hashable) -> bool:
        task = self._flights.get(key)
        return task is not None and not task.done()

    def waiters(self, key: Hashable) -> int:
        """How many callers are waiting on the run of `key` now (0 when none is in progress)."""
        return self._waiters.get(key, 0) if self.in_progress(key) else 0

    def start(self, key: Hashable, work: Callable[[], Awaitable[T]]) -> asyncio.Task:
        """Begin a run of `key`; call only when in_progress(key) is False."""

        async def flight() -> T:
            try:
                return await work()
            finally:
                # Forgotten the moment it ends, before anyone awaiting it resumes: no finished result is handed out later.
                if self._flights.get(key) is task:
                    del self._flights[key]
                    self._waiters.pop(key, None)

        task = asyncio.get_running_loop().create_task(flight())
        # A run whose callers all went away (cancelled) must not log "exception was never retrieved".
        task.add_done_callback(lambda t: t.cancelled() or t.exception())
        self._flights[key] = task
        return task

    async def wait(self, key: Hashable, task: asyncio.Task) -> T:
        """Await a run; a caller that is cancelled leaves the run going for the others."""
        self._waiters[key] = self._waiters.get(key, 0) + 1
        try:
            return await asyncio.shield(task)
        finally:
            if self._flights.get(key) is task:
                self._waiters[key] -= 1

    def task(self, key: Hashable) -> asyncio.Task | None:
        return self._flights[key] if self.in_progress(key) else None

    def cancel_all(self) -> None:
        for task in list(self._flights.values()):
            task.cancel()
        self._flights.clear()
        self._waiters.clear()


class UserQuota:
    """At most `limit` starts per user in any `window` seconds, by the injected monotonic clock."""

    def __init__(self, limit: int = HEALTH_RUNS_PER_USER, window: float = HEALTH_WINDOW, clock: Clock = time.monotonic):
        if limit < 1 or window <= 0:
            raise ValueError("a quota needs limit >= 1 and window > 0")
        self.limit, self.window, self.clock = limit, window, clock
        self._starts: dict[Hashable, deque[float]] = {}

    def take(self, user: Hashable) -> float:
        """Count one start for `user` and return 0.0, or, when the user is at the cap, count nothing
        and return the seconds until the oldest start leaves the window."""
        now = self.clock()
        starts = self._starts.get(user)
        if starts is None:
            if len(self._starts) >= 1024:
                self._forget_idle(now)
            starts = self._starts[user] = deque()
        while starts and starts[0] <= now - self.window:
            starts.popleft()
        if len(starts) >= self.limit:
            return max(starts[0] + self.window - now, 0.001)
        starts.append(now)
        return 0.0

    def _forget_idle(self, now: float) -> None:
        for user in [u for u, s in self._starts.items() if not s or s[-1] <= now - self.window]:
            del self._starts[user]


@dataclass(frozen=True)
class Limited:
    """A start refused by the per-user cap; nothing ran."""

    retry_after: float  # seconds
    limit: int
    window: float

    @property
    def sentence(self) -> str:
        span = "minute" if self.window == 60 else f"{self.window:g} seconds"
        seconds = max(1, math.ceil(self.retry_after))
        return (
            f"You have started {self.limit} health runs in the last {span}, the most opsbot allows; "
            f"try /health again in {seconds} second{'s' if seconds != 1 else ''}."
        )


class HealthLimits:
    """The per-replica state of /health: runs in progress by service set, and each user's recent starts."""

    def __init__(self, quota: UserQuota | None = None):
        self.flights: SingleFlight = SingleFlight()
        self.quota = quota or UserQuota()

    @staticmethod
    def key(services: list[str]) -> tuple[str, ...]:
        return tuple(sorted(set(services)))

    async def run(self, services: list[str], work: Callable[[], Awaitable[T]], *, user: Hashable | None) -> tuple[T, bool] | Limited:
        """(result, shared) where shared says the run was already in progress; or Limited when `user`
        (None: not capped) is at the cap and no run of these services is in progress to join."""
        key = self.key(services)
        task = self.flights.task(key)
        shared = task is not None
        if task is None:
            if user is not None:
                wait = self.quota.take(user)
                if wait:
                    return Limited(wait, self.quota.limit, self.quota.window)
            task = self.flights.start(key, work)
        return await self.flights.wait(key, task), shared

    def close(self) -> None:
        self.flights.cancel_all()
