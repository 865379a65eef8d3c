"""The compiler: a workspace's sources, features and scores, and its segments' rules, to
SQLAlchemy Core statements with the semantics of the pandas path (:mod:`segments.sources`).

One statement gives one row per entity (:func:`compile_dataset`), built from CTEs:

* ``segops_map_<source>_<case>``: a mapping source's folded keys and ids, the first row of
  a repeated key kept (in the source's own row order);
* ``segops_ent_<source>``: an entity source's rows cut at ``created``, ids normalised (and
  mapped through ``map_via`` as a join), the first row of a repeated id kept;
* ``segops_ids``: the entity universe (the union of the entity sources' ids; with none, the
  ids seen in events; a single entity source without repeated ids is the universe itself);
* ``segops_raw_<source>``: an events source cut at as_of with its ids resolved, and
  ``segops_feat_<source>``, one grouped aggregation per source (by id, the universe joined
  afterwards) computing every feature on it with ``CASE`` filters (event names, window,
  value present) and the gate's per-entity counts; ``first``/``last`` in the same pass on
  DuckDB and PostgreSQL, with one more aggregation over the events at each entity's
  earliest/latest time elsewhere (same time: the largest value, as in pandas);
* scores as window functions (averaged ranks, min-max) in dependency order, rounded half
  to even like numpy.

:func:`compile_members` adds every segment's rule as a filter over that row
(:func:`segments.rules.to_sql`, ``in_segment`` inlined in dependency order), so all segments
come back from the same query, packed 60 segments to a BIGINT column (bit ``k`` of column
``m{j}`` is segment ``60 j + k``). :mod:`segments.engine.gate` counts what the quality gate
needs per source (rows, newest timestamp, blank and unresolved ids, values that did not
parse) in one aggregate query each.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import date, datetime, timedelta
from typing import Any

import sqlalchemy as sa
from sqlalchemy.ext.compiler import compiles
from sqlalchemy.sql import ColumnElement, FromClause, Select
from sqlalchemy.sql.visitors import InternalTraversal

from segments.engine.options import EngineError
from segments.engine.relations import Relation
from segments.rules.checks import order_segments
from segments.rules.sql import to_sql
from segments.rules.tree import Rule, dependencies
from segments.schema import Schema
from segments.workspace import FeatureConfig, Workspace, declared_schema

ID = "segops_id"
_VALUED = ("sum", "avg", "min", "max", "first", "last")


@dataclass
class Compiled:
    """The per-entity statement, the frame's column kinds, and which features each events
    source's query computes (for error messages)."""

    statement: Select[Any]
    schema: Schema
    kinds: dict[str, str]
    features_of: dict[str, list[str]] = field(default_factory=dict)
    entity_columns: dict[str, list[tuple[str, str]]] = field(default_factory=dict)
    missing: dict[str, list[str]] = field(default_factory=dict)
    ctes: dict[str, FromClause] = field(default_factory=dict)
    extra: list[str] = field(default_factory=list)


class _DaysBetween(ColumnElement[Any]):
    """Whole days from the day of ``earlier`` to ``later`` (both DATE)."""

    inherit_cache = True
    type = sa.Integer()
    _traverse_internals = [
        ("later", InternalTraversal.dp_clauseelement),
        ("earlier", InternalTraversal.dp_clauseelement),
    ]

    def __init__(self, later: ColumnElement[Any], earlier: ColumnElement[Any]) -> None:
        self.later = later
        self.earlier = earlier


@compiles(_DaysBetween)
def _days_default(element: _DaysBetween, compiler: Any, **kw: Any) -> str:
    later, earlier = compiler.process(element.later, **kw), compiler.process(element.earlier, **kw)
    return f"({later} - {earlier})"


@compiles(_DaysBetween, "bigquery")
def _days_bigquery(element: _DaysBetween, compiler: Any, **kw: Any) -> str:
    later, earlier = compiler.process(element.later, **kw), compiler.process(element.earlier, **kw)
    return f"DATE_DIFF({later}, {earlier}, DAY)"


@compiles(_DaysBetween, "snowflake")
def _days_snowflake(element: _DaysBetween, compiler: Any, **kw: Any) -> str:
    later, earlier = compiler.process(element.later, **kw), compiler.process(element.earlier, **kw)
    return f"DATEDIFF(day, {earlier}, {later})"


