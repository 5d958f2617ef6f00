"""backups.storage: where a backup's dump lives, "local" (a file under backups.directory) or "s3" (an object key)

Rows made before keep "local": their `file` is the path they always were. An "s3" row's `file` is the
object's full key in the configured bucket, so any replica with the same backups.storage reaches it.

Revision ID: 0016
Revises: 0015
Create Date: 2026-12-07
"""
import sqlalchemy as sa
from alembic import op

revision = "0016"
down_revision = "0015"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.add_column("backups", sa.Column("storage", sa.String(16), nullable=False, server_default="local"))


def downgrade() -> None:
    with op.batch_alter_table("backups") as batch:  # SQLite drops a column by copying the table
        batch.drop_column("storage")
