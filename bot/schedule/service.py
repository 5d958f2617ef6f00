"""The scheduled_jobs table's operations.

Time in a claim, a lease, a recovery or a job's end is the database's (bot.coordination.AgreedTime):
each takes `now`, None for the database's now() (a wall clock, which may be off on one replica) or
the time a test's ManualClock imposes (see bot.schedule.clock). Due times given to add() and
reschedule() are the caller's.

Claiming is where replicas meet: on PostgreSQL one UPDATE takes the due rows under
FOR UPDATE SKIP LOCKED, so concurrent claimers get disjoint batches without waiting on each
other; on SQLite (one writer at a time) each candidate is claimed by its own conditional
UPDATE. Either way the UPDATE also requires state = 'pending', so a row is claimed once.
"""
from __future__ import annotations

import random
from collections.abc import Callable
from datetime import datetime, timedelta

from sqlalchemy import case, func, select, update
from sqlalchemy.ext.asyncio import AsyncSession

from bot.coordination import AgreedTime
from bot.schedule.models import Job, JobState, ScheduledJob
from bot.storage import Database

JOBS = ScheduledJob.__table__
C = JOBS.c
CLAIMED = (C.id, C.kind, C.key, C.due_at, C.attempts, C.late, C.payload)
# A follow-up job to enqueue in the same transaction: (kind, key, due_at).
FollowUp = tuple[str, str, datetime]
# The follow-up for a job, given the database's time at its end (a periodic job's next slot).
FollowUpAt = Callable[[datetime], "FollowUp | None"]
# A replica handing jobs back notifies this channel, so the others claim them at once (bot.schedule.wakeups).
HANDED_BACK = "opsbot_jobs_handed_back"


def _job(row) -> Job:
    return Job(id=row.id, kind=row.kind, key=row.key, due_at=row.due_at, attempts=row.attempts, late=row.late, payload=row.payload or {})


async def add(session: AsyncSession, kind: str, key: str, due_at: datetime, payload: dict | None = None, *, priority: int = 0) -> bool:
    """Insert-or-ignore inside the caller's transaction (so a domain row and its timers commit
    together). True when this call created the row; an existing key is left as it is. Among due
    jobs, a lower `priority` is claimed first."""
    if due_at.tzinfo is None:
        raise ValueError("due_at must be timezone-aware")
    if session.bind.dialect.name == "postgresql":
        from sqlalchemy.dialects.postgresql import insert
    else:
        from sqlalchemy.dialects.sqlite import insert
    values = {"kind": kind, "key": key, "due_at": due_at, "payload": payload or {}, "state": JobState.pending, "attempts": 0, "late": False, "error": "", "priority": priority}
    result = await session.execute(insert(JOBS).values(**values).on_conflict_do_nothing(index_elements=["key"]))
    return result.rowcount == 1


async def enqueue(db: Database, kind: str, key: str, due_at: datetime, payload: dict | None = None) -> bool:
    async with db.sessions() as session, session.begin():
        return await add(session, kind, key, due_at, payload)


async def cancel(db: Database, key: str) -> bool:
    """pending -> cancelled; False when the job already started, ended, or does not exist."""
    async with db.sessions() as session, session.begin():
        result = await session.execute(update(JOBS).where(C.key == key, C.state == JobState.pending).values(state=JobState.cancelled))
        return result.rowcount == 1


async def cancel_prefix(db: Database, prefix: str) -> int:
    """Every pending job whose key starts with `prefix` -> cancelled ("incident.ping:42:" on acknowledge)."""
    async with db.sessions() as session, session.begin():
        return await cancel_prefix_in(session, prefix)


async def cancel_prefix_in(session: AsyncSession, prefix: str, *, keep: str | None = None) -> int:
    """cancel_prefix inside the caller's transaction: a domain change and its timers commit together.
    Keys starting with `keep` stay (a re-plan keeps its own jobs, so planning twice changes nothing)."""
    statement = update(JOBS).where(C.key.startswith(prefix, autoescape=True), C.state == JobState.pending)
    if keep is not None:
        statement = statement.where(~C.key.startswith(keep, autoescape=True))
    return (await session.execute(statement.values(state=JobState.cancelled))).rowcount


async def reschedule(db: Database, key: str, due_at: datetime) -> bool:
    """A pending job due at another time; False when it already started, ended, or does not exist."""
    async with db.sessions() as session, session.begin():
        result = await session.execute(update(JOBS).where(C.key == key, C.state == JobState.pending).values(due_at=due_at))
        return result.rowcount == 1


