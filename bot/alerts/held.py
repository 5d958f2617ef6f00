"""Alerts a maintenance window held back: recorded instead of opening an incident, listed when it ends.

An alert is automated detection: while its route's service is in a window it opens nothing and
pages nobody (the maintenance slice's rule for automated origins). Each (window, key) is one row,
upserted by every notification, so the end post says what fired and how often, once per alert.
"""
from __future__ import annotations

from datetime import datetime

from sqlalchemy import func, select

from bot.alerts.models import HeldAlert, insert_for
from bot.storage import Database

H = HeldAlert
MAX_LISTED = 20  # the end post's list; the rest is counted


async def record_in(session, window_id: int, *, integration: str, dedup_key: str, service: str, title: str, status: str,
                    now: datetime) -> None:
    """In the caller's transaction (the intake's, which found the window)."""
    statement = insert_for(session)(H).values(window_id=window_id, integration=integration, dedup_key=dedup_key, service=service,
                                           title=title[:255], status=status, first_seen=now, last_seen=now, notifications=1)
    statement = statement.on_conflict_do_update(
        index_elements=["window_id", "dedup_key"],
        set_={"status": statement.excluded.status, "last_seen": statement.excluded.last_seen, "notifications": H.notifications + 1},
    )
    await session.execute(statement)


async def during(db: Database, window_id: int) -> tuple[list[HeldAlert], int]:
    """The first MAX_LISTED alerts held by the window, and how many there were in all."""
    async with db.sessions() as session:
        rows = list(await session.scalars(select(H).where(H.window_id == window_id).order_by(H.first_seen, H.id).limit(MAX_LISTED + 1)))
        total = len(rows)
        if total > MAX_LISTED:
            total = await session.scalar(select(func.count()).select_from(H).where(H.window_id == window_id))
        return rows[:MAX_LISTED], total


async def end_note(bot, window) -> list[str]:
    """For the window's end post (maintenance.scheduled.run_end): one line per alert it held, or nothing."""
    rows, total = await during(bot.db, window.id)
    if not rows:
        return []
    lines = [f"Alerts held during the window ({total}), no incident opened:"]
    for row in rows:
        times = f"{row.notifications} notifications" if row.notifications != 1 else "1 notification"
        lines.append(f"- {row.service}: {row.title} ({row.status}, {times}, via {row.integration})")
    if total > len(rows):
        lines.append(f"- and {total - len(rows)} more")
    return lines
