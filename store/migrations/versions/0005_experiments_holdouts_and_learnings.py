"""Experiments, their holdout per published result, and the learnings library.

Four new tables, nothing existing changes: ``experiment`` (a planned holdout experiment on
a segment), ``experiment_holdout`` (the held-out members of each published result, as a
bitmap of dense entity ids), ``learning`` (what a change or experiment was for and what
it did) and ``learning_note`` (notes people add to a learning).

Revision ID: 0005
Revises: 0004
Create Date: 2026-12-02
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0005"
down_revision: str | Sequence[str] | None = "0004"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    """Create the experiment and learning tables."""
    op.create_table(
        "experiment",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("segment_id", sa.Integer(), nullable=False),
        sa.Column("version_id", sa.Integer(), nullable=False),
        sa.Column("salt", sa.String(), nullable=False),
        sa.Column("kpi", sa.String(), nullable=False),
        sa.Column("kind", sa.String(length=16), nullable=False),
        sa.Column("direction", sa.String(length=16), nullable=False),
        sa.Column("mde", sa.Float(), nullable=False),
        sa.Column("window_days", sa.Integer(), nullable=False),
        sa.Column("holdout_share", sa.Float(), nullable=False),
        sa.Column("also", sa.JSON(), nullable=False),
        sa.Column("correction", sa.String(length=16), nullable=False),
        sa.Column("hypothesis", sa.Text(), nullable=False),
        sa.Column("started_on", sa.Date(), nullable=False),
        sa.Column("ends_on", sa.Date(), nullable=False),
        sa.Column("start_result_id", sa.Integer(), nullable=False),
        sa.Column("status", sa.String(length=16), nullable=False),
        sa.Column("started_by", sa.String(), nullable=False),
        sa.Column("plan", sa.JSON(), nullable=False),
        sa.Column("readout", sa.JSON(), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("closed_at", sa.DateTime(timezone=True), nullable=True),
        sa.CheckConstraint(
            "status IN ('running', 'closed', 'stopped')", name=op.f("ck_experiment_status")
        ),
        sa.ForeignKeyConstraint(
            ["segment_id"], ["segment.id"], name=op.f("fk_experiment_segment_id_segment")
        ),
        sa.ForeignKeyConstraint(
            ["start_result_id"],
            ["segment_result.id"],
            name=op.f("fk_experiment_start_result_id_segment_result"),
        ),
        sa.ForeignKeyConstraint(
            ["version_id"],
            ["segment_version.id"],
            name=op.f("fk_experiment_version_id_segment_version"),
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_experiment")),
    )
    with op.batch_alter_table("experiment", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_experiment_segment_id"), ["segment_id"], unique=False)

    op.create_table(
        "experiment_holdout",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("experiment_id", sa.Integer(), nullable=False),
        sa.Column("snapshot_id", sa.Integer(), nullable=False),
        sa.Column("result_id", sa.Integer(), nullable=False),
        sa.Column("members", sa.Integer(), nullable=False),
        sa.Column("held_out", sa.Integer(), nullable=False),
        sa.Column("bitmap", sa.LargeBinary(), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["experiment_id"],
            ["experiment.id"],
            name=op.f("fk_experiment_holdout_experiment_id_experiment"),
        ),
        sa.ForeignKeyConstraint(
            ["result_id"],
            ["segment_result.id"],
            name=op.f("fk_experiment_holdout_result_id_segment_result"),
        ),
        sa.ForeignKeyConstraint(
            ["snapshot_id"],
            ["snapshot.id"],
            name=op.f("fk_experiment_holdout_snapshot_id_snapshot"),
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_experiment_holdout")),
        sa.UniqueConstraint(
            "experiment_id", "result_id", name=op.f("uq_experiment_holdout_experiment_id_result_id")
        ),
    )
    with op.batch_alter_table("experiment_holdout", schema=None) as batch_op:
        batch_op.create_index(
            batch_op.f("ix_experiment_holdout_snapshot_id"), ["snapshot_id"], unique=False
        )

    op.create_table(
        "learning",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("segment_id", sa.Integer(), nullable=True),
        sa.Column("kind", sa.String(length=16), nullable=False),
        sa.Column("title", sa.Text(), nullable=False),
        sa.Column("hypothesis", sa.JSON(), nullable=False),
        sa.Column("reason", sa.Text(), nullable=True),
        sa.Column("decided_by", sa.String(), nullable=True),
        sa.Column("version_id", sa.Integer(), nullable=True),
        sa.Column("experiment_id", sa.Integer(), nullable=True),
        sa.Column("effect", sa.JSON(), nullable=False),
        sa.Column("effect_text", sa.Text(), nullable=True),
        sa.Column("verdict", sa.String(length=16), nullable=True),
        sa.Column("closed_on", sa.Date(), nullable=True),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.CheckConstraint(
            "kind IN ('change', 'experiment', 'refresh')", name=op.f("ck_learning_kind")
        ),
        sa.CheckConstraint(
            "verdict IN ('validated', 'refuted', 'inconclusive', 'observational', 'blocked')",
            name=op.f("ck_learning_verdict"),
        ),
        sa.ForeignKeyConstraint(
            ["experiment_id"], ["experiment.id"], name=op.f("fk_learning_experiment_id_experiment")
        ),
        sa.ForeignKeyConstraint(
            ["segment_id"], ["segment.id"], name=op.f("fk_learning_segment_id_segment")
        ),
        sa.ForeignKeyConstraint(
            ["version_id"],
            ["segment_version.id"],
            name=op.f("fk_learning_version_id_segment_version"),
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_learning")),
    )
    with op.batch_alter_table("learning", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_learning_segment_id"), ["segment_id"], unique=False)

    op.create_table(
        "learning_note",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("learning_id", sa.Integer(), nullable=False),
        sa.Column("author", sa.String(), nullable=False),
        sa.Column("text", sa.Text(), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["learning_id"], ["learning.id"], name=op.f("fk_learning_note_learning_id_learning")
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_learning_note")),
    )
    with op.batch_alter_table("learning_note", schema=None) as batch_op:
        batch_op.create_index(
            batch_op.f("ix_learning_note_learning_id"), ["learning_id"], unique=False
        )


def downgrade() -> None:
    """Drop them, newest first."""
    with op.batch_alter_table("learning_note", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_learning_note_learning_id"))

    op.drop_table("learning_note")
    with op.batch_alter_table("learning", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_learning_segment_id"))

    op.drop_table("learning")
    with op.batch_alter_table("experiment_holdout", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_experiment_holdout_snapshot_id"))

    op.drop_table("experiment_holdout")
    with op.batch_alter_table("experiment", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_experiment_segment_id"))

    op.drop_table("experiment")
