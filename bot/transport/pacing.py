"""chat.postMessage under Slack's per-channel limit: posts to one channel leave one at a time,
the most urgent first, and a 429's Retry-After holds that channel, not the others.

Slack allows about one message per second per channel, with bursts. Without pacing, ten pages
waiting on one channel all meet the 429, all sleep the same Retry-After, all retry at once, and
only one gets through each round: who wins is chance, and a P3 can go out before a P0. Here the
channel's queue decides: one post in flight, then the waiting post with the lowest urgency
number (see bot/pipeline/messenger.urgency), first come first served among equals. A post that
meets a 429 waits out Retry-After, exactly (SlackMessenger posts with a client that leaves 429s
to this pacer: slack-sdk's own retry adds a random 0-1 s to each wait), and goes again, so a
page's lateness is the time its channel was held by Slack, and nothing else.
"""
from __future__ import annotations

import asyncio
import heapq
import itertools
import logging
import time
from dataclasses import dataclass, field

from slack_sdk.errors import SlackApiError

log = logging.getLogger(__name__)

# How long one post may keep waiting out 429s before it fails like any refusal (the page is then
# retried by its job): Slack's Retry-After is seconds to a minute, a channel held this long is broken.
GIVE_UP_AFTER = 300.0
# An answer slower than this frees the channel for the next post (see _answered).
SLOW_CALL = 5.0


@dataclass
class _Channel:
    # Heap of (urgency, arrival, turn): a post done hands the channel to the head's future alone,
    # so a post wakes one waiter, not all of them (64 waiting on one DM channel cost 1 ms a page).
    waiting: list[tuple[int, int, asyncio.Future]] = field(default_factory=list)
    busy: bool = False


class ChannelPacer:
    def __init__(self) -> None:
        self._channels: dict[str, _Channel] = {}
        self._arrivals = itertools.count()
        self.held_seconds = 0.0  # time spent waiting out Retry-After, for /metrics and benches

    async def send(self, channel: str, urgency: int, call):
        """Run `call()` (one chat.postMessage) when it is `channel`'s turn; retry it after a 429."""
        state = self._channels.get(channel)
        if state is None:
            state = self._channels[channel] = _Channel()
        if state.busy:
            turn = asyncio.get_running_loop().create_future()
            heapq.heappush(state.waiting, (urgency, next(self._arrivals), turn))
            try:
                await turn  # cancelled while waiting: the future is cancelled too, and skipped by _hand_on
            except BaseException:
                if turn.done() and not turn.cancelled():
                    self._hand_on(channel, state)  # the turn came as this was cancelled: the next one has it
                raise
        else:
            state.busy = True
        handed_on = False

        def hand_on_once() -> None:
            nonlocal handed_on
            if not handed_on:
                handed_on = True
                self._hand_on(channel, state)

        try:
            return await self._with_retry_after(call, hand_on_once)
        finally:
            hand_on_once()

    def _hand_on(self, channel: str, state: _Channel) -> None:
        """The channel to the most urgent post still waiting (it stays busy), or free."""
        while state.waiting:
            turn = heapq.heappop(state.waiting)[2]
            if not turn.done():
                turn.set_result(None)
                return
        state.busy = False
        self._channels.pop(channel, None)

    async def _with_retry_after(self, call, hand_on_once):
        started = time.monotonic()
        while True:
            try:
                return await _answered(call(), hand_on_once)
            except SlackApiError as exc:
                wait = _retry_after(exc)
                if wait is None or time.monotonic() - started + wait > GIVE_UP_AFTER:
                    raise
                self.held_seconds += wait
                await asyncio.sleep(wait)


async def _answered(request, hand_on_once):
    """The call's answer. One that takes longer than SLOW_CALL (Slack or the network hanging, up to the
    client's timeout) hands the channel on meanwhile: a slow answer is not Slack's limit, and the
    next post (a retry of this very page, by another job) must not wait for it."""
    task = asyncio.ensure_future(request)
    try:
        done, _ = await asyncio.wait({task}, timeout=SLOW_CALL)
        if not done:
            hand_on_once()
        return await task
    finally:
        task.cancel()  # a no-op once it is done; a waiter cancelled (a lease ran out) cancels its request


def _retry_after(exc: SlackApiError) -> float | None:
    response = exc.response
    if getattr(response, "status_code", None) != 429:
        return None
    headers = getattr(response, "headers", None) or {}
    value = next((v for k, v in headers.items() if k.lower() == "retry-after"), "1")
    value = value[0] if isinstance(value, list) else value
    try:
        return max(1.0, float(value))
    except (TypeError, ValueError):
        return 1.0
