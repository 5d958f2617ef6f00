"""What a domain registers: a job kind, its handler, its lease, and for periodic work its period."""
from __future__ import annotations

from collections.abc import Awaitable, Callable, Iterable
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone
from typing import Any

from bot.schedule.models import Job

Handler = Callable[[Any, Job], Awaitable[None]]

EPOCH = datetime(1970, 1, 1, tzinfo=timezone.utc)


@dataclass(frozen=True)
class JobType:
    kind: str  # namespaced by slice: "action.sweep", "incident.ping"
    handler: Handler
    # How long a claim holds before another replica may take the job back: longer than the
    # handler ever runs, or a slow replica and a recovering one would both run it.
    lease: timedelta = timedelta(minutes=5)
    every: timedelta | None = None  # periodic: one row per slot of this length

    def __post_init__(self) -> None:
        if self.every is not None and (self.every.total_seconds() < 1 or self.every.microseconds):
            raise ValueError(f"{self.kind}: a period is a whole number of seconds")


def slot(job_type: JobType, at: datetime) -> datetime:
    """The start of the period `at` falls in. Slots are aligned to the epoch, so every replica
    computes the same slot (and so the same key) whatever its start time."""
    every = int(job_type.every.total_seconds())
    elapsed = int((at - EPOCH).total_seconds())
    return EPOCH + timedelta(seconds=elapsed - elapsed % every)


def slot_key(job_type: JobType, due: datetime) -> str:
    return f"{job_type.kind}:{due.astimezone(timezone.utc):%Y-%m-%dT%H:%M:%SZ}"


def next_slot(job_type: JobType, now: datetime) -> tuple[str, datetime]:
    """The first slot after `now`: after a downtime the missed slots are not run one by one."""
    due = slot(job_type, now) + job_type.every
    return slot_key(job_type, due), due


class Registry:
    def __init__(self, job_types: Iterable[JobType] = ()):
        self._types: dict[str, JobType] = {}
        for job_type in job_types:
            self.add(job_type)

    def add(self, job_type: JobType) -> None:
        if job_type.kind in self._types:
            raise ValueError(f"job kind {job_type.kind} is registered twice")
        self._types[job_type.kind] = job_type

    def get(self, kind: str) -> JobType | None:
        return self._types.get(kind)

    @property
    def kinds(self) -> list[str]:
        return list(self._types)

    @property
    def periodic(self) -> list[JobType]:
        return [t for t in self._types.values() if t.every is not None]

    def leases(self) -> dict[str, timedelta]:
        """Each kind's lease length: the claim adds it to the database's time."""
        return {kind: t.lease for kind, t in self._types.items()}
