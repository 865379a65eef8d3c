"""Holdout experiments on segments: plan, start, hold out on every refresh, read out.

A segment declares ``experiment:`` in the workspace (KPI, direction, minimum detectable
effect, window, holdout share). The life of one experiment:

1. :func:`plan` measures the KPI among the segment's current members and computes the
   sample size the declared effect needs (:mod:`segments.experiments.plan`).
2. :func:`start` refuses, with the numbers, when the segment is too small; otherwise it
   records the experiment on the segment's current published result (its *cohort*: the
   members on the start day) and that result's holdout.
3. Every refresh that publishes the segment stores the held-out members of the new
   result (:func:`record_holdouts`, inside the refresh's transaction), so a destination
   can leave them out through :func:`holdout_ids` (``store.experiments.holdout_bitmap``
   with the session) and never sends them the action.
4. :func:`readout` compares the cohort's treatment and holdout on the KPI as of a day:
   the always-valid interval while the window runs, the fixed-horizon result from its
   planned end; the ratio check blocks it when the split is off. The readout of the
   cohort fixed at the start is the intent-to-treat comparison: members who leave the
   segment later still count on the side they were assigned.
5. :func:`close_due` reads out every experiment whose window has closed and records the
   effect in its learning; it also closes the windows of changes that stated a
   hypothesis (an observational before/after reading, never called lift).
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from datetime import UTC, date, datetime, timedelta
from typing import Any

import numpy as np
import pandas as pd
from pyroaring import BitMap
from sqlalchemy import Engine
from sqlmodel import Session, select

from commands.learnings import close_change_windows, record_effect, record_experiment
from commands.lookup import current_definition, find_segment
from segments import membership, sources
from segments.errors import SegopsError
from segments.experiments import (
    adjust_pvalues,
    compare,
    holdout_mask,
    plan_experiment,
    sample_ratio,
)
from segments.experiments.plan import Plan
from segments.workspace import ExperimentConfig, Workspace
from store import experiments as store_experiments
from store.db import session_scope
from store.entities import entity_keys
from store.models import Experiment, Learning, Segment, SegmentResult, Snapshot


def _config(session: Session, segment: Segment) -> ExperimentConfig:
    definition = current_definition(session, segment)
    if definition.experiment is None:
        raise SegopsError(
            f"segment '{segment.name}' declares no experiment: add 'experiment:' with kpi, "
            "direction, mde and window_days to its definition and apply"
        )
    return definition.experiment


def _current(session: Session, segment: Segment) -> tuple[SegmentResult, Snapshot]:
    result = (
        session.get(SegmentResult, segment.current_result_id) if segment.current_result_id else None
    )
    if result is None or not result.bitmap:
        raise SegopsError(
            f"segment '{segment.name}' has no published members yet: refresh it before "
            "planning an experiment"
        )
    return result, session.get(Snapshot, result.snapshot_id)


def _member_keys(session: Session, result: SegmentResult) -> pd.Index:
    ids = membership.to_ids(membership.decode(result.bitmap)).astype(np.int64)
    return entity_keys(session)[ids]


def _kpi_table(ws: Workspace, kpis: list[str], day: date, keys: pd.Index) -> dict[str, np.ndarray]:
    """Each KPI of each key as of ``day`` (NaN for keys no longer in the data), from one
    load of the sources."""
    dataset = sources.load_dataset(ws, as_of=day)
    out = {}
    for kpi in kpis:
        values = dataset.frame[dataset.schema.resolve(kpi)].reindex(keys)
        out[kpi] = pd.to_numeric(values, errors="coerce").to_numpy(dtype=np.float64)
    return out


def _kpi_values(ws: Workspace, kpi: str, day: date, keys: pd.Index) -> np.ndarray:
    return _kpi_table(ws, [kpi], day, keys)[kpi]


def _plain(value: Any) -> Any:
    """JSON-safe: non-finite floats (an undefined lift) become None, numpy scalars Python."""
    if isinstance(value, dict):
        return {str(k): _plain(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_plain(v) for v in value]
    if isinstance(value, np.generic):
        value = value.item()
    if isinstance(value, float) and not np.isfinite(value):
        return None
    return value


def _salt(segment: Segment, config: ExperimentConfig, started_on: date) -> str:
    return config.salt or f"{segment.name}:{started_on.isoformat()}"


@dataclass
class ExperimentView:
    """An experiment as the CLI, Slack and the agenda show it."""

    id: int
    segment: str
    kpi: str
    kind: str
    direction: str
    mde: float
    holdout_share: float
    window_days: int
    started_on: str
    ends_on: str
    status: str
    started_by: str
    hypothesis: str
    plan: dict[str, Any]
    readout: dict[str, Any] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def _view(experiment: Experiment, segment: Segment) -> ExperimentView:
    return ExperimentView(
        id=experiment.id,
        segment=segment.name,
        kpi=experiment.kpi,
        kind=experiment.kind,
        direction=experiment.direction,
        mde=experiment.mde,
        holdout_share=experiment.holdout_share,
        window_days=experiment.window_days,
        started_on=experiment.started_on.isoformat(),
        ends_on=experiment.ends_on.isoformat(),
        status=experiment.status,
        started_by=experiment.started_by,
        hypothesis=experiment.hypothesis,
        plan=experiment.plan,
        readout=experiment.readout,
    )


def plan(engine: Engine, ws: Workspace, segment: str) -> Plan:
    """The sample size the segment's declared experiment needs, and what it has."""
    with session_scope(engine) as session:
        row = find_segment(session, segment)
        config = _config(session, row)
        result, snapshot = _current(session, row)
        keys = _member_keys(session, result)
        day = snapshot.as_of
    values = _kpi_values(ws, config.kpi, day, keys)
    values = values[~np.isnan(values)]
    if len(values) < 2:
        raise SegopsError(f"segment '{segment}' has fewer than 2 members with a {config.kpi!r}")
    baseline = float(values.mean())
    if config.kind == "proportion" and not set(np.unique(values)) <= {0.0, 1.0}:
        raise SegopsError(
            f"KPI {config.kpi!r} is not 0/1 among the members: declare kind: mean for it"
        )
    return plan_experiment(
        kind=config.kind,
        baseline=baseline,
        sd=float(values.std(ddof=1)),
        mde=config.mde if config.direction == "increase" else -config.mde,
        share=config.holdout,
        available=len(keys),
    )


