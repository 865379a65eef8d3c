"""Sources as relations of an engine: an in-memory DuckDB reading CSV and Parquet files in
place, or the one SQLAlchemy database that holds every SQL source.

A :class:`Relation` is one source as a SQLAlchemy ``FromClause`` plus the typed expressions
the compiler needs (:meth:`Relation.typed`, :meth:`Relation.text`, :meth:`Relation.order`).
The access guarantees of :mod:`segments.access` hold here too: every file a glob or a
folder leads to is checked to stay inside the workspace and its data roots before DuckDB
sees it, and SQL queries are checked to be one read-only SELECT and run in a read-only
transaction.
"""

from __future__ import annotations

import glob as globbing
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import sqlalchemy as sa
from sqlalchemy.ext.compiler import compiles
from sqlalchemy.sql import ColumnElement, FromClause
from sqlalchemy.sql.visitors import InternalTraversal

from segments.access import AccessError, check_query, read_only
from segments.engine.options import EngineError, EngineOptions, backend
from segments.sources.files import MISSING_MARKERS
from segments.workspace import SourceConfig, Workspace

_TRUE = ("true", "t", "yes", "y", "1")
_FALSE = ("false", "f", "no", "n", "0")
ROW = "segops_row"
FILE = "segops_file"


@dataclass
class Relation:
    """One source as the engine sees it."""

    name: str
    cfg: SourceConfig
    table: FromClause
    names: list[str]
    types: dict[str, sa.types.TypeEngine[Any]]
    flavour: str  # "csv" (all text, parsed here), "typed" (Parquet, database tables)
    markers: tuple[str, ...] = ()
    order_columns: list[str] = field(default_factory=list)

    def has(self, column: str | None) -> bool:
        return bool(column) and column in self.names

    def col(self, column: str) -> ColumnElement[Any]:
        return self.table.c[column]

    def text(self, column: str) -> ColumnElement[Any]:
        """The column as text, as ids are read: integral numbers without a fraction."""
        col = self.col(column)
        kind = self.types.get(column)
        if isinstance(kind, sa.Float | sa.Numeric) and not isinstance(kind, sa.Integer):
            whole = sa.cast(sa.cast(col, sa.BigInteger), sa.String)
            return sa.case((col == sa.func.floor(col), whole), else_=sa.cast(col, sa.String))
        if self.flavour == "csv" and self.cfg.na_values:
            return sa.case((col.in_(list(self.cfg.na_values)), sa.null()), else_=col)
        if isinstance(kind, sa.String):
            return col
        return sa.cast(col, sa.String)

    def _marked(self, column: str) -> ColumnElement[Any]:
        """Trimmed text with the missing markers as NULL (CSV text read for a typed kind)."""
        trimmed = sa.func.trim(self.col(column))
        return sa.case((trimmed.in_(list(self.markers)), sa.null()), else_=trimmed)

    def typed(self, column: str, kind: str) -> ColumnElement[Any]:
        """The column read as a declared kind: DOUBLE, TIMESTAMP (naive UTC), BOOLEAN or text."""
        col = self.col(column)
        kind_type = self.types.get(column)
        if kind == "string":
            return self.text(column)
        if self.flavour == "csv":
            raw = self._marked(column)
            if kind == "number":
                return _finite(_TryCast(raw, "DOUBLE"))
            if kind == "date":
                return _TryCast(raw, "TIMESTAMPTZ").op("AT TIME ZONE")(sa.literal("UTC"))
            word = sa.func.lower(raw)
            return sa.case(
                (word.in_(_TRUE), sa.true()), (word.in_(_FALSE), sa.false()), else_=sa.null()
            )
        if kind == "number":
            if isinstance(kind_type, sa.Boolean):
                return sa.case((col, 1.0), (sa.not_(col), 0.0), else_=sa.null())
            return _finite(sa.cast(col, sa.Float(53)))
        if kind == "date":
            if isinstance(kind_type, sa.DateTime) and kind_type.timezone:
                return col.op("AT TIME ZONE")(sa.literal("UTC"))
            if isinstance(kind_type, sa.DateTime):
                return col
            if isinstance(kind_type, sa.Date):
                return sa.cast(col, sa.DateTime())
            if isinstance(kind_type, sa.Integer | sa.Float | sa.Numeric):  # Unix seconds
                return sa.func.to_timestamp(col).op("AT TIME ZONE")(sa.literal("UTC"))
            aware = sa.cast(col, sa.DateTime(timezone=True))  # the session's zone is UTC
            return aware.op("AT TIME ZONE")(sa.literal("UTC"))
        if isinstance(kind_type, sa.Boolean):
            return col
        if isinstance(kind_type, sa.Integer | sa.Float | sa.Numeric):
            return sa.case((col.is_(None), sa.null()), else_=col != 0)
        return sa.cast(col, sa.Boolean())

    def present(self, column: str) -> ColumnElement[Any]:
        """True where a raw value is there to parse (not null, text not blank)."""
        col = self.col(column)
        if self.flavour == "csv":
            return self._marked(column).is_not(None)
        if isinstance(self.types.get(column), sa.String):
            return sa.and_(col.is_not(None), sa.func.trim(col) != "")
        return col.is_not(None)

    def order(self) -> list[ColumnElement[Any]]:
        """The source's own row order, for "the first row wins"."""
        return [self.col(c) for c in self.order_columns]


