"""Live segments: classification, per-entity state, applied event ids, live members,
transitions, dead letters and counters.

New tables only; no existing row changes.

Revision ID: 0004
Revises: 0003
Create Date: 2026-12-02
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0004"
down_revision: str | Sequence[str] | None = "0003"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    """Create the live tables."""
    op.create_table(
        "live_counter",
        sa.Column("name", sa.String(length=64), nullable=False),
        sa.Column("value", sa.BigInteger(), nullable=False),
        sa.PrimaryKeyConstraint("name", name=op.f("pk_live_counter")),
    )
    op.create_table(
        "live_dead_letter",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("event_id", sa.String(length=128), nullable=True),
        sa.Column("reason", sa.Text(), nullable=False),
        sa.Column("payload", sa.Text(), nullable=False),
        sa.Column("received_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_live_dead_letter")),
    )
    op.create_table(
        "live_event",
        sa.Column("event_id", sa.String(length=128), nullable=False),
        sa.Column("ts", sa.DateTime(timezone=True), nullable=False),
        sa.Column("accepted_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("applied_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("event_id", name=op.f("pk_live_event")),
    )
    with op.batch_alter_table("live_event", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_live_event_ts"), ["ts"], unique=False)

    op.create_table(
        "live_state",
        sa.Column("entity_id", sa.Integer(), autoincrement=False, nullable=False),
        sa.Column("data", sa.Text(), nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("entity_id", name=op.f("pk_live_state")),
    )
    op.create_table(
        "live_member",
        sa.Column("segment_id", sa.Integer(), autoincrement=False, nullable=False),
        sa.Column("entity_id", sa.Integer(), autoincrement=False, nullable=False),
        sa.ForeignKeyConstraint(
            ["segment_id"], ["segment.id"], name=op.f("fk_live_member_segment_id_segment")
        ),
        sa.PrimaryKeyConstraint("segment_id", "entity_id", name=op.f("pk_live_member")),
    )
    op.create_table(
        "live_segment",
        sa.Column("segment_id", sa.Integer(), autoincrement=False, nullable=False),
        sa.Column("version_id", sa.Integer(), nullable=False),
        sa.Column("mode", sa.String(length=16), nullable=False),
        sa.Column("reasons", sa.JSON(), nullable=False),
        sa.Column("classified_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("built_version_id", sa.Integer(), nullable=True),
        sa.Column("reconciled_result_id", sa.Integer(), nullable=True),
        sa.CheckConstraint("mode IN ('live', 'batch')", name=op.f("ck_live_segment_mode")),
        sa.ForeignKeyConstraint(
            ["segment_id"], ["segment.id"], name=op.f("fk_live_segment_segment_id_segment")
        ),
        sa.PrimaryKeyConstraint("segment_id", name=op.f("pk_live_segment")),
    )
    op.create_table(
        "live_transition",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("segment_id", sa.Integer(), nullable=False),
        sa.Column("entity_id", sa.Integer(), nullable=False),
        sa.Column("kind", sa.String(length=8), nullable=False),
        sa.Column("event_id", sa.String(length=128), nullable=True),
        sa.Column("clause", sa.Text(), nullable=False),
        sa.Column("accepted_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("recorded_at", sa.DateTime(timezone=True), nullable=False),
        sa.CheckConstraint("kind IN ('join', 'leave')", name=op.f("ck_live_transition_kind")),
        sa.ForeignKeyConstraint(
            ["segment_id"], ["segment.id"], name=op.f("fk_live_transition_segment_id_segment")
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_live_transition")),
    )
    with op.batch_alter_table("live_transition", schema=None) as batch_op:
        batch_op.create_index(
            "ix_live_transition_segment_id_id", ["segment_id", "id"], unique=False
        )


def downgrade() -> None:
    """Drop the live tables."""
    with op.batch_alter_table("live_transition", schema=None) as batch_op:
        batch_op.drop_index("ix_live_transition_segment_id_id")

    op.drop_table("live_transition")
    op.drop_table("live_segment")
    op.drop_table("live_member")
    op.drop_table("live_state")
    with op.batch_alter_table("live_event", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_live_event_ts"))

    op.drop_table("live_event")
    op.drop_table("live_dead_letter")
    op.drop_table("live_counter")
