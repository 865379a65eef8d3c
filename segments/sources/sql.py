"""SQL sources: the wanted columns of a table or query through a SQLAlchemy URL, with the
as_of cut of events pushed down.

A query is checked to be one read-only SELECT before it runs, and every read runs in a
read-only transaction where the database has one (see :mod:`segments.access`)."""

from __future__ import annotations

from typing import Any

import pandas as pd
import pyarrow as pa
import sqlalchemy as sa

from segments.access import check_query, read_only
from segments.workspace import SourceConfig


def _read_sql(
    cfg: SourceConfig, wanted: list[str], before: pd.Timestamp | None
) -> tuple[pa.Table, set[str]]:
    """Select only the wanted columns; cut events at ``before`` (+1 day slack) in SQL."""
    if not cfg.table:
        check_query(cfg.query or "", cfg.url)
    engine = sa.create_engine(cfg.url or "")
    time_col = cfg.timestamp if cfg.kind == "events" else None
    try:
        with engine.connect() as conn, read_only(conn):
            if cfg.table:
                schema_name, _, table_name = cfg.table.rpartition(".")
                table = sa.Table(
                    table_name, sa.MetaData(), schema=schema_name or None, autoload_with=conn
                )
                source = table
                names = [c.name for c in table.columns]
            else:
                query = (cfg.query or "").strip().rstrip(";")
                probe = conn.execute(
                    sa.text(f"SELECT * FROM ({query}) AS segops_source WHERE 1 = 0")
                )
                names = list(probe.keys())
                source = (
                    sa.text(query).columns(*[sa.column(c) for c in names]).subquery("segops_source")
                )
            present = [c for c in wanted if c in names]
            stmt = sa.select(*[source.c[c] for c in present])
            if before is not None and time_col in present:
                clause = _before_clause(source.c[time_col], before + pd.Timedelta(days=1))
                if clause is not None:
                    stmt = stmt.where(clause)
            frame = pd.read_sql(stmt, conn)
    finally:
        engine.dispose()
    return _arrow_table(frame, present), set(names)


def _before_clause(column: Any, before: pd.Timestamp) -> Any:
    """``column < before`` bound in a type the column compares with, or None to skip."""
    kind = column.type
    if isinstance(kind, sa.DateTime):
        return column < before.to_pydatetime()
    if isinstance(kind, sa.Date):
        return column < before.date()
    if isinstance(kind, sa.String | sa.types.NullType):
        # untyped, so the database reads the date in the column's own type (or as text)
        day = before.strftime("%Y-%m-%d")
        return column < sa.bindparam("segops_before", day, type_=sa.types.NullType())
    return None


def _arrow_table(frame: pd.DataFrame, names: list[str]) -> pa.Table:
    arrays = []
    for name in names:
        series = frame[name]
        try:
            arrays.append(pa.chunked_array([pa.array(series, from_pandas=True)]))
        except (pa.ArrowInvalid, pa.ArrowTypeError):
            text = series.map(lambda v: None if pd.isna(v) else str(v), na_action="ignore")
            arrays.append(pa.chunked_array([pa.array(text, type=pa.string(), from_pandas=True)]))
    return pa.table(arrays, names=names) if names else pa.table({})
