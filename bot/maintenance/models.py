"""The `maintenance_windows` table: one row per window, announced, started and ended by scheduled jobs.

`ended_at` is set by /maintenance end: before `starts_at` it cancels the window, after it ends
the window early. A window is active while starts_at <= now < min(ends_at, ended_at).
"""
from __future__ import annotations

from datetime import datetime

from sqlalchemy import JSON, ForeignKey, Index, Integer, String, Text
from sqlalchemy.orm import Mapped, mapped_column

from bot.storage import Base, UtcDateTime


class MaintenanceWindow(Base):
    __tablename__ = "maintenance_windows"
    # Every question is "which windows are still to end after t": few rows, whatever the history.
    __table_args__ = (Index("ix_maintenance_windows_ends_at", "ends_at"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    services: Mapped[list] = mapped_column(JSON, default=list)  # empty: every service
    reason: Mapped[str] = mapped_column(Text)  # redacted, at most 200 characters as typed
    starts_at: Mapped[datetime] = mapped_column(UtcDateTime)
    ends_at: Mapped[datetime] = mapped_column(UtcDateTime)
    created_by: Mapped[str] = mapped_column(String(64))
    created_at: Mapped[datetime] = mapped_column(UtcDateTime)
    ended_at: Mapped[datetime | None] = mapped_column(UtcDateTime, nullable=True)
    ended_by: Mapped[str | None] = mapped_column(String(64), nullable=True)


class MaintenancePost(Base):
    """A window's post (announcement, start, end), keyed like its job (`maintenance.announce:3`): written
    before the message goes out, marked delivered after, so a retried job sends it once (scheduled.py)."""

    __tablename__ = "maintenance_posts"

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    key: Mapped[str] = mapped_column(String(255), unique=True)
    window_id: Mapped[int] = mapped_column(ForeignKey("maintenance_windows.id"))
    written_at: Mapped[datetime] = mapped_column(UtcDateTime)
    delivered_at: Mapped[datetime | None] = mapped_column(UtcDateTime, nullable=True)
