"""The alerts slice's tables: each incident's alert list, the alerts a maintenance window held back, the
Alertmanager silences /incident silence made, and the heartbeat's state.

alert_instances: one row per (incident, alert fingerprint), upserted by every notification that
carries the alert, so a repeat counts (firing_count, last_seen) instead of opening anything.
alerts_held: one row per (window, de-duplication key) for alerts that arrived while their service was
in a maintenance window; the window's end post lists them.
"""
from __future__ import annotations

from datetime import datetime

from sqlalchemy import JSON, Integer, String, Text, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column

from bot.storage import Base, UtcDateTime


class AlertInstance(Base):
    __tablename__ = "alert_instances"
    __table_args__ = (UniqueConstraint("incident_id", "fingerprint", name="uq_alert_instances_incident_fingerprint"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    # The incident slice's INC number, not a foreign key: this slice never reads or locks that table.
    incident_id: Mapped[int] = mapped_column(Integer, index=True)
    integration: Mapped[str] = mapped_column(String(64))
    fingerprint: Mapped[str] = mapped_column(String(64))
    title: Mapped[str] = mapped_column(String(255))
    labels: Mapped[dict] = mapped_column(JSON, default=dict)
    status: Mapped[str] = mapped_column(String(16))  # firing, resolved
    starts_at: Mapped[datetime | None] = mapped_column(UtcDateTime, nullable=True)
    ends_at: Mapped[datetime | None] = mapped_column(UtcDateTime, nullable=True)
    source_url: Mapped[str] = mapped_column(Text, default="")
    first_seen: Mapped[datetime] = mapped_column(UtcDateTime)
    last_seen: Mapped[datetime] = mapped_column(UtcDateTime)
    firing_count: Mapped[int] = mapped_column(Integer, default=0)  # notifications that said it fires


class HeldAlert(Base):
    __tablename__ = "alerts_held"
    __table_args__ = (UniqueConstraint("window_id", "dedup_key", name="uq_alerts_held_window_key"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    window_id: Mapped[int] = mapped_column(Integer, index=True)  # the maintenance slice's window number
    integration: Mapped[str] = mapped_column(String(64))
    dedup_key: Mapped[str] = mapped_column(String(255))
    service: Mapped[str] = mapped_column(String(64))
    title: Mapped[str] = mapped_column(String(255))
    status: Mapped[str] = mapped_column(String(16))  # the last notification's
    first_seen: Mapped[datetime] = mapped_column(UtcDateTime)
    last_seen: Mapped[datetime] = mapped_column(UtcDateTime)
    notifications: Mapped[int] = mapped_column(Integer, default=1)


class AlertSilence(Base):
    """A silence /incident silence made in Alertmanager, expired there when its incident resolves."""

    __tablename__ = "alert_silences"

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    incident_id: Mapped[int] = mapped_column(Integer, index=True)
    integration: Mapped[str] = mapped_column(String(64))
    silence_id: Mapped[str] = mapped_column(String(64))  # Alertmanager's
    matchers: Mapped[list] = mapped_column(JSON, default=list)
    created_by: Mapped[str] = mapped_column(String(32))
    created_at: Mapped[datetime] = mapped_column(UtcDateTime)
    ends_at: Mapped[datetime] = mapped_column(UtcDateTime)
    expired_at: Mapped[datetime | None] = mapped_column(UtcDateTime, nullable=True)


class AlertHeartbeat(Base):
    """alerts.heartbeat's state: when the heartbeat alert last arrived, and whether the pipeline is taken for up or down.

    Each change of state is a conditional UPDATE (one replica wins it) and bumps `changes`, which keys the
    scheduled post that tells the channel, so each change is said once."""

    __tablename__ = "alert_heartbeats"

    integration: Mapped[str] = mapped_column(String(64), primary_key=True)
    last_seen: Mapped[datetime] = mapped_column(UtcDateTime)
    state: Mapped[str] = mapped_column(String(8))  # up, down
    changed_at: Mapped[datetime] = mapped_column(UtcDateTime)
    changes: Mapped[int] = mapped_column(Integer, default=0)


class AlertPost(Base):
    """A heartbeat post ("the alerting pipeline looks down"), keyed like its job: written before the message goes
    out, marked delivered after, so a job retried after a crash between the two sends it once (posts.py)."""

    __tablename__ = "alert_posts"

    key: Mapped[str] = mapped_column(String(255), primary_key=True)
    written_at: Mapped[datetime] = mapped_column(UtcDateTime)
    delivered_at: Mapped[datetime | None] = mapped_column(UtcDateTime, nullable=True)


def insert_for(session):
    """The dialect's INSERT, which knows ON CONFLICT (PostgreSQL's or SQLite's)."""
    if session.bind.dialect.name == "postgresql":
        from sqlalchemy.dialects.postgresql import insert
    else:
        from sqlalchemy.dialects.sqlite import insert
    return insert
