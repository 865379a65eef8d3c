"""The quality gate: check a loaded dataset before any segment built on it is published.

``run_gate(dataset, ws, history=[...])`` measures the data once and judges it with the
workspace's and each source's thresholds (``report.checks``). A segment may override
thresholds, so the refresh asks per segment::

    report = run_gate(dataset, ws, history=previous_profiles)   # oldest first
    for seg in ws.segments:
        blocking = report.blocking_for(seg, columns_used={"plan", "logins_30d"},
                                       sources_used={"crm"})
        if blocking: ...  # keep the previous snapshot, alert with each check's message
    store(report.profile)  # becomes part of the next run's history

Checks (``severity`` is ``"critical"`` when a check fails, ``"info"`` when it passes):

``freshness``
    Entity sources with a ``timestamp`` column and every events source: whole days from
    the newest row's day to as_of must not exceed ``max_age_days``. No timestamp fails.
    Entity timestamps more than ``max_future_days`` after as_of (a 2099 typo) are not
    counted and the message says how many there were; when every timestamp is that late
    the export postdates as_of (a refresh of an earlier day) and the check passes.
    Events after as_of are cut by the loader and never count.
``row_count``
    Relative change of the source's rows against the last profile in history that has
    the source must not exceed ``max_row_change``. No history passes.
``null_rate``
    Each frame column: the null share may not rise more than ``max_null_jump`` above the
    median of its past shares; with fewer than ``null_history_min`` past profiles it
    passes. A column that was always sparse stays within its own median and passes.
``duplicates``
    Ids repeated within an entity source (the loader kept the first row), or mapping
    keys pointing at different ids, must not exceed ``max_duplicate_ids``.
``missing_columns``
    A declared (or configured event/value/created/timestamp) column absent from the data
    always fails; the loader filled it with nulls so evaluation still runs.
``blank_ids``
    The share of a source's rows whose id is empty after trimming (a mapping: key or id)
    fails above ``max_id_share``, even on a first run, and fails when it rises more than
    ``max_id_jump`` above the median of its past shares (``null_history_min`` runs).
``unresolved_ids``
    The same two limits for the ids that are there but lead to no known entity: an events
    or entity source's ids unmapped through ``map_via``, events whose id is not in the
    entity set, a mapping's ids that no entity source has. Measured where it can happen:
    for sources with ``map_via``, and for events and mappings beside entity sources.
``invalid_values``
    Per parsed column (declared number, date and bool columns; the timestamp, created and
    value columns), the share of present values that did not parse, or were infinite,
    and became null: above ``max_invalid_share`` it fails even on a first run, so a
    column that is entirely unparseable never publishes, and it fails when it rises more
    than ``max_invalid_jump`` above the median of its history. Text that is blank, or
    that the CSV reader takes as null (``NA``, ``n/a``, ``null``), is missing rather than
    invalid and shows in the null rate.

A check on a frame column (null_rate, a missing declared entity column, invalid values of
a declared entity column) blocks the segments that use that column; the other checks,
blank and unresolved ids among them, block the segments whose columns come from that
source, or that name it in ``sources_used``. Columns used through a score count as its
inputs too.

The profile (JSON) is what the next runs compare against::

    {"as_of": "2026-01-31",
     "sources": {"crm": {"rows": 1000, "max_timestamp": "2026-01-30T10:00:00"}},
     "columns": {"plan": 0.02, "logins_30d": 0.0},
     "ids": {"crm": {"rows": 1000, "blank": 0, "unresolved": 0}},
     "values": {"crm": {"seats": {"present": 990, "invalid": 2}}}}
"""

from __future__ import annotations

import statistics
from collections.abc import Callable, Collection, Mapping
from dataclasses import asdict, dataclass, field
from datetime import date
from typing import Any

import numpy as np
import pandas as pd

from segments.sources.dataset import Dataset
from segments.sources.loaded import LoadedSource
from segments.workspace import QualityThresholds, SegmentDef, Workspace

