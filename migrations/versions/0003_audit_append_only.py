"""audit_log is append-only in the database: triggers refuse changing or removing rows

Revision ID: 0003
Revises: 0002
Create Date: 2026-11-24

PostgreSQL: one trigger function raising "audit_log is append-only", called BEFORE UPDATE OR
DELETE for each row and BEFORE TRUNCATE for the statement. SQLite: BEFORE UPDATE and BEFORE
DELETE triggers with RAISE(ABORT). Inserts are untouched.

The table owner can still drop or disable these triggers; in production the app's role
should not own the table, and should hold no UPDATE, DELETE or TRUNCATE privilege on it
(docs/operating.md, "The audit log is append-only").

A later migration that rebuilds audit_log on SQLite (batch_alter_table copies the table)
loses these triggers and must create them again.
"""
from alembic import op

from migrations.audit_guard import refuse_if_audit_rows

revision = "0003"
down_revision = "0002"
branch_labels = None
depends_on = None

MESSAGE = "audit_log is append-only"

POSTGRES_UP = (
    f"""
    CREATE FUNCTION audit_log_append_only() RETURNS trigger
    LANGUAGE plpgsql AS $$
    BEGIN
        RAISE EXCEPTION '{MESSAGE}: % refused', TG_OP
            USING HINT = 'Rows are only ever inserted; export them and ask the table owner.';
    END;
    $$
    """,
    """
    CREATE TRIGGER audit_log_no_update_delete
    BEFORE UPDATE OR DELETE ON audit_log
    FOR EACH ROW EXECUTE FUNCTION audit_log_append_only()
    """,
    """
    CREATE TRIGGER audit_log_no_truncate
    BEFORE TRUNCATE ON audit_log
    FOR EACH STATEMENT EXECUTE FUNCTION audit_log_append_only()
    """,
)

POSTGRES_DOWN = (
    "DROP TRIGGER audit_log_no_truncate ON audit_log",
    "DROP TRIGGER audit_log_no_update_delete ON audit_log",
    "DROP FUNCTION audit_log_append_only()",
)

SQLITE_UP = (
    f"""
    CREATE TRIGGER audit_log_no_update
    BEFORE UPDATE ON audit_log
    BEGIN SELECT RAISE(ABORT, '{MESSAGE}: UPDATE refused'); END
    """,
    f"""
    CREATE TRIGGER audit_log_no_delete
    BEFORE DELETE ON audit_log
    BEGIN SELECT RAISE(ABORT, '{MESSAGE}: DELETE refused'); END
    """,
    # INSERT OR REPLACE deletes the old row without firing delete triggers (recursive_triggers is off).
    f"""
    CREATE TRIGGER audit_log_no_replace
    BEFORE INSERT ON audit_log
    WHEN EXISTS (SELECT 1 FROM audit_log WHERE id = NEW.id)
    BEGIN SELECT RAISE(ABORT, '{MESSAGE}: REPLACE refused'); END
    """,
)

SQLITE_DOWN = (
    "DROP TRIGGER audit_log_no_replace",
    "DROP TRIGGER audit_log_no_delete",
    "DROP TRIGGER audit_log_no_update",
)


def _statements(postgres: tuple[str, ...], sqlite: tuple[str, ...]) -> tuple[str, ...]:
    dialect = op.get_context().dialect.name
    if dialect == "postgresql":
        return postgres
    if dialect == "sqlite":
        return sqlite
    raise RuntimeError(f"no append-only triggers for {dialect}; opsbot supports PostgreSQL and SQLite")


def upgrade() -> None:
    for statement in _statements(POSTGRES_UP, SQLITE_UP):
        op.execute(statement)


def downgrade() -> None:
    refuse_if_audit_rows("0003", "drops the triggers that keep audit_log append-only")
    for statement in _statements(POSTGRES_DOWN, SQLITE_DOWN):
        op.execute(statement)