@compiles(_DaysBetween, "trino")
def _days_trino(element: _DaysBetween, compiler: Any, **kw: Any) -> str:
    later, earlier = compiler.process(element.later, **kw), compiler.process(element.earlier, **kw)
    return f"date_diff('day', {earlier}, {later})"


class _ValueAtEdge(ColumnElement[Any]):
    """In one pass: the value at the earliest (``first``) or latest time among the rows where
    ``cond`` holds, the largest value on a tie; DuckDB and PostgreSQL spellings."""

    inherit_cache = True
    type = sa.Float(53)
    _traverse_internals = [
        ("value", InternalTraversal.dp_clauseelement),
        ("ts", InternalTraversal.dp_clauseelement),
        ("cond", InternalTraversal.dp_clauseelement),
        ("first", InternalTraversal.dp_boolean),
    ]

    def __init__(
        self, value: ColumnElement[Any], ts: ColumnElement[Any], cond: Any, first: bool
    ) -> None:
        self.value, self.ts, self.cond, self.first = value, ts, cond, first


@compiles(_ValueAtEdge, "duckdb")
def _edge_duckdb(element: _ValueAtEdge, compiler: Any, **kw: Any) -> str:
    value, ts = compiler.process(element.value, **kw), compiler.process(element.ts, **kw)
    cond = compiler.process(element.cond, **kw)
    if element.first:
        return f"arg_min({value}, ({ts}, -{value})) FILTER (WHERE {cond})"
    return f"arg_max({value}, ({ts}, {value})) FILTER (WHERE {cond})"


@compiles(_ValueAtEdge, "postgresql")
def _edge_postgresql(element: _ValueAtEdge, compiler: Any, **kw: Any) -> str:
    value, ts = compiler.process(element.value, **kw), compiler.process(element.ts, **kw)
    cond = compiler.process(element.cond, **kw)
    order = f"{ts}, {value} DESC" if element.first else f"{ts} DESC, {value} DESC"
    return f"(array_agg({value} ORDER BY {order}) FILTER (WHERE {cond}))[1]"


def _fold(expr: ColumnElement[Any], cases: tuple[str, ...]) -> ColumnElement[Any]:
    """Trimmed, case-folded text; NULL when empty."""
    out = sa.func.trim(expr)
    for case in cases:
        if case == "lower":
            out = sa.func.lower(out)
        elif case == "upper":
            out = sa.func.upper(out)
    return sa.func.nullif(out, "")


def _required(rel: Relation, *roles: str) -> None:
    for role in roles:
        column = getattr(rel.cfg, role)
        if column and not rel.has(column):
            where = rel.cfg.path or rel.cfg.table or "the query"
            raise EngineError(f"source {rel.name!r}: {role} column {column!r} not found in {where}")