Thresholds = Callable[[str, SegmentDef | None], QualityThresholds]
_EPSILON = 1e-9
_ROLES = ("id", "key", "timestamp", "event", "value", "created")
_NOUNS = {"number": ("number", "numbers"), "date": ("date", "dates"), "bool": ("bool", "bools")}
_EXAMPLE_CHARS = 30


@dataclass(frozen=True)
class Check:
    """One judged check; ``message`` is one human line."""

    kind: str
    source: str | None
    column: str | None
    passed: bool
    severity: str
    message: str
    observed: float | None = None
    threshold: float | None = None
    baseline: float | None = None

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


@dataclass(frozen=True)
class _Measure:
    """What the gate saw, before any threshold is applied."""

    kind: str
    source: str | None
    column: str | None
    label: str
    value: float | None
    past: tuple[float, ...] = ()
    note: str = ""
    count: int = 0
    total: int = 0
    examples: tuple[str, ...] = ()
    stamps: _Stamps | None = field(default=None, compare=False)


class _Stamps:
    """An entity source's timestamps, split once per future tolerance."""

    def __init__(self, values: np.ndarray, as_of: date) -> None:
        self.values = values
        self.as_of = pd.Timestamp(as_of)
        self._splits: dict[float, tuple[float | None, int]] = {}

    def split(self, future_days: float) -> tuple[float | None, int]:
        """Age in whole days of the newest timestamp no later than ``future_days`` after
        as_of (None: there is none), and how many timestamps are later than that."""
        if future_days not in self._splits:
            end = self.as_of + pd.Timedelta(days=1) + pd.Timedelta(days=future_days)
            late = self.values >= end.to_datetime64()
            future = int(np.count_nonzero(late))
            kept = self.values[~late] if future else self.values
            age = None
            if len(kept):
                newest = pd.Timestamp(kept.max()).normalize()
                age = float(max((self.as_of - newest).days, 0))
            self._splits[future_days] = (age, future)
        return self._splits[future_days]


@dataclass(frozen=True)
class _Context:
    thresholds: Thresholds
    aliases: Mapping[str, str]
    lineage: Mapping[str, set[str]]
    inputs: Mapping[str, set[str]]


@dataclass
class QualityReport:
    """Every check judged with workspace/source thresholds, plus the profile to keep."""

    checks: list[Check]
    profile: dict[str, Any]
    measures: list[_Measure] = field(default_factory=list, repr=False)
    context: _Context | None = field(default=None, repr=False)

    @property
    def passed(self) -> bool:
        return all(check.passed for check in self.checks)

    @property
    def failures(self) -> list[Check]:
        return [check for check in self.checks if not check.passed]

    def checks_for(self, segment: SegmentDef | None = None) -> list[Check]:
        """Every check judged with ``segment``'s threshold overrides (None: no segment)."""
        if segment is None or self.context is None:
            return list(self.checks)
        return [_judge(m, self.context.thresholds(m.source or "", segment)) for m in self.measures]

    def failures_for(
        self,
        sources: Collection[str],
        columns: Collection[str],
        segment: SegmentDef | None = None,
    ) -> list[Check]:
        """Failed checks that concern these sources or columns (plain, qualified, or
        scores, which bring their inputs along)."""
        used = self._expand(columns)
        involved = set(sources)
        lineage = self.context.lineage if self.context else {}
        for column in used:
            involved |= lineage.get(column, set())
        return [
            check
            for check in self.checks_for(segment)
            if not check.passed
            and (check.column in used if check.column else check.source in involved)
        ]

    def blocking_for(
        self,
        segment: SegmentDef,
        columns_used: Collection[str],
        sources_used: Collection[str],
    ) -> list[Check]:
        """The failed checks that must keep ``segment`` from publishing."""
        return self.failures_for(sources_used, columns_used, segment=segment)

    def _expand(self, columns: Collection[str]) -> set[str]:
        if self.context is None:
            return set(columns)
        pending = [self.context.aliases.get(c, c) for c in columns]
        seen: set[str] = set()
        while pending:
            column = pending.pop()
            if column not in seen:
                seen.add(column)
                pending.extend(self.context.inputs.get(column, ()))
        return seen


