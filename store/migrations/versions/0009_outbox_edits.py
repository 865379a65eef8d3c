"""An outbox row may edit a message already posted instead of posting a new one
(``outbox_message.edits``): a proposal decided on the command line updates its Slack
message in place through the outbox.

Revision ID: 0009
Revises: 0006
Create Date: 2026-12-03
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0009"
down_revision: str | Sequence[str] | None = "0006"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    """Add the nullable ``edits`` column; existing rows post as before."""
    with op.batch_alter_table("outbox_message") as batch:
        batch.add_column(sa.Column("edits", sa.String(), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("outbox_message") as batch:
        batch.drop_column("edits")
