"""Running a job's dry run and finding the one a real run rests on."""
from __future__ import annotations

import asyncio
from datetime import datetime, timedelta

from sqlalchemy import select, update

from bot.action.kinds.docker_exec import output_tail
from bot.docker_engine import DockerUnavailable
from bot.job.models import JobDryRun
from bot.storage import Database


class JobUnavailable(Exception):
    """The job's container cannot run it now: one sentence."""


async def run_dry(bot, name: str, job, user: str) -> JobDryRun:
    """Run the dry-run form in the job's container and keep its (redacted) output, whatever its exit code."""
    container = bot.config.services[job.service].container
    try:
        result = await asyncio.wait_for(bot.checks.docker.exec(container, list(job.dry_run)), timeout=job.timeout)
    except (TimeoutError, asyncio.TimeoutError):
        raise JobUnavailable(f"The dry run of {name} did not finish within {job.timeout:g} s.") from None
    except DockerUnavailable as exc:
        raise JobUnavailable(f"The dry run of {name} could not start: {exc}.") from None
    # Redacting up to 256 KiB of output is CPU work: off the event loop, so acks and pages keep moving.
    output = await asyncio.to_thread(output_tail, result.output)
    return await record_dry_run(bot.db, name, user, bot.clock.now(), result.exit_code, output)


async def record_dry_run(db: Database, name: str, user: str, at: datetime, exit_code: int, output: str) -> JobDryRun:
    """Keep a dry run that ran elsewhere (a deploy's migration, in a one-off container of the new image); `output` redacted already."""
    row = JobDryRun(job=name, user_id=user, at=at, exit_code=exit_code, output=output)
    async with db.sessions() as session, session.begin():
        session.add(row)
    return row


async def latest_dry_run(db: Database, job: str, user: str, since: datetime | None = None) -> JobDryRun | None:
    """`user`'s newest dry run of `job` (at or after `since`, when given)."""
    query = select(JobDryRun).where(JobDryRun.job == job, JobDryRun.user_id == user)
    if since is not None:
        query = query.where(JobDryRun.at >= since)
    async with db.sessions() as session:
        return await session.scalar(query.order_by(JobDryRun.id.desc()).limit(1))


async def use(db: Database, dry_run_id: int, now: datetime) -> bool:
    """Mark the dry run as spent by a real run; True for exactly one caller, so one dry run allows one run."""
    async with db.sessions() as session, session.begin():
        claimed = await session.execute(
            update(JobDryRun).where(JobDryRun.id == dry_run_id, JobDryRun.used_at.is_(None)).values(used_at=now)
        )
        return claimed.rowcount == 1


def valid_since(now: datetime, job) -> datetime:
    return now - timedelta(seconds=job.dry_run_valid_for)
