"""Store functions of experiments, their holdouts and the learnings library.

Keyword-only after the session, never committing: the use case owns the transaction.

:func:`holdout_bitmap` is the seam for membership syncs: the dense ids of a segment's
members that are held out in a snapshot, which a destination must never receive.
"""

from __future__ import annotations

from datetime import datetime

from pyroaring import BitMap
from sqlalchemy import or_
from sqlmodel import Session, select

from segments import membership
from store.models import (
    Experiment,
    ExperimentHoldout,
    Learning,
    LearningNote,
    SegmentResult,
    Snapshot,
)


def running_experiments(session: Session, *, segment_id: int | None = None) -> list[Experiment]:
    """Running experiments, oldest first (of one segment when ``segment_id`` is given)."""
    query = select(Experiment).where(Experiment.status == "running")
    if segment_id is not None:
        query = query.where(Experiment.segment_id == segment_id)
    return list(session.exec(query.order_by(Experiment.id)).all())  # type: ignore[arg-type]


def experiments_of(session: Session, *, segment_id: int) -> list[Experiment]:
    """Every experiment of a segment, newest first."""
    return list(
        session.exec(
            select(Experiment)
            .where(Experiment.segment_id == segment_id)
            .order_by(Experiment.id.desc())  # type: ignore[union-attr]
        ).all()
    )


def add_holdout(
    session: Session, *, experiment: Experiment, result: SegmentResult, held: BitMap
) -> ExperimentHoldout:
    """Store the held-out members of one published result."""
    row = ExperimentHoldout(
        experiment_id=experiment.id,
        snapshot_id=result.snapshot_id,
        result_id=result.id,
        members=result.size,
        held_out=len(held),
        bitmap=membership.encode(held),
    )
    session.add(row)
    session.flush()
    return row


def holdout_bitmap(session: Session, *, segment_id: int, snapshot_id: int | None = None) -> BitMap:
    """Dense ids held out of the segment in ``snapshot_id`` (its current result's snapshot
    when None), over every experiment that was running then; empty when none was."""
    if snapshot_id is None:
        row = session.exec(
            select(SegmentResult.snapshot_id)
            .join(Experiment, Experiment.segment_id == SegmentResult.segment_id)
            .where(SegmentResult.segment_id == segment_id, SegmentResult.status == "published")
            .order_by(SegmentResult.id.desc())  # type: ignore[union-attr]
        ).first()
        if row is None:
            return BitMap()
        snapshot_id = row
    held = BitMap()
    rows = session.exec(
        select(ExperimentHoldout.bitmap)
        .join(Experiment, Experiment.id == ExperimentHoldout.experiment_id)
        .where(Experiment.segment_id == segment_id, ExperimentHoldout.snapshot_id == snapshot_id)
    ).all()
    for blob in rows:
        held |= membership.decode(blob)
    return held


def holdout_rows(session: Session, *, experiment_id: int) -> list[tuple[ExperimentHoldout, str]]:
    """(holdout, as_of) of an experiment, oldest snapshot first."""
    rows = session.exec(
        select(ExperimentHoldout, Snapshot.as_of)
        .join(Snapshot, Snapshot.id == ExperimentHoldout.snapshot_id)
        .where(ExperimentHoldout.experiment_id == experiment_id)
        .order_by(Snapshot.as_of, ExperimentHoldout.id)  # type: ignore[arg-type]
    ).all()
    return [(row, as_of.isoformat()) for row, as_of in rows]


def add_learning(session: Session, *, learning: Learning) -> Learning:
    session.add(learning)
    session.flush()
    return learning


def find_learnings(
    session: Session,
    *,
    segment_id: int | None = None,
    words: list[str] | None = None,
    since: datetime | None = None,
    limit: int = 20,
) -> list[Learning]:
    """Learnings, newest first: of a segment, matching every word (title, reason or
    effect, case-insensitive), created after ``since``."""
    query = select(Learning)
    if segment_id is not None:
        query = query.where(Learning.segment_id == segment_id)
    for word in words or []:
        pattern = f"%{word.lower()}%"
        query = query.where(
            or_(
                Learning.title.ilike(pattern),  # type: ignore[attr-defined]
                Learning.reason.ilike(pattern),  # type: ignore[union-attr]
                Learning.effect_text.ilike(pattern),  # type: ignore[union-attr]
            )
        )
    if since is not None:
        query = query.where(
            or_(Learning.created_at > since, Learning.closed_on >= since.date())  # type: ignore[operator]
        )
    return list(
        session.exec(query.order_by(Learning.id.desc()).limit(limit)).all()  # type: ignore[union-attr]
    )


def open_learnings(session: Session) -> list[Learning]:
    """Learnings with a hypothesis whose effect is not recorded yet, oldest first."""
    rows = session.exec(
        select(Learning).where(Learning.verdict.is_(None)).order_by(Learning.id)  # type: ignore[union-attr]
    ).all()
    return [row for row in rows if row.hypothesis]


def notes_of(session: Session, *, learning_id: int) -> list[LearningNote]:
    return list(
        session.exec(
            select(LearningNote)
            .where(LearningNote.learning_id == learning_id)
            .order_by(LearningNote.id)  # type: ignore[arg-type]
        ).all()
    )


def add_note(session: Session, *, learning_id: int, author: str, text: str) -> LearningNote:
    note = LearningNote(learning_id=learning_id, author=author, text=text)
    session.add(note)
    session.flush()
    return note
