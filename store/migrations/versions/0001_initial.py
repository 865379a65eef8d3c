"""Initial schema: catalog, snapshots and results, alerts, feedback, proposals, outbox.

Revision ID: 0001
Revises:
Create Date: 2026-11-23
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0001"
down_revision: str | Sequence[str] | None = None
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def _timestamp(name: str, *, nullable: bool = False) -> sa.Column:
    return sa.Column(name, sa.DateTime(timezone=True), nullable=nullable)


def upgrade() -> None:
    """Create every table."""
    op.create_table(
        "segment",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("name", sa.String(length=64), nullable=False),
        sa.Column("title", sa.String(), nullable=False),
        sa.Column("tier", sa.String(length=16), nullable=False),
        sa.Column("status", sa.String(length=16), nullable=False),
        sa.Column("owner", sa.String(), nullable=False),
        sa.Column("approvers", sa.JSON(), nullable=False),
        sa.Column("channel", sa.String(), nullable=True),
        sa.Column("cadence", sa.String(), nullable=False),
        sa.Column("current_version_id", sa.Integer(), nullable=True),
        sa.Column("current_result_id", sa.Integer(), nullable=True),
        _timestamp("created_at"),
        _timestamp("updated_at"),
        sa.CheckConstraint(
            "tier IN ('core', 'strategic', 'tactical')", name=op.f("ck_segment_tier")
        ),
        sa.CheckConstraint("status IN ('active', 'archived')", name=op.f("ck_segment_status")),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_segment")),
        sa.UniqueConstraint("name", name=op.f("uq_segment_name")),
    )
    op.create_table(
        "segment_version",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("segment_id", sa.Integer(), nullable=False),
        sa.Column("version", sa.Integer(), nullable=False),
        sa.Column("definition", sa.JSON(), nullable=False),
        sa.Column("rule_text", sa.Text(), nullable=False),
        sa.Column("definition_hash", sa.String(length=64), nullable=False),
        sa.Column("change_kind", sa.String(length=16), nullable=False),
        sa.Column("author", sa.String(), nullable=False),
        sa.Column("approver", sa.String(), nullable=True),
        sa.Column("reason", sa.Text(), nullable=True),
        _timestamp("created_at"),
        sa.CheckConstraint(
            "change_kind IN ('create', 'edit', 'rename', 'merge', 'split', 'archive')",
            name=op.f("ck_segment_version_change_kind"),
        ),
        sa.ForeignKeyConstraint(
            ["segment_id"], ["segment.id"], name=op.f("fk_segment_version_segment_id_segment")
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_segment_version")),
        sa.UniqueConstraint(
            "segment_id", "version", name=op.f("uq_segment_version_segment_id_version")
        ),
    )
    op.create_table(
        "snapshot",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("as_of", sa.Date(), nullable=False),
        sa.Column("status", sa.String(length=16), nullable=False),
        sa.Column("data_fingerprint", sa.String(length=64), nullable=False),
        sa.Column("profile", sa.JSON(), nullable=False),
        _timestamp("created_at"),
        sa.CheckConstraint(
            "status IN ('published', 'blocked', 'partial', 'unchanged')",
            name=op.f("ck_snapshot_status"),
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_snapshot")),
    )
    op.create_table(
        "segment_result",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("snapshot_id", sa.Integer(), nullable=False),
        sa.Column("segment_id", sa.Integer(), nullable=False),
        sa.Column("version_id", sa.Integer(), nullable=False),
        sa.Column("status", sa.String(length=16), nullable=False),
        sa.Column("size", sa.Integer(), nullable=False),
        sa.Column("previous_size", sa.Integer(), nullable=True),
        sa.Column("joined", sa.Integer(), nullable=False),
        sa.Column("left", sa.Integer(), nullable=False),
        sa.Column("bitmap", sa.LargeBinary(), nullable=True),
        sa.Column("stats", sa.JSON(), nullable=False),
        sa.Column("leave_reasons", sa.JSON(), nullable=False),
        _timestamp("created_at"),
        sa.CheckConstraint(
            "status IN ('published', 'blocked', 'unchanged')",
            name=op.f("ck_segment_result_status"),
        ),
        sa.ForeignKeyConstraint(
            ["snapshot_id"], ["snapshot.id"], name=op.f("fk_segment_result_snapshot_id_snapshot")
        ),
        sa.ForeignKeyConstraint(
            ["segment_id"], ["segment.id"], name=op.f("fk_segment_result_segment_id_segment")
        ),
        sa.ForeignKeyConstraint(
            ["version_id"],
            ["segment_version.id"],
            name=op.f("fk_segment_result_version_id_segment_version"),
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_segment_result")),
    )
    op.create_index(op.f("ix_segment_result_segment_id_id"), "segment_result", ["segment_id", "id"])
    op.create_table(
        "entity",
        sa.Column("id", sa.Integer(), autoincrement=False, nullable=False),
        sa.Column("key", sa.String(), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_entity")),
        sa.UniqueConstraint("key", name=op.f("uq_entity_key")),
    )
    op.create_table(
        "alert",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("segment_id", sa.Integer(), nullable=True),
        sa.Column("result_id", sa.Integer(), nullable=True),
        sa.Column("kind", sa.String(), nullable=False),
        sa.Column("severity", sa.String(), nullable=False),
        sa.Column("message", sa.Text(), nullable=False),
        sa.Column("details", sa.JSON(), nullable=False),
        sa.Column("status", sa.String(length=16), nullable=False),
        sa.Column("fingerprint", sa.String(length=64), nullable=False),
        _timestamp("created_at"),
        sa.Column("acknowledged_by", sa.String(), nullable=True),
        _timestamp("muted_until", nullable=True),
        sa.CheckConstraint(
            "status IN ('open', 'acknowledged', 'muted')", name=op.f("ck_alert_status")
        ),
        sa.ForeignKeyConstraint(
            ["segment_id"], ["segment.id"], name=op.f("fk_alert_segment_id_segment")
        ),
        sa.ForeignKeyConstraint(
            ["result_id"], ["segment_result.id"], name=op.f("fk_alert_result_id_segment_result")
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_alert")),
    )
    op.create_index(op.f("ix_alert_fingerprint"), "alert", ["fingerprint"])
    op.create_table(
        "feedback",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("segment_id", sa.Integer(), nullable=False),
        sa.Column("author", sa.String(), nullable=False),
        sa.Column("text", sa.Text(), nullable=False),
        sa.Column("sentiment", sa.String(length=16), nullable=True),
        sa.Column("importance", sa.String(length=16), nullable=True),
        sa.Column("reference", sa.String(), nullable=True),
        sa.Column("permalink", sa.String(), nullable=True),
        sa.Column("origin", sa.String(length=16), nullable=False),
        _timestamp("created_at"),
        _timestamp("digested_at", nullable=True),
        sa.CheckConstraint(
            "sentiment IN ('positive', 'neutral', 'negative')",
            name=op.f("ck_feedback_sentiment"),
        ),
        sa.CheckConstraint(
            "importance IN ('low', 'medium', 'high')", name=op.f("ck_feedback_importance")
        ),
        sa.CheckConstraint("origin IN ('cli', 'slack')", name=op.f("ck_feedback_origin")),
        sa.ForeignKeyConstraint(
            ["segment_id"], ["segment.id"], name=op.f("fk_feedback_segment_id_segment")
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_feedback")),
    )
    op.create_table(
        "proposal",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("segment_id", sa.Integer(), nullable=False),
        sa.Column("base_version_id", sa.Integer(), nullable=False),
        sa.Column("proposer", sa.String(), nullable=False),
        sa.Column("kind", sa.String(length=16), nullable=False),
        sa.Column("changes", sa.JSON(), nullable=False),
        sa.Column("reason", sa.Text(), nullable=False),
        sa.Column("impact", sa.JSON(), nullable=False),
        sa.Column("status", sa.String(length=16), nullable=False),
        sa.Column("decided_by", sa.String(), nullable=True),
        _timestamp("decided_at", nullable=True),
        sa.Column("decision_via", sa.String(length=16), nullable=True),
        sa.Column("channel", sa.String(), nullable=True),
        sa.Column("message_ts", sa.String(), nullable=True),
        sa.Column("applied_version_id", sa.Integer(), nullable=True),
        _timestamp("created_at"),
        sa.CheckConstraint(
            "kind IN ('edit', 'rename', 'archive', 'persona')", name=op.f("ck_proposal_kind")
        ),
        sa.CheckConstraint(
            "status IN ('pending', 'approved', 'rejected', 'stale')",
            name=op.f("ck_proposal_status"),
        ),
        sa.CheckConstraint(
            "decision_via IN ('button', 'reaction', 'cli')",
            name=op.f("ck_proposal_decision_via"),
        ),
        sa.ForeignKeyConstraint(
            ["segment_id"], ["segment.id"], name=op.f("fk_proposal_segment_id_segment")
        ),
        sa.ForeignKeyConstraint(
            ["base_version_id"],
            ["segment_version.id"],
            name=op.f("fk_proposal_base_version_id_segment_version"),
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_proposal")),
    )
    op.create_table(
        "outbox_message",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("idempotency_key", sa.String(), nullable=False),
        sa.Column("kind", sa.String(), nullable=False),
        sa.Column("channel", sa.String(), nullable=False),
        sa.Column("thread_key", sa.String(), nullable=True),
        sa.Column("text", sa.Text(), nullable=False),
        sa.Column("blocks", sa.JSON(), nullable=False),
        sa.Column("files", sa.JSON(), nullable=False),
        sa.Column("fallback_user", sa.String(), nullable=True),
        sa.Column("status", sa.String(length=16), nullable=False),
        sa.Column("attempts", sa.Integer(), nullable=False),
        _timestamp("next_attempt_at"),
        sa.Column("last_error", sa.Text(), nullable=True),
        sa.Column("ts", sa.String(), nullable=True),
        _timestamp("created_at"),
        _timestamp("sent_at", nullable=True),
        sa.CheckConstraint(
            "status IN ('pending', 'sending', 'sent', 'dead')",
            name=op.f("ck_outbox_message_status"),
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_outbox_message")),
        sa.UniqueConstraint("idempotency_key", name=op.f("uq_outbox_message_idempotency_key")),
    )
    op.create_table(
        "slack_event",
        sa.Column("event_id", sa.String(), nullable=False),
        _timestamp("received_at"),
        _timestamp("processed_at", nullable=True),
        sa.PrimaryKeyConstraint("event_id", name=op.f("pk_slack_event")),
    )
    op.create_table(
        "lease",
        sa.Column("name", sa.String(), nullable=False),
        sa.Column("holder", sa.String(), nullable=False),
        _timestamp("expires_at"),
        sa.PrimaryKeyConstraint("name", name=op.f("pk_lease")),
    )


def downgrade() -> None:
    """Drop every table, children before parents."""
    op.drop_table("lease")
    op.drop_table("slack_event")
    op.drop_table("outbox_message")
    op.drop_table("proposal")
    op.drop_table("feedback")
    op.drop_index(op.f("ix_alert_fingerprint"), table_name="alert")
    op.drop_table("alert")
    op.drop_table("entity")
    op.drop_index(op.f("ix_segment_result_segment_id_id"), table_name="segment_result")
    op.drop_table("segment_result")
    op.drop_table("snapshot")
    op.drop_table("segment_version")
    op.drop_table("segment")