class _TryCast(ColumnElement[Any]):
    """``TRY_CAST(x AS T)``: NULL where the text does not parse (DuckDB)."""

    inherit_cache = True
    _traverse_internals = [
        ("element", InternalTraversal.dp_clauseelement),
        ("target", InternalTraversal.dp_string),
    ]

    def __init__(self, element: ColumnElement[Any], target: str) -> None:
        self.element = element
        self.target = target
        self.type = sa.Float(53) if target == "DOUBLE" else sa.DateTime(timezone=True)


@compiles(_TryCast)
def _try_cast(element: _TryCast, compiler: Any, **kw: Any) -> str:
    return f"TRY_CAST({compiler.process(element.element, **kw)} AS {element.target})"


def _finite(value: ColumnElement[Any]) -> ColumnElement[Any]:
    """NULL for NaN and infinities (NaN compares greater than every number in SQL)."""
    return sa.case((sa.func.abs(value) <= 1.7976931348623157e308, value), else_=sa.null())


# ------------------------------------------------------------------------------- DuckDB


def _quote(text: str) -> str:
    return "'" + text.replace("'", "''") + "'"


def _files(ws: Workspace, name: str, cfg: SourceConfig) -> tuple[list[Path], bool]:
    """Every file a source's path stands for (a file, a glob, or a folder of Parquet files
    with hive partitions), each checked to stay inside the workspace's data."""
    pattern = cfg.path or ""
    try:
        if any(ch in pattern for ch in "*?["):
            anchor = ws.resolve_path(pattern)
            found = sorted(Path(p) for p in globbing.glob(str(anchor), recursive=True))
            paths = [ws.data_path(str(p)) for p in found if p.is_file()]
            hive = False
        else:
            path = ws.data_path(pattern)
            if path.is_dir():
                found = sorted(p for p in path.rglob("*") if p.is_file())
                suffix = ".parquet" if cfg.format == "parquet" else ".csv"
                paths = [ws.data_path(str(p)) for p in found if p.name.endswith(suffix)]
                hive = True
            elif path.exists():
                paths, hive = [path], False
            else:
                raise EngineError(f"source {name!r}: file not found: {pattern}")
    except AccessError as exc:
        raise EngineError(f"source {name!r}: {exc}") from None
    if not paths:
        raise EngineError(f"source {name!r}: no files match {pattern}")
    return paths, hive


_CSV_UNSUPPORTED = ("thousands", "date_format")


