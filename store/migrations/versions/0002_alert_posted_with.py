"""Drift alerts remember the message they were posted in (``details.posted_with``).

Data only: for every queued drift-alert message, the alert ids its buttons name are
written into each of those alerts' ``details`` as ``posted_with``, so the message can
be re-rendered after a click without reading the stored Block Kit again.

Revision ID: 0002
Revises: 0001
Create Date: 2026-12-02
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from typing import Any

import sqlalchemy as sa
from alembic import op

revision: str = "0002"
down_revision: str | Sequence[str] | None = "0001"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

BUTTONS = ("alert_ack", "alert_propose", "alert_mute")
KEY = "posted_with"

outbox = sa.table(
    "outbox_message",
    sa.column("idempotency_key", sa.String),
    sa.column("kind", sa.String),
    sa.column("blocks", sa.JSON),
)
alert = sa.table("alert", sa.column("id", sa.Integer), sa.column("details", sa.JSON))


def _loaded(value: Any) -> Any:
    return json.loads(value) if isinstance(value, str) else value


def _button_ids(blocks: list[dict[str, Any]]) -> set[int]:
    ids: set[int] = set()
    for block in blocks or []:
        for element in block.get("elements") or []:
            value = str(element.get("value") or "")
            if element.get("action_id") in BUTTONS and value.isdigit():
                ids.add(int(value))
    return ids


def upgrade() -> None:
    """Backfill ``posted_with`` from the queued drift-alert messages."""
    if op.get_context().as_sql:  # offline SQL scripts carry the schema, not data backfills
        return
    bind = op.get_bind()
    by_message: dict[str, set[int]] = {}
    rows = bind.execute(
        sa.select(outbox.c.idempotency_key, outbox.c.blocks).where(outbox.c.kind == "drift_alert")
    )
    for key, blocks in rows:
        by_message.setdefault(key.split("#", 1)[0], set()).update(_button_ids(_loaded(blocks)))
    for ids in by_message.values():
        shown = sorted(ids)
        found = bind.execute(
            sa.select(alert.c.id, alert.c.details).where(alert.c.id.in_(shown))
        ).all()
        for alert_id, details in found:
            kept = {**(_loaded(details) or {}), KEY: shown}
            bind.execute(sa.update(alert).where(alert.c.id == alert_id).values(details=kept))


def downgrade() -> None:
    """Drop ``posted_with`` again (0001 reads the stored Block Kit)."""
    if op.get_context().as_sql:
        return
    bind = op.get_bind()
    for alert_id, details in bind.execute(sa.select(alert.c.id, alert.c.details)).all():
        details = _loaded(details)
        if isinstance(details, dict) and KEY in details:
            kept = {k: v for k, v in details.items() if k != KEY}
            bind.execute(sa.update(alert).where(alert.c.id == alert_id).values(details=kept))
