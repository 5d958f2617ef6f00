"""scheduled_jobs.priority: among due jobs, the most urgent is claimed first (a P0's page before a P3's)

Revision ID: 0014
Revises: 0013
Create Date: 2026-12-06
"""
import sqlalchemy as sa
from alembic import op

revision = "0014"
down_revision = "0013"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.add_column("scheduled_jobs", sa.Column("priority", sa.Integer(), nullable=False, server_default="0"))


def downgrade() -> None:
    with op.batch_alter_table("scheduled_jobs") as batch:  # SQLite drops a column by copying the table
        batch.drop_column("priority")
