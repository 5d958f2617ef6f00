"""Downgrades never throw away audit rows: a step that would drop audit_log, a column of it,
or its append-only triggers refuses while the table holds any row.

Called first in such a downgrade(), before any DDL, so a refusal leaves the schema as it was
(SQLite commits DDL as it goes, so checking late would leave a half-downgraded database).
"""
from __future__ import annotations

import sqlalchemy as sa
from alembic import context, op
from alembic.util import CommandError

EXPORT_HINT = (
    "Export the rows first (PostgreSQL: pg_dump --data-only --table=audit_log; "
    "SQLite: sqlite3 opsbot.db '.dump audit_log'), remove them deliberately as the table owner "
    "(the append-only triggers refuse the app), then run the downgrade again."
)


def refuse_if_audit_rows(revision: str, what: str) -> None:
    """Raise CommandError when audit_log has rows; `what` says what this downgrade would destroy."""
    if context.is_offline_mode():
        raise CommandError(
            f"Refusing to downgrade {revision} in offline (--sql) mode: it {what}, and only a live "
            "database can show that audit_log is empty. Run the downgrade against the database."
        )
    rows = op.get_bind().execute(sa.text("SELECT count(*) FROM audit_log")).scalar_one()
    if rows:
        raise CommandError(
            f"Refusing to downgrade {revision}: it {what}, and audit_log holds {rows} row(s) "
            f"that are the only record of who ran what. {EXPORT_HINT}"
        )
