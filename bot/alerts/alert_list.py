"""Each alert incident's alert list (alert_instances): upserted per notification, shown on its headline (headline.py).

An upsert per alert (ON CONFLICT on incident and fingerprint), so two replicas and Alertmanager's
retries each count, and none adds a second row. An alert once resolved stays resolved for that
start time: a late retry of an older firing notification cannot bring it back; the same alert firing
again (a new startsAt) can.
"""
from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import case, func, select

from bot.alerts import redraw
from bot.alerts.models import AlertInstance, insert_for
from bot.alerts.notification import Alert
from bot.storage import Database

A = AlertInstance
MAX_TITLE = 255


_UPSERTS: dict[str, object] = {}  # by dialect: built once, not on every notification (statement building is most of its CPU)


def _upsert(session):
    dialect = session.bind.dialect.name
    if dialect not in _UPSERTS:
        _UPSERTS[dialect] = _built_upsert(session)
    return _UPSERTS[dialect]


def _built_upsert(session):
    statement = insert_for(session)(A.__table__)  # Core, not the ORM's bulk machinery: this runs on every notification
    excluded = statement.excluded
    stays_resolved = (A.status == "resolved") & (A.starts_at == excluded.starts_at)
    later = func.max if session.bind.dialect.name == "sqlite" else func.greatest
    return statement.on_conflict_do_update(
        index_elements=["incident_id", "fingerprint"],
        set_={
            "status": case((stays_resolved, A.status), else_=excluded.status),
            "starts_at": excluded.starts_at,
            "ends_at": case((stays_resolved, A.ends_at), else_=excluded.ends_at),
            "last_seen": later(A.last_seen, excluded.last_seen),
            "firing_count": A.firing_count + excluded.firing_count,
        },
    )


@dataclass(frozen=True)
class Changes:
    """What a notification changed on the list: alerts that started firing (new to it, firing again after
    resolving, or with a new start) and alerts that stopped. Read before the upsert in its transaction: two
    replicas may both see a change; the timeline entries they write for it are keyed, so it is said once."""

    started: tuple[Alert, ...]
    stopped: tuple[Alert, ...]


async def record(db: Database, incident_id: int, integration: str, alerts: tuple[Alert, ...], now: datetime) -> Changes:
    """Upsert the alerts on the incident's list, and book the headline's redraw."""
    async with db.sessions() as session:
        async with session.begin():
            changes = await record_in(session, incident_id, integration, alerts, now)
        redraw.committed(session)
        return changes


async def record_in(session, incident_id: int, integration: str, alerts: tuple[Alert, ...], now: datetime) -> Changes:
    """record, in the caller's transaction: a repeat is looked up, counted and its redraw booked in one."""
    latest = list({alert.fingerprint: alert for alert in alerts}.values())  # one row may not be updated twice by one statement
    query = select(A.fingerprint, A.status, A.starts_at).where(A.incident_id == incident_id, A.fingerprint.in_([a.fingerprint for a in latest]))
    known = {fingerprint: (status, starts_at) for fingerprint, status, starts_at in (await session.execute(query)).all()}
    rows = [{"incident_id": incident_id, "integration": integration, "fingerprint": alert.fingerprint,
             "title": alert.title[:MAX_TITLE], "labels": alert.labels, "status": alert.status, "starts_at": alert.starts_at,
             "ends_at": alert.ends_at, "source_url": alert.source_url, "first_seen": now, "last_seen": now,
             "firing_count": 1 if alert.status == "firing" else 0} for alert in latest]
    # One statement, its parameters many times (SQLAlchemy batches them into multi-row INSERTs): compiled once, cached.
    await session.execute(_upsert(session), rows)
    await redraw.book(session, incident_id, now)
    started = tuple(a for a in latest if a.status == "firing" and known.get(a.fingerprint) != ("firing", a.starts_at))
    stopped = tuple(a for a in latest if a.status == "resolved" and (known.get(a.fingerprint) or ("",))[0] == "firing")
    return Changes(started, stopped)


async def of_incident(db: Database, incident_id: int) -> list[AlertInstance]:
    async with db.sessions() as session:
        rows = await session.scalars(select(A).where(A.incident_id == incident_id).order_by(A.first_seen, A.id))
        return list(rows)


async def listed(db: Database, incident_id: int, limit: int) -> tuple[list[AlertInstance], int, int]:
    """The first `limit` alerts of the incident's list (firing first, then as they came), how many in all, how many fire."""
    async with db.sessions() as session:
        query = select(A).where(A.incident_id == incident_id).order_by(case((A.status == "firing", 0), else_=1), A.first_seen, A.id)
        rows = list(await session.scalars(query.limit(limit)))
        if len(rows) < limit:
            return rows, len(rows), sum(1 for row in rows if row.status == "firing")
        counted = select(func.count(), func.count().filter(A.status == "firing")).where(A.incident_id == incident_id)
        total, firing_now = (await session.execute(counted)).one()
        return rows, total, firing_now


async def firing(db: Database, incident_id: int) -> int:
    """How many of the incident's alerts fire now."""
    async with db.sessions() as session:
        return await session.scalar(select(func.count()).select_from(A).where(A.incident_id == incident_id, A.status == "firing")) or 0
