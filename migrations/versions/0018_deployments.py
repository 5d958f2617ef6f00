"""deployments: each /deploy and /rollback as a record that moves pending -> in_progress -> success | failure -> rolled_back

The running process holds a lease on its row (lease_until, renewed while it runs) and writes how
far it got (phase) next to the plan it runs, so another process can finish an interrupted one.

Revision ID: 0018
Revises: 0017
Create Date: 2026-12-07
"""
import sqlalchemy as sa
from alembic import op

from bot.storage import UtcDateTime

revision = "0018"
down_revision = "0017"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "deployments",
        sa.Column("id", sa.Integer(), autoincrement=True, nullable=False),
        sa.Column("service", sa.String(64), nullable=False),
        sa.Column("operation", sa.String(16), nullable=False),
        sa.Column("platform", sa.String(16), nullable=False),
        sa.Column("from_version", sa.String(128), nullable=True),
        sa.Column("to_version", sa.String(128), nullable=False),
        sa.Column("from_image", sa.String(255), nullable=True),
        sa.Column("to_image", sa.String(255), nullable=True),
        sa.Column("state", sa.String(16), nullable=False),
        sa.Column("request_id", sa.Integer(), nullable=True),
        sa.Column("requested_by", sa.String(32), nullable=False),
        sa.Column("approved_by", sa.JSON(), nullable=False),
        sa.Column("channel", sa.String(64), nullable=False),
        sa.Column("started_at", UtcDateTime(), nullable=False),
        sa.Column("finished_at", UtcDateTime(), nullable=True),
        sa.Column("detail", sa.Text(), nullable=False),
        sa.Column("plan", sa.JSON(), nullable=True),
        sa.Column("phase", sa.String(16), nullable=False, server_default=""),
        sa.Column("progress", sa.JSON(), nullable=True),
        sa.Column("lease_until", UtcDateTime(), nullable=True),
        sa.Column("held_by", sa.String(64), nullable=True),
        sa.PrimaryKeyConstraint("id"),
        sa.UniqueConstraint("request_id", name="uq_deployments_request_id"),
    )
    op.create_index("ix_deployments_service_id", "deployments", ["service", "id"])
    op.create_index("ix_deployments_started_at", "deployments", ["started_at"])
    op.create_index("ix_deployments_state_lease", "deployments", ["state", "lease_until"])


def downgrade() -> None:
    op.drop_index("ix_deployments_state_lease", table_name="deployments")
    op.drop_index("ix_deployments_started_at", table_name="deployments")
    op.drop_index("ix_deployments_service_id", table_name="deployments")
    op.drop_table("deployments")
