"""action_requests.team: the Slack workspace a request was made in, so a click from another one is refused

Revision ID: 0004
Revises: 0003
Create Date: 2026-11-24
"""
import sqlalchemy as sa
from alembic import op

revision = "0004"
down_revision = "0003"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.add_column("action_requests", sa.Column("team", sa.String(32), nullable=False, server_default=""))


def downgrade() -> None:
    # batch mode: SQLite drops a column by copying the table.
    with op.batch_alter_table("action_requests") as batch:
        batch.drop_column("team")
