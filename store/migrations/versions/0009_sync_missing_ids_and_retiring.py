"""Ids a destination reported missing are retried with a backoff instead of counting as
acknowledged; syncs that retire a segment from a destination.

``sync_state`` gains ``missing_attempts``, ``missing_retry_at`` and ``missing_result_id``.
Rows that acknowledged ids reported missing give them back: they leave ``acked`` (and
``acked_count``), stay in ``missing`` with one attempt, and are due at the next sync.
``sync_run.kind`` also allows ``retire``.

Revision ID: 0009
Revises: 0008
Create Date: 2026-12-03
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

from segments.membership import decode, encode

revision: str = "0009"
down_revision: str | Sequence[str] | None = "0008"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

_STATE = sa.table(
    "sync_state",
    sa.column("id", sa.Integer()),
    sa.column("acked", sa.LargeBinary()),
    sa.column("missing", sa.LargeBinary()),
    sa.column("acked_count", sa.Integer()),
    sa.column("missing_attempts", sa.Integer()),
)


def upgrade() -> None:
    """Add the retry columns, give back acknowledged missing ids, allow retire runs."""
    with op.batch_alter_table("sync_state", schema=None) as batch_op:
        batch_op.add_column(
            sa.Column("missing_attempts", sa.Integer(), nullable=False, server_default="0")
        )
        batch_op.add_column(
            sa.Column("missing_retry_at", sa.DateTime(timezone=True), nullable=True)
        )
        batch_op.add_column(sa.Column("missing_result_id", sa.Integer(), nullable=True))
    with op.batch_alter_table("sync_state", schema=None) as batch_op:
        batch_op.alter_column("missing_attempts", server_default=None)
    if not op.get_context().as_sql:  # offline SQL scripts carry the schema, not backfills
        _give_back_missing()

    with op.batch_alter_table("sync_run", schema=None) as batch_op:
        batch_op.drop_constraint(op.f("ck_sync_run_kind"), type_="check")
        batch_op.create_check_constraint(
            op.f("ck_sync_run_kind"), "kind IN ('diff', 'resync', 'retire')"
        )


def _give_back_missing() -> None:
    """Ids reported missing leave the acknowledged bitmap and wait for their retry."""
    connection = op.get_bind()
    rows = connection.execute(
        sa.select(_STATE.c.id, _STATE.c.acked, _STATE.c.missing).where(
            _STATE.c.missing.is_not(None)
        )
    ).all()
    for state_id, acked_bytes, missing_bytes in rows:
        missing = decode(missing_bytes)
        if not missing:
            continue
        acked = decode(acked_bytes) - missing if acked_bytes else None
        connection.execute(
            _STATE.update()
            .where(_STATE.c.id == state_id)
            .values(
                acked=encode(acked) if acked is not None else None,
                acked_count=len(acked) if acked is not None else 0,
                missing_attempts=1,
            )
        )


def downgrade() -> None:
    """Drop retire runs and the retry columns; ids still missing count as acknowledged
    again, as before this revision."""
    if op.get_context().as_sql:
        raise NotImplementedError("revision 0009 downgrades online only (it rewrites bitmaps)")
    connection = op.get_bind()
    run = sa.table("sync_run", sa.column("id"), sa.column("kind"))
    batch = sa.table("sync_batch", sa.column("run_id"))
    retired = sa.select(run.c.id).where(run.c.kind == "retire")
    connection.execute(batch.delete().where(batch.c.run_id.in_(retired)))
    connection.execute(run.delete().where(run.c.kind == "retire"))
    with op.batch_alter_table("sync_run", schema=None) as batch_op:
        batch_op.drop_constraint(op.f("ck_sync_run_kind"), type_="check")
        batch_op.create_check_constraint(op.f("ck_sync_run_kind"), "kind IN ('diff', 'resync')")

    rows = connection.execute(
        sa.select(_STATE.c.id, _STATE.c.acked, _STATE.c.missing).where(
            _STATE.c.missing.is_not(None)
        )
    ).all()
    for state_id, acked_bytes, missing_bytes in rows:
        missing = decode(missing_bytes)
        if not missing:
            continue
        acked = (decode(acked_bytes) if acked_bytes else missing.__class__()) | missing
        connection.execute(
            _STATE.update()
            .where(_STATE.c.id == state_id)
            .values(acked=encode(acked), acked_count=len(acked))
        )
    with op.batch_alter_table("sync_state", schema=None) as batch_op:
        batch_op.drop_column("missing_result_id")
        batch_op.drop_column("missing_retry_at")
        batch_op.drop_column("missing_attempts")
