"""Checks and guarded actions run from an incident's channel go on its timeline.

The feed calls again until this returns (bot.activity), so the entry is keyed by the activity's
id: a write that reached the database but whose answer was lost is not written twice.
"""
from __future__ import annotations

import logging

from bot.activity import Activity
from bot.incident import service
from bot.storage import connection_trouble

log = logging.getLogger(__name__)


def entry_key(activity: Activity) -> str:
    return f"activity:{activity.id}"


def timeline_listener(bot):
    async def record(activity: Activity) -> None:
        try:
            incident = await service.by_channel(bot.db, activity.channel)
            if incident is not None:
                entry = service.Entry(activity.kind, activity.user_id, activity.text, activity.data, key=entry_key(activity))
                await service.add_entry(bot.db, incident.id, entry, activity.at or bot.clock.now())
        except Exception as exc:
            if connection_trouble(exc):
                raise  # the feed tries again
            log.error("a %s in %s could not go on the timeline and is dropped: %s", activity.kind, activity.channel,
                      exc.__class__.__name__)

    return record