def _duck_relation(conn: sa.Connection, ws: Workspace, name: str, cfg: SourceConfig) -> Relation:
    if cfg.format == "sql":
        raise EngineError(
            f"engine 'duckdb' cannot read source {name!r}: it is a SQL source; "
            "use engine 'sql' (all sources on one database) or 'pandas'"
        )
    for option in _CSV_UNSUPPORTED:
        if cfg.format == "csv" and getattr(cfg, option):
            raise EngineError(
                f"engine 'duckdb' cannot read source {name!r}: the CSV option {option!r} is "
                "not supported in the engine; use engine 'pandas' or convert the file"
            )
    if cfg.format == "csv" and cfg.decimal != ".":
        raise EngineError(
            f"engine 'duckdb' cannot read source {name!r}: the CSV option 'decimal' is not "
            "supported in the engine; use engine 'pandas' or convert the file"
        )
    paths, hive = _files(ws, name, cfg)
    listed = "[" + ", ".join(_quote(str(p)) for p in paths) + "]"
    view = f"segops_src_{name}"
    if cfg.format == "parquet":
        options = "filename = true, file_row_number = true"
        options += f", hive_partitioning = {str(hive).lower()}"
        body = f"SELECT * FROM read_parquet({listed}, {options})"
        order = ["filename", "file_row_number"]
        flavour = "typed"
    else:
        options = f"all_varchar = true, header = true, delim = {_quote(cfg.delimiter)}"
        options += f", hive_partitioning = {str(hive).lower()}"
        body = f"SELECT *, row_number() OVER () AS {ROW} FROM read_csv({listed}, {options})"
        order = [ROW]
        flavour = "csv"
    try:
        conn.exec_driver_sql(f'CREATE OR REPLACE TEMP VIEW "{view}" AS {body}')
        described = conn.exec_driver_sql(f'DESCRIBE SELECT * FROM "{view}"').fetchall()
    except sa.exc.DBAPIError as exc:
        raise EngineError(f"engine 'duckdb': cannot read source {name!r}: {_first(exc)}") from None
    types = {row[0]: _duck_type(str(row[1])) for row in described}
    table = sa.table(view, *[sa.column(c, t) for c, t in types.items()])
    names = [c for c in types if c not in (ROW, "file_row_number", "filename")]
    markers = tuple(dict.fromkeys([*MISSING_MARKERS, *cfg.na_values]))
    return Relation(name, cfg, table, names, types, flavour, markers, order)


def _duck_type(name: str) -> sa.types.TypeEngine[Any]:
    upper = name.upper()
    if upper in ("BOOLEAN",):
        return sa.Boolean()
    if upper in ("TINYINT", "SMALLINT", "INTEGER", "BIGINT", "HUGEINT", "UBIGINT", "UINTEGER"):
        return sa.BigInteger()
    if upper in ("FLOAT", "DOUBLE", "REAL") or upper.startswith("DECIMAL"):
        return sa.Float(53)
    if upper == "DATE":
        return sa.Date()
    if upper.startswith("TIMESTAMP WITH TIME ZONE") or upper == "TIMESTAMPTZ":
        return sa.DateTime(timezone=True)
    if upper.startswith("TIMESTAMP"):
        return sa.DateTime()
    return sa.String()


# ------------------------------------------------------------------------- SQL database


