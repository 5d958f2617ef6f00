"""Maintenance windows: stored, ended, and asked about by other slices.

The public questions (window_for, active, silenced, notes_for) answer with `Window`, a plain
dataclass, never an ORM row. Times are the caller's (the bot's injected clock), never the database's.

A window's announcement, start and end are scheduled jobs (scheduled.py), enqueued in the
transaction that stores the window, keyed by its id, so each is posted once. A window lasts at
most maintenance.max_duration, and so does each chain of windows on one service that overlap or
are less than CHAIN_GAP (an hour) apart, the gaps counted (create refuses with TooLong); who may open one is scope.py's question.
"""
from __future__ import annotations

import logging
from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlalchemy import false, or_, select, text, update
from sqlalchemy.ext.asyncio import AsyncSession

from bot.maintenance.models import MaintenanceWindow
from bot.schedule import service as jobs
from bot.storage import Database

log = logging.getLogger(__name__)

ANNOUNCE = "maintenance.announce"
START = "maintenance.start"
END = "maintenance.end"
W = MaintenanceWindow


@dataclass(frozen=True)
class Window:
    id: int
    services: tuple[str, ...]  # empty: every service
    reason: str
    starts_at: datetime
    ends_at: datetime
    created_by: str
    created_at: datetime
    ended_at: datetime | None = None
    ended_by: str | None = None

    @property
    def until(self) -> datetime:
        """When it ends (or ended): its planned end, or earlier when someone ended it."""
        return min(self.ends_at, self.ended_at) if self.ended_at else self.ends_at

    @property
    def cancelled(self) -> bool:
        return self.ended_at is not None and self.ended_at <= self.starts_at

    def covers(self, service: str) -> bool:
        return not self.services or service in self.services

    def active_at(self, at: datetime) -> bool:
        return self.starts_at <= at < self.until


def key(kind: str, window_id: int) -> str:
    return f"{kind}:{window_id}"


def _window(row: MaintenanceWindow) -> Window:
    return Window(id=row.id, services=tuple(row.services or ()), reason=row.reason, starts_at=row.starts_at, ends_at=row.ends_at,
                  created_by=row.created_by, created_at=row.created_at, ended_at=row.ended_at, ended_by=row.ended_by)


def _active_at(at: datetime):
    return W.starts_at <= at, W.ends_at > at, or_(W.ended_at.is_(None), W.ended_at > at)


async def active_in(session: AsyncSession, at: datetime) -> list[Window]:
    """The windows active at `at`, in the caller's session; those ending last first."""
    rows = await session.scalars(select(W).where(*_active_at(at)).order_by(W.ends_at.desc(), W.id))
    return [_window(row) for row in rows]


async def active(db: Database, at: datetime) -> list[Window]:
    """The windows active at `at`, those ending last first."""
    async with db.sessions() as session:
        return await active_in(session, at)


async def upcoming(db: Database, at: datetime) -> list[Window]:
    """Windows still to start after `at` (not cancelled), soonest first."""
    async with db.sessions() as session:
        rows = await session.scalars(select(W).where(W.starts_at > at, W.ended_at.is_(None)).order_by(W.starts_at, W.id))
        return [_window(row) for row in rows]


async def get(db: Database, window_id: int) -> Window | None:
    async with db.sessions() as session:
        row = await session.get(W, window_id)
        return _window(row) if row is not None else None


def covering(windows: list[Window], service: str) -> Window | None:
    """Of these windows, the one covering `service` that ends last."""
    return max((w for w in windows if w.covers(service)), key=lambda w: w.until, default=None)


async def window_for(db: Database, service: str, at: datetime) -> Window | None:
    """The window `service` is in at `at` (the one ending last), or None."""
    return covering(await active(db, at), service)


async def covering_in(session: AsyncSession, services: list[str], at: datetime) -> list[Window]:
    """The windows that together cover every one of `services` at `at`, in the caller's session;
    empty when `services` is empty or any of them is in no window."""
    if not services:
        return []
    windows = await active_in(session, at)
    found = [covering(windows, service) for service in services]
    if any(w is None for w in found):
        return []
    return list({w.id: w for w in found}.values())


async def silenced(bot, services: list[str], at: datetime | None = None) -> list[Window]:
    """For the schedules slice (and any other): the windows every one of `services` is in now
    (bot.clock), truthy when all of them are, so a red reading opens no incident. Empty (falsy)
    when `services` is empty or any of them is outside a window."""
    async with bot.db.sessions() as session:
        return await covering_in(session, list(services), at or bot.clock.now())


async def notes_for(bot, services: list[str]) -> list[str]:
    """One sentence per service in a window now, for a guarded action's request message.
    A note must never cost the message: when the windows cannot be read, there is none."""
    from bot.maintenance.views import note

    if not services:
        return []
    now = bot.clock.now()
    try:
        windows = await active(bot.db, now)
    except Exception as exc:  # the database: the request message still goes out
        log.warning("maintenance windows unreadable (%s): request message without them", exc.__class__.__name__)
        return []
    found = [(service, covering(windows, service)) for service in dict.fromkeys(services)]
    return [note(service, window, bot.config, now) for service, window in found if window is not None]


