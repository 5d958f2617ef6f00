"""scheduled_jobs: durable timers (the request sweep, escalation pings, reminders), claimed once across replicas

Revision ID: 0005
Revises: 0004
Create Date: 2026-11-25
"""
import sqlalchemy as sa
from alembic import op

from bot.storage import UtcDateTime

revision = "0005"
down_revision = "0004"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "scheduled_jobs",
        sa.Column("id", sa.Integer(), autoincrement=True, nullable=False),
        sa.Column("kind", sa.String(64), nullable=False),
        sa.Column("key", sa.String(255), nullable=False),
        sa.Column("due_at", UtcDateTime(), nullable=False),
        sa.Column("payload", sa.JSON(), nullable=False),
        # bot.schedule.models.JobState values; a VARCHAR, not a native enum, so a new state is no DDL.
        sa.Column("state", sa.String(16), nullable=False),
        sa.Column("claimed_by", sa.String(64), nullable=True),
        sa.Column("claimed_at", UtcDateTime(), nullable=True),
        sa.Column("lease_until", UtcDateTime(), nullable=True),
        sa.Column("attempts", sa.Integer(), nullable=False),
        sa.Column("finished_at", UtcDateTime(), nullable=True),
        sa.Column("late", sa.Boolean(), nullable=False),
        sa.Column("error", sa.Text(), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_scheduled_jobs")),
        sa.UniqueConstraint("key", name=op.f("uq_scheduled_jobs_key")),
    )
    op.create_index("ix_scheduled_jobs_state_due_at", "scheduled_jobs", ["state", "due_at"])
    op.create_index("ix_scheduled_jobs_state_lease_until", "scheduled_jobs", ["state", "lease_until"])


def downgrade() -> None:
    # Pending jobs go with the table: after a downgrade nothing is promised any more.
    op.drop_index("ix_scheduled_jobs_state_lease_until", table_name="scheduled_jobs")
    op.drop_index("ix_scheduled_jobs_state_due_at", table_name="scheduled_jobs")
    op.drop_table("scheduled_jobs")
