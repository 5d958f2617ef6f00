"""check_runs: every /health (and later scheduled) run with its per-check results."""
from __future__ import annotations

from datetime import datetime

from sqlalchemy import JSON, Float, Integer, String
from sqlalchemy.orm import Mapped, mapped_column

from bot.storage import Base, UtcDateTime, utcnow


class CheckRun(Base):
    __tablename__ = "check_runs"

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    started_at: Mapped[datetime] = mapped_column(UtcDateTime, default=utcnow, index=True)
    trigger: Mapped[str] = mapped_column(String(32))  # command, schedule, action verification
    requested_by: Mapped[str] = mapped_column(String(64))
    channel: Mapped[str] = mapped_column(String(64))
    status: Mapped[str] = mapped_column(String(16))  # worst of the results
    duration_ms: Mapped[float] = mapped_column(Float)
    # [{service, check, kind, status, latency_ms, detail}, ...]
    results: Mapped[list] = mapped_column(JSON)
