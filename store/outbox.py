"""Store functions of ``outbox_message``: queueing a message once per idempotency key
(:func:`add_message`), and for the delivery loop (see :mod:`bot.delivery`) the due
rows, the compare-and-set that claims and marks a row, the thread-root lookup, and
killing a row with its fallback DM. Every function takes the caller's ``Session``
and never commits; the caller owns the transaction.
"""

from __future__ import annotations

from collections.abc import Collection, Sequence
from datetime import datetime
from typing import Any

from sqlalchemy import select, update
from sqlmodel import Session

from store.models import OutboxMessage

DUE_STATUSES = ("pending", "sending")
THREAD_DEPTH = 10


def due_ids(
    session: Session, *, now: datetime, limit: int, exclude: Collection[int] = ()
) -> list[int]:
    """Ids of up to ``limit`` due rows (pending or sending, due by ``now``) in id order."""
    query = (
        select(OutboxMessage.id)
        .where(
            OutboxMessage.status.in_(DUE_STATUSES),  # type: ignore[attr-defined]
            OutboxMessage.next_attempt_at <= now,
        )
        .order_by(OutboxMessage.id)  # type: ignore[arg-type]
        .limit(limit + len(exclude))
    )
    ids = [i for i in session.execute(query).scalars() if i not in exclude]
    return ids[:limit]


def find_due(session: Session, *, row_id: int, now: datetime) -> OutboxMessage | None:
    """The row ``row_id`` if it is still due by ``now``, else None."""
    found = session.get(OutboxMessage, row_id)
    if found is None or found.status not in DUE_STATUSES or found.next_attempt_at > now:
        return None
    return found


def compare_and_set(
    session: Session, *, row_id: int, status: str, attempts: int, values: dict[str, Any]
) -> bool:
    """Set ``values`` if the row is still at (``status``, ``attempts``); whether it was."""
    result = session.execute(
        update(OutboxMessage)
        .where(
            OutboxMessage.id == row_id,
            OutboxMessage.status == status,
            OutboxMessage.attempts == attempts,
        )
        .values(**values)
    )
    return result.rowcount == 1


def thread_root(session: Session, *, thread_key: str) -> tuple[str | None, datetime | None]:
    """(thread root ``ts`` of the referenced message, when to look again if unsent).

    A missing or dead parent yields no thread: the reply is posted on its own.
    """
    key: str | None = thread_key
    ts: str | None = None
    for _ in range(THREAD_DEPTH):
        if key is None:
            break
        parent = session.execute(
            select(OutboxMessage).where(OutboxMessage.idempotency_key == key)
        ).scalar_one_or_none()
        if parent is None or parent.status == "dead":
            break
        if parent.status != "sent" or not parent.ts:
            return None, parent.next_attempt_at
        ts, key = parent.ts, parent.thread_key
    return ts, None


EDIT_TS = "ts:"
EDIT_KEY = "key:"


def edit_target(
    session: Session, *, edits: str, channel: str
) -> tuple[tuple[str, str] | None, datetime | None]:
    """((channel, ts) of the message an edit row replaces, when to look again if unsent).

    ``edits`` is ``ts:<ts>`` (a message in ``channel``) or ``key:<idempotency key>`` (the
    message that outbox row posted). A missing or dead row, or an unknown form, yields
    neither: there is nothing to edit.
    """
    if edits.startswith(EDIT_TS):
        return (channel, edits.removeprefix(EDIT_TS)), None
    if not edits.startswith(EDIT_KEY):
        return None, None
    parent = session.execute(
        select(OutboxMessage).where(OutboxMessage.idempotency_key == edits.removeprefix(EDIT_KEY))
    ).scalar_one_or_none()
    if parent is None or parent.status == "dead":
        return None, None
    if parent.status != "sent" or not parent.ts:
        return None, parent.next_attempt_at
    return (parent.channel, parent.ts), None


def add_edit(
    session: Session,
    *,
    key: str,
    kind: str,
    channel: str,
    edits: str,
    message: dict[str, Any],
) -> OutboxMessage | None:
    """Queue ``message`` (text and blocks) to replace the message ``edits`` names (see
    :func:`edit_target`) unless ``key`` is queued already; the row added, or None."""
    if is_queued(session, key=key):
        return None
    row = OutboxMessage(
        idempotency_key=key,
        kind=kind,
        channel=channel,
        text=message["text"],
        blocks=message["blocks"],
        files=[],
        fallback_user=None,
        edits=edits,
    )
    session.add(row)
    session.flush()
    return row


def kill(session: Session, *, row_id: int, attempts: int, reason: str) -> bool:
    """Mark the row ``dead`` if it is still ``sending`` at ``attempts``; whether it was."""
    return compare_and_set(
        session,
        row_id=row_id,
        status="sending",
        attempts=attempts,
        values={"status": "dead", "last_error": reason},
    )


def add_fallback(session: Session, *, key: str, channel: str, text: str, now: datetime) -> bool:
    """Queue the ``undeliverable`` DM ``key`` to ``channel`` unless it exists; whether new."""
    exists = session.execute(
        select(OutboxMessage.id).where(OutboxMessage.idempotency_key == key)
    ).first()
    if exists is not None:
        return False
    session.add(
        OutboxMessage(
            idempotency_key=key,
            kind="undeliverable",
            channel=channel,
            text=text,
            blocks=[],
            files=[],
            fallback_user=None,
            next_attempt_at=now,
        )
    )
    return True


def add_message(
    session: Session,
    *,
    key: str,
    kind: str,
    channel: str | None,
    messages: Sequence[dict[str, Any]],
    fallback_user: str | None,
    files: list[dict[str, Any]] | None = None,
    thread_key: str | None = None,
) -> list[OutboxMessage]:
    """Add a (possibly split) message to the outbox; later parts go in the first's thread
    (and the first in the thread of the message ``thread_key``, when given).

    ``channel`` falls back to ``fallback_user`` (a DM); with neither, or when ``key`` is
    already queued, nothing is added. Returns the rows added.
    """
    rows = []
    target = channel or fallback_user
    if target is None:
        return rows
    existing = session.exec(select(OutboxMessage.id).where(OutboxMessage.idempotency_key == key))
    if existing.first() is not None:
        return rows
    for index, message in enumerate(messages):
        row = OutboxMessage(
            idempotency_key=key if index == 0 else f"{key}#{index + 1}",
            kind=kind,
            channel=target,
            thread_key=thread_key if index == 0 else key,
            text=message["text"],
            blocks=message["blocks"],
            files=(files or []) if index == 0 else [],
            fallback_user=fallback_user,
        )
        session.add(row)
        rows.append(row)
    session.flush()
    return rows


def is_queued(session: Session, *, key: str) -> bool:
    """Whether a message with idempotency ``key`` is in the outbox (in any state)."""
    found = session.exec(select(OutboxMessage.id).where(OutboxMessage.idempotency_key == key))
    return found.first() is not None
