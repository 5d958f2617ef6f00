"""A window's posts, sent once as pages are (bot.pipeline.markers): a `maintenance_posts` row keyed
like the job, written before the message goes out and marked delivered after.

Times are the caller's (the bot's injected clock).
"""
from __future__ import annotations

import enum
from datetime import datetime

from sqlalchemy import select, update

from bot.maintenance.models import MaintenancePost
from bot.storage import Database

P = MaintenancePost


class Claim(enum.Enum):
    first = "first"  # nothing was written: send
    unsure = "unsure"  # an earlier run wrote it and did not mark it: look in the channel, then send if missing
    delivered = "delivered"  # sent already: nothing to do


async def claim(db: Database, key: str, window_id: int, now: datetime) -> Claim:
    async with db.sessions() as session, session.begin():
        if session.get_bind().dialect.name == "postgresql":
            from sqlalchemy.dialects.postgresql import insert
        else:
            from sqlalchemy.dialects.sqlite import insert
        statement = insert(P).values(key=key, window_id=window_id, written_at=now).on_conflict_do_nothing(index_elements=["key"])
        if (await session.execute(statement)).rowcount == 1:
            return Claim.first
        delivered_at = await session.scalar(select(P.delivered_at).where(P.key == key))
        return Claim.unsure if delivered_at is None else Claim.delivered


async def mark_delivered(db: Database, key: str, now: datetime) -> None:
    async with db.sessions() as session, session.begin():
        await session.execute(update(P).where(P.key == key, P.delivered_at.is_(None)).values(delivered_at=now))


async def written(db: Database, key: str) -> bool:
    """Whether the post was sent, or may have been (written, not marked)."""
    async with db.sessions() as session:
        return await session.scalar(select(P.id).where(P.key == key)) is not None