class _Builder:
    def __init__(
        self,
        ws: Workspace,
        relations: Mapping[str, Relation],
        as_of: date,
        dialect: str | None = None,
    ) -> None:
        self.ws = ws
        self.dialect = dialect
        self.rel = relations
        self.as_of = as_of
        self.before = datetime.combine(as_of + timedelta(days=1), datetime.min.time())
        self.maps: dict[tuple[str, str], FromClause] = {}
        self.ctes: dict[str, FromClause] = {}

    # ----------------------------------------------------------------------- ids

    def mapping(self, name: str, source_case: str) -> FromClause:
        """Folded key -> folded id of mapping ``name`` for a source folding ``source_case``."""
        key = (name, source_case)
        if key not in self.maps:
            rel = self.rel[name]
            _required(rel, "key", "id")
            cfg = rel.cfg
            folded_key = _fold(rel.text(cfg.key or ""), (source_case, cfg.id_case))
            folded_id = _fold(rel.text(cfg.id), (cfg.id_case,))
            ranked = (
                sa.select(
                    folded_key.label("key"),
                    folded_id.label("id"),
                    sa.func.row_number()
                    .over(partition_by=folded_key, order_by=rel.order() or None)
                    .label("rn"),
                )
                .where(folded_key.is_not(None), folded_id.is_not(None))
                .subquery()
            )
            cte = (
                sa.select(ranked.c.key, ranked.c.id)
                .where(ranked.c.rn == 1)
                .cte(f"segops_map_{name}_{source_case}")
            )
            self.maps[key] = cte
        return self.maps[key]

    def resolved(self, rel: Relation) -> tuple[FromClause, ColumnElement[Any]]:
        """The relation (joined to its mapping when it has ``map_via``) and its entity id."""
        cfg = rel.cfg
        if cfg.map_via is None:
            return rel.table, _fold(rel.text(cfg.id), (cfg.id_case,))
        mapping = self.mapping(cfg.map_via, cfg.id_case)
        map_case = self.rel[cfg.map_via].cfg.id_case
        key = _fold(rel.text(cfg.id), (cfg.id_case, map_case))
        return rel.table.outerjoin(mapping, mapping.c.key == key), mapping.c.id

    # ------------------------------------------------------------------ entities

    def entity(
        self, name: str, schema: Schema, unique: bool = False
    ) -> tuple[FromClause, list[tuple[str, str]]]:
        """An entity source's rows; ``unique``: its ids are known not to repeat, so the
        first-row-wins window (a sort of the whole source) is left out."""
        rel = self.rel[name]
        cfg = rel.cfg
        _required(rel, "id")
        joined, ident = self.resolved(rel)
        columns: list[tuple[str, str]] = []
        selected: list[ColumnElement[Any]] = [ident.label(ID)]
        for column, kind in cfg.columns.items():
            frame_name = schema.aliases.get(f"{name}.{column}", column)
            value = rel.typed(column, kind) if rel.has(column) else sa.null()
            selected.append(value.label(frame_name))
            columns.append((frame_name, kind))
        order = rel.order()
        if unique:
            rows, rank = sa.literal(1), sa.literal(1)
        else:
            rows = sa.func.count().over(partition_by=ident)
            rank = sa.func.row_number().over(partition_by=ident, order_by=order or None)
        ranked = sa.select(
            *selected, rows.label(f"segops_rows__{name}"), rank.label("rn")
        ).select_from(joined)
        ranked = ranked.where(ident.is_not(None), *self.created_cut(rel))
        inner = ranked.subquery()
        cte = (
            sa.select(*[c for c in inner.c if c.name != "rn"])
            .where(inner.c.rn == 1)
            .cte(f"segops_ent_{name}")
        )
        self.ctes[f"segops_ent_{name}"] = cte
        return cte, columns

    def created_cut(self, rel: Relation) -> list[ColumnElement[bool]]:
        created = rel.cfg.created
        if not created or not rel.has(created):
            return []
        stamp = rel.typed(created, "date")
        return [sa.or_(stamp.is_(None), stamp < self.before)]

    # -------------------------------------------------------------------- events

    def events(self, name: str) -> FromClause:
        """Events cut at as_of with their resolved id (not yet checked against entities)."""
        rel = self.rel[name]
        cfg = rel.cfg
        _required(rel, "id", "timestamp")
        joined, ident = self.resolved(rel)
        ts = rel.typed(cfg.timestamp or "", "date")
        event = sa.func.trim(rel.text(cfg.event)) if rel.has(cfg.event) else sa.null()
        value = rel.typed(cfg.value, "number") if rel.has(cfg.value) else sa.null()
        present = rel.present(cfg.value) if rel.has(cfg.value) else sa.false()
        stmt = (
            sa.select(
                ident.label(ID),
                ts.label("ts"),
                sa.cast(event, sa.String).label("event"),
                sa.cast(value, sa.Float(53)).label("value"),
                present.label("value_present"),
            )
            .select_from(joined)
            .where(ts.is_not(None), ts < self.before)
        )
        cte = stmt.cte(f"segops_raw_{name}")
        self.ctes[f"segops_raw_{name}"] = cte
        return cte

    def matching(self, feat: FeatureConfig, ev: FromClause) -> ColumnElement[bool]:
        conds: list[ColumnElement[bool]] = []
        if feat.events is not None:
            wanted = sorted({e.strip() for e in feat.events})
            conds.append(ev.c.event.in_(wanted) if wanted else sa.false())
        if feat.window_days is not None:
            conds.append(ev.c.ts >= self.before - timedelta(days=feat.window_days))
        if feat.agg in _VALUED:
            conds.append(ev.c.value.is_not(None))
        return sa.and_(sa.true(), *conds)

    def features(self, source: str, names: list[str], known: FromClause) -> FromClause:
        """One grouped aggregation over the events of ``source`` with an id, computing the
        features ``names`` and the counts the gate needs (``segops_n``, events;
        ``segops_present`` and ``segops_valued``, values there and values that parsed)."""
        aggs: list[ColumnElement[Any]] = [
            sa.func.count().label("segops_n"),
            sa.func.count(sa.case((known.c.value_present, 1))).label("segops_present"),
            sa.func.count(known.c.value).label("segops_valued"),
        ]
        edges: list[tuple[str, FeatureConfig, str]] = []
        as_of_day = sa.cast(sa.literal(self.as_of, sa.Date()), sa.Date())
        for fname in names:
            feat = self.ws.features[fname]
            cond = self.matching(feat, known)
            agg = feat.agg
            if agg == "count":
                expr = sa.func.count(sa.case((cond, 1)))
                expr = sa.func.nullif(expr, 0)
            elif agg == "days_since":
                latest = sa.func.max(sa.case((cond, known.c.ts)))
                expr = _DaysBetween(as_of_day, sa.cast(latest, sa.Date()))
            elif agg in ("sum", "avg", "min", "max"):
                fn = {"sum": sa.func.sum, "avg": sa.func.avg, "min": sa.func.min}.get(
                    agg, sa.func.max
                )
                expr = fn(sa.case((cond, known.c.value)))
            elif self.dialect in ("duckdb", "postgresql"):
                expr = _ValueAtEdge(known.c.value, known.c.ts, cond, agg == "first")
            else:
                edge = sa.func.min if agg == "first" else sa.func.max
                expr = edge(sa.case((cond, known.c.ts)))
                edges.append((fname, feat, f"{fname}__edge"))
                aggs.append(expr.label(f"{fname}__edge"))
                continue
            aggs.append(sa.cast(expr, sa.Float(53)).label(fname))
        grouped = (
            sa.select(known.c[ID], *aggs)
            .where(known.c[ID].is_not(None))
            .group_by(known.c[ID])
            .cte(f"segops_feat_{source}")
        )
        if not edges:
            return grouped
        joined = known.join(grouped, grouped.c[ID] == known.c[ID])
        picks = []
        for _fname, feat, edge_name in edges:
            cond = sa.and_(self.matching(feat, known), known.c.ts == grouped.c[edge_name])
            picks.append(sa.cast(sa.func.max(sa.case((cond, known.c.value))), sa.Float(53)))
        at_edges = (
            sa.select(
                known.c[ID].label(ID),
                *[p.label(f) for p, (f, _, _) in zip(picks, edges, strict=True)],
            )
            .select_from(joined)
            .where(sa.or_(*[grouped.c[e] == known.c.ts for _, _, e in edges]))
            .group_by(known.c[ID])
            .cte(f"segops_edge_{source}")
        )
        plain = [c for c in grouped.c if c.name != ID and not c.name.endswith("__edge")]
        both = grouped.outerjoin(at_edges, at_edges.c[ID] == grouped.c[ID])
        return (
            sa.select(grouped.c[ID], *plain, *[at_edges.c[f] for f, _, _ in edges])
            .select_from(both)
            .cte(f"segops_feat2_{source}")
        )


