"""What happened in a channel, told to whoever listens: a check run, a guarded action's result.

The check and action slices publish; the incident slice listens and puts what happened in
an incident's channel on its timeline. Neither reaches into the other's tables.

Delivery is durable within the process: each listener hears an activity in a task of its own
(the publisher's reply never waits on a listener's storage), and a listener that raises is
called again with backoff until it returns. So a listener must be idempotent (`Activity.id`
is the same on every call) and must itself return, not raise, on a failure no retry can mend.
"""
from __future__ import annotations

import asyncio
import logging
import uuid
from dataclasses import dataclass, field, replace
from datetime import datetime, timezone
from typing import Awaitable, Callable

log = logging.getLogger(__name__)

FIRST_RETRY = 0.1  # seconds before the second call; doubled after each failure
LAST_RETRY = 5.0  # at most this between calls: a database back from a blip is used within seconds
LOG_EVERY = 12  # failed attempts between two warnings about the same activity
CLOSE_GRACE = 10.0  # seconds close() gives deliveries still retrying before they are given up


@dataclass(frozen=True)
class Activity:
    channel: str
    kind: str  # "check", "action"
    user_id: str
    text: str
    data: dict = field(default_factory=dict)
    at: datetime | None = None  # when it happened: set by publish() from the bot's clock
    id: str = field(default_factory=lambda: uuid.uuid4().hex)  # the same on every delivery attempt


Listener = Callable[[Activity], Awaitable[None]]


class ActivityFeed:
    def __init__(self, now: Callable[[], datetime] | None = None, *, first_retry: float = FIRST_RETRY,
                 last_retry: float = LAST_RETRY) -> None:
        self._listeners: list[Listener] = []
        self._now = now or (lambda: datetime.now(timezone.utc))  # the bot's injected clock, in the bot
        self._first_retry, self._last_retry = first_retry, last_retry
        self._deliveries: dict[asyncio.Task, Activity] = {}

    def subscribe(self, listener: Listener) -> None:
        self._listeners.append(listener)

    async def publish(self, activity: Activity) -> None:
        """Every listener hears it, in the background; the publisher does not wait for any of them."""
        if activity.at is None:
            activity = replace(activity, at=self._now())
        for listener in self._listeners:
            task = asyncio.get_running_loop().create_task(self._deliver(listener, activity), name=f"activity-{activity.kind}")
            self._deliveries[task] = activity
            task.add_done_callback(self._deliveries.pop)

    async def _deliver(self, listener: Listener, activity: Activity) -> None:
        delay, attempt = self._first_retry, 1
        while True:
            try:
                await listener(activity)
            except Exception as exc:
                if attempt == 1 or attempt % LOG_EVERY == 0:  # a long outage is said about once a minute, not every 5 s
                    log.warning("activity listener failed on a %s (attempt %s, %s); trying again in %.1fs",
                                activity.kind, attempt, exc.__class__.__name__, delay)
                # Pacing against an outage, not the bot's own time: the wall clock, not the injected one.
                await asyncio.sleep(delay)
                delay, attempt = min(delay * 2, self._last_retry), attempt + 1
            else:
                if attempt > 1:
                    log.info("activity listener took a %s on attempt %s", activity.kind, attempt)
                return

    @property
    def pending(self) -> int:
        """Deliveries not yet taken by their listener (still running, or waiting to try again)."""
        return len(self._deliveries)

    async def drain(self, timeout: float | None = None) -> bool:
        """Wait until every delivery has been taken; False when `timeout` ran out first."""
        loop = asyncio.get_running_loop()
        deadline = None if timeout is None else loop.time() + timeout
        while self._deliveries:  # a listener may publish again: look until none is left
            left = None if deadline is None else deadline - loop.time()
            if left is not None and left <= 0:
                return False
            await asyncio.wait(list(self._deliveries), timeout=left)
        return True

    async def close(self, grace: float = CLOSE_GRACE) -> None:
        """Before the database closes: deliveries get `grace` seconds more, then what is left is given up, said in the log."""
        if await self.drain(grace):
            return
        lost = list(self._deliveries.items())
        for task, activity in lost:
            task.cancel()
            log.error("activity lost at shutdown: %s by %s in %s (%s)", activity.kind, activity.user_id, activity.channel, activity.id)
        await asyncio.gather(*(task for task, _ in lost), return_exceptions=True)