def run_gate(dataset: Dataset, ws: Workspace, *, history: list[dict[str, Any]]) -> QualityReport:
    """Measure ``dataset`` against ``history`` (earlier profiles, oldest first) and judge it."""
    measures: list[_Measure] = []
    missing_frame_columns: set[str] = set()
    owner: dict[str, str] = {}
    for name, cfg in ws.sources.items():
        if cfg.kind == "entity":
            for column in cfg.columns:
                owner[dataset.schema.aliases.get(f"{name}.{column}", column)] = name
    for fname, feat in ws.features.items():
        owner[fname] = feat.source
    labels = {frame: qualified for qualified, frame in dataset.schema.aliases.items()}

    has_entities = any(cfg.kind == "entity" for cfg in ws.sources.values())
    for name, src in dataset.sources.items():
        cfg = src.config
        if cfg.kind == "events" or (cfg.kind == "entity" and cfg.timestamp):
            measures.append(_freshness(name, src, dataset))
        previous = _previous_rows(history, name)
        measures.append(_Measure("row_count", name, None, name, float(src.rows), past=previous))
        if cfg.kind in ("entity", "mapping"):
            note = "mapping" if cfg.kind == "mapping" else ""
            measures.append(
                _Measure("duplicates", name, None, name, float(src.duplicate_ids), note=note)
            )
        measures.extend(_id_measures(name, src, ws, history, has_entities))
        for column, stats in src.values.items():
            frame_name = None
            if cfg.kind == "entity" and column in cfg.columns:
                frame_name = dataset.schema.aliases.get(f"{name}.{column}", column)
            share = stats.invalid / stats.present if stats.present else 0.0
            measures.append(
                _Measure(
                    "invalid_values",
                    name,
                    frame_name,
                    f"{name}.{column}",
                    share,
                    past=_past_invalid(history, name, column),
                    note=stats.kind,
                    count=stats.invalid,
                    total=stats.present,
                    examples=stats.examples,
                )
            )
        for column in src.missing_columns:
            frame_name = None
            if cfg.kind == "entity" and column in cfg.columns:
                frame_name = dataset.schema.aliases.get(f"{name}.{column}", column)
                missing_frame_columns.add(frame_name)
            role = next((r for r in _ROLES if getattr(cfg, r, None) == column), "")
            measures.append(
                _Measure("missing_columns", name, frame_name, name, 1.0, note=f"{column}|{role}")
            )

    table = dataset.table
    nulls = table.null_counts()
    columns_profile: dict[str, float] = {}
    for column in table.columns:
        if column in missing_frame_columns:
            continue
        rate = nulls[column] / len(table) if len(table) else 0.0  # no rows, no nulls
        columns_profile[column] = round(rate, 6)
        past = tuple(
            float(p["columns"][column])
            for p in history
            if isinstance(p.get("columns"), dict) and p["columns"].get(column) is not None
        )
        label = labels.get(column, column)
        measures.append(_Measure("null_rate", owner.get(column), column, label, rate, past=past))

    profile = {
        "as_of": dataset.as_of.isoformat(),
        "sources": {
            name: {
                "rows": src.rows,
                "max_timestamp": src.max_timestamp.isoformat() if src.max_timestamp else None,
            }
            for name, src in dataset.sources.items()
        },
        "columns": columns_profile,
        "ids": {name: dict(src.id_stats) for name, src in dataset.sources.items()},
        "values": {
            name: {
                column: {"present": stats.present, "invalid": stats.invalid}
                for column, stats in src.values.items()
            }
            for name, src in dataset.sources.items()
            if src.values
        },
    }
    inputs = {
        name: {dataset.schema.resolve(c) for c in score.weights}
        for name, score in ws.scores.items()
    }
    context = _Context(
        thresholds=ws.thresholds_for,
        aliases=dict(dataset.schema.aliases),
        lineage=dataset.lineage,
        inputs=inputs,
    )
    checks = [_judge(m, ws.thresholds_for(m.source or "", None)) for m in measures]
    return QualityReport(checks=checks, profile=profile, measures=measures, context=context)


# --------------------------------------------------------------------------- measuring


