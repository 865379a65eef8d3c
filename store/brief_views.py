"""Store functions of ``brief_view``: when a person last read a segment's brief, and what
it showed them. Keyword-only after the session, never committing."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy.dialects import postgresql, sqlite
from sqlmodel import Session, select

from store.models import BriefView


def last_view(session: Session, *, user_id: str, segment_id: int) -> BriefView | None:
    """The person's last read of the segment's brief, or None before the first."""
    return session.exec(
        select(BriefView).where(BriefView.user_id == user_id, BriefView.segment_id == segment_id)
    ).first()


def record_view(
    session: Session,
    *,
    user_id: str,
    segment_id: int,
    result_id: int | None,
    size: int | None,
    version: int,
    seen_at: datetime,
) -> None:
    """Remember this read, replacing the person's earlier one of the segment (one
    statement, so two reads at once leave one row)."""
    connection = session.connection()
    dialect = postgresql if connection.dialect.name == "postgresql" else sqlite
    values = {"result_id": result_id, "size": size, "version": version, "seen_at": seen_at}
    stmt = dialect.insert(BriefView).values(user_id=user_id, segment_id=segment_id, **values)
    connection.execute(
        stmt.on_conflict_do_update(index_elements=["user_id", "segment_id"], set_=values)
    )
