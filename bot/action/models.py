"""Action requests as a state machine in the database, with their approvals and the per-service locks.

pending -> approved -> running -> succeeded | failed, or pending -> denied | withdrawn | expired.
Every transition is a conditional UPDATE (WHERE state = <expected>), so exactly one
caller wins it whatever the concurrency: double clicks, two approvers, two replicas.
"""
from __future__ import annotations

from datetime import datetime

from sqlalchemy import JSON, ForeignKey, Integer, String, Text, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column

from bot.storage import Base, UtcDateTime, utcnow

class ActionRequest(Base):
    __tablename__ = "action_requests"

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    action: Mapped[str] = mapped_column(String(64))
    service: Mapped[str] = mapped_column(String(64), index=True)
    plan: Mapped[dict] = mapped_column(JSON)
    plan_hash: Mapped[str] = mapped_column(String(64))
    requested_by: Mapped[str] = mapped_column(String(64))
    channel: Mapped[str] = mapped_column(String(64))
    team: Mapped[str] = mapped_column(String(32), default="")  # Slack workspace; "" on the console
    transport: Mapped[str] = mapped_column(String(16))
    state: Mapped[str] = mapped_column(String(16), index=True)
    approvals_needed: Mapped[int] = mapped_column(Integer)
    created_at: Mapped[datetime] = mapped_column(UtcDateTime, default=utcnow)
    expires_at: Mapped[datetime] = mapped_column(UtcDateTime)
    decided_by: Mapped[str | None] = mapped_column(String(64), nullable=True)
    decided_at: Mapped[datetime | None] = mapped_column(UtcDateTime, nullable=True)
    started_at: Mapped[datetime | None] = mapped_column(UtcDateTime, nullable=True)
    finished_at: Mapped[datetime | None] = mapped_column(UtcDateTime, nullable=True)
    result: Mapped[str] = mapped_column(Text, default="")
    message_ref: Mapped[str | None] = mapped_column(String(128), nullable=True)  # where the plan was posted


class ActionApproval(Base):
    __tablename__ = "action_approvals"
    __table_args__ = (UniqueConstraint("request_id", "approver", name="uq_action_approvals_request_approver"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    request_id: Mapped[int] = mapped_column(ForeignKey("action_requests.id"), index=True)
    approver: Mapped[str] = mapped_column(String(64))
    at: Mapped[datetime] = mapped_column(UtcDateTime, default=utcnow)


class ActionLock(Base):
    """One action per service at a time: the row exists while a request holds the service."""

    __tablename__ = "action_locks"

    key: Mapped[str] = mapped_column(String(128), primary_key=True)
    request_id: Mapped[int] = mapped_column(ForeignKey("action_requests.id"))
    holder: Mapped[str] = mapped_column(String(64))
    acquired_at: Mapped[datetime] = mapped_column(UtcDateTime, default=utcnow)
