"""The `backups` table: one row per dump the bot made (and verified, or failed to verify).

A file (or object) retention deletes keeps its row, with `deleted_at` set: the history of what existed
(and who made it) stays; /backup list shows only the dumps still stored.
"""
from __future__ import annotations

from datetime import datetime

from sqlalchemy import BigInteger, Boolean, Float, Index, Integer, String, Text
from sqlalchemy.orm import Mapped, mapped_column

from bot.storage import Base, UtcDateTime


class Backup(Base):
    __tablename__ = "backups"
    __table_args__ = (Index("ix_backups_database_created_at", "database", "created_at"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    database: Mapped[str] = mapped_column(String(64))  # the name under databases: in app.yaml
    # The .dump's path relative to backups.directory, which every replica mounts (service.path_of);
    # rows made before migration 0012 outside that directory keep their absolute path.
    file: Mapped[str] = mapped_column(String(1024))
    # "local": `file` is under backups.directory; "s3": `file` is the object's key in backups.storage's bucket.
    storage: Mapped[str] = mapped_column(String(16), default="local", server_default="local")
    size: Mapped[int] = mapped_column(BigInteger, default=0)  # bytes
    duration: Mapped[float] = mapped_column(Float, default=0.0)  # seconds the dump took
    sha256: Mapped[str] = mapped_column(String(64), default="")
    verified: Mapped[bool] = mapped_column(Boolean, default=False)
    verify_error: Mapped[str | None] = mapped_column(Text, nullable=True)
    label: Mapped[str | None] = mapped_column(String(200), nullable=True)
    made_by: Mapped[str] = mapped_column(String(64))  # a user id, or "schedule:<name>"
    created_at: Mapped[datetime] = mapped_column(UtcDateTime)
    verified_at: Mapped[datetime | None] = mapped_column(UtcDateTime, nullable=True)
    deleted_at: Mapped[datetime | None] = mapped_column(UtcDateTime, nullable=True)  # retention removed the file

    @property
    def file_name(self) -> str:
        return self.file.rsplit("/", 1)[-1]
