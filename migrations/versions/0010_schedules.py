"""schedule_runs, schedule_pauses, schedule_incidents

Revision ID: 0010
Revises: 0009
Create Date: 2026-11-24
"""
import sqlalchemy as sa
from alembic import op

from bot.storage import UtcDateTime

revision = "0010"
down_revision = "0009"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "schedule_runs",
        sa.Column("id", sa.Integer(), autoincrement=True, nullable=False),
        sa.Column("schedule", sa.String(64), nullable=False),
        sa.Column("slot", UtcDateTime(), nullable=False),
        sa.Column("late", sa.Boolean(), nullable=False),
        sa.Column("trigger", sa.String(64), nullable=False),
        sa.Column("state", sa.String(16), nullable=False),
        sa.Column("started_at", UtcDateTime(), nullable=False),
        sa.Column("finished_at", UtcDateTime(), nullable=True),
        sa.Column("items", sa.JSON(), nullable=False),
        sa.Column("headline", sa.Text(), nullable=False),
        sa.Column("message_ref", sa.String(128), nullable=True),
        sa.PrimaryKeyConstraint("id"),
        sa.UniqueConstraint("schedule", "slot", name="uq_schedule_runs_schedule_slot"),
    )
    op.create_index("ix_schedule_runs_schedule", "schedule_runs", ["schedule"])
    op.create_table(
        "schedule_ticks",
        sa.Column("id", sa.Integer(), autoincrement=True, nullable=False),
        sa.Column("run_id", sa.Integer(), nullable=False),
        sa.Column("item", sa.Integer(), nullable=False),
        sa.Column("user_id", sa.String(32), nullable=False),
        sa.Column("at", UtcDateTime(), nullable=False),
        sa.PrimaryKeyConstraint("id"),
        sa.UniqueConstraint("run_id", "item", name="uq_schedule_ticks_run_item"),
    )
    op.create_index("ix_schedule_ticks_run_id", "schedule_ticks", ["run_id"])
    op.create_table(
        "schedule_pauses",
        sa.Column("schedule", sa.String(64), nullable=False),
        sa.Column("paused_by", sa.String(32), nullable=False),
        sa.Column("paused_at", UtcDateTime(), nullable=False),
        sa.PrimaryKeyConstraint("schedule"),
    )
    op.create_table(
        "schedule_incidents",
        sa.Column("id", sa.Integer(), autoincrement=True, nullable=False),
        sa.Column("schedule", sa.String(64), nullable=False),
        sa.Column("item", sa.String(200), nullable=False),
        sa.Column("incident_id", sa.Integer(), nullable=False),
        sa.Column("opened_at", UtcDateTime(), nullable=False),
        sa.Column("cleared_at", UtcDateTime(), nullable=True),
        sa.PrimaryKeyConstraint("id"),
    )
    op.create_index("ix_schedule_incidents_schedule", "schedule_incidents", ["schedule"])


def downgrade() -> None:
    op.drop_index("ix_schedule_incidents_schedule", table_name="schedule_incidents")
    op.drop_table("schedule_incidents")
    op.drop_table("schedule_pauses")
    op.drop_index("ix_schedule_ticks_run_id", table_name="schedule_ticks")
    op.drop_table("schedule_ticks")
    op.drop_index("ix_schedule_runs_schedule", table_name="schedule_runs")
    op.drop_table("schedule_runs")