def compile_dataset(
    ws: Workspace,
    relations: Mapping[str, Relation],
    as_of: date,
    dialect: str | None = None,
    unique: frozenset[str] = frozenset(),
) -> Compiled:
    """The statement giving one row per entity: ``segops_id``, entity columns, features,
    scores (named as in the pandas frame), then the gate's per-entity counts (``extra``).

    ``dialect`` (``duckdb``, ``postgresql``) allows one-pass ``first``/``last``; the entity
    sources in ``unique`` have no repeated id (the gate counted them), so need no window."""
    schema = declared_schema(ws)
    b = _Builder(ws, relations, as_of, dialect)
    entity_names = [n for n, c in ws.sources.items() if c.kind == "entity"]
    event_names = [n for n, c in ws.sources.items() if c.kind == "events"]
    for name in ws.sources:
        if ws.sources[name].kind == "mapping":
            _required(relations[name], "key", "id")

    entity_ctes: dict[str, FromClause] = {}
    entity_columns: dict[str, list[tuple[str, str]]] = {}
    for name in entity_names:
        entity_ctes[name], entity_columns[name] = b.entity(name, schema, name in unique)
    raw_events = {name: b.events(name) for name in event_names}

    only = (
        list(entity_ctes.values()) if len(entity_ctes) == 1 and set(entity_ctes) <= unique else []
    )
    if only:  # one entity source without repeated ids is the universe: no DISTINCT, no join
        parts = []
    elif entity_ctes:
        parts = [sa.select(cte.c[ID]) for cte in entity_ctes.values()]
    else:
        parts = [sa.select(ev.c[ID]).where(ev.c[ID].is_not(None)) for ev in raw_events.values()]
    if only:
        universe = only[0]
    elif parts:
        universe = sa.union(*parts).cte("segops_ids") if len(parts) > 1 else None
        if universe is None:
            universe = sa.select(parts[0].selected_columns[0]).distinct().cte("segops_ids")
    else:
        universe = sa.select(sa.cast(sa.null(), sa.String).label(ID)).where(sa.false())
        universe = universe.cte("segops_ids")
    b.ctes["segops_ids"] = universe

    features_of: dict[str, list[str]] = {name: [] for name in event_names}
    for fname, feat in ws.features.items():
        features_of[feat.source].append(fname)
    feature_ctes = {
        source: b.features(source, names, raw_events[source])
        for source, names in features_of.items()
    }

    joined: FromClause = universe
    selected: list[ColumnElement[Any]] = [universe.c[ID]]
    extra: list[str] = []
    kinds: dict[str, str] = {}
    for name, cte in entity_ctes.items():
        if cte is not universe:
            joined = joined.outerjoin(cte, cte.c[ID] == universe.c[ID])
        for column, kind in entity_columns[name]:
            selected.append(cte.c[column])
            kinds[column] = kind
        selected.append(cte.c[f"segops_rows__{name}"])
        extra.append(f"segops_rows__{name}")
    for source, cte in feature_ctes.items():
        joined = joined.outerjoin(cte, cte.c[ID] == universe.c[ID])
        for stat in ("segops_n", "segops_present", "segops_valued"):
            selected.append(cte.c[stat].label(f"{stat}__{source}"))
            extra.append(f"{stat}__{source}")
    for fname, feat in ws.features.items():
        value: ColumnElement[Any] = feature_ctes[feat.source].c[fname]
        fill = feat.fill
        if fill is None and feat.agg in ("count", "sum"):
            fill = 0.0
        if fill is not None:
            value = sa.func.coalesce(value, sa.literal(float(fill), sa.Float(53)))
        selected.append(sa.cast(value, sa.Float(53)).label(fname))
        kinds[fname] = "number"
    base = sa.select(*selected).select_from(joined).cte("segops_base")
    b.ctes["segops_base"] = base
    final = _scores(ws, schema, base, kinds)
    statement = sa.select(final.c[ID], *[final.c[c] for c in [*schema.columns, *extra]])
    missing = {name: [c for c in _wanted(rel) if not rel.has(c)] for name, rel in relations.items()}
    return Compiled(
        statement,
        schema,
        kinds,
        features_of,
        entity_columns,
        missing,
        dict(b.ctes, final=final),
        extra,
    )


