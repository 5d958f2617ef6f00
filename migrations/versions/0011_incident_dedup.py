"""incidents.dedup_key: one open incident per de-duplication key, enforced by a partial unique index

Revision ID: 0011
Revises: 0010
Create Date: 2026-12-06
"""
import sqlalchemy as sa
from alembic import op

revision = "0011"
down_revision = "0010"
branch_labels = None
depends_on = None

# "Open" is every state but resolved (bot.incident.service.OPEN_STATES): a resolved incident frees its key.
# The same text as bot.incident.models.OPEN_PREDICATE, so ON CONFLICT ... WHERE matches this index.
OPEN = sa.text("state IN ('open', 'acknowledged')")


def upgrade() -> None:
    op.add_column("incidents", sa.Column("dedup_key", sa.String(255), nullable=True))
    op.create_index("uq_incidents_dedup_key_open", "incidents", ["dedup_key"], unique=True,
                    postgresql_where=OPEN, sqlite_where=OPEN)


def downgrade() -> None:
    op.drop_index("uq_incidents_dedup_key_open", table_name="incidents")
    # batch mode: SQLite drops a column by copying the table.
    with op.batch_alter_table("incidents") as batch:
        batch.drop_column("dedup_key")
