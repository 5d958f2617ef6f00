"""action requests, approvals, locks; audit_log.target

Revision ID: 0002
Revises: 0001
Create Date: 2026-11-23
"""
import sqlalchemy as sa
from alembic import op

from bot.storage import UtcDateTime
from migrations.audit_guard import refuse_if_audit_rows

revision = "0002"
down_revision = "0001"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "action_requests",
        sa.Column("id", sa.Integer(), autoincrement=True, nullable=False),
        sa.Column("action", sa.String(64), nullable=False),
        sa.Column("service", sa.String(64), nullable=False),
        sa.Column("plan", sa.JSON(), nullable=False),
        sa.Column("plan_hash", sa.String(64), nullable=False),
        sa.Column("requested_by", sa.String(64), nullable=False),
        sa.Column("channel", sa.String(64), nullable=False),
        sa.Column("transport", sa.String(16), nullable=False),
        sa.Column("state", sa.String(16), nullable=False),
        sa.Column("approvals_needed", sa.Integer(), nullable=False),
        sa.Column("created_at", UtcDateTime(), nullable=False),
        sa.Column("expires_at", UtcDateTime(), nullable=False),
        sa.Column("decided_by", sa.String(64), nullable=True),
        sa.Column("decided_at", UtcDateTime(), nullable=True),
        sa.Column("started_at", UtcDateTime(), nullable=True),
        sa.Column("finished_at", UtcDateTime(), nullable=True),
        sa.Column("result", sa.Text(), nullable=False),
        sa.Column("message_ref", sa.String(128), nullable=True),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_action_requests")),
    )
    op.create_index(op.f("ix_action_requests_service"), "action_requests", ["service"])
    op.create_index(op.f("ix_action_requests_state"), "action_requests", ["state"])
    op.create_table(
        "action_approvals",
        sa.Column("id", sa.Integer(), autoincrement=True, nullable=False),
        sa.Column("request_id", sa.Integer(), nullable=False),
        sa.Column("approver", sa.String(64), nullable=False),
        sa.Column("at", UtcDateTime(), nullable=False),
        sa.ForeignKeyConstraint(["request_id"], ["action_requests.id"], name=op.f("fk_action_approvals_request_id_action_requests")),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_action_approvals")),
        sa.UniqueConstraint("request_id", "approver", name="uq_action_approvals_request_approver"),
    )
    op.create_index(op.f("ix_action_approvals_request_id"), "action_approvals", ["request_id"])
    op.create_table(
        "action_locks",
        sa.Column("key", sa.String(128), nullable=False),
        sa.Column("request_id", sa.Integer(), nullable=False),
        sa.Column("holder", sa.String(64), nullable=False),
        sa.Column("acquired_at", UtcDateTime(), nullable=False),
        sa.ForeignKeyConstraint(["request_id"], ["action_requests.id"], name=op.f("fk_action_locks_request_id_action_requests")),
        sa.PrimaryKeyConstraint("key", name=op.f("pk_action_locks")),
    )
    with op.batch_alter_table("audit_log") as batch:
        batch.add_column(sa.Column("target", sa.String(64), nullable=False, server_default=""))
    op.create_index(op.f("ix_audit_log_target"), "audit_log", ["target"])


def downgrade() -> None:
    # Checked before anything is dropped, so a refusal leaves this revision whole.
    refuse_if_audit_rows("0002", "drops the column audit_log.target")
    op.drop_index(op.f("ix_audit_log_target"), table_name="audit_log")
    with op.batch_alter_table("audit_log") as batch:
        batch.drop_column("target")
    op.drop_table("action_locks")
    op.drop_index(op.f("ix_action_approvals_request_id"), table_name="action_approvals")
    op.drop_table("action_approvals")
    op.drop_index(op.f("ix_action_requests_state"), table_name="action_requests")
    op.drop_index(op.f("ix_action_requests_service"), table_name="action_requests")
    op.drop_table("action_requests")
