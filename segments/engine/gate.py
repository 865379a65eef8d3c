"""The quality gate's counts as queries: per source, one aggregate statement gives what
:class:`segments.sources.LoadedSource` holds for the gate (rows, newest timestamp, blank and
unresolved ids, duplicate ids, values present and unparseable), so nothing is loaded."""

from __future__ import annotations

from typing import Any

import sqlalchemy as sa
from sqlalchemy.sql import ColumnElement, FromClause, Select

from segments.engine.compile import ID, Compiled, _Builder, _fold
from segments.engine.relations import Relation


def _count(cond: ColumnElement[bool]) -> ColumnElement[Any]:
    return sa.func.count(sa.case((cond, 1)))


def _value_counts(
    rel: Relation, kinds: dict[str, str], where: ColumnElement[bool] | None = None
) -> list[ColumnElement[Any]]:
    out = []
    for column, kind in kinds.items():
        if not rel.has(column):
            continue
        present = rel.present(column) if where is None else sa.and_(where, rel.present(column))
        typed = rel.typed(column, kind)
        out.append(_count(present).label(f"present__{column}"))
        out.append(_count(sa.and_(present, typed.is_(None))).label(f"invalid__{column}"))
    return out


def _parsed_kinds(rel: Relation) -> dict[str, str]:
    cfg = rel.cfg
    kinds = {c: k for c, k in cfg.columns.items() if k != "string"}
    for extra in (cfg.created, cfg.timestamp):
        if extra and extra not in kinds:
            kinds[extra] = "date"
    return kinds


def gate_statements(b: _Builder, compiled: Compiled) -> dict[str, Select[Any]]:
    """One aggregate statement per source; its labelled columns feed ``LoadedSource``."""
    universe: FromClause = compiled.ctes["segops_ids"]
    out: dict[str, Select[Any]] = {}
    for name, rel in b.rel.items():
        cfg = rel.cfg
        blank_raw = _fold(rel.text(cfg.id), ()).is_(None) if rel.has(cfg.id) else sa.true()
        if cfg.kind == "mapping":
            key = _fold(rel.text(cfg.key or ""), (cfg.id_case,))
            ident = _fold(rel.text(cfg.id), (cfg.id_case,))
            ok = sa.and_(key.is_not(None), ident.is_not(None))
            in_universe = sa.exists().where(universe.c[ID] == ident)
            pairs = sa.select(key.label("key"), ident.label("id")).where(ok).distinct().subquery()
            conflicting = (
                sa.select(sa.func.count())
                .select_from(
                    sa.select(pairs.c.key)
                    .group_by(pairs.c.key)
                    .having(sa.func.count() > 1)
                    .subquery()
                )
                .scalar_subquery()
            )
            out[name] = sa.select(
                sa.func.count().label("rows"),
                _count(sa.not_(ok)).label("blank"),
                _count(sa.and_(ok, sa.not_(in_universe))).label("unresolved"),
                conflicting.label("duplicates"),
            ).select_from(rel.table)
            continue
        joined, ident = b.resolved(rel)
        if cfg.kind == "entity":  # duplicates come with the dataset (``segops_rows__``)
            cut = b.created_cut(rel)
            stamp = rel.typed(cfg.timestamp, "date") if rel.has(cfg.timestamp) else sa.null()
            out[name] = (
                sa.select(
                    sa.func.count().label("rows"),
                    sa.func.max(stamp).label("max_timestamp"),
                    _count(ident.is_(None)).label("dropped"),
                    _count(sa.and_(ident.is_(None), blank_raw)).label("blank"),
                    sa.func.count(ident).label("with_id"),
                    sa.func.count(sa.distinct(ident)).label("distinct_ids"),
                    *_value_counts(rel, _parsed_kinds(rel), ident.is_not(None)),
                )
                .select_from(joined)
                .where(*cut)
            )
            continue
        # events of known entities (and their values) are counted with the dataset
        ts = rel.typed(cfg.timestamp or "", "date")
        kept = sa.and_(ts.is_not(None), ts < b.before)
        out[name] = sa.select(
            _count(kept).label("rows"),
            sa.func.max(sa.case((kept, ts))).label("max_timestamp"),
            _count(sa.and_(kept, ident.is_(None))).label("unmapped"),
            _count(sa.and_(kept, ident.is_(None), blank_raw)).label("blank"),
            _count(sa.and_(kept, ident.is_not(None))).label("resolved"),
            *_value_counts(rel, {cfg.timestamp or "": "date"}),
        ).select_from(joined)
    return out