async def later_due_in(session: AsyncSession, prefix: str, after: datetime, now: datetime) -> bool:
    """Whether a job with this key prefix (not a retry of one) falls due after `after` and is due by
    `now`, and is waiting, running or done: a later page of the same plan took this one's place."""
    taken = (JobState.pending, JobState.running, JobState.done)
    found = await session.scalar(select(C.id).where(C.key.startswith(prefix, autoescape=True), C.state.in_(taken),
                                                    ~C.key.contains(":retry", autoescape=True),
                                                    C.due_at > after, C.due_at <= now).limit(1))
    return found is not None


async def get(db: Database, key: str) -> ScheduledJob | None:
    async with db.sessions() as session:
        return (await session.execute(select(ScheduledJob).where(ScheduledJob.key == key))).scalar_one_or_none()


def agreed(db: Database, now: datetime | None) -> AgreedTime:
    return AgreedTime(db.engine.dialect.name, now)


async def current_time(db: Database, now: datetime | None) -> datetime:
    """The time claims are judged by, as a datetime (for computing a periodic slot)."""
    async with db.sessions() as session:
        return await agreed(db, now).read(session)


async def claim(db: Database, replica: str, leases: dict[str, timedelta], now: datetime | None, *, grace: timedelta, limit: int) -> list[Job]:
    """Up to `limit` due pending jobs of the kinds in `leases` (kind -> lease length), now running here.

    Only kinds this replica has a handler for are claimed: an older replica in a rolling
    deploy leaves a newer kind to the replicas that know it.
    """
    at = agreed(db, now)
    due = (C.state == JobState.pending, C.due_at <= at.at(), C.kind.in_(list(leases)))
    # `error` is left alone: a recovered job's note on its lost attempt stays readable after it ran.
    claimed = {"state": JobState.running, "claimed_by": replica, "claimed_at": at.at(), "attempts": C.attempts + 1, "late": C.due_at < at.at(-grace)}
    ends = {kind: at.at(lease) for kind, lease in leases.items()}
    if db.engine.dialect.name == "postgresql":
        return await _claim_batch(db, due, claimed, ends, limit)
    return await _claim_each(db, due, claimed, ends, limit)


async def _claim_batch(db: Database, due, claimed: dict, ends: dict, limit: int) -> list[Job]:
    """PostgreSQL: one statement. SKIP LOCKED lets concurrent claimers pass over each other's rows
    instead of queueing on them; the outer state check holds even if the subquery is re-run."""
    # MATERIALIZED: the batch is picked once. Inlined as `id IN (subquery)`, the planner may run the
    # subquery again per row, and with SKIP LOCKED each run skips the rows the last one locked: more
    # than `limit` rows, not the most urgent ones.
    batch = (select(C.id).where(*due).order_by(C.priority, C.due_at, C.id).limit(limit).with_for_update(skip_locked=True)
             .cte("batch").prefix_with("MATERIALIZED"))
    lease_until = case(ends, value=C.kind)
    statement = (update(JOBS).where(C.id.in_(select(batch.c.id)), C.state == JobState.pending)
                 .values(lease_until=lease_until, **claimed))
    async with db.sessions() as session, session.begin():
        return [_job(row) for row in (await session.execute(statement.returning(*CLAIMED))).all()]


async def _claim_each(db: Database, due, claimed: dict, ends: dict, limit: int) -> list[Job]:
    """SQLite: one writer at a time, so each candidate gets its own short conditional UPDATE.

    The candidates are the `2 * limit` earliest due, tried in due order until one is lost to another
    replica, then in a random order: two replicas walking the same rows in the same order race for
    every one, and the one a step behind would lose them all for as long as the other keeps claiming."""
    while True:
        async with db.sessions() as session:
            candidates = (await session.execute(select(C.id, C.kind).where(*due).order_by(C.priority, C.due_at, C.id).limit(2 * limit))).all()
        if not candidates:
            return []
        jobs = []
        while candidates and len(jobs) < limit:
            job_id, kind = candidates.pop(0)
            statement = update(JOBS).where(C.id == job_id, C.state == JobState.pending).values(lease_until=ends[kind], **claimed)
            async with db.sessions() as session, session.begin():
                row = (await session.execute(statement.returning(*CLAIMED))).first()
            if row is not None:
                jobs.append(_job(row))
            else:  # another replica won this one, and is likely to take the next ones in order too
                random.shuffle(candidates)
        if jobs:  # empty only when another replica took every candidate: look again, more may be due
            return sorted(jobs, key=lambda job: (job.due_at, job.id))


def _held(job: Job, replica: str):
    """Still this claim's: a replica whose lease ran out and was recovered must not finish the new run."""
    return (C.id == job.id, C.state == JobState.running, C.claimed_by == replica, C.attempts == job.attempts)


