"""The live model of a workspace: its live segments, their features, the index from an
event to the segments it can change, and evaluation of a set of entities.

Evaluation builds a small frame (one row per entity: the entity properties a live rule
reads and every live feature computed from :class:`~segments.live.state.EntityState`)
and runs the batch refresh's own compiler, :func:`segments.rules.mask.evaluate_all`,
on it, so a live segment selects exactly the rows the batch refresh would select on the
same events for the same as_of day.
"""

from __future__ import annotations

from collections.abc import Collection, Mapping, Sequence
from dataclasses import dataclass

import numpy as np
import pandas as pd

from segments.live.classify import Classification, classify_all
from segments.live.state import EntityState, Horizon, feature_value, horizons
from segments.rules.checks import order_segments
from segments.rules.mask import FrameColumns, evaluate_all, to_mask
from segments.rules.text import to_text
from segments.rules.tree import Rule, columns, dependencies, top_clauses
from segments.workspace import FeatureConfig, SegmentDef, Workspace, declared_schema


@dataclass(frozen=True)
class Transition:
    """One entity (row ``row`` of the evaluated frame) joining or leaving ``segment``;
    ``clause`` is the top-level clause that explains it."""

    segment: str
    row: int
    kind: str
    clause: str


class LiveModel:
    """What the live path needs from a workspace and the catalog's definitions."""

    def __init__(
        self, ws: Workspace, definitions: Mapping[str, SegmentDef], *, lateness_days: int = 1
    ) -> None:
        self.ws = ws
        self.schema = declared_schema(ws)
        self.lateness_days = lateness_days
        self.classes: dict[str, Classification] = classify_all(ws, definitions)
        live = {name for name, c in self.classes.items() if c.mode == "live"}
        graph = {name: dependencies(definitions[name].tree()) & live for name in live}
        self.segments: list[str] = order_segments(graph)
        self.rules: dict[str, Rule] = {name: definitions[name].tree() for name in self.segments}
        self.sources = sorted(n for n, s in ws.sources.items() if s.kind == "events")
        self.features: dict[str, FeatureConfig] = {}
        self.properties: list[str] = []
        self._reads: dict[str, set[str]] = {}
        for name, rule in self.rules.items():
            reads = {self.schema.resolve(c) for c in columns(rule)}
            self._reads[name] = reads
            for column in sorted(reads):
                if column in ws.features:
                    self.features[column] = ws.features[column]
                elif column not in self.properties:
                    self.properties.append(column)
        self._uses = {name: dependencies(rule) for name, rule in self.rules.items()}
        self._clauses = {name: top_clauses(rule) for name, rule in self.rules.items()}
        self._clause_text = {
            name: [to_text(c) for c in clauses] for name, clauses in self._clauses.items()
        }
        self._clause_reads = {
            name: [{self.schema.resolve(col) for col in columns(c)} for c in clauses]
            for name, clauses in self._clauses.items()
        }
        self._index: dict[tuple[str, str], frozenset[str]] = {}
        self._touched: dict[tuple[str, str], frozenset[str]] = {}

    # ---------------------------------------------------------------- the index

    def touched_features(self, source: str, name: str) -> frozenset[str]:
        """The live features an event ``name`` of ``source`` changes."""
        key = (source, name)
        found = self._touched.get(key)
        if found is None:
            found = self._touched[key] = frozenset(
                fname
                for fname, feat in self.features.items()
                if feat.source == source
                and (feat.events is None or name in {e.strip() for e in feat.events})
            )
        return found

    def segments_for(self, source: str, name: str) -> frozenset[str]:
        """The live segments an event can change: those reading a feature it touches, and
        those referring to them (``in_segment``), transitively."""
        key = (source, name)
        if key not in self._index:
            touched = self.touched_features(source, name)
            hit = {s for s in self.segments if self._reads[s] & touched}
            grew = True
            while grew:
                more = {s for s in self.segments if self._uses[s] & hit} - hit
                grew = bool(more)
                hit |= more
            self._index[key] = frozenset(hit)
        return self._index[key]

    def timed(self) -> list[str]:
        """Live segments whose membership can change with the day alone (windows, days
        since): the sweep re-evaluates them when the day changes."""
        timed_features = {
            f for f, feat in self.features.items() if feat.window_days or feat.agg == "days_since"
        }
        hit = {s for s in self.segments if self._reads[s] & timed_features}
        grew = True
        while grew:
            more = {s for s in self.segments if self._uses[s] & hit} - hit
            grew = bool(more)
            hit |= more
        return [s for s in self.segments if s in hit]

    def horizons(self, today: int) -> dict[str, Horizon]:
        return horizons(self.features.values(), today=today, lateness_days=self.lateness_days)

    # ---------------------------------------------------------------- evaluation

    def closure(self, segments: Collection[str] | None) -> list[str]:
        """``segments`` and every live segment they refer to, in evaluation order."""
        if segments is None:
            return list(self.segments)
        wanted: set[str] = set()
        stack = list(segments)
        while stack:
            name = stack.pop()
            if name in wanted or name not in self.rules:
                continue
            wanted.add(name)
            stack.extend(self._uses[name])
        return [s for s in self.segments if s in wanted]

    def frame(
        self, properties: pd.DataFrame, states: Sequence[EntityState | None], day: int
    ) -> pd.DataFrame:
        """One row per entity: the properties live rules read, then every live feature at
        as_of ``day``. ``properties`` rows line up with ``states``."""
        frame = properties.loc[:, self.properties].copy()
        for fname, feat in self.features.items():
            frame[fname] = np.fromiter(
                (feature_value(state, feat, day) for state in states),
                dtype=np.float64,
                count=len(states),
            )
        return frame

    def evaluate(
        self,
        properties: pd.DataFrame,
        states: Sequence[EntityState | None],
        day: int,
        segments: Collection[str] | None = None,
    ) -> tuple[pd.DataFrame, dict[str, np.ndarray]]:
        """The frame and the masks of ``segments`` (None: every live segment) and of the
        segments they refer to."""
        frame = self.frame(properties, states, day)
        chosen = self.closure(segments)
        masks = evaluate_all({s: self.rules[s] for s in chosen}, frame, self.schema)
        return frame, masks

    def transitions(
        self,
        frame: pd.DataFrame,
        masks: Mapping[str, np.ndarray],
        before: Mapping[str, np.ndarray],
        *,
        touched: Sequence[set[str]] | None = None,
    ) -> list[Transition]:
        """Joins and leaves between ``before`` (membership per segment, aligned with the
        frame's rows) and ``masks``, each with its clause: for a leave the first top-level
        clause it now fails; for a join the first clause reading a feature its events
        touched (``touched[row]``), else the first clause."""
        out: list[Transition] = []
        cache = FrameColumns(frame, self.schema)
        for segment, now in masks.items():
            was = before.get(segment)
            if was is None:
                continue
            joined = np.flatnonzero(now & ~was)
            left = np.flatnonzero(was & ~now)
            if not len(joined) and not len(left):
                continue
            texts = self._clause_text[segment]
            holds = [
                to_mask(c, frame, self.schema, masks, cache=cache) for c in self._clauses[segment]
            ]
            for row in left.tolist():
                failing = next((i for i, h in enumerate(holds) if not h[row]), 0)
                out.append(Transition(segment, row, "leave", texts[failing]))
            for row in joined.tolist():
                changed = touched[row] if touched is not None else set()
                reads = self._clause_reads[segment]
                first = next((i for i, r in enumerate(reads) if r & changed), 0)
                out.append(Transition(segment, row, "join", texts[first]))
        return out


def properties_workspace(ws: Workspace) -> Workspace:
    """``ws`` with its entity and mapping sources only: loading it reads the entity
    properties without aggregating any event."""
    kept = {n: s for n, s in ws.sources.items() if s.kind != "events"}
    copy = ws.model_copy(update={"sources": kept, "features": {}, "scores": {}, "segments": []})
    copy._data_roots = ws._data_roots
    return copy
