"""incidents, incident_timeline, incident_followups, oncall_overrides

Revision ID: 0006
Revises: 0005
Create Date: 2026-11-24
"""
import sqlalchemy as sa
from alembic import op

from bot.storage import UtcDateTime

revision = "0006"
down_revision = "0005"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "incidents",
        sa.Column("id", sa.Integer(), autoincrement=True, nullable=False),
        sa.Column("title", sa.String(150), nullable=False),
        sa.Column("severity", sa.String(20), nullable=False),
        # bot.incident.models.IncidentState values in a VARCHAR: a new state is no DDL.
        sa.Column("state", sa.String(16), nullable=False),
        sa.Column("services", sa.JSON(), nullable=False),
        sa.Column("description", sa.Text(), nullable=False),
        sa.Column("playbook", sa.String(64), nullable=True),
        sa.Column("opened_by", sa.String(32), nullable=False),
        sa.Column("opened_at", UtcDateTime(), nullable=False),
        sa.Column("transport", sa.String(16), nullable=False),
        sa.Column("team", sa.String(32), nullable=False),
        sa.Column("acknowledged_by", sa.String(32), nullable=True),
        sa.Column("acknowledged_at", UtcDateTime(), nullable=True),
        sa.Column("resolved_by", sa.String(32), nullable=True),
        sa.Column("resolved_at", UtcDateTime(), nullable=True),
        sa.Column("summary", sa.Text(), nullable=False),
        sa.Column("commander", sa.String(32), nullable=True),
        sa.Column("comms", sa.String(32), nullable=True),
        sa.Column("channel_id", sa.String(32), nullable=True),
        sa.Column("headline_channel", sa.String(32), nullable=True),
        sa.Column("headline_ref", sa.String(128), nullable=True),
        sa.Column("escalation_plan", sa.Integer(), nullable=False),
        sa.Column("escalation_level", sa.Integer(), nullable=False),
        sa.Column("updated_at", UtcDateTime(), nullable=False),
        sa.Column("postmortem", sa.Text(), nullable=True),
        sa.Column("postmortem_at", UtcDateTime(), nullable=True),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_incidents")),
        sa.UniqueConstraint("channel_id", name=op.f("uq_incidents_channel_id")),
    )
    op.create_index("ix_incidents_state", "incidents", ["state"])
    op.create_table(
        "incident_timeline",
        sa.Column("id", sa.Integer(), autoincrement=True, nullable=False),
        sa.Column("incident_id", sa.Integer(), nullable=False),
        sa.Column("at", UtcDateTime(), nullable=False),
        sa.Column("kind", sa.String(32), nullable=False),
        sa.Column("user_id", sa.String(32), nullable=False),
        sa.Column("text", sa.Text(), nullable=False),
        sa.Column("data", sa.JSON(), nullable=False),
        sa.Column("key", sa.String(255), nullable=True),
        sa.ForeignKeyConstraint(["incident_id"], ["incidents.id"], name=op.f("fk_incident_timeline_incident_id_incidents")),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_incident_timeline")),
        sa.UniqueConstraint("key", name=op.f("uq_incident_timeline_key")),
    )
    op.create_index("ix_incident_timeline_incident_id_at", "incident_timeline", ["incident_id", "at"])
    op.create_table(
        "incident_followups",
        sa.Column("id", sa.Integer(), autoincrement=True, nullable=False),
        sa.Column("incident_id", sa.Integer(), nullable=False),
        sa.Column("text", sa.Text(), nullable=False),
        sa.Column("owner", sa.String(32), nullable=True),
        sa.Column("created_by", sa.String(32), nullable=False),
        sa.Column("created_at", UtcDateTime(), nullable=False),
        sa.ForeignKeyConstraint(["incident_id"], ["incidents.id"], name=op.f("fk_incident_followups_incident_id_incidents")),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_incident_followups")),
    )
    op.create_index(op.f("ix_incident_followups_incident_id"), "incident_followups", ["incident_id"])
    op.create_table(
        "oncall_overrides",
        sa.Column("id", sa.Integer(), autoincrement=True, nullable=False),
        sa.Column("rotation", sa.String(64), nullable=False),
        sa.Column("user_id", sa.String(32), nullable=False),
        sa.Column("starts_at", UtcDateTime(), nullable=False),
        sa.Column("ends_at", UtcDateTime(), nullable=False),
        sa.Column("created_by", sa.String(32), nullable=False),
        sa.Column("created_at", UtcDateTime(), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_oncall_overrides")),
    )
    op.create_index("ix_oncall_overrides_rotation_ends_at", "oncall_overrides", ["rotation", "ends_at"])


def downgrade() -> None:
    op.drop_index("ix_oncall_overrides_rotation_ends_at", table_name="oncall_overrides")
    op.drop_table("oncall_overrides")
    op.drop_index(op.f("ix_incident_followups_incident_id"), table_name="incident_followups")
    op.drop_table("incident_followups")
    op.drop_index("ix_incident_timeline_incident_id_at", table_name="incident_timeline")
    op.drop_table("incident_timeline")
    op.drop_index("ix_incidents_state", table_name="incidents")
    op.drop_table("incidents")