@dataclass(frozen=True)
class Chain:
    """Windows on one service less than CHAIN_GAP apart, a new one among them: how long they hold it in a row."""
    service: str  # "" when the windows are on every service and no service is configured
    starts_at: datetime
    ends_at: datetime
    windows: tuple[int, ...]  # the stored windows in it, besides the new one

    @property
    def length(self) -> timedelta:
        return self.ends_at - self.starts_at


class TooLong(ValueError):
    """A new window would make a chain longer than maintenance.max_duration: the chain."""

    def __init__(self, chain: Chain):
        super().__init__(chain)
        self.chain = chain


# Windows on one service less than this apart are one chain, the gap counted in its length: a
# minute of detection between two 4-hour windows must not make eight hours of silence pass.
CHAIN_GAP = timedelta(hours=1)


def chain_through(windows: list[Window], service: str, starts_at: datetime, ends_at: datetime) -> Chain:
    """The chain a new window from `starts_at` to `ends_at` on `service` makes with `windows` (not cancelled)."""
    lo, hi, used = starts_at, ends_at, set()
    grew = True
    while grew:
        grew = False
        for window in windows:
            if window.id not in used and window.covers(service) and window.starts_at < hi + CHAIN_GAP and window.until > lo - CHAIN_GAP:
                lo, hi, grew = min(lo, window.starts_at), max(hi, window.until), True
                used.add(window.id)
    return Chain(service, lo, hi, tuple(sorted(used)))


async def _longest_chain(session: AsyncSession, services: list[str], every: list[str], starts_at: datetime, ends_at: datetime,
                         longest: timedelta) -> Chain:
    """The longest chain the new window makes on any service it covers (`every` configured one when it names none).
    Windows further than `longest` away can only join through one nearer, which already makes it too long."""
    reach = longest + CHAIN_GAP
    rows = await session.scalars(select(W).where(W.ends_at >= starts_at - reach, W.starts_at <= ends_at + reach))
    nearby = [w for w in map(_window, rows) if not w.cancelled]
    chains = [chain_through(nearby, service, starts_at, ends_at) for service in (services or every or [""])]
    return max(chains, key=lambda chain: chain.length)


async def _one_at_a_time(session: AsyncSession) -> None:
    """Each new window is checked against the others (its chain): two created at once must not both pass on
    what the other has not yet written, so creating takes the table's write lock until commit."""
    if session.get_bind().dialect.name == "postgresql":
        await session.execute(text("LOCK TABLE maintenance_windows IN SHARE ROW EXCLUSIVE MODE"))
    else:  # SQLite: any write takes the database's one write lock, held until commit
        await session.execute(update(W).where(false()).values(reason=W.reason))


async def create(bot, services: list[str], reason: str, starts_at: datetime, ends_at: datetime, created_by: str) -> Window:
    """Store a window and its posts (announcement when it is far enough ahead, start, end), in one transaction.
    TooLong, with nothing stored, when it would hold a service longer than maintenance.max_duration in a row."""
    now = bot.clock.now()
    announce_before = timedelta(seconds=bot.config.maintenance.announce_before)
    longest = timedelta(seconds=bot.config.maintenance.max_duration)
    async with bot.db.sessions() as session, session.begin():
        await _one_at_a_time(session)
        chain = await _longest_chain(session, list(services), list(bot.config.services), starts_at, ends_at, longest)
        if chain.length > longest:
            raise TooLong(chain)
        row = W(services=list(services), reason=reason, starts_at=starts_at, ends_at=ends_at, created_by=created_by, created_at=now)
        session.add(row)
        await session.flush()
        payload = {"window": row.id}
        if starts_at > now:  # scheduled ahead: announced announce_before ahead, at once on shorter notice
            await jobs.add(session, ANNOUNCE, key(ANNOUNCE, row.id), max(now, starts_at - announce_before), payload)
        await jobs.add(session, START, key(START, row.id), starts_at, payload)
        await jobs.add(session, END, key(END, row.id), ends_at, payload)
        window = _window(row)
    bot.scheduler.wake()
    return window


async def end(bot, window: Window, by: str) -> Window | None:
    """End an active window now, or cancel an upcoming one; None when it was already over (or
    someone else ended it first: the conditional UPDATE lets one win). Its end is posted now."""
    now = bot.clock.now()
    async with bot.db.sessions() as session, session.begin():
        done = await session.execute(update(W).where(W.id == window.id, W.ended_at.is_(None), W.ends_at > now)
                                     .values(ended_at=now, ended_by=by))
        if done.rowcount != 1:
            return None
    if now < window.starts_at:  # the handlers check the row too: these only spare them the work
        await jobs.cancel(bot.db, key(ANNOUNCE, window.id))
        await jobs.cancel(bot.db, key(START, window.id))
    await jobs.reschedule(bot.db, key(END, window.id), now)
    bot.scheduler.wake()
    return await get(bot.db, window.id)
