"""What happened in a channel, told to whoever listens: a check run, a guarded action's result.

The check and action slices publish; the incident slice listens and puts what happened in
an incident's channel on its timeline. Neither reaches into the other's tables.
"""
from __future__ import annotations

import logging
from dataclasses import dataclass, field
from typing import Awaitable, Callable

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Activity:
    channel: str
    kind: str  # "check", "action"
    user_id: str
    text: str
    data: dict = field(default_factory=dict)


Listener = Callable[[Activity], Awaitable[None]]


class ActivityFeed:
    def __init__(self) -> None:
        self._listeners: list[Listener] = []

    def subscribe(self, listener: Listener) -> None:
        self._listeners.append(listener)

    async def publish(self, activity: Activity) -> None:
        """Every listener hears it; one that fails is logged, and neither the others nor the publisher stop."""
        for listener in self._listeners:
            try:
                await listener(activity)
            except Exception as exc:
                log.warning("activity listener failed on a %s: %s", activity.kind, exc.__class__.__name__)
