"""The incident slice's database operations. Times come from the caller's clock.

A state change is one transaction: a conditional UPDATE on the expected states and its
timeline entry. `transition()` says who won: the updated row, or the row as another caller
left it, so "already resolved by Ana at 03:12" can be said in one sentence.
"""
from __future__ import annotations

from dataclasses import dataclass
from collections.abc import Awaitable, Callable
from datetime import datetime

from sqlalchemy import func, select, update
from sqlalchemy.ext.asyncio import AsyncSession

from bot.incident.models import FollowUp, Incident, IncidentState, TimelineEntry
from bot.storage import Database

OPEN_STATES = (IncidentState.open, IncidentState.acknowledged)
MAX_ENTRY_TEXT = 4000


# Work that must commit with an incident change (its escalation plan): (session, incident).
Then = Callable[[AsyncSession, Incident], Awaitable[None]]


class NoSuchIncident(LookupError):
    pass


@dataclass(frozen=True)
class Transition:
    won: bool
    incident: Incident  # after the change when won, otherwise as it stands


@dataclass(frozen=True)
class Entry:
    """A timeline entry to write with a change."""

    kind: str
    user_id: str = ""
    text: str = ""
    data: dict | None = None
    key: str | None = None


async def open_incident(db: Database, *, title: str, severity: str, services: list[str], description: str, playbook: str | None,
                        opened_by: str, transport: str, team: str, now: datetime, headline_channel: str | None = None,
                        then: Then | None = None) -> Incident:
    """INC-N with its "opened" entry, and `then` (its escalation plan) in the same transaction."""
    incident = Incident(
        title=title, severity=severity, state=IncidentState.open, services=services, description=description, playbook=playbook,
        opened_by=opened_by, opened_at=now, transport=transport, team=team, summary="", escalation_plan=1,
        escalation_level=0, updated_at=now, headline_channel=headline_channel,
    )
    async with db.sessions() as session, session.begin():
        session.add(incident)
        await session.flush()
        data = {"severity": severity, "services": services, "playbook": playbook}
        await _add(session, incident.id, Entry("opened", opened_by, title, data), now)
        if then is not None:
            await then(session, incident)
    return incident


async def get(db: Database, incident_id: int) -> Incident:
    async with db.sessions() as session:
        incident = await session.get(Incident, incident_id)
    if incident is None:
        raise NoSuchIncident(incident_id)
    return incident


async def by_channel(db: Database, channel_id: str) -> Incident | None:
    """The incident whose own channel this is (create_channels), if any."""
    async with db.sessions() as session:
        return (await session.execute(select(Incident).where(Incident.channel_id == channel_id))).scalar_one_or_none()


async def listing(db: Database, *, include_resolved: bool, limit: int = 20) -> list[Incident]:
    query = select(Incident).order_by(Incident.id.desc()).limit(limit)
    if not include_resolved:
        query = query.where(Incident.state.in_(OPEN_STATES))
    async with db.sessions() as session:
        return list((await session.execute(query)).scalars())


async def transition(db: Database, incident_id: int, *, states: tuple[IncidentState, ...], values: dict, entry: Entry,
                     now: datetime, extra: dict | None = None, then: Then | None = None) -> Transition:
    """Apply `values` when the incident is in one of `states`, with its timeline entry, in one transaction.

    `extra` holds column expressions (escalation_plan + 1) applied with the values; `then` runs in
    the same transaction with the changed incident when the change was won (its escalation plan).
    """
    async with db.sessions() as session, session.begin():
        statement = (
            update(Incident)
            .where(Incident.id == incident_id, Incident.state.in_(states))
            .values(**values, **(extra or {}), updated_at=now)
            .returning(Incident.id)
        )
        won = (await session.execute(statement)).first() is not None
        if won:
            await _add(session, incident_id, entry, now)
            if then is not None:
                await then(session, await session.get(Incident, incident_id, populate_existing=True))
    incident = await get(db, incident_id)
    return Transition(won, incident)


def next_plan() -> dict:
    """Re-plan the escalation: pings of the older plan find themselves stale and do nothing."""
    return {"escalation_plan": Incident.escalation_plan + 1}


