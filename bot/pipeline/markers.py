"""Posts a scheduled job sends exactly once (pages, update reminders, maintenance posts).

The job writes a keyed row (undelivered) before the message goes out and marks it delivered
after. A run that finds the row delivered sends nothing. One that finds it undelivered (an
earlier run died, or its lease ran out, between Slack's answer and the mark) looks for the
message's marker in the channel first, and sends only when it is not there.
"""
from __future__ import annotations

import logging

from bot.pipeline.messenger import ChannelAdmin

log = logging.getLogger(__name__)


def marker(word: str, key: str) -> str:
    """"(page 42.3.1.0)" for ("page", "incident.ping:42:3:1:0"): shown on the message, looked for before a retry."""
    return f"({word} " + ".".join(key.split(":")[1:]) + ")"


async def already_posted(messenger, channel: str, mark: str) -> bool:
    """Whether the message carrying `mark` is among the newest in `channel` (a user id: their direct
    messages with the bot). Where history cannot be read (the console, a channel given by name, a
    refusal), False: the message is sent again, since one twice beats one lost."""
    if not isinstance(messenger, ChannelAdmin):
        return False
    try:
        return await messenger.posted(channel, mark)
    except Exception as exc:  # Slack's refusal, the network: the look-up must not cost the message
        log.info("history of %s unreadable (%s): sending again", channel[:40], exc.__class__.__name__)
        return False
