"""An outbox row may edit a message already posted instead of posting a new one
(``outbox_message.edits``): a proposal decided on the command line updates its Slack
message in place through the outbox. And ``segment_origin`` records which segments fed a
merged or split segment.

Revision ID: 0010
Revises: 0009
Create Date: 2026-12-03
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0010"
down_revision: str | Sequence[str] | None = "0009"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    """Add the nullable ``edits`` column (existing rows post as before) and the
    ``segment_origin`` table."""
    with op.batch_alter_table("outbox_message") as batch:
        batch.add_column(sa.Column("edits", sa.String(), nullable=True))
    op.create_table(
        "segment_origin",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("segment_id", sa.Integer(), nullable=False),
        sa.Column("source_segment_id", sa.Integer(), nullable=False),
        sa.Column("source_version_id", sa.Integer(), nullable=False),
        sa.Column("kind", sa.String(length=16), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.CheckConstraint("kind IN ('merge', 'split')", name=op.f("ck_segment_origin_kind")),
        sa.ForeignKeyConstraint(
            ["segment_id"], ["segment.id"], name=op.f("fk_segment_origin_segment_id_segment")
        ),
        sa.ForeignKeyConstraint(
            ["source_segment_id"],
            ["segment.id"],
            name=op.f("fk_segment_origin_source_segment_id_segment"),
        ),
        sa.ForeignKeyConstraint(
            ["source_version_id"],
            ["segment_version.id"],
            name=op.f("fk_segment_origin_source_version_id_segment_version"),
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_segment_origin")),
        sa.UniqueConstraint(
            "segment_id",
            "source_segment_id",
            name=op.f("uq_segment_origin_segment_id_source_segment_id"),
        ),
    )
    op.create_index(
        op.f("ix_segment_origin_segment_id"), "segment_origin", ["segment_id"], unique=False
    )


def downgrade() -> None:
    op.drop_index(op.f("ix_segment_origin_segment_id"), table_name="segment_origin")
    op.drop_table("segment_origin")
    with op.batch_alter_table("outbox_message") as batch:
        batch.drop_column("edits")
