"""Checks and guarded actions run from an incident's channel go on its timeline."""
from __future__ import annotations

from bot.activity import Activity
from bot.incident import service


def timeline_listener(bot):
    async def record(activity: Activity) -> None:
        incident = await service.by_channel(bot.db, activity.channel)
        if incident is not None:
            entry = service.Entry(activity.kind, activity.user_id, activity.text, activity.data)
            await service.add_entry(bot.db, incident.id, entry, bot.clock.now())

    return record