def start(engine: Engine, ws: Workspace, segment: str, *, by: str) -> ExperimentView:
    """Start the segment's declared experiment on its current members.

    Refused (nothing written) when one is running already, or when the plan needs more
    entities than the segment has.
    """
    planned = plan(engine, ws, segment)
    if not planned.enough:
        raise SegopsError(planned.shortfall(segment))
    with session_scope(engine) as session:
        row = find_segment(session, segment)
        if store_experiments.running_experiments(session, segment_id=row.id):
            raise SegopsError(f"an experiment is already running on segment '{row.name}'")
        config = _config(session, row)
        result, snapshot = _current(session, row)
        started_on = snapshot.as_of
        experiment = Experiment(
            segment_id=row.id,
            version_id=row.current_version_id,
            salt=_salt(row, config, started_on),
            kpi=config.kpi,
            kind=config.kind,
            direction=config.direction,
            mde=config.mde,
            window_days=config.window_days,
            holdout_share=config.holdout,
            also=list(config.also),
            correction=config.correction,
            hypothesis=config.statement,
            started_on=started_on,
            ends_on=started_on + timedelta(days=config.window_days),
            start_result_id=result.id,
            started_by=by,
            plan=_plain(planned.to_dict()),
        )
        session.add(experiment)
        session.flush()
        keys = _member_keys(session, result)
        ids = membership.to_ids(membership.decode(result.bitmap))
        held = holdout_mask(keys, salt=experiment.salt, share=experiment.holdout_share)
        store_experiments.add_holdout(
            session, experiment=experiment, result=result, held=membership.to_bitmap(ids[held])
        )
        record_experiment(session, experiment=experiment, segment=row)
        return _view(experiment, row)


def record_holdouts(
    session: Session,
    *,
    snapshot: Snapshot,
    keys: pd.Index,
    ids: np.ndarray,
    masks: dict[str, np.ndarray],
) -> int:
    """Store the held-out members of every running experiment's segment published in
    ``snapshot`` (in the refresh's transaction); how many holdouts were stored."""
    stored = 0
    for experiment in store_experiments.running_experiments(session):
        segment = session.get(Segment, experiment.segment_id)
        result = session.exec(
            select(SegmentResult).where(
                SegmentResult.snapshot_id == snapshot.id,
                SegmentResult.segment_id == experiment.segment_id,
                SegmentResult.status == "published",
            )
        ).first()
        if result is None or segment is None or segment.name not in masks:
            continue
        mask = masks[segment.name]
        held = holdout_mask(keys[mask], salt=experiment.salt, share=experiment.holdout_share)
        store_experiments.add_holdout(
            session,
            experiment=experiment,
            result=result,
            held=membership.to_bitmap(ids[mask][held]),
        )
        stored += 1
    return stored


def holdout_ids(engine: Engine, segment: str, *, snapshot_id: int | None = None) -> BitMap:
    """Dense ids of the segment's held-out members in a snapshot (its latest when None):
    what a membership sync must leave out."""
    with session_scope(engine) as session:
        row = find_segment(session, segment)
        return store_experiments.holdout_bitmap(session, segment_id=row.id, snapshot_id=snapshot_id)


