"""State transitions of action requests.

Creating a request inserts it together with the lock rows of every service it touches
(the primary keys make a second request fail). Every later transition is one transaction
built on a conditional UPDATE (WHERE state = <expected>): it takes the row lock
(PostgreSQL) or the write lock (SQLite), so concurrent callers queue up and exactly one
of them sees the expected state.
"""
from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlalchemy import and_, delete, func, or_, select, update
from sqlalchemy.exc import IntegrityError

from bot.action.models import ActionApproval, ActionLock, ActionRequest
from bot.storage import Database, utcnow


class NotPending(Exception):
    """The request is no longer pending (decided or expired); the caller re-reads it to say why."""


class AlreadyApproved(Exception):
    pass


@dataclass(frozen=True)
class LockHolder:
    service: str  # the locked target's name: a service, database or cache
    request_id: int
    holder: str
    since: datetime
    action: str


class Locked(Exception):
    def __init__(self, holder: LockHolder | None):
        self.holder = holder  # None when the lock was released between the attempt and the lookup


async def open_request(
    db: Database,
    *,
    action: str,
    service: str,
    plan: dict,
    plan_hash: str,
    requester: str,
    channel: str,
    transport: str,
    approvals_needed: int,
    team: str = "",
    expires_in: float,
    locks: list[str],
) -> ActionRequest:
    """Insert the request and take the `locks` (Target.key: "service:backend") in one transaction, or raise Locked.

    Overdue requests' locks are not taken over here: the flow expires them first, with an
    audit row and an edited message.
    """
    now = utcnow()
    request = ActionRequest(
        action=action,
        service=service,
        plan=plan,
        plan_hash=plan_hash,
        requested_by=requester,
        channel=channel,
        team=team,
        transport=transport,
        state="pending" if approvals_needed else "approved",
        approvals_needed=approvals_needed,
        created_at=now,
        expires_at=now + timedelta(seconds=expires_in),
        result="",
    )
    try:
        async with db.sessions() as session, session.begin():
            session.add(request)
            await session.flush()
            for key in dict.fromkeys(locks):
                session.add(ActionLock(key=key, request_id=request.id, holder=requester, acquired_at=now))
            await session.flush()
    except IntegrityError:
        holders = [h for h in [await _lock_holder(db, key) for key in locks] if h is not None]
        raise Locked(holders[0] if holders else None) from None
    return request


async def holder_of(db: Database, key: str) -> LockHolder | None:
    """Who holds the lock `key` ("database:app") now, or None: for commands that must not act under a request."""
    return await _lock_holder(db, key)


async def _lock_holder(db: Database, key: str) -> LockHolder | None:
    async with db.sessions() as session:
        row = (
            await session.execute(
                select(ActionLock, ActionRequest.action)
                .join(ActionRequest, ActionRequest.id == ActionLock.request_id)
                .where(ActionLock.key == key)
            )
        ).first()
    if row is None:
        return None
    lock, action = row
    return LockHolder(key.split(":", 1)[-1], lock.request_id, lock.holder, lock.acquired_at, action)


OPEN_STATES = ("pending", "approved", "running")  # a request that may still act on what its plan names


async def open_plan_values(db: Database, kind: str, param: str) -> set:
    """The values of parameter `param` in the plans of open requests (pending, approved or running) of
    action kind `kind`: e.g. the backups pg_restore requests name, which retention must keep."""
    async with db.sessions() as session:
        plans = (await session.execute(select(ActionRequest.plan).where(ActionRequest.state.in_(OPEN_STATES)))).scalars()
        return {
            plan["params"][param]
            for plan in plans
            if isinstance(plan, dict) and plan.get("kind") == kind and (plan.get("params") or {}).get(param) is not None
        }


async def get(db: Database, request_id: int) -> ActionRequest | None:
    async with db.sessions() as session:
        return await session.get(ActionRequest, request_id)


async def approvers(db: Database, request_id: int) -> list[ActionApproval]:
    async with db.sessions() as session:
        rows = await session.execute(select(ActionApproval).where(ActionApproval.request_id == request_id).order_by(ActionApproval.id))
        return list(rows.scalars())


async def approve(db: Database, request_id: int, user: str) -> ActionRequest:
    """Record one approval; the request becomes approved when it has enough. Raises NotPending, AlreadyApproved."""
    async with db.sessions() as session:
        async with session.begin():
            claimed = await session.execute(
                update(ActionRequest)
                .where(ActionRequest.id == request_id, ActionRequest.state == "pending", ActionRequest.expires_at > utcnow())
                .values(state="pending")
            )
            if claimed.rowcount != 1:
                raise NotPending()
            existing = await session.scalar(
                select(func.count()).select_from(ActionApproval).where(ActionApproval.request_id == request_id, ActionApproval.approver == user)
            )
            if existing:
                raise AlreadyApproved()
            session.add(ActionApproval(request_id=request_id, approver=user, at=utcnow()))
            await session.flush()
            count = await session.scalar(select(func.count()).select_from(ActionApproval).where(ActionApproval.request_id == request_id))
            request = await session.get(ActionRequest, request_id, populate_existing=True)
            if count >= request.approvals_needed:
                request.state = "approved"
                request.decided_by = user
                request.decided_at = utcnow()
        return request