def _wanted(rel: Relation) -> list[str]:
    cfg = rel.cfg
    if cfg.kind == "entity":
        wanted = [cfg.created, cfg.timestamp, *cfg.columns]
    elif cfg.kind == "events":
        wanted = [cfg.timestamp, cfg.event, cfg.value, *cfg.columns]
    else:
        wanted = [*cfg.columns]
    return [c for c in dict.fromkeys(wanted) if c and c != cfg.id]


def _scores(ws: Workspace, schema: Schema, base: FromClause, kinds: dict[str, str]) -> FromClause:
    """Scores layered as CTEs: each layer adds the scores whose inputs are all known."""
    pending = dict(ws.scores)
    current = base
    layer = 0
    while pending:
        ready = [
            s
            for s, score in pending.items()
            if not ({schema.resolve(c) for c in score.weights} & set(pending))
        ]
        if not ready:
            raise EngineError(f"scores {', '.join(sorted(pending))} weigh each other in a cycle")
        added = []
        for name in ready:
            score = pending.pop(name)
            total: ColumnElement[Any] = sa.literal(0.0, sa.Float(53))
            weight_sum = 0.0
            for column, weight in score.weights.items():
                frame_name = schema.resolve(column)
                kind = kinds.get(frame_name, schema.columns.get(frame_name))
                if kind not in ("number", "bool"):
                    raise EngineError(
                        f"score {name!r}: column {column!r} is a {kind}; the SQL engines "
                        "score numbers and booleans only (use engine 'pandas' for dates)"
                    )
                x = current.c[frame_name]
                if kind == "bool":
                    x = sa.case((x, 1.0), (sa.not_(x), 0.0), else_=sa.null())
                part = _normalise(sa.cast(x, sa.Float(53)), score.method)
                if weight < 0:
                    part = sa.literal(1.0, sa.Float(53)) - part
                term = sa.literal(abs(weight), sa.Float(53)) * sa.func.coalesce(part, 0.0)
                total = total + term
                weight_sum += abs(weight)
            if weight_sum:
                scaled = sa.literal(100.0, sa.Float(53)) * total / sa.literal(weight_sum)
            else:
                scaled = sa.literal(0.0, sa.Float(53))
            added.append(_round_half_even(scaled).label(name))
            kinds[name] = "number"
        layer += 1
        current = sa.select(current, *added).cte(f"segops_scores_{layer}")
    return current


