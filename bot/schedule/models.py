"""scheduled_jobs: every piece of work promised for later is a row with a due time.

pending -> running -> done | failed, or pending -> cancelled. A running row whose lease ran
out (its replica died) goes back to pending, or to failed after too many attempts.
Every transition is a conditional UPDATE on the expected state, so one replica wins it.
"""
from __future__ import annotations

import enum
from dataclasses import dataclass, field
from datetime import datetime

from sqlalchemy import JSON, Boolean, Enum, Index, Integer, String, Text
from sqlalchemy.orm import Mapped, mapped_column

from bot.storage import Base, UtcDateTime


class JobState(str, enum.Enum):
    pending = "pending"
    running = "running"
    done = "done"
    failed = "failed"
    cancelled = "cancelled"


# Stored as the value in a VARCHAR, not a native PostgreSQL ENUM: adding a state later is no DDL.
STATE_TYPE = Enum(JobState, native_enum=False, length=16, values_callable=lambda states: [s.value for s in states])


class ScheduledJob(Base):
    __tablename__ = "scheduled_jobs"
    # The claim reads pending rows in due order; recovery reads running rows by lease.
    __table_args__ = (
        Index("ix_scheduled_jobs_state_due_at", "state", "due_at"),
        Index("ix_scheduled_jobs_state_lease_until", "state", "lease_until"),
    )

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    kind: Mapped[str] = mapped_column(String(64))
    # The job's identity ("action.sweep:2026-11-24T05:30:00Z"): unique, so enqueueing twice is one row.
    key: Mapped[str] = mapped_column(String(255), unique=True)
    due_at: Mapped[datetime] = mapped_column(UtcDateTime)
    payload: Mapped[dict] = mapped_column(JSON, default=dict)
    state: Mapped[JobState] = mapped_column(STATE_TYPE, default=JobState.pending)
    claimed_by: Mapped[str | None] = mapped_column(String(64), nullable=True)
    claimed_at: Mapped[datetime | None] = mapped_column(UtcDateTime, nullable=True)
    lease_until: Mapped[datetime | None] = mapped_column(UtcDateTime, nullable=True)
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    finished_at: Mapped[datetime | None] = mapped_column(UtcDateTime, nullable=True)
    late: Mapped[bool] = mapped_column(Boolean, default=False)  # ran more than the grace after due_at
    # Among due jobs the lowest is claimed first: a page carries its severity's rank (P0 is 0), so in a
    # backlog a P0's page is not claimed behind a P3's. Everything else is 0.
    priority: Mapped[int] = mapped_column(Integer, default=0, server_default="0")
    error: Mapped[str] = mapped_column(Text, default="")


@dataclass(frozen=True)
class Job:
    """What a handler is given: a claimed row, detached from the database."""

    id: int
    kind: str
    key: str
    due_at: datetime
    attempts: int
    late: bool
    payload: dict = field(default_factory=dict)