async def deny(db: Database, request_id: int, user: str) -> ActionRequest:
    """pending -> denied by `user`, locks released. Raises NotPending."""
    return await _end_pending(db, request_id, user, "denied")


async def withdraw(db: Database, request_id: int, user: str) -> ActionRequest:
    """pending -> withdrawn by `user` (its requester or an approver), locks released at once. Raises NotPending."""
    return await _end_pending(db, request_id, user, "withdrawn")


async def _end_pending(db: Database, request_id: int, user: str, state: str) -> ActionRequest:
    async with db.sessions() as session:
        async with session.begin():
            claimed = await session.execute(
                update(ActionRequest)
                .where(ActionRequest.id == request_id, ActionRequest.state == "pending")
                .values(state=state, decided_by=user, decided_at=utcnow(), finished_at=utcnow())
            )
            if claimed.rowcount != 1:
                raise NotPending()
            request = await session.get(ActionRequest, request_id, populate_existing=True)
            await session.execute(delete(ActionLock).where(ActionLock.request_id == request_id))
        return request


async def expire(db: Database, request_id: int) -> ActionRequest | None:
    """pending -> expired once its time is up; None when it was not (or no longer) pending and overdue."""
    async with db.sessions() as session:
        async with session.begin():
            claimed = await session.execute(
                update(ActionRequest)
                .where(ActionRequest.id == request_id, ActionRequest.state == "pending", ActionRequest.expires_at <= utcnow())
                .values(state="expired", finished_at=utcnow())
            )
            if claimed.rowcount != 1:
                return None
            await session.execute(delete(ActionLock).where(ActionLock.request_id == request_id))
            return await session.get(ActionRequest, request_id, populate_existing=True)


async def overdue(db: Database) -> list[int]:
    async with db.sessions() as session:
        rows = await session.execute(select(ActionRequest.id).where(ActionRequest.state == "pending", ActionRequest.expires_at <= utcnow()))
        return list(rows.scalars())


async def start(db: Database, request_id: int) -> bool:
    """approved -> running. True for exactly one caller."""
    async with db.sessions() as session, session.begin():
        claimed = await session.execute(
            update(ActionRequest).where(ActionRequest.id == request_id, ActionRequest.state == "approved").values(state="running", started_at=utcnow())
        )
        return claimed.rowcount == 1


async def stale(db: Database, *, approved_for: float, running_for: float) -> tuple[list[int], list[int]]:
    """Requests left behind by a process that stopped: approved but never started, running for too long."""
    now = utcnow()
    async with db.sessions() as session:
        cutoff = now - timedelta(seconds=approved_for)
        # An approvals: 0 request is created approved and never gets a decided_at: its age is created_at.
        approved = await session.execute(
            select(ActionRequest.id).where(
                ActionRequest.state == "approved",
                or_(ActionRequest.decided_at <= cutoff, and_(ActionRequest.decided_at.is_(None), ActionRequest.created_at <= cutoff)),
            )
        )
        running = await session.execute(
            select(ActionRequest.id).where(ActionRequest.state == "running", ActionRequest.started_at <= now - timedelta(seconds=running_for))
        )
        return list(approved.scalars()), list(running.scalars())


async def finish(db: Database, request_id: int, succeeded: bool, result: str) -> bool:
    """running -> succeeded | failed, locks released; False when it was no longer running (recovered meanwhile)."""
    async with db.sessions() as session, session.begin():
        finished = await session.execute(
            update(ActionRequest)
            .where(ActionRequest.id == request_id, ActionRequest.state == "running")
            .values(state="succeeded" if succeeded else "failed", finished_at=utcnow(), result=result)
        )
        await session.execute(delete(ActionLock).where(ActionLock.request_id == request_id))
        return finished.rowcount == 1


async def fail_unstarted(db: Database, request_id: int, reason: str, *, from_state: str = "approved") -> bool:
    """A request that will not run or finish after all (approver lost the role, plan changed, plan not
    posted, process stopped): failed, locks released. False when it was not in `from_state`."""
    async with db.sessions() as session, session.begin():
        claimed = await session.execute(
            update(ActionRequest)
            .where(ActionRequest.id == request_id, ActionRequest.state == from_state)
            .values(state="failed", finished_at=utcnow(), result=reason)
        )
        if claimed.rowcount != 1:
            return False
        await session.execute(delete(ActionLock).where(ActionLock.request_id == request_id))
        return True


async def set_message_ref(db: Database, request_id: int, ref: str) -> None:
    async with db.sessions() as session, session.begin():
        await session.execute(update(ActionRequest).where(ActionRequest.id == request_id).values(message_ref=ref))
