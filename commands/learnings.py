"""The learnings library: what each change and experiment was for, and what it did.

An entry is written in the same transaction as what it records:

- every applied change of a segment (a new version other than its creation, or a
  creation that states a hypothesis) by :func:`record_change`, called from
  ``commands.catalog.record_version``: what changed, the hypothesis and reason, who
  decided (the approver, else the author);
- every started experiment by :func:`record_experiment`.

The observed effect is recorded automatically when the window closes
(``commands.experiments.close_due``): the experiment's final readout, or for a change
with a hypothesis but no holdout an observational before/after reading of the KPI
against the control limits of the snapshots before the change, labelled so and never
called lift. People add notes from Slack (``/segment learnings note ID TEXT``) or the
CLI; notes are scrubbed like field feedback.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from datetime import date, datetime, timedelta
from typing import Any

from sqlalchemy import Engine
from sqlmodel import Session, select

from commands.feedback import redact
from commands.lookup import find_segment
from segments.errors import SegopsError
from segments.experiments import observational
from segments.workspace import SegmentDef, Workspace, declared_schema
from store import experiments as store_experiments
from store.db import session_scope
from store.models import Experiment, Learning, Segment, SegmentResult, SegmentVersion, Snapshot

MAX_NOTE = 2000


def _change_title(previous: SegmentDef | None, new: SegmentDef, change_kind: str) -> str:
    if previous is None:
        return f"created {new.name}"
    if change_kind == "archive":
        return f"archived {new.name}"
    if previous.name != new.name:
        return f"renamed {previous.name} -> {new.name}"
    before, after = previous.canonical(), new.canonical()
    if before["rule"] != after["rule"]:
        return f"rule: {before['rule']} -> {after['rule']}"
    changed = sorted(k for k in after if k not in ("hypothesis",) and after[k] != before.get(k))
    return "changed " + (", ".join(changed) if changed else "the hypothesis")


def record_change(
    session: Session,
    *,
    segment: Segment,
    version: SegmentVersion,
    previous: SegmentVersion | None,
    definition: SegmentDef,
) -> Learning | None:
    """The learning of an applied change (None for a plain creation). Does not commit."""
    if previous is None and definition.hypothesis is None:
        return None
    before = SegmentDef.model_validate(previous.definition) if previous is not None else None
    hypothesis = definition.hypothesis.model_dump() if definition.hypothesis else {}
    return store_experiments.add_learning(
        session,
        learning=Learning(
            segment_id=segment.id,
            kind="change",
            title=_change_title(before, definition, version.change_kind),
            hypothesis=hypothesis,
            reason=version.reason,
            decided_by=version.approver or version.author,
            version_id=version.id,
        ),
    )


def record_experiment(session: Session, *, experiment: Experiment, segment: Segment) -> Learning:
    """The learning of a started experiment. Does not commit."""
    what = (
        f"experiment on {segment.name}: {experiment.holdout_share:.0%} holdout, "
        f"{experiment.kpi} expected to {experiment.direction} by {experiment.mde:.0%} "
        f"within {experiment.window_days} days"
    )
    return store_experiments.add_learning(
        session,
        learning=Learning(
            segment_id=segment.id,
            kind="experiment",
            title=what,
            hypothesis={
                "kpi": experiment.kpi,
                "direction": experiment.direction,
                "mde": experiment.mde,
                "window_days": experiment.window_days,
                "kind": experiment.kind,
                "statement": experiment.hypothesis,
            },
            reason=experiment.hypothesis or None,
            decided_by=experiment.started_by,
            version_id=experiment.version_id,
            experiment_id=experiment.id,
        ),
    )


def record_effect(
    session: Session,
    *,
    learning: Learning,
    effect: dict[str, Any],
    text: str,
    verdict: str,
    closed_on: date,
) -> None:
    """Write the observed effect into a learning. Does not commit."""
    learning.effect = effect
    learning.effect_text = text
    learning.verdict = verdict  # type: ignore[assignment]
    learning.closed_on = closed_on
    session.add(learning)
    session.flush()


def _kpi_mean(result: SegmentResult, column: str) -> float | None:
    stats = result.stats or {}
    value = ((stats.get("kpis") or {}).get(column) or {}).get("value")
    if value is None:
        value = (((stats.get("profile") or {}).get("columns") or {}).get(column) or {}).get("mean")
    return float(value) if value is not None else None


def close_change_windows(engine: Engine, ws: Workspace, *, as_of: date) -> int:
    """Record an observational reading for every change whose hypothesis window has
    passed by ``as_of``; how many were recorded."""
    schema = declared_schema(ws)
    recorded = 0
    with session_scope(engine) as session:
        for learning in store_experiments.open_learnings(session):
            if learning.kind != "change" or learning.version_id is None:
                continue
            rows = session.exec(
                select(SegmentResult, Snapshot.as_of)
                .join(Snapshot, Snapshot.id == SegmentResult.snapshot_id)
                .where(
                    SegmentResult.segment_id == learning.segment_id,
                    SegmentResult.status == "published",
                    Snapshot.as_of <= as_of,
                )
                .order_by(Snapshot.as_of, SegmentResult.id)  # type: ignore[arg-type]
            ).all()
            after = [(r, d) for r, d in rows if r.version_id == learning.version_id]
            if not after:
                continue
            window = int(learning.hypothesis.get("window_days") or 0)
            if after[-1][1] < after[0][1] + timedelta(days=window):
                continue
            try:
                column = schema.resolve(learning.hypothesis["kpi"])
            except SegopsError:
                continue
            before = [
                _kpi_mean(r, column)
                for r, _d in rows
                if r.version_id is not None and r.version_id < learning.version_id
            ]
            now = _kpi_mean(after[-1][0], column)
            if now is None:
                continue
            kpi = learning.hypothesis["kpi"]
            try:
                reading = observational([b for b in before if b is not None], now)
            except SegopsError as exc:
                record_effect(
                    session,
                    learning=learning,
                    effect={"label": "observational", "after": now},
                    text=f"observational, no holdout: {kpi} now {now:.4g}; {exc}",
                    verdict="observational",
                    closed_on=as_of,
                )
                recorded += 1
                continue
            where = "outside" if reading.outside_limits else "within"
            text = (
                f"observational, no holdout: {kpi} {reading.before_mean:.4g} -> {now:.4g} "
                f"({reading.change:+.4g}), {where} the control limits "
                f"{reading.lower_limit:.4g} to {reading.upper_limit:.4g} of "
                f"{reading.before_points} snapshots before"
            )
            record_effect(
                session,
                learning=learning,
                effect=reading.to_dict(),
                text=text,
                verdict="observational",
                closed_on=as_of,
            )
            recorded += 1
    return recorded


@dataclass
class LearningView:
    id: int
    segment: str | None
    kind: str
    title: str
    hypothesis: dict[str, Any]
    reason: str | None
    decided_by: str | None
    effect_text: str | None
    verdict: str | None
    closed_on: str | None
    created_at: str
    notes: list[dict[str, Any]] = field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @property
    def line(self) -> str:
        """One line for lists and briefs."""
        effect = self.effect_text or "effect pending"
        return f"#{self.id} {self.title}: {effect}"


def _view(session: Session, row: Learning, *, notes: bool = False) -> LearningView:
    segment = session.get(Segment, row.segment_id) if row.segment_id else None
    view = LearningView(
        id=row.id,
        segment=segment.name if segment else None,
        kind=row.kind,
        title=row.title,
        hypothesis=row.hypothesis,
        reason=row.reason,
        decided_by=row.decided_by,
        effect_text=row.effect_text,
        verdict=row.verdict,
        closed_on=row.closed_on.isoformat() if row.closed_on else None,
        created_at=row.created_at.isoformat(),
    )
    if notes:
        view.notes = [
            {"author": n.author, "text": n.text, "created_at": n.created_at.isoformat()}
            for n in store_experiments.notes_of(session, learning_id=row.id)
        ]
    return view


def list_learnings(
    engine: Engine,
    *,
    segment: str | None = None,
    words: list[str] | None = None,
    since: datetime | None = None,
    limit: int = 20,
) -> list[LearningView]:
    """Learnings, newest first, of a segment or matching every search word."""
    with session_scope(engine) as session:
        segment_id = find_segment(session, segment).id if segment else None
        rows = store_experiments.find_learnings(
            session, segment_id=segment_id, words=words, since=since, limit=limit
        )
        return [_view(session, r) for r in rows]


def search(engine: Engine, text: str, *, limit: int = 10) -> list[LearningView]:
    """``text`` names a segment (its learnings) or holds search words."""
    words = [w for w in (text or "").split() if w]
    if not words:
        return list_learnings(engine, limit=limit)
    with session_scope(engine) as session:
        from store.catalog import segment_by_name

        named = segment_by_name(session, name=words[0].lower()) if len(words) == 1 else None
    if named is not None:
        return list_learnings(engine, segment=named.name, limit=limit)
    return list_learnings(engine, words=words, limit=limit)


def show_learning(engine: Engine, learning_id: int) -> LearningView:
    with session_scope(engine) as session:
        row = session.get(Learning, learning_id)
        if row is None:
            raise SegopsError(f"no learning #{learning_id}")
        return _view(session, row, notes=True)


def add_note(engine: Engine, learning_id: int, *, author: str, text: str) -> LearningView:
    """Add a note (scrubbed of e-mails, phones and cards) to a learning."""
    text = redact((text or "").strip())
    if not text:
        raise SegopsError("the note is empty")
    if len(text) > MAX_NOTE:
        raise SegopsError(f"the note is too long ({len(text)} characters, at most {MAX_NOTE})")
    with session_scope(engine) as session:
        if session.get(Learning, learning_id) is None:
            raise SegopsError(f"no learning #{learning_id}")
        store_experiments.add_note(session, learning_id=learning_id, author=author, text=text)
    return show_learning(engine, learning_id)


def brief_learnings(session: Session, segment: Segment, *, limit: int = 3) -> list[dict[str, Any]]:
    """The learnings a brief cites: the segment's newest, as template context."""
    rows = store_experiments.find_learnings(session, segment_id=segment.id, limit=limit)
    return [
        {
            "id": r.id,
            "kind": r.kind,
            "title": r.title,
            "effect": r.effect_text,
            "verdict": r.verdict,
            "closed_on": r.closed_on.isoformat() if r.closed_on else None,
        }
        for r in rows
    ]