async def finish(db: Database, job: Job, replica: str, now: datetime | None, *, error: str | None = None, then: FollowUpAt | None = None) -> bool:
    """running -> done (or failed with `error`), and the follow-up (`then`, given the time of the end)
    enqueued in the same transaction, so a periodic job's chain of slots cannot break between the
    two. False when the claim was lost."""
    at = agreed(db, now)
    async with db.sessions() as session, session.begin():
        values = {"state": JobState.done, "finished_at": at.at()} if error is None else {"state": JobState.failed, "finished_at": at.at(), "error": error}
        result = await session.execute(update(JOBS).where(*_held(job, replica)).values(**values))
        if result.rowcount != 1:
            return False
        follow_up = then(await at.read(session)) if then is not None else None
        if follow_up is not None:
            await add(session, *follow_up)
        return True


async def release(db: Database, job: Job, replica: str) -> bool:
    """running -> pending, on a clean shutdown: due again at once elsewhere (its due time is past, and
    the other replicas are woken on HANDED_BACK), and the interrupted run does not count against the
    job's attempts."""
    async with db.sessions() as session, session.begin():
        values = {"state": JobState.pending, "claimed_by": None, "claimed_at": None, "lease_until": None, "attempts": job.attempts - 1}
        released = (await session.execute(update(JOBS).where(*_held(job, replica)).values(**values))).rowcount == 1
        if released and db.engine.dialect.name == "postgresql":
            await session.execute(select(func.pg_notify(HANDED_BACK, "")))  # delivered at commit
        return released


async def recover(db: Database, now: datetime | None, *, max_attempts: int, then_for: Callable[[Job], FollowUpAt | None]) -> list[tuple[Job, JobState]]:
    """Running jobs whose lease ran out (their replica died or hung): pending again, or failed
    once they used `max_attempts` (a job that kills its replica every time must stop somewhere).
    What happened is written into the row's error."""
    at = agreed(db, now)
    async with db.sessions() as session:
        stale = (await session.execute(select(*CLAIMED, C.claimed_by).where(C.state == JobState.running, C.lease_until <= at.at()))).all()
    recovered = []
    for row in stale:
        job = _job(row)
        state = JobState.pending if job.attempts < max_attempts else JobState.failed
        note = f"attempt {job.attempts} on {row.claimed_by} did not finish within its lease"
        values = {"state": state, "error": note, "lease_until": None}
        if state is JobState.pending:
            values |= {"claimed_by": None, "claimed_at": None}
        else:
            values |= {"finished_at": at.at(), "error": f"{note}; gave up after {job.attempts} attempts"}
        async with db.sessions() as session, session.begin():
            where = (C.id == job.id, C.state == JobState.running, C.attempts == job.attempts, C.lease_until <= at.at())
            if (await session.execute(update(JOBS).where(*where).values(**values))).rowcount != 1:
                continue  # it finished just now, or another replica recovered it
            then = then_for(job) if state is JobState.failed else None
            follow_up = then(await at.read(session)) if then is not None else None
            if follow_up is not None:
                await add(session, *follow_up)
        recovered.append((job, state))
    return recovered


async def next_wake(db: Database, kinds: list[str], now: datetime | None) -> timedelta | None:
    """How long until there is next something to do, by the database's time: the earliest pending
    job of these kinds, or lease to recover (negative when already due). One statement (two index
    lookups), since every pass of every replica asks. A duration, not a time: the asking replica's
    clock may be off."""
    at = agreed(db, now)
    due = select(func.min(C.due_at)).where(C.state == JobState.pending, C.kind.in_(kinds)).scalar_subquery()
    lease = select(func.min(C.lease_until)).where(C.state == JobState.running).scalar_subquery()
    async with db.sessions() as session:
        first_due, first_lease, current = (await session.execute(select(due, lease, at.at()))).one()
    soonest = min((t for t in (first_due, first_lease) if t is not None), default=None)
    return None if soonest is None else soonest - current


async def active(db: Database, kind: str) -> bool:
    """A pending or running job of this kind exists (a periodic job's chain is alive)."""
    async with db.sessions() as session:
        found = await session.scalar(select(C.id).where(C.kind == kind, C.state.in_([JobState.pending, JobState.running])).limit(1))
        return found is not None


async def purge(db: Database, before: datetime) -> int:
    """Delete jobs that ended (done, failed, cancelled) before `before`; pending and running stay."""
    ended = (JobState.done, JobState.failed, JobState.cancelled)
    async with db.sessions() as session, session.begin():
        result = await session.execute(JOBS.delete().where(C.state.in_(ended), func.coalesce(C.finished_at, C.due_at) < before))
        return result.rowcount