def _normalise(x: ColumnElement[Any], method: str) -> ColumnElement[Any]:
    """0-1 like :func:`segments.sources.scores._normalise`; NULL stays NULL."""
    present = sa.func.count(x).over()
    if method == "rank":
        rank = sa.func.rank().over(order_by=sa.nulls_last(x.asc()))
        ties = sa.func.count(sa.literal(1)).over(partition_by=x)
        ranks = sa.cast(2 * (rank - 1) + ties - 1, sa.Float(53)) / 2.0
        value = ranks / sa.cast(present - 1, sa.Float(53))
        return sa.case((x.is_(None), sa.null()), (present == 1, 0.5), else_=value)
    lo = sa.func.min(x).over()
    hi = sa.func.max(x).over()
    return sa.case((x.is_(None), sa.null()), (hi == lo, 0.5), else_=(x - lo) / (hi - lo))


def _round_half_even(x: ColumnElement[Any]) -> ColumnElement[Any]:
    """``numpy.round(x, 1)``: ``rint(x * 10) / 10`` with ties to even."""
    y = x * 10.0
    low = sa.func.floor(y)
    odd = low - 2 * sa.func.floor(low / 2)
    rint = sa.case((y - low == 0.5, low + odd), else_=sa.func.round(y))
    return sa.cast(rint / 10.0, sa.Float(53))


PACK = 60
"""Segments per packed flag column (bits of a BIGINT, clear of the sign bit)."""


def compile_members(
    compiled: Compiled, rules: Mapping[str, Rule]
) -> tuple[list[ColumnElement[Any]], list[str]]:
    """Every segment's rule over the per-entity row, ``in_segment`` inlined, as packed flag
    columns ``m0``, ``m1``, ... (bit ``k`` of ``m{j}``: segment ``names[PACK * j + k]``;
    the names come back in dependency order)."""
    final = compiled.ctes["final"]
    order = order_segments({name: dependencies(rule) for name, rule in rules.items()})
    clauses: dict[str, ColumnElement[bool]] = {}
    for name in order:
        clauses[name] = to_sql(rules[name], final, compiled.schema, clauses)
    names = list(order)
    columns = []
    for j in range(0, len(names), PACK):
        bits = [
            sa.case((clauses[name], sa.literal(1 << k, sa.BigInteger())), else_=0)
            for k, name in enumerate(names[j : j + PACK])
        ]
        packed = bits[0]
        for bit in bits[1:]:
            packed = packed + bit
        columns.append(sa.cast(packed, sa.BigInteger()).label(f"m{j // PACK}"))
    return columns, names