async def add_entry(db: Database, incident_id: int, entry: Entry, now: datetime) -> bool:
    """False when an entry with this key exists already (a retried event, a second replica)."""
    async with db.sessions() as session, session.begin():
        return await _add(session, incident_id, entry, now)


async def _add(session: AsyncSession, incident_id: int, entry: Entry, at: datetime) -> bool:
    values = {"incident_id": incident_id, "at": at, "kind": entry.kind, "user_id": entry.user_id,
              "text": entry.text[:MAX_ENTRY_TEXT], "data": entry.data or {}, "key": entry.key}
    table = TimelineEntry.__table__
    if entry.key is None:
        await session.execute(table.insert().values(**values))
        return True
    if session.bind.dialect.name == "postgresql":
        from sqlalchemy.dialects.postgresql import insert
    else:
        from sqlalchemy.dialects.sqlite import insert
    result = await session.execute(insert(table).values(**values).on_conflict_do_nothing(index_elements=["key"]))
    return result.rowcount == 1


async def entry_by_key(db: Database, key: str) -> TimelineEntry | None:
    async with db.sessions() as session:
        return (await session.execute(select(TimelineEntry).where(TimelineEntry.key == key))).scalar_one_or_none()


async def update_entry_data(db: Database, key: str, data: dict) -> None:
    async with db.sessions() as session, session.begin():
        await session.execute(update(TimelineEntry).where(TimelineEntry.key == key).values(data=data))


async def latest(db: Database, incident_id: int, kinds: tuple[str, ...]) -> datetime | None:
    """When the newest entry of these kinds was written (the last update, for reminders)."""
    async with db.sessions() as session:
        query = select(func.max(TimelineEntry.at)).where(TimelineEntry.incident_id == incident_id, TimelineEntry.kind.in_(kinds))
        return await session.scalar(query)


async def recent(db: Database, incident_id: int, limit: int) -> tuple[list[TimelineEntry], int]:
    """The newest `limit` entries, oldest first, and how many there are in all (/incident show)."""
    async with db.sessions() as session:
        total = await session.scalar(select(func.count()).select_from(TimelineEntry).where(TimelineEntry.incident_id == incident_id))
        query = (select(TimelineEntry).where(TimelineEntry.incident_id == incident_id)
                 .order_by(TimelineEntry.at.desc(), TimelineEntry.id.desc()).limit(limit))
        return list(reversed(list((await session.execute(query)).scalars()))), total or 0


async def entries_of(db: Database, incident_id: int, kind: str) -> list[TimelineEntry]:
    async with db.sessions() as session:
        query = select(TimelineEntry).where(TimelineEntry.incident_id == incident_id, TimelineEntry.kind == kind).order_by(TimelineEntry.id)
        return list((await session.execute(query)).scalars())


async def timeline(db: Database, incident_id: int) -> list[TimelineEntry]:
    async with db.sessions() as session:
        query = select(TimelineEntry).where(TimelineEntry.incident_id == incident_id).order_by(TimelineEntry.at, TimelineEntry.id)
        return list((await session.execute(query)).scalars())


async def set_fields(db: Database, incident_id: int, now: datetime, **values) -> None:
    """Bookkeeping that is no state change: where the headline is, the incident's channel."""
    async with db.sessions() as session, session.begin():
        await session.execute(update(Incident).where(Incident.id == incident_id).values(**values, updated_at=now))


async def add_followup(db: Database, incident_id: int, *, text: str, owner: str | None, by: str, now: datetime) -> FollowUp:
    followup = FollowUp(incident_id=incident_id, text=text, owner=owner, created_by=by, created_at=now)
    async with db.sessions() as session, session.begin():
        session.add(followup)
        await session.flush()
        await _add(session, incident_id, Entry("followup", by, text, {"owner": owner}), now)
    return followup


async def followups(db: Database, incident_id: int) -> list[FollowUp]:
    async with db.sessions() as session:
        query = select(FollowUp).where(FollowUp.incident_id == incident_id).order_by(FollowUp.id)
        return list((await session.execute(query)).scalars())
