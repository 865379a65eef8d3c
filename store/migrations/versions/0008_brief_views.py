"""When each person last read each segment's brief, and what it showed them.

Revision ID: 0008
Revises: 0007
Create Date: 2026-12-03
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0008"
down_revision: str | Sequence[str] | None = "0007"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    """Create ``brief_view``."""
    op.create_table(
        "brief_view",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("user_id", sa.String(length=32), nullable=False),
        sa.Column("segment_id", sa.Integer(), nullable=False),
        sa.Column("result_id", sa.Integer(), nullable=True),
        sa.Column("size", sa.Integer(), nullable=True),
        sa.Column("version", sa.Integer(), nullable=False),
        sa.Column("seen_at", sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["segment_id"], ["segment.id"], name=op.f("fk_brief_view_segment_id_segment")
        ),
        sa.ForeignKeyConstraint(
            ["result_id"],
            ["segment_result.id"],
            name=op.f("fk_brief_view_result_id_segment_result"),
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_brief_view")),
        sa.UniqueConstraint("user_id", "segment_id", name=op.f("uq_brief_view_user_id_segment_id")),
    )


def downgrade() -> None:
    """Drop ``brief_view``."""
    op.drop_table("brief_view")
