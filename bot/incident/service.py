"""The incident slice's database operations. Times come from the caller's clock.

A state change is one transaction: a conditional UPDATE on the expected states and its
timeline entry. `transition()` says who won: the updated row, or the row as another caller
left it, so "already resolved by Ana at 03:12" can be said in one sentence.
"""
from __future__ import annotations

from dataclasses import dataclass
from collections.abc import Awaitable, Callable
from datetime import datetime

from sqlalchemy import func, select, text, update
from sqlalchemy.ext.asyncio import AsyncSession

from bot.incident.models import OPEN_PREDICATE, FollowUp, Incident, IncidentState, TimelineEntry
from bot.storage import Database

OPEN_STATES = (IncidentState.open, IncidentState.acknowledged)
PERSON = "person"  # an incident's origin when someone opened it; automated detection names itself ("schedule")
MAX_ENTRY_TEXT = 4000


# Work that must commit with an incident change (its escalation plan): (session, incident).
Then = Callable[[AsyncSession, Incident], Awaitable[None]]


class NoSuchIncident(LookupError):
    pass


class AlreadyOpen(Exception):
    """An incident with this de-duplication key is open: nothing was written."""

    def __init__(self, incident: Incident):
        super().__init__(incident.ref)
        self.incident = incident


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
                        then: Then | None = None, dedup_key: str | None = None, origin: str = PERSON) -> Incident:
    """INC-N with its "opened" entry (which keeps its `origin`), and `then` (its escalation plan) in the same transaction.

    With a `dedup_key` that an open incident holds already, AlreadyOpen(that incident) and nothing
    written: the insert loses inside the database (ON CONFLICT on the partial unique index), so two
    replicas opening for the same reading at once open one incident and plan one set of pages.
    """
    values = {
        "title": title, "severity": severity, "state": IncidentState.open, "services": services, "description": description,
        "playbook": playbook, "opened_by": opened_by, "opened_at": now, "transport": transport, "team": team, "summary": "",
        "escalation_plan": 1, "escalation_level": 0, "updated_at": now, "headline_channel": headline_channel, "dedup_key": dedup_key,
    }
    # A second turn only when the holder was resolved between our insert and our look at it.
    for _ in range(3):
        holder = None
        async with db.sessions() as session, session.begin():
            statement = _insert(session)(Incident.__table__).values(**values)
            if dedup_key is not None:
                statement = statement.on_conflict_do_nothing(index_elements=["dedup_key"], index_where=text(OPEN_PREDICATE))
            incident_id = (await session.execute(statement.returning(Incident.id))).scalar()
            if incident_id is None:  # lost: nothing was written, and the block ends without raising
                holder = await _open_with_key(session, dedup_key)
            else:
                incident = await session.get(Incident, incident_id)
                data = {"severity": severity, "services": services, "playbook": playbook, "origin": origin}
                await _add(session, incident.id, Entry("opened", opened_by, title, data), now)
                if then is not None:
                    await then(session, incident)
        if incident_id is not None:
            return incident
        if holder is not None:  # raised out here: inside, the rollback would expire it
            raise AlreadyOpen(holder)
    raise RuntimeError(f"incident key {dedup_key!r} kept changing hands while opening")


async def _open_with_key(session: AsyncSession, dedup_key: str) -> Incident | None:
    # A fresh statement: on PostgreSQL (READ COMMITTED) it sees the row whose commit our insert waited for.
    query = select(Incident).where(Incident.dedup_key == dedup_key, Incident.state.in_(OPEN_STATES))
    return (await session.execute(query.execution_options(populate_existing=True))).scalar_one_or_none()


async def open_with_key(db: Database, dedup_key: str) -> Incident | None:
    """The open incident holding this de-duplication key, if any."""
    async with db.sessions() as session:
        return await _open_with_key(session, dedup_key)


async def open_with_key_in(session: AsyncSession, dedup_key: str) -> Incident | None:
    """open_with_key in the caller's transaction (an alert's repeat: looked up and counted in one)."""
    return await _open_with_key(session, dedup_key)


async def latest_with_key(db: Database, dedup_key: str) -> Incident | None:
    """The newest incident ever opened with this de-duplication key, open or resolved (an alert group
    firing again soon after its resolution reopens it)."""
    async with db.sessions() as session:
        query = select(Incident).where(Incident.dedup_key == dedup_key).order_by(Incident.id.desc()).limit(1)
        return (await session.execute(query)).scalar_one_or_none()


def _insert(session: AsyncSession):
    """The dialect's INSERT, which knows ON CONFLICT."""
    if session.bind.dialect.name == "postgresql":
        from sqlalchemy.dialects.postgresql import insert
    else:
        from sqlalchemy.dialects.sqlite import insert
    return insert


async def origin_in(session: AsyncSession, incident_id: int) -> str:
    """Who opened the incident, from its "opened" entry: PERSON, or the automated detection that did.
    An incident opened before origins were kept counts as a person's: its pages are never silenced."""
    data = await session.scalar(select(TimelineEntry.data).where(TimelineEntry.incident_id == incident_id, TimelineEntry.kind == "opened")
                                .order_by(TimelineEntry.id).limit(1))
    return (data or {}).get("origin") or PERSON


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
    result = await session.execute(_insert(session)(table).values(**values).on_conflict_do_nothing(index_elements=["key"]))
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