def _find(session: Session, segment: str | None, experiment_id: int | None) -> Experiment:
    if experiment_id is not None:
        found = session.get(Experiment, experiment_id)
        if found is None:
            raise SegopsError(f"no experiment #{experiment_id}")
        return found
    row = find_segment(session, segment or "")
    mine = store_experiments.experiments_of(session, segment_id=row.id)
    if not mine:
        raise SegopsError(f"segment '{row.name}' has no experiment: start one first")
    return mine[0]


def _latest_day(session: Session) -> date | None:
    return session.exec(
        select(Snapshot.as_of).order_by(Snapshot.as_of.desc())  # type: ignore[attr-defined]
    ).first()


def _verdict(direction: str, low: float, high: float, final: bool) -> str:
    if low > 0 or high < 0:
        good = (low > 0) == (direction == "increase")
        if final:
            return "validated" if good else "refuted"
        return "ahead" if good else "behind"
    return "inconclusive" if final else "no call yet"


def effect_text(kind: str, kpi: str, diff: float, low: float, high: float) -> str:
    """``churn -4.1 pts ± 1.8`` for a proportion, ``logins_30d +1.62 ± 0.40`` for a mean."""
    half = (high - low) / 2
    if kind == "proportion":
        return f"{kpi} {diff * 100:+.1f} pts ± {half * 100:.1f}"
    return f"{kpi} {diff:+.2f} ± {half:.2f}"


@dataclass
class Readout:
    """One readout of an experiment as of a day."""

    experiment_id: int
    segment: str
    as_of: str
    phase: str  # "interim" (always-valid interval) or "final" (fixed horizon)
    day: int
    window_days: int
    ratio: dict[str, Any]
    blocked: str | None
    kpis: list[dict[str, Any]]
    verdict: str | None
    summary: str

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def readout(
    engine: Engine,
    ws: Workspace,
    *,
    segment: str | None = None,
    experiment_id: int | None = None,
    as_of: date | None = None,
) -> Readout:
    """Treatment against holdout on the experiment's KPIs as of ``as_of`` (the newest
    snapshot's day when None). SegopsError before any data after the start."""
    with session_scope(engine) as session:
        experiment = _find(session, segment, experiment_id)
        row = session.get(Segment, experiment.segment_id)
        day = as_of or _latest_day(session)
        if day is None or day <= experiment.started_on:
            raise SegopsError(
                f"experiment #{experiment.id} on '{row.name}' started on "
                f"{experiment.started_on}: there is no data after that day to read out yet"
            )
        start_result = session.get(SegmentResult, experiment.start_result_id)
        keys = _member_keys(session, start_result)
    held = holdout_mask(keys, salt=experiment.salt, share=experiment.holdout_share)
    final = day >= experiment.ends_on
    phase = "final" if final else "interim"
    elapsed = (day - experiment.started_on).days
    kpis = [experiment.kpi, *experiment.also]
    pre_values = _kpi_table(ws, kpis, experiment.started_on, keys)
    now_values = _kpi_table(ws, kpis, day, keys)
    present = ~np.isnan(now_values[experiment.kpi])
    n_t, n_h = int((present & ~held).sum()), int((present & held).sum())
    ratio = sample_ratio(n_t, n_h, share=experiment.holdout_share)
    base = {
        "experiment_id": experiment.id,
        "segment": row.name,
        "as_of": day.isoformat(),
        "phase": phase,
        "day": elapsed,
        "window_days": experiment.window_days,
        "ratio": ratio.to_dict(),
    }
    if ratio.mismatch:
        return Readout(
            **base, blocked=ratio.message(), kpis=[], verdict=None, summary=ratio.message()
        )
    planned_n = float(experiment.plan.get("needed") or (n_t + n_h))
    rows: list[dict[str, Any]] = []
    for kpi in kpis:
        y = now_values[kpi][present]
        x = pre_values[kpi][present]
        x_known = ~np.isnan(x)
        use_cuped = x_known.any() and np.nanvar(x) > 0
        x = np.where(x_known, x, np.nanmean(x) if x_known.any() else 0.0)
        result = compare(
            y[~held[present]],
            y[held[present]],
            treatment_pre=x[~held[present]] if use_cuped else None,
            holdout_pre=x[held[present]] if use_cuped else None,
            planned_n=planned_n,
        )
        data = result.to_dict()
        low, high = (
            (data["diff_low"], data["diff_high"])
            if final
            else (data["seq_diff_low"], data["seq_diff_high"])
        )
        lift_low, lift_high = (
            (data["lift_low"], data["lift_high"])
            if final
            else (data["seq_lift_low"], data["seq_lift_high"])
        )
        rows.append(
            {
                "kpi": kpi,
                "primary": kpi == experiment.kpi,
                "interval": [low, high],
                "lift_interval": [lift_low, lift_high],
                "effect": effect_text(experiment.kind, kpi, data["diff"], low, high),
                **data,
            }
        )
    adjusted, reject = adjust_pvalues(
        [r["p_value"] for r in rows],
        method=experiment.correction,  # type: ignore[arg-type]
    )
    for item, p, keep in zip(rows, adjusted, reject, strict=True):
        item["adjusted_p"] = p
        item["significant_after_correction"] = keep
    primary = rows[0]
    low, high = primary["interval"]
    verdict = _verdict(experiment.direction, low, high, final)
    if (
        final
        and len(rows) > 1
        and verdict != "inconclusive"
        and not primary["significant_after_correction"]
    ):
        verdict = "inconclusive"
    lift = primary["lift"]
    interval = "95% CI" if final else "always-valid 95%"
    low_lift, high_lift = primary["lift_interval"]
    relative = (
        f"relative {lift:+.1%} [{low_lift:+.1%}, {high_lift:+.1%}]"
        if np.isfinite([lift, low_lift, high_lift]).all()
        else "relative change undefined (the holdout's mean is 0)"
    )
    summary = (
        f"{primary['effect']} ({interval}), {relative}, "
        f"{n_t:,} treated vs {n_h:,} held out, day {elapsed} of {experiment.window_days}: "
        f"{verdict}"
    )
    return Readout(**base, blocked=None, kpis=rows, verdict=verdict, summary=summary)