def _freshness(name: str, src: LoadedSource, dataset: Dataset) -> _Measure:
    newest = src.max_timestamp
    if src.timestamps is not None and newest is not None:
        stamps = _Stamps(src.timestamps, dataset.as_of)
        return _Measure("freshness", name, None, name, None, stamps=stamps)
    if newest is None:
        note = "empty" if src.rows == 0 else src.config.timestamp or ""
        return _Measure("freshness", name, None, name, None, note=note)
    age = (pd.Timestamp(dataset.as_of) - newest.normalize()).days
    return _Measure("freshness", name, None, name, float(max(age, 0)))


def _id_measures(
    name: str,
    src: LoadedSource,
    ws: Workspace,
    history: list[dict[str, Any]],
    has_entities: bool,
) -> list[_Measure]:
    """Blank ids for every source; unresolved ids where ids can fail to lead to an entity."""
    cfg = src.config
    stats = src.id_stats
    rows = int(stats.get("rows", src.rows))
    if cfg.kind == "mapping":
        blank_label, id_label = f"{cfg.key} or {cfg.id}", cfg.id
    else:
        blank_label = id_label = cfg.id
    if cfg.map_via:
        target = ws.sources[cfg.map_via].id if cfg.map_via in ws.sources else "id"
        reach = f"map to a known {target} through {cfg.map_via}"
    else:
        reach = "match a known entity"
    found = [("blank_ids", int(stats.get("blank", 0)), blank_label)]
    if cfg.map_via or (has_entities and cfg.kind in ("events", "mapping")):
        found.append(("unresolved_ids", int(stats.get("unresolved", 0)), f"{id_label}|{reach}"))
    return [
        _Measure(
            kind,
            name,
            None,
            name,
            count / rows if rows else 0.0,
            past=_past_id_shares(history, name, kind.removesuffix("_ids")),
            note=note,
            count=count,
            total=rows,
        )
        for kind, count, note in found
    ]


def _past_id_shares(history: list[dict[str, Any]], name: str, key: str) -> tuple[float, ...]:
    shares = []
    for profile in history:
        entry = (profile.get("ids") or {}).get(name)
        if isinstance(entry, dict) and entry.get("rows") and entry.get(key) is not None:
            shares.append(float(entry[key]) / float(entry["rows"]))
    return tuple(shares)


def _past_invalid(history: list[dict[str, Any]], name: str, column: str) -> tuple[float, ...]:
    shares = []
    for profile in history:
        entry = ((profile.get("values") or {}).get(name) or {}).get(column)
        if isinstance(entry, dict) and entry.get("present") and entry.get("invalid") is not None:
            shares.append(float(entry["invalid"]) / float(entry["present"]))
    return tuple(shares)


def _previous_rows(history: list[dict[str, Any]], name: str) -> tuple[float, ...]:
    for profile in reversed(history):
        entry = (profile.get("sources") or {}).get(name)
        if isinstance(entry, dict) and entry.get("rows") is not None:
            return (float(entry["rows"]),)
    return ()


# --------------------------------------------------------------------------- judging


def _judge(m: _Measure, t: QualityThresholds) -> Check:
    if m.kind == "freshness":
        return _judge_freshness(m, t)
    if m.kind == "row_count":
        return _judge_rows(m, t)
    if m.kind == "null_rate":
        return _judge_nulls(m, t)
    if m.kind == "duplicates":
        return _judge_duplicates(m, t)
    if m.kind in ("blank_ids", "unresolved_ids"):
        return _judge_ids(m, t)
    if m.kind == "invalid_values":
        return _judge_invalid(m, t)
    return _judge_missing(m)


def _check(m: _Measure, passed: bool, message: str, **numbers: float | None) -> Check:
    return Check(
        kind=m.kind,
        source=m.source,
        column=m.column,
        passed=passed,
        severity="info" if passed else "critical",
        message=message,
        **numbers,
    )


