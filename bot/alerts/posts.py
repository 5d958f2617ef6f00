"""The heartbeat's posts, sent once as pages and maintenance posts are (bot.pipeline.markers): an `alert_posts`
row keyed like the job, written before the message goes out and marked delivered after.

Times are the caller's (the bot's injected clock).
"""
from __future__ import annotations

import enum
from datetime import datetime

from sqlalchemy import select, update

from bot.alerts.models import AlertPost, insert_for
from bot.storage import Database

P = AlertPost


class Claim(enum.Enum):
    first = "first"  # nothing was written: send
    unsure = "unsure"  # an earlier run wrote it and did not mark it: look in the channel, then send if missing
    delivered = "delivered"  # sent already: nothing to do


async def claim(db: Database, key: str, now: datetime) -> Claim:
    async with db.sessions() as session, session.begin():
        statement = insert_for(session)(P).values(key=key, written_at=now).on_conflict_do_nothing(index_elements=["key"])
        if (await session.execute(statement)).rowcount == 1:
            return Claim.first
        delivered_at = await session.scalar(select(P.delivered_at).where(P.key == key))
        return Claim.unsure if delivered_at is None else Claim.delivered


async def mark_delivered(db: Database, key: str, now: datetime) -> None:
    async with db.sessions() as session, session.begin():
        await session.execute(update(P).where(P.key == key, P.delivered_at.is_(None)).values(delivered_at=now))
