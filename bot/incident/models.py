"""Incidents, their timelines and follow-ups: the incident slice's own tables.

open -> acknowledged -> resolved, and resolved -> open again (reopen). Every transition is
a conditional UPDATE on the expected state, stamped with the time and the user, so two
people pressing Resolve at once give one resolution.

The timeline is the incident's memory, in the bot's database: each entry has its own time
(UTC) and kind. An entry that must exist once (an escalation ping, a pinned message, a
ticked playbook step) carries a unique `key`, so a retry, a second replica or a restarted
bot adds it once.
"""
from __future__ import annotations

import enum
from datetime import datetime

from sqlalchemy import JSON, Enum, ForeignKey, Index, Integer, String, Text, text
from sqlalchemy.orm import Mapped, mapped_column

from bot.storage import Base, UtcDateTime


class IncidentState(str, enum.Enum):
    open = "open"
    acknowledged = "acknowledged"
    resolved = "resolved"


# A VARCHAR holding the value, not a native PostgreSQL ENUM: a new state is no DDL.
STATE_TYPE = Enum(IncidentState, native_enum=False, length=16, values_callable=lambda states: [s.value for s in states])

# An incident is open until resolved. Written out (not bound parameters) and identical in the
# index and in ON CONFLICT ... WHERE: PostgreSQL and SQLite match a partial index by its predicate.
OPEN_PREDICATE = "state IN ('open', 'acknowledged')"

MAX_TITLE = 150  # a Slack header block holds 150 characters
MAX_TEXT = 3000  # one section of text: an update, a note, a summary


class Incident(Base):
    __tablename__ = "incidents"
    __table_args__ = (
        Index("ix_incidents_state", "state"),
        # One open incident per de-duplication key: the database decides between racing openers.
        Index("uq_incidents_dedup_key_open", "dedup_key", unique=True,
              postgresql_where=text(OPEN_PREDICATE), sqlite_where=text(OPEN_PREDICATE)),
    )

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)  # INC-<id>
    title: Mapped[str] = mapped_column(String(MAX_TITLE))
    severity: Mapped[str] = mapped_column(String(20))
    state: Mapped[IncidentState] = mapped_column(STATE_TYPE)
    services: Mapped[list] = mapped_column(JSON, default=list)
    description: Mapped[str] = mapped_column(Text, default="")
    playbook: Mapped[str | None] = mapped_column(String(64), nullable=True)
    opened_by: Mapped[str] = mapped_column(String(32))
    opened_at: Mapped[datetime] = mapped_column(UtcDateTime)
    transport: Mapped[str] = mapped_column(String(16))
    team: Mapped[str] = mapped_column(String(32), default="")
    acknowledged_by: Mapped[str | None] = mapped_column(String(32), nullable=True)
    acknowledged_at: Mapped[datetime | None] = mapped_column(UtcDateTime, nullable=True)
    resolved_by: Mapped[str | None] = mapped_column(String(32), nullable=True)
    resolved_at: Mapped[datetime | None] = mapped_column(UtcDateTime, nullable=True)
    summary: Mapped[str] = mapped_column(Text, default="")
    commander: Mapped[str | None] = mapped_column(String(32), nullable=True)
    comms: Mapped[str | None] = mapped_column(String(32), nullable=True)
    # The incident's own channel, when incidents.create_channels is on: commands there imply it.
    channel_id: Mapped[str | None] = mapped_column(String(32), nullable=True, unique=True)
    headline_channel: Mapped[str | None] = mapped_column(String(32), nullable=True)
    headline_ref: Mapped[str | None] = mapped_column(String(128), nullable=True)  # Messenger ref, for updates
    # Escalation plan: bumped whenever it is re-planned (severity change, escalate, reopen), so
    # pings of an older plan find themselves stale and do nothing.
    escalation_plan: Mapped[int] = mapped_column(Integer, default=0)
    escalation_level: Mapped[int] = mapped_column(Integer, default=0)
    updated_at: Mapped[datetime] = mapped_column(UtcDateTime)
    postmortem: Mapped[str | None] = mapped_column(Text, nullable=True)
    postmortem_at: Mapped[datetime | None] = mapped_column(UtcDateTime, nullable=True)
    # What this incident is about, for openers that repeat themselves (a schedule's reading, an alert):
    # while it is open, opening with the same key adds to its timeline instead (migration 0011).
    dedup_key: Mapped[str | None] = mapped_column(String(255), nullable=True)

    @property
    def ref(self) -> str:
        return f"INC-{self.id}"


class TimelineEntry(Base):
    __tablename__ = "incident_timeline"
    __table_args__ = (Index("ix_incident_timeline_incident_id_at", "incident_id", "at"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    incident_id: Mapped[int] = mapped_column(ForeignKey("incidents.id"))
    at: Mapped[datetime] = mapped_column(UtcDateTime)
    # opened, acknowledged, severity, role, update, note, ping, reminder, escalated, check,
    # action, pin, step, resolved, reopened, followup, postmortem, repeated (an opening with an open dedup key)
    kind: Mapped[str] = mapped_column(String(32))
    user_id: Mapped[str] = mapped_column(String(32), default="")
    text: Mapped[str] = mapped_column(Text, default="")
    data: Mapped[dict] = mapped_column(JSON, default=dict)
    key: Mapped[str | None] = mapped_column(String(255), nullable=True, unique=True)


class FollowUp(Base):
    """An action item for the postmortem (/incident followup)."""

    __tablename__ = "incident_followups"

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    incident_id: Mapped[int] = mapped_column(ForeignKey("incidents.id"), index=True)
    text: Mapped[str] = mapped_column(Text)
    owner: Mapped[str | None] = mapped_column(String(32), nullable=True)
    created_by: Mapped[str] = mapped_column(String(32))
    created_at: Mapped[datetime] = mapped_column(UtcDateTime)
