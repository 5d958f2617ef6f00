"""The deployment record: opened when a deploy or rollback starts, its state moved by conditional UPDATEs.

Only this slice reads or writes `deployments`; the daily check and /deploy history ask here.
"""
from __future__ import annotations

from datetime import datetime, timedelta

from sqlalchemy import select, update

from bot.coordination import AgreedTime
from bot.deploy.models import Deployment
from bot.storage import Database

UNFINISHED = ("pending", "in_progress")

MAX_DETAIL = 2000


async def open_deployment(db: Database, *, service: str, operation: str, platform: str, from_version: str | None, to_version: str,
                          from_image: str | None, to_image: str | None, request_id: int | None, requested_by: str,
                          approved_by: list[str], channel: str, now: datetime, plan: dict | None = None,
                          held_by: str | None = None, lease: tuple[AgreedTime, timedelta] | None = None) -> int:
    """A new row in state pending; the request it runs under has at most one (a unique request_id).

    With `held_by` and `lease` (the agreed time and its length) the row is held by that process from the start."""
    row = Deployment(service=service, operation=operation, platform=platform, from_version=from_version, to_version=to_version,
                     from_image=from_image, to_image=to_image, state="pending", request_id=request_id, requested_by=requested_by[:32],
                     approved_by=approved_by, channel=channel[:64], started_at=now, detail="", plan=plan, phase="",
                     held_by=held_by[:64] if held_by else None)
    async with db.sessions() as session, session.begin():
        session.add(row)
        await session.flush()
        if lease is not None:
            await session.execute(update(Deployment).where(Deployment.id == row.id).values(lease_until=lease[0].at(lease[1])))
        return row.id


async def renew(db: Database, deployment_id: int, held_by: str, at: AgreedTime, lease: timedelta) -> bool:
    """Extend the lease of a row this process holds; False when it no longer does (finished, or recovered by another)."""
    async with db.sessions() as session, session.begin():
        result = await session.execute(
            update(Deployment).where(Deployment.id == deployment_id, Deployment.held_by == held_by[:64],
                                     Deployment.state.in_(UNFINISHED)).values(lease_until=at.at(lease))
        )
        return result.rowcount == 1


class LeaseLost(Exception):
    """The row is no longer this process's (its lease lapsed and recovery took it, or it ended): stop, change nothing more."""


async def mark(db: Database, deployment_id: int, phase: str, progress: dict | None, held_by: str) -> None:
    """How far the run got, written before the step it names starts (recovery undoes from here).

    Only while `held_by` still holds the unfinished row; LeaseLost otherwise, so the step does not start."""
    values: dict = {"phase": phase}
    if progress is not None:
        values["progress"] = progress
    async with db.sessions() as session, session.begin():
        result = await session.execute(
            update(Deployment).where(Deployment.id == deployment_id, Deployment.held_by == held_by[:64],
                                     Deployment.state.in_(UNFINISHED)).values(**values)
        )
    if result.rowcount != 1:
        raise LeaseLost(f"deployment #{deployment_id} is no longer held by {held_by}")


async def lapsed(db: Database, at: AgreedTime, limit: int = 20) -> list[int]:
    """Unfinished rows whose lease ran out: the process running them stopped."""
    async with db.sessions() as session:
        query = (select(Deployment.id).where(Deployment.state.in_(UNFINISHED), Deployment.lease_until < at.at())
                 .order_by(Deployment.id).limit(limit))
        return list((await session.execute(query)).scalars())


async def take_over(db: Database, deployment_id: int, held_by: str, at: AgreedTime, lease: timedelta) -> bool:
    """Hold a lapsed row: True for exactly one caller, across replicas."""
    async with db.sessions() as session, session.begin():
        result = await session.execute(
            update(Deployment).where(Deployment.id == deployment_id, Deployment.state.in_(UNFINISHED), Deployment.lease_until < at.at())
            .values(held_by=held_by[:64], lease_until=at.at(lease))
        )
        return result.rowcount == 1


async def move(db: Database, deployment_id: int, from_state: str, to_state: str, *, now: datetime | None = None,
               detail: str | None = None, to_image: str | None = None) -> bool:
    """from_state -> to_state, True for exactly one caller; a finished state stamps finished_at."""
    values: dict = {"state": to_state}
    if to_state in ("success", "failure", "rolled_back"):
        values["lease_until"] = None
        if now is not None:
            values["finished_at"] = now
    if detail is not None:
        values["detail"] = detail[:MAX_DETAIL]
    if to_image is not None:
        values["to_image"] = to_image
    async with db.sessions() as session, session.begin():
        result = await session.execute(
            update(Deployment).where(Deployment.id == deployment_id, Deployment.state == from_state).values(**values)
        )
        return result.rowcount == 1


async def get(db: Database, deployment_id: int) -> Deployment | None:
    async with db.sessions() as session:
        return await session.get(Deployment, deployment_id)


async def history(db: Database, service: str, limit: int = 20) -> list[Deployment]:
    """The service's deploys and rollbacks, newest first."""
    async with db.sessions() as session:
        query = select(Deployment).where(Deployment.service == service).order_by(Deployment.id.desc()).limit(limit)
        return list((await session.execute(query)).scalars())


async def since(db: Database, moment: datetime, limit: int = 50) -> list[Deployment]:
    """Every service's deploys and rollbacks started at or after `moment`, oldest first."""
    async with db.sessions() as session:
        query = select(Deployment).where(Deployment.started_at >= moment).order_by(Deployment.id).limit(limit)
        return list((await session.execute(query)).scalars())


async def current(db: Database, service: str) -> Deployment | None:
    """The newest deployment that left the service on its version: a success."""
    async with db.sessions() as session:
        query = (select(Deployment).where(Deployment.service == service, Deployment.state == "success")
                 .order_by(Deployment.id.desc()).limit(1))
        return (await session.execute(query)).scalar_one_or_none()


async def image_of(db: Database, service: str, version: str) -> str | None:
    """The kept image a service ran as `version`: what a successful deploy put on, or what one replaced."""
    async with db.sessions() as session:
        put = (select(Deployment.to_image).where(Deployment.service == service, Deployment.to_version == version,
                                                 Deployment.state == "success", Deployment.to_image.is_not(None))
               .order_by(Deployment.id.desc()).limit(1))
        found = (await session.execute(put)).scalar_one_or_none()
        if found:
            return found
        replaced = (select(Deployment.from_image).where(Deployment.service == service, Deployment.from_version == version,
                                                        Deployment.from_image.is_not(None))
                    .order_by(Deployment.id.desc()).limit(1))
        return (await session.execute(replaced)).scalar_one_or_none()


async def versions_ran(db: Database, service: str, limit: int) -> tuple[list[tuple[str, str]], bool]:
    """(version, image) the service ran, newest first, from its newest `limit` rows: what each successful
    deployment put on, then what each deployment replaced; and whether older rows were left unread."""
    async with db.sessions() as session:
        query = (select(Deployment.state, Deployment.to_version, Deployment.to_image, Deployment.from_version, Deployment.from_image)
                 .where(Deployment.service == service).order_by(Deployment.id.desc()).limit(limit))
        rows = (await session.execute(query)).all()
    ran = []
    for state, to_version, to_image, from_version, from_image in rows:
        if state == "success" and to_image:
            ran.append((to_version, to_image))
        if from_image:
            ran.append((from_version or f"image {from_image[7:19]}", from_image))
    return ran, len(rows) == limit
