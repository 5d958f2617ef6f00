"""maintenance_markers: a maintenance window's posts, written before they are sent and marked after

Revision ID: 0013
Revises: 0012
Create Date: 2026-12-06
"""
import sqlalchemy as sa
from alembic import op

from bot.storage import UtcDateTime

revision = "0013"
down_revision = "0012"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "maintenance_posts",
        sa.Column("id", sa.Integer(), autoincrement=True, nullable=False),
        sa.Column("key", sa.String(255), nullable=False),
        sa.Column("window_id", sa.Integer(), nullable=False),
        sa.Column("written_at", UtcDateTime(), nullable=False),
        sa.Column("delivered_at", UtcDateTime(), nullable=True),
        sa.ForeignKeyConstraint(["window_id"], ["maintenance_windows.id"], name=op.f("fk_maintenance_posts_window_id_maintenance_windows")),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_maintenance_posts")),
        sa.UniqueConstraint("key", name=op.f("uq_maintenance_posts_key")),
    )


def downgrade() -> None:
    op.drop_table("maintenance_posts")
