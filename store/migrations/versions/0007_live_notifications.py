"""Live notifications: where each live segment's channel notices have got to.

Two nullable columns on ``live_segment``: the last transition a notice covered and when
it was posted. Existing rows keep NULL (no notice posted yet).

Revision ID: 0007
Revises: 0006
Create Date: 2026-12-03
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0007"
down_revision: str | Sequence[str] | None = "0006"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    """Add the notice cursor to ``live_segment``."""
    with op.batch_alter_table("live_segment", schema=None) as batch_op:
        batch_op.add_column(sa.Column("notified_transition_id", sa.Integer(), nullable=True))
        batch_op.add_column(sa.Column("notified_at", sa.DateTime(timezone=True), nullable=True))


def downgrade() -> None:
    """Drop the notice cursor."""
    with op.batch_alter_table("live_segment", schema=None) as batch_op:
        batch_op.drop_column("notified_at")
        batch_op.drop_column("notified_transition_id")
