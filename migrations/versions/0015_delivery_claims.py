"""delivery_claims: retried Slack deliveries claimed once across replicas in the database (Redis optional)

Revision ID: 0015
Revises: 0014
Create Date: 2026-12-07
"""
import sqlalchemy as sa
from alembic import op

from bot.storage import UtcDateTime

revision = "0015"
down_revision = "0014"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "delivery_claims",
        sa.Column("key", sa.String(64), nullable=False),  # SHA-256 of the delivery key, hex
        sa.Column("expires_at", UtcDateTime(), nullable=False),
        sa.PrimaryKeyConstraint("key", name="pk_delivery_claims"),
    )
    op.create_index("ix_delivery_claims_expires_at", "delivery_claims", ["expires_at"])


def downgrade() -> None:
    op.drop_index("ix_delivery_claims_expires_at", table_name="delivery_claims")
    op.drop_table("delivery_claims")