def _sql_relation(conn: sa.Connection, name: str, cfg: SourceConfig, engine: str) -> Relation:
    if cfg.table:
        schema_name, _, table_name = cfg.table.rpartition(".")
        try:
            table = sa.Table(
                table_name, sa.MetaData(), schema=schema_name or None, autoload_with=conn
            )
        except sa.exc.NoSuchTableError:
            raise EngineError(f"source {name!r}: table {cfg.table!r} not found") from None
        types = {c.name: c.type for c in table.columns}
        order = ["ctid"] if conn.dialect.name == "postgresql" else []
        source: FromClause = table
        if order:
            source = sa.select(*table.columns, sa.literal_column("ctid").label(ROW)).subquery(
                f"segops_src_{name}"
            )
            order = [ROW]
        return Relation(name, cfg, source, list(types), types, "typed", (), order)
    try:
        check_query(cfg.query or "", cfg.url)
    except AccessError as exc:
        raise EngineError(f"source {name!r}: {exc}") from None
    query = (cfg.query or "").strip().rstrip(";")
    try:
        probe = conn.execute(sa.text(f"SELECT * FROM ({query}) AS segops_probe WHERE 1 = 0"))
        names = list(probe.keys())
    except sa.exc.DBAPIError as exc:
        raise EngineError(f"engine {engine!r}: source {name!r}: {_first(exc)}") from None
    types = {c: sa.types.NullType() for c in names}
    source = sa.text(query).columns(*[sa.column(c) for c in names]).subquery(f"segops_src_{name}")
    return Relation(name, cfg, source, names, types, "typed", (), [])


def _first(exc: BaseException) -> str:
    orig = getattr(exc, "orig", None) or exc
    lines = [line.strip() for line in str(orig).splitlines() if line.strip()]
    return lines[0] if lines else type(exc).__name__


# ----------------------------------------------------------------------------- opening


@contextmanager
def open_relations(
    ws: Workspace, engine: str, options: EngineOptions
) -> Iterator[tuple[sa.Connection, dict[str, Relation]]]:
    """A connection of the engine and every source of ``ws`` as a relation on it."""
    if engine == "duckdb":
        db = sa.create_engine("duckdb:///:memory:", poolclass=sa.pool.StaticPool)
    else:
        urls = {cfg.url for cfg in ws.sources.values()}
        formats = {cfg.format for cfg in ws.sources.values()}
        if formats != {"sql"} or len(urls) != 1:
            raise EngineError(
                "engine 'sql' needs every source to be a table or query on one database; "
                "this workspace reads "
                + ", ".join(sorted(f or "?" for f in formats))
                + f" from {len(urls)} place(s): use engine 'duckdb' or 'pandas'"
            )
        url = next(iter(urls)) or ""
        if backend(url) == "sqlite":
            raise EngineError(
                "engine 'sql' does not run on SQLite (its dates are text, so windows and "
                "days_since cannot be computed there): use engine 'pandas'"
            )
        db = sa.create_engine(url)
    try:
        with db.connect() as conn:
            if engine == "duckdb":
                _configure_duckdb(conn, options)
                relations = {n: _duck_relation(conn, ws, n, c) for n, c in ws.sources.items()}
                yield conn, relations
            else:
                with read_only(conn):
                    if conn.dialect.name == "postgresql":
                        conn.exec_driver_sql("SET LOCAL TIME ZONE 'UTC'")
                    relations = {
                        n: _sql_relation(conn, n, c, engine) for n, c in ws.sources.items()
                    }
                    yield conn, relations
    finally:
        db.dispose()


def _configure_duckdb(conn: sa.Connection, options: EngineOptions) -> None:
    conn.exec_driver_sql("SET TimeZone = 'UTC'")
    try:
        conn.exec_driver_sql(f"SET memory_limit = {_quote(options.memory_limit)}")
    except sa.exc.DBAPIError as exc:
        raise EngineError(
            f"engine 'duckdb': memory limit {options.memory_limit!r} "
            f"(SEGOPS_DUCKDB_MEMORY_LIMIT): {_first(exc)}"
        ) from None
    if options.temp_dir is not None:
        options.temp_dir.mkdir(parents=True, exist_ok=True)
        conn.exec_driver_sql(f"SET temp_directory = {_quote(str(options.temp_dir))}")
    if options.threads:
        conn.exec_driver_sql(f"SET threads = {int(options.threads)}")
    conn.exec_driver_sql("SET preserve_insertion_order = true")
