"""Dry runs of runbook jobs: the real run of a job needs one by the same user, recently, and shows its output."""
from __future__ import annotations

from datetime import datetime

from sqlalchemy import Index, Integer, String, Text
from sqlalchemy.orm import Mapped, mapped_column

from bot.storage import Base, UtcDateTime


class JobDryRun(Base):
    __tablename__ = "job_dry_runs"
    __table_args__ = (Index("ix_job_dry_runs_job_user_at", "job", "user_id", "at"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    job: Mapped[str] = mapped_column(String(64))
    user_id: Mapped[str] = mapped_column(String(32))
    at: Mapped[datetime] = mapped_column(UtcDateTime)
    exit_code: Mapped[int] = mapped_column(Integer)
    output: Mapped[str] = mapped_column(Text)  # redacted, the last lines only
    used_at: Mapped[datetime | None] = mapped_column(UtcDateTime, nullable=True)  # a real run rested on it: once