def close_due(engine: Engine, ws: Workspace, *, as_of: date | None = None) -> list[Readout]:
    """Read out every running experiment whose window has closed by ``as_of`` (today when
    None), close it and record its effect in its learning; then close the windows of
    changes that stated a hypothesis. Returns the experiments' final readouts."""
    day = as_of or datetime.now(UTC).date()
    with session_scope(engine) as session:
        due = [e.id for e in store_experiments.running_experiments(session) if e.ends_on <= day]
    done: list[Readout] = []
    for experiment_id in due:
        final = readout(engine, ws, experiment_id=experiment_id, as_of=day)
        with session_scope(engine) as session:
            experiment = session.get(Experiment, experiment_id)
            experiment.status = "closed"
            experiment.closed_at = datetime.now(UTC)
            experiment.readout = _plain(final.to_dict())
            session.add(experiment)
            learning = session.exec(
                select(Learning).where(Learning.experiment_id == experiment_id)
            ).first()
            if learning is not None:
                primary = final.kpis[0] if final.kpis else {}
                record_effect(
                    session,
                    learning=learning,
                    effect=_plain(final.to_dict()),
                    text=(primary.get("effect", "") + f", {final.verdict}")
                    if not final.blocked
                    else final.blocked,
                    verdict=final.verdict if not final.blocked else "blocked",
                    closed_on=day,
                )
        done.append(final)
    close_change_windows(engine, ws, as_of=day)
    return done


def stop(engine: Engine, segment: str, *, by: str, reason: str) -> ExperimentView:
    """Stop the segment's running experiment before its window closes: no more holdout
    from the next refresh on, and its learning says who stopped it and why."""
    reason = (reason or "").strip()
    if not reason:
        raise SegopsError("stopping an experiment needs a reason (--reason)")
    with session_scope(engine) as session:
        row = find_segment(session, segment)
        running = store_experiments.running_experiments(session, segment_id=row.id)
        if not running:
            raise SegopsError(f"no experiment is running on segment '{row.name}'")
        experiment = running[0]
        day = _latest_day(session) or experiment.started_on
        experiment.status = "stopped"
        experiment.closed_at = datetime.now(UTC)
        session.add(experiment)
        learning = session.exec(
            select(Learning).where(Learning.experiment_id == experiment.id)
        ).first()
        if learning is not None:
            record_effect(
                session,
                learning=learning,
                effect={"stopped_by": by, "reason": reason},
                text=f"stopped by {by} on day {(day - experiment.started_on).days}: {reason}",
                verdict="inconclusive",
                closed_on=day,
            )
        session.flush()
        return _view(experiment, row)


def list_experiments(engine: Engine, *, segment: str | None = None) -> list[ExperimentView]:
    """Experiments, newest first (of one segment when named)."""
    with session_scope(engine) as session:
        query = select(Experiment, Segment).join(Segment, Segment.id == Experiment.segment_id)
        if segment:
            query = query.where(Experiment.segment_id == find_segment(session, segment).id)
        rows = session.exec(query.order_by(Experiment.id.desc())).all()  # type: ignore[union-attr]
        return [_view(e, s) for e, s in rows]
