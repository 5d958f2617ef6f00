"""audit_log: append-only record of every command; no code path updates or deletes a row."""
from __future__ import annotations

from datetime import datetime

from sqlalchemy import Integer, String, Text
from sqlalchemy.orm import Mapped, mapped_column

from bot.storage import Base, UtcDateTime, utcnow


class AuditEntry(Base):
    __tablename__ = "audit_log"

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    at: Mapped[datetime] = mapped_column(UtcDateTime, default=utcnow, index=True)
    user_id: Mapped[str] = mapped_column(String(64))
    command: Mapped[str] = mapped_column(String(64))
    target: Mapped[str] = mapped_column(String(64), default="", server_default="", index=True)  # service acted on
    arguments: Mapped[str] = mapped_column(Text)  # redacted argument text
    channel: Mapped[str] = mapped_column(String(64))
    transport: Mapped[str] = mapped_column(String(16))
    outcome: Mapped[str] = mapped_column(String(32))
    detail: Mapped[str] = mapped_column(Text, default="")