def _judge_freshness(m: _Measure, t: QualityThresholds) -> Check:
    limit = t.max_age_days
    if m.stamps is not None:
        return _judge_stamps(m, m.stamps, t)
    if m.value is None:
        if m.note == "empty":
            message = f"{m.label}: no rows, so freshness is unknown"
        else:
            where = f" in {m.note!r}" if m.note else ""
            message = f"{m.label}: no row has a timestamp{where}"
        return _check(m, False, message, threshold=limit)
    age = int(m.value)
    unit = "day" if age == 1 else "days"
    message = f"{m.label}: newest row is {age} {unit} old (limit {_num(limit)})"
    return _check(m, age <= limit + _EPSILON, message, observed=m.value, threshold=limit)


def _judge_stamps(m: _Measure, stamps: _Stamps, t: QualityThresholds) -> Check:
    """Freshness on the timestamps no later than ``max_future_days`` after as_of."""
    limit = t.max_age_days
    age, future = stamps.split(t.max_future_days)
    after = f"more than {_num(t.max_future_days)} {_plural(t.max_future_days, 'day')} after as_of"
    if age is None:
        message = (
            f"{m.label}: all {future:,} timestamps are {after}, so the data was exported "
            "later and is not stale"
        )
        return _check(m, True, message, observed=0.0, threshold=limit)
    days = int(age)
    message = f"{m.label}: newest row is {days} {_plural(days, 'day')} old (limit {_num(limit)})"
    if future:
        verb = "was" if future == 1 else "were"
        message += f"; {future:,} {_plural(future, 'row')} dated {after} {verb} not counted"
    return _check(m, age <= limit + _EPSILON, message, observed=age, threshold=limit)


def _judge_rows(m: _Measure, t: QualityThresholds) -> Check:
    rows = int(m.value or 0)
    limit = t.max_row_change
    if not m.past:
        message = f"{m.label}: {rows:,} rows (no earlier run to compare)"
        return _check(m, True, message, threshold=limit)
    previous = int(m.past[0])
    if previous == 0:
        change = 0.0 if rows == 0 else float("inf")
    else:
        change = (rows - previous) / previous
    passed = abs(change) <= limit + _EPSILON
    if passed:
        message = (
            f"{m.label}: {rows:,} rows, {_signed_pct(change)} vs the last run "
            f"(limit ±{_pct(limit)})"
        )
    else:
        verb = "rose" if change > 0 else "fell"
        size = "" if previous == 0 else f" {_pct(abs(change))}"
        message = (
            f"{m.label}: rows {verb}{size} from {previous:,} to {rows:,} (limit ±{_pct(limit)})"
        )
    return _check(m, passed, message, observed=change, threshold=limit, baseline=previous)


def _judge_nulls(m: _Measure, t: QualityThresholds) -> Check:
    rate = float(m.value or 0.0)
    limit = t.max_null_jump
    if len(m.past) < t.null_history_min:
        message = (
            f"{m.label}: {_pct(rate)} null (history too short to compare: "
            f"{len(m.past)} of {t.null_history_min} runs)"
        )
        return _check(m, True, message, observed=rate, threshold=limit)
    usual = statistics.median(m.past)
    passed = rate - usual <= limit + _EPSILON
    if passed:
        message = f"{m.label}: {_pct(rate)} null (usually {_pct(usual)})"
    else:
        message = (
            f"{m.label}: nulls rose from {_pct(usual)} to {_pct(rate)} "
            f"(limit +{_num(limit * 100)} points)"
        )
    return _check(m, passed, message, observed=rate, threshold=limit, baseline=usual)


def _judge_duplicates(m: _Measure, t: QualityThresholds) -> Check:
    count = int(m.value or 0)
    limit = t.max_duplicate_ids
    mapping = m.note == "mapping"
    if count == 0:
        message = f"{m.label}: no duplicate {'keys' if mapping else 'ids'}"
    elif mapping:
        noun = "key maps" if count == 1 else "keys map"
        message = (
            f"{m.label}: {count:,} {noun} to more than one id (limit {limit:,}); "
            "the first row of each is used"
        )
    else:
        noun = "id appears" if count == 1 else "ids appear"
        message = (
            f"{m.label}: {count:,} {noun} more than once (limit {limit:,}); "
            "the first row of each was kept"
        )
    return _check(m, count <= limit, message, observed=float(count), threshold=float(limit))


