"""backup_relative_paths: a backup row records its file relative to backups.directory

Every replica mounts the shared backups directory, maybe at another path; a row holding
"<directory>/app_20261206_020000.dump" is rewritten to "app_20261206_020000.dump" when its file
lies directly in the directory app.yaml configures. Which directory that is comes from
alembic's config attribute "backups_directory" when a caller sets it, else from app.yaml
($OPSBOT_CONFIG, or ./app.yaml), read as the bot reads it (relative to the working directory).
Without either, or for a row outside that directory, the absolute path stays: the bot reads an
absolute path as it is (bot.backup.service.path_of). Only data changes; the column stays.

Revision ID: 0012
Revises: 0011
Create Date: 2026-12-06
"""
import os
from pathlib import Path, PurePosixPath

import sqlalchemy as sa
from alembic import context, op

revision = "0012"
down_revision = "0011"
branch_labels = None
depends_on = None

backups = sa.table("backups", sa.column("id", sa.Integer), sa.column("file", sa.String))


def _directory() -> Path | None:
    """The configured backups directory, resolved as bot.backup.service.directory does; None when unknown."""
    configured = context.config.attributes.get("backups_directory")
    if configured is None:
        import yaml

        path = Path(os.environ.get("OPSBOT_CONFIG") or "app.yaml")
        try:
            document = yaml.safe_load(path.read_text(encoding="utf-8")) or {}
        except (OSError, yaml.YAMLError):
            return None
        section = document.get("backups") if isinstance(document, dict) else None
        configured = (section if isinstance(section, dict) else {}).get("directory", "backups")
        if not isinstance(configured, str) or "${" in configured:
            return None  # a value from the environment is the bot's to expand, not a migration's to guess
    return Path(configured).expanduser().resolve()


def _rewrite(new_file) -> None:
    """Each row's file through new_file(path) -> the new value, or None to leave the row as it is."""
    bind = op.get_bind()
    for row_id, file in bind.execute(sa.select(backups.c.id, backups.c.file)).all():
        changed = new_file(PurePosixPath(file))
        if changed is not None:
            bind.execute(backups.update().where(backups.c.id == row_id).values(file=changed))


def upgrade() -> None:
    folder = _directory()
    if folder is not None:
        _rewrite(lambda path: path.name if path.is_absolute() and Path(path.parent) == folder else None)


def downgrade() -> None:
    # The code before 0012 reads only absolute paths: relative rows go back under the directory.
    folder = _directory()
    if folder is not None:
        _rewrite(lambda path: None if path.is_absolute() else str(folder / path))
