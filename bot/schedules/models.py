"""Scheduled posts: one row per schedule and slot (the post's record and the next run's baseline),
pauses, and the incidents red checks opened."""
from __future__ import annotations

from datetime import datetime

from sqlalchemy import JSON, Boolean, Integer, String, Text, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column

from bot.storage import Base, UtcDateTime


class ScheduleRun(Base):
    __tablename__ = "schedule_runs"
    __table_args__ = (UniqueConstraint("schedule", "slot", name="uq_schedule_runs_schedule_slot"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    schedule: Mapped[str] = mapped_column(String(64), index=True)
    slot: Mapped[datetime] = mapped_column(UtcDateTime)  # the cron time it stands for
    late: Mapped[bool] = mapped_column(Boolean, default=False)
    trigger: Mapped[str] = mapped_column(String(64))  # "cron", or the user of /schedule run
    state: Mapped[str] = mapped_column(String(16))  # running | posted | skipped | failed
    started_at: Mapped[datetime] = mapped_column(UtcDateTime)
    finished_at: Mapped[datetime | None] = mapped_column(UtcDateTime, nullable=True)
    items: Mapped[dict] = mapped_column(JSON, default=dict)  # item key -> {label, status, detail, service}
    headline: Mapped[str] = mapped_column(Text, default="")
    message_ref: Mapped[str | None] = mapped_column(String(128), nullable=True)


class ScheduleTick(Base):
    """Who ticked an item of a checklist post, and when: one row per run and item."""

    __tablename__ = "schedule_ticks"
    __table_args__ = (UniqueConstraint("run_id", "item", name="uq_schedule_ticks_run_item"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    run_id: Mapped[int] = mapped_column(Integer, index=True)
    item: Mapped[int] = mapped_column(Integer)
    user_id: Mapped[str] = mapped_column(String(32))
    at: Mapped[datetime] = mapped_column(UtcDateTime)


class SchedulePause(Base):
    __tablename__ = "schedule_pauses"

    schedule: Mapped[str] = mapped_column(String(64), primary_key=True)
    paused_by: Mapped[str] = mapped_column(String(32))
    paused_at: Mapped[datetime] = mapped_column(UtcDateTime)


class ScheduleIncident(Base):
    """A red item's incident: one open row per schedule and item, cleared when the item is green again."""

    __tablename__ = "schedule_incidents"

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    schedule: Mapped[str] = mapped_column(String(64), index=True)
    item: Mapped[str] = mapped_column(String(200))
    incident_id: Mapped[int] = mapped_column(Integer)
    opened_at: Mapped[datetime] = mapped_column(UtcDateTime)
    cleared_at: Mapped[datetime | None] = mapped_column(UtcDateTime, nullable=True)