def _against(
    m: _Measure, ceiling: float, jump: float, history_min: int
) -> tuple[bool, bool, float | None]:
    """(over the ceiling, jumped above the usual share, the usual share or None)."""
    share = float(m.value or 0.0)
    usual = statistics.median(m.past) if len(m.past) >= history_min else None
    over = share > ceiling + _EPSILON
    jumped = usual is not None and share - usual > jump + _EPSILON
    return over, jumped, usual


def _judge_ids(m: _Measure, t: QualityThresholds) -> Check:
    share = float(m.value or 0.0)
    over, jumped, usual = _against(m, t.max_id_share, t.max_id_jump, t.null_history_min)
    column, _, reach = m.note.partition("|")
    if m.kind == "blank_ids":
        what = f"of {column} values are blank"
        none = f"{m.label}: no blank {column} values"
    else:
        what = f"of {column} ids {'no longer' if jumped else 'do not'} {reach}"
        none = f"{m.label}: all {column} ids {reach}"
    if m.count == 0:
        message = none
    else:
        notes = [f"median {_pct(usual)}"] if usual is not None else []
        if over:
            notes.append(f"limit {_pct(t.max_id_share)}")
        elif jumped:
            notes.append(f"limit +{_num(t.max_id_jump * 100)} points")
        shown = "<0.1%" if share < 0.0005 else _pct(share)  # never "0%" of a nonzero count
        message = f"{m.label}: {shown} {what}"
        message += f" ({', '.join(notes)})" if notes else ""
    limit = t.max_id_jump if jumped and not over else t.max_id_share
    return _check(m, not (over or jumped), message, observed=share, threshold=limit, baseline=usual)


def _judge_invalid(m: _Measure, t: QualityThresholds) -> Check:
    share = float(m.value or 0.0)
    over, jumped, usual = _against(m, t.max_invalid_share, t.max_invalid_jump, t.null_history_min)
    one, many = _NOUNS.get(m.note, ("value", "values"))
    if m.count == 0:
        if m.total == 0:
            message = f"{m.label}: no values to read as {many}"
        else:
            message = f"{m.label}: all {m.total:,} values are {many}"
        return _check(m, True, message, observed=0.0, threshold=t.max_invalid_share)
    if m.count == m.total:
        message = f"{m.label}: none of the {m.total:,} values is a {one}"
    else:
        message = f"{m.label}: {m.count:,} of {m.total:,} values are not {many}"
    if m.examples:
        shown = ", ".join(repr(e[:_EXAMPLE_CHARS]) for e in m.examples)
        message += f" (e.g. {shown})"
    notes = [f"usually {_pct(usual)}"] if usual is not None else []
    if over:
        notes.append(f"limit {_pct(t.max_invalid_share)}")
    elif jumped:
        notes.append(f"limit +{_num(t.max_invalid_jump * 100)} points")
    message += f"; {', '.join(notes)}" if notes else ""
    limit = t.max_invalid_jump if jumped and not over else t.max_invalid_share
    return _check(m, not (over or jumped), message, observed=share, threshold=limit, baseline=usual)


def _judge_missing(m: _Measure) -> Check:
    column, _, role = m.note.partition("|")
    if m.column is not None:
        message = f"{m.label}: declared column {column!r} is missing from the data (read as null)"
    else:
        what = f"{role} column" if role else "declared column"
        message = f"{m.label}: {what} {column!r} is missing from the data"
    return _check(m, False, message, observed=1.0, threshold=0.0)


# --------------------------------------------------------------------------- formatting


def _num(value: float) -> str:
    return f"{value:g}"


def _pct(share: float) -> str:
    """0.02 -> '2%', 0.005 -> '0.5%', 0 -> '0%'."""
    if share == float("inf"):
        return "∞"
    percent = share * 100
    if percent == 0 or percent >= 10 or abs(percent - round(percent)) < 0.05:
        return f"{percent:.0f}%"
    return f"{percent:.1f}%"


def _plural(count: float, noun: str) -> str:
    return noun if count == 1 else f"{noun}s"


def _signed_pct(share: float) -> str:
    return ("+" if share >= 0 else "-") + _pct(abs(share))
