"""alert_instances, alerts_held, alert_silences, alert_heartbeats, alert_posts: each alert incident's alert list, alerts held
by a maintenance window, the Alertmanager silences /incident silence made, the heartbeat alert's state and its posts

Revision ID: 0017
Revises: 0016
Create Date: 2026-12-07
"""
import sqlalchemy as sa
from alembic import op

from bot.storage import UtcDateTime

revision = "0017"
down_revision = "0016"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "alert_instances",
        sa.Column("id", sa.Integer(), autoincrement=True, nullable=False),
        sa.Column("incident_id", sa.Integer(), nullable=False),
        sa.Column("integration", sa.String(64), nullable=False),
        sa.Column("fingerprint", sa.String(64), nullable=False),
        sa.Column("title", sa.String(255), nullable=False),
        sa.Column("labels", sa.JSON(), nullable=False),
        sa.Column("status", sa.String(16), nullable=False),
        sa.Column("starts_at", UtcDateTime(), nullable=True),
        sa.Column("ends_at", UtcDateTime(), nullable=True),
        sa.Column("source_url", sa.Text(), nullable=False),
        sa.Column("first_seen", UtcDateTime(), nullable=False),
        sa.Column("last_seen", UtcDateTime(), nullable=False),
        sa.Column("firing_count", sa.Integer(), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_alert_instances")),
        # One row per alert of an incident: replicas and retries upsert it (ON CONFLICT), never add a second.
        sa.UniqueConstraint("incident_id", "fingerprint", name="uq_alert_instances_incident_fingerprint"),
    )
    op.create_index(op.f("ix_alert_instances_incident_id"), "alert_instances", ["incident_id"])
    op.create_table(
        "alerts_held",
        sa.Column("id", sa.Integer(), autoincrement=True, nullable=False),
        sa.Column("window_id", sa.Integer(), nullable=False),
        sa.Column("integration", sa.String(64), nullable=False),
        sa.Column("dedup_key", sa.String(255), nullable=False),
        sa.Column("service", sa.String(64), nullable=False),
        sa.Column("title", sa.String(255), nullable=False),
        sa.Column("status", sa.String(16), nullable=False),
        sa.Column("first_seen", UtcDateTime(), nullable=False),
        sa.Column("last_seen", UtcDateTime(), nullable=False),
        sa.Column("notifications", sa.Integer(), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_alerts_held")),
        sa.UniqueConstraint("window_id", "dedup_key", name="uq_alerts_held_window_key"),
    )
    op.create_index(op.f("ix_alerts_held_window_id"), "alerts_held", ["window_id"])
    op.create_table(
        "alert_silences",
        sa.Column("id", sa.Integer(), autoincrement=True, nullable=False),
        sa.Column("incident_id", sa.Integer(), nullable=False),
        sa.Column("integration", sa.String(64), nullable=False),
        sa.Column("silence_id", sa.String(64), nullable=False),
        sa.Column("matchers", sa.JSON(), nullable=False),
        sa.Column("created_by", sa.String(32), nullable=False),
        sa.Column("created_at", UtcDateTime(), nullable=False),
        sa.Column("ends_at", UtcDateTime(), nullable=False),
        sa.Column("expired_at", UtcDateTime(), nullable=True),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_alert_silences")),
    )
    op.create_index(op.f("ix_alert_silences_incident_id"), "alert_silences", ["incident_id"])
    op.create_table(
        "alert_heartbeats",
        sa.Column("integration", sa.String(64), nullable=False),
        sa.Column("last_seen", UtcDateTime(), nullable=False),
        sa.Column("state", sa.String(8), nullable=False),
        sa.Column("changed_at", UtcDateTime(), nullable=False),
        sa.Column("changes", sa.Integer(), nullable=False),
        sa.PrimaryKeyConstraint("integration", name=op.f("pk_alert_heartbeats")),
    )
    op.create_table(
        "alert_posts",
        # The heartbeat's posts, keyed like their job: written before the message goes out, marked delivered after.
        sa.Column("key", sa.String(255), nullable=False),
        sa.Column("written_at", UtcDateTime(), nullable=False),
        sa.Column("delivered_at", UtcDateTime(), nullable=True),
        sa.PrimaryKeyConstraint("key", name=op.f("pk_alert_posts")),
    )


def downgrade() -> None:
    op.drop_table("alert_posts")
    op.drop_table("alert_heartbeats")
    op.drop_index(op.f("ix_alert_silences_incident_id"), table_name="alert_silences")
    op.drop_table("alert_silences")
    op.drop_index(op.f("ix_alerts_held_window_id"), table_name="alerts_held")
    op.drop_table("alerts_held")
    op.drop_index(op.f("ix_alert_instances_incident_id"), table_name="alert_instances")
    op.drop_table("alert_instances")
