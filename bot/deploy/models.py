"""A deployment, as GitHub's Deployments API has it: a row whose state moves
pending -> in_progress -> success, or -> failure -> rolled_back (a failed verification put the old version back).

While it runs, the process holds a lease on the row (`lease_until`, renewed every few seconds by
`held_by`) and writes how far it got (`phase`: prepare, change, switching, verified) with what it
needs to undo it (`plan`, `progress`), so recovery (bot/deploy/recovery.py) can finish a deploy
whose process died: a lease that ran out means nobody is running it.

`from_image` is what ran before: for a container the old image's id (sha256:...), so a
rollback needs no registry; for Kubernetes the container's image reference.
"""
from __future__ import annotations

from datetime import datetime

from sqlalchemy import JSON, Index, Integer, String, Text, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column

from bot.storage import Base, UtcDateTime

STATES = ("pending", "in_progress", "success", "failure", "rolled_back")
PHASES = ("", "prepare", "change", "switching", "verified")  # in order; "" before the first step


class Deployment(Base):
    __tablename__ = "deployments"
    __table_args__ = (
        UniqueConstraint("request_id", name="uq_deployments_request_id"),
        Index("ix_deployments_service_id", "service", "id"),
        Index("ix_deployments_started_at", "started_at"),
        Index("ix_deployments_state_lease", "state", "lease_until"),
    )

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    service: Mapped[str] = mapped_column(String(64))
    operation: Mapped[str] = mapped_column(String(16))  # deploy | rollback
    platform: Mapped[str] = mapped_column(String(16))  # container | kubernetes
    from_version: Mapped[str | None] = mapped_column(String(128), nullable=True)
    to_version: Mapped[str] = mapped_column(String(128))
    from_image: Mapped[str | None] = mapped_column(String(255), nullable=True)
    to_image: Mapped[str | None] = mapped_column(String(255), nullable=True)
    state: Mapped[str] = mapped_column(String(16))
    request_id: Mapped[int | None] = mapped_column(Integer, nullable=True)  # the guarded request it ran under: once
    requested_by: Mapped[str] = mapped_column(String(32))
    approved_by: Mapped[list] = mapped_column(JSON)
    channel: Mapped[str] = mapped_column(String(64))
    started_at: Mapped[datetime] = mapped_column(UtcDateTime)
    finished_at: Mapped[datetime | None] = mapped_column(UtcDateTime, nullable=True)
    detail: Mapped[str] = mapped_column(Text)  # one line: what happened, or why not
    plan: Mapped[dict | None] = mapped_column(JSON, nullable=True)  # the approved plan it runs (Plan.to_json())
    phase: Mapped[str] = mapped_column(String(16), default="", server_default="")
    progress: Mapped[dict | None] = mapped_column(JSON, nullable=True)  # what undoing needs: a workload's images before
    lease_until: Mapped[datetime | None] = mapped_column(UtcDateTime, nullable=True)
    held_by: Mapped[str | None] = mapped_column(String(64), nullable=True)
