"""The DuckDB and SQL engines: same dataset as pandas, files read in place, aggregates pushed
down to PostgreSQL, warehouse dialects compiled, and clear errors."""

from __future__ import annotations

from datetime import date
from pathlib import Path
from textwrap import dedent
from typing import Any

import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
import sqlalchemy as sa
import sqlglot
from sqlglot import exp

from segments import rules
from segments.engine import EngineError, choose_engine, load
from segments.engine.compile import compile_dataset, compile_members
from segments.engine.relations import Relation
from segments.evaluate import evaluate_all
from segments.workspace import Workspace

AS_OF = date(2026, 1, 31)

CRM = """\
    account_id,plan,seats,active,signed_at,created_at,updated_at
    a1,pro,10,true,2025-03-01,2025-01-01,2026-01-30T08:00:00
    a2,free,1,false,2025-04-15,2025-02-01,2026-01-29T08:00:00
    a3,team,,,,2025-03-01,
    A1 ,dup,3,,,,
    a4,late,2,,,2026-03-01,
    a5,Pro,x,maybe,soon,,
"""
EVENTS = """\
    email,ts,event,value
    x@a,2026-01-31T23:00:00,login,5
    x@a,2026-01-30T10:00:00,login,3
    X@A,2026-01-20T10:00:00,purchase,100
    x@a,2026-01-02T10:00:00,login,1
    y@b,2026-01-01T10:00:00,login,7
    y@b,2026-02-01T00:00:00,login,50
    y@b,2026-01-25T08:00:00,purchase,40
    y@b,2026-01-25T08:00:00,purchase,60
    z@c,2026-01-10T08:00:00,login,
    ,2026-01-10T08:00:00,login,
    q@q,2026-01-10T08:00:00,login,
"""
PEOPLE = """\
    email,account_id
    x@a,a1
    y@b,a2
    z@c,zz
    y@b,a3
"""
FEATURES = {
    "logins": {"source": "product", "event": "login", "agg": "count"},
    "logins_30d": {"source": "product", "event": "login", "agg": "count", "window_days": 30},
    "spend": {"source": "product", "event": "purchase", "agg": "sum"},
    "avg_value": {"source": "product", "agg": "avg"},
    "min_value": {"source": "product", "agg": "min", "fill": -1},
    "max_week": {"source": "product", "agg": "max", "window_days": 7},
    "first_value": {"source": "product", "agg": "first"},
    "last_value": {"source": "product", "agg": "last"},
    "since": {"source": "product", "agg": "days_since"},
}
SCORES = {
    "engagement": {"weights": {"logins": 1, "spend": 0.5, "seats": -1}},
    "blend": {"weights": {"engagement": 1, "active": 1}, "method": "minmax"},
}
SEGMENTS = [
    {"name": "big", "title": "Big", "owner": "U1", "rule": "seats >= 2 and logins >= 1"},
    {"name": "not-big", "title": "Not big", "owner": "U1", "rule": "not in_segment('big')"},
    {"name": "paid", "title": "Paid", "owner": "U1", "rule": "plan > 'f' and blend >= 50"},
    {"name": "recent", "title": "Recent", "owner": "U1", "rule": "signed_at >= '2025-04-01'"},
]
CRM_SOURCE = {
    "kind": "entity",
    "id": "account_id",
    "id_case": "lower",
    "created": "created_at",
    "timestamp": "updated_at",
    "columns": {"plan": "string", "seats": "number", "active": "bool", "signed_at": "date"},
}
EVENTS_SOURCE = {
    "kind": "events",
    "id": "email",
    "id_case": "lower",
    "map_via": "people",
    "timestamp": "ts",
    "event": "event",
    "value": "value",
}
PEOPLE_SOURCE = {"kind": "mapping", "key": "email", "id": "account_id"}


def write(tmp_path: Path, name: str, text: str) -> str:
    (tmp_path / name).write_text(dedent(text), encoding="utf-8")
    return name


def workspace(tmp_path: Path, sources: dict[str, Any], **rest: Any) -> Workspace:
    data = {"features": FEATURES, "scores": SCORES, "segments": SEGMENTS, **rest}
    return Workspace.model_validate({"sources": sources, "base_dir": tmp_path, **data})


def csv_workspace(tmp_path: Path, **rest: Any) -> Workspace:
    return workspace(
        tmp_path,
        {
            "crm": {**CRM_SOURCE, "path": write(tmp_path, "crm.csv", CRM)},
            "product": {**EVENTS_SOURCE, "path": write(tmp_path, "events.csv", EVENTS)},
            "people": {**PEOPLE_SOURCE, "path": write(tmp_path, "people.csv", PEOPLE)},
        },
        **rest,
    )


def frames_equal(left: pd.DataFrame, right: pd.DataFrame) -> None:
    """Same rows (any order), same columns and values; categories compared as text."""
    a, b = left.sort_index(), right.sort_index()
    assert list(a.index) == list(b.index)
    assert list(a.columns) == list(b.columns)
    for column in a.columns:
        x, y = a[column], b[column]
        if isinstance(x.dtype, pd.CategoricalDtype):
            x, y = x.astype(object), y.astype(object)
        assert x.dtype == y.dtype or isinstance(right[column].dtype, pd.CategoricalDtype), column
        pd.testing.assert_series_equal(x, y, check_dtype=False, check_names=False, obj=column)


def sources_equal(expected, got) -> None:
    for name, src in expected.sources.items():
        other = got.sources[name]
        for field in ("rows", "max_timestamp", "duplicate_ids", "missing_columns", "unmapped"):
            assert getattr(src, field) == getattr(other, field), (name, field)
        assert src.unknown == other.unknown, name
        assert src.id_stats == other.id_stats, name
        assert {c: (v.present, v.invalid) for c, v in src.values.items()} == {
            c: (v.present, v.invalid) for c, v in other.values.items()
        }, name


def parsed(ws: Workspace) -> dict[str, rules.Rule]:
    return {s.name: rules.parse(s.rule) for s in ws.segments}


def expected_members(ws: Workspace, dataset) -> dict[str, list[str]]:
    masks = evaluate_all(parsed(ws), dataset.frame, dataset.schema)
    return {name: sorted(dataset.frame.index[mask]) for name, mask in masks.items()}


def test_duckdb_on_csv_gives_the_pandas_dataset_and_gate_counts(tmp_path):
    ws = csv_workspace(tmp_path)
    reference, none = load(ws, as_of=AS_OF, engine="pandas")
    got, members = load(ws, as_of=AS_OF, engine="duckdb", rules=parsed(ws))
    assert none is None
    frames_equal(reference.frame, got.frame)
    sources_equal(reference, got)
    assert got.sources["crm"].values["seats"].invalid == 1  # "x" did not parse, as in pandas
    assert {k: sorted(v) for k, v in members.ids.items()} == expected_members(ws, reference)


def parquet_workspace(tmp_path: Path) -> Workspace:
    csv_workspace(tmp_path)  # writes the CSV files
    for name in ("crm", "events", "people"):
        frame = pd.read_csv(tmp_path / f"{name}.csv", dtype=str, keep_default_na=False)
        frame = frame.replace({"": None})
        if name == "events":
            frame["ts"] = pd.to_datetime(frame["ts"])
            frame["value"] = pd.to_numeric(frame["value"])
        if name == "crm":
            frame = frame[frame.account_id != "a5"]
            frame["seats"] = pd.to_numeric(frame["seats"])
            for col in ("signed_at", "created_at", "updated_at"):
                frame[col] = pd.to_datetime(frame[col])
            frame["active"] = frame["active"].map({"true": True, "false": False})
        pq.write_table(pa.Table.from_pandas(frame, preserve_index=False), tmp_path / f"{name}.pq")
    return workspace(
        tmp_path,
        {
            "crm": {**CRM_SOURCE, "path": "crm.pq", "format": "parquet"},
            "product": {**EVENTS_SOURCE, "path": "events.pq", "format": "parquet"},
            "people": {**PEOPLE_SOURCE, "path": "people.pq", "format": "parquet"},
        },
    )


def test_duckdb_on_parquet_gives_the_pandas_dataset(tmp_path):
    ws = parquet_workspace(tmp_path)
    reference, _ = load(ws, as_of=AS_OF, engine="pandas")
    got, members = load(ws, as_of=AS_OF, engine="duckdb", rules=parsed(ws))
    frames_equal(reference.frame, got.frame)
    sources_equal(reference, got)
    assert {k: sorted(v) for k, v in members.ids.items()} == expected_members(ws, reference)


def test_duckdb_reads_globs_and_hive_folders_in_place(tmp_path):
    ws = parquet_workspace(tmp_path)
    events = pq.read_table(tmp_path / "events.pq").to_pandas()
    (tmp_path / "parts").mkdir()
    for i, part in enumerate((events.iloc[:5], events.iloc[5:])):
        pq.write_table(pa.Table.from_pandas(part), tmp_path / "parts" / f"p{i}.parquet")
        folder = tmp_path / "hive" / f"month={i}"
        folder.mkdir(parents=True)
        pq.write_table(pa.Table.from_pandas(part), folder / "data.parquet")
    reference, _ = load(ws, as_of=AS_OF, engine="pandas")
    for path in ("parts/*.parquet", "hive"):
        sources = dict(ws.sources)
        sources["product"] = sources["product"].model_copy(update={"path": path})
        moved = ws.model_copy(update={"sources": sources})
        got, _ = load(moved, as_of=AS_OF, engine="duckdb")
        frames_equal(reference.frame, got.frame)
        assert got.sources["product"].rows == reference.sources["product"].rows


def test_a_glob_that_leads_outside_the_workspace_is_refused(tmp_path):
    inside = tmp_path / "inside"
    inside.mkdir()
    ws = csv_workspace(inside)
    sources = dict(ws.sources)
    sources["product"] = sources["product"].model_copy(update={"path": "../*.csv"})
    (tmp_path / "secret.csv").write_text("email,ts\n")
    with pytest.raises(EngineError, match="source 'product'"):
        load(ws.model_copy(update={"sources": sources}), as_of=AS_OF, engine="duckdb")


def test_an_option_the_engine_cannot_honour_is_named(tmp_path):
    ws = csv_workspace(tmp_path)
    sources = dict(ws.sources)
    sources["crm"] = sources["crm"].model_copy(update={"thousands": ","})
    with pytest.raises(EngineError) as caught:
        load(ws.model_copy(update={"sources": sources}), as_of=AS_OF, engine="duckdb")
    message = str(caught.value)
    assert "engine 'duckdb'" in message and "'crm'" in message and "'thousands'" in message


def test_a_date_score_input_is_refused_by_the_sql_engines_with_the_reason(tmp_path):
    ws = csv_workspace(tmp_path, scores={"age": {"weights": {"signed_at": 1}}})
    with pytest.raises(EngineError, match="score 'age': column 'signed_at' is a date"):
        load(ws, as_of=AS_OF, engine="duckdb")
    assert load(ws, as_of=AS_OF, engine="pandas")[0].frame["age"].notna().all()


def test_the_engine_is_chosen_from_the_sources(tmp_path):
    ws = csv_workspace(tmp_path)
    assert choose_engine(ws) == "pandas"
    assert choose_engine(ws, "duckdb") == "duckdb"
    assert choose_engine(ws.model_copy(update={"engine": "duckdb"})) == "duckdb"
    url = "postgresql+psycopg://db/x"
    sql = {n: {**s, "url": url, "table": n} for n, s in (("crm", CRM_SOURCE),)}
    assert choose_engine(workspace(tmp_path, sql, features={}, scores={}, segments=[])) == "sql"
    with pytest.raises(EngineError, match="needs every source to be a table or query"):
        load(ws, as_of=AS_OF, engine="sql")
    lite = {"crm": {**CRM_SOURCE, "url": f"sqlite:///{tmp_path / 'x.db'}", "table": "crm"}}
    on_sqlite = workspace(tmp_path, lite, features={}, scores={}, segments=[])
    assert choose_engine(on_sqlite) == "pandas"  # only where the statements are tested
    with pytest.raises(EngineError, match="does not run on SQLite"):
        load(on_sqlite, as_of=AS_OF, engine="sql")


# ------------------------------------------------------------------------- PostgreSQL


def pg_tables(url: str, schema: str) -> None:
    """The test data as typed PostgreSQL tables."""
    engine = sa.create_engine(url)
    with engine.begin() as conn:
        conn.exec_driver_sql(f"CREATE SCHEMA {schema}")
        conn.exec_driver_sql(
            f"CREATE TABLE {schema}.crm (account_id text, plan text, seats double precision,"
            " active boolean, signed_at date, created_at date, updated_at timestamp)"
        )
        conn.exec_driver_sql(
            f"CREATE TABLE {schema}.events (email text, ts timestamp, event text, "
            "value double precision)"
        )
        conn.exec_driver_sql(f"CREATE TABLE {schema}.people (email text, account_id text)")
        for table, text in (("crm", CRM), ("events", EVENTS), ("people", PEOPLE)):
            lines = dedent(text).strip().splitlines()
            width = len(lines[0].split(","))
            for line in lines[1:]:
                values = [v if v != "" else None for v in line.split(",")]
                if table == "crm" and values[0] == "a5":
                    continue  # typed columns cannot hold the unparseable row
                marks = ", ".join(["%s"] * width)
                insert = f"INSERT INTO {schema}.{table} VALUES ({marks})"
                conn.exec_driver_sql(insert, tuple(values))
    engine.dispose()


def pg_workspace(tmp_path: Path, url: str, schema: str = "shop") -> Workspace:
    return workspace(
        tmp_path,
        {
            "crm": {**CRM_SOURCE, "url": url, "table": f"{schema}.crm"},
            "product": {**EVENTS_SOURCE, "url": url, "table": f"{schema}.events"},
            "people": {**PEOPLE_SOURCE, "url": url, "table": f"{schema}.people"},
        },
    )


@pytest.mark.postgres
def test_sql_engine_on_postgresql_gives_the_pandas_dataset(tmp_path, pg_url):
    pg_tables(pg_url, "shop")
    ws = pg_workspace(tmp_path, pg_url)
    assert choose_engine(ws) == "sql"
    reference, _ = load(ws, as_of=AS_OF, engine="pandas")
    got, members = load(ws, as_of=AS_OF, rules=parsed(ws))
    frames_equal(reference.frame, got.frame)
    sources_equal(reference, got)
    assert {k: sorted(v) for k, v in members.ids.items()} == expected_members(ws, reference)


def _statements(url: str, run) -> list[str]:
    seen: list[str] = []

    def record(conn, cursor, statement, parameters, context, executemany) -> None:
        seen.append(statement)

    sa.event.listen(sa.engine.Engine, "before_cursor_execute", record)
    try:
        run()
    finally:
        sa.event.remove(sa.engine.Engine, "before_cursor_execute", record)
    return seen


def _reads_rows_of(statement: str, table: str) -> bool:
    """Whether the outermost SELECT returns rows straight from ``table`` (no grouping)."""
    tree = sqlglot.parse_one(statement, read="postgres")
    if not isinstance(tree, exp.Select):
        return False
    from_tables = {t.name for t in tree.find_all(exp.Table) if t.parent_select is tree}
    grouped = tree.args.get("group") is not None or any(
        isinstance(e, exp.AggFunc) for s in tree.expressions for e in s.walk()
    )
    return table in from_tables and not grouped


@pytest.mark.postgres
def test_a_refresh_on_postgresql_aggregates_there_and_never_fetches_event_rows(tmp_path, pg_url):
    pg_tables(pg_url, "shop")
    ws = pg_workspace(tmp_path, pg_url)
    sql_statements = _statements(pg_url, lambda: load(ws, as_of=AS_OF, rules=parsed(ws)))
    reads = [s for s in sql_statements if "shop.events" in s]
    assert reads and all("GROUP BY" in s or "count(" in s for s in reads)
    assert not any(_reads_rows_of(s, "events") for s in sql_statements)
    # the pandas path, observed the same way, does fetch them: the check can fail
    pandas_statements = _statements(pg_url, lambda: load(ws, as_of=AS_OF, engine="pandas"))
    assert any(_reads_rows_of(s, "events") for s in pandas_statements)


@pytest.mark.postgres
def test_a_failing_query_names_the_engine_and_the_features(tmp_path, pg_url):
    engine = sa.create_engine(pg_url)
    with engine.begin() as conn:
        conn.exec_driver_sql("CREATE SCHEMA bad")
        conn.exec_driver_sql("CREATE TABLE bad.events (email text, ts timestamp, value text)")
        conn.exec_driver_sql("INSERT INTO bad.events VALUES ('x', '2026-01-01', 'lots')")
    engine.dispose()
    ws = Workspace.model_validate(
        {
            "base_dir": tmp_path,
            "sources": {
                "product": {
                    "kind": "events",
                    "url": pg_url,
                    "table": "bad.events",
                    "id": "email",
                    "timestamp": "ts",
                    "value": "value",
                }
            },
            "features": {"spend": {"source": "product", "agg": "sum"}},
        }
    )
    with pytest.raises(EngineError) as caught:
        load(ws, as_of=AS_OF)
    message = str(caught.value)
    assert message.startswith("engine 'sql': query for ")
    assert "spend" in message and "lots" in message


# ---------------------------------------------------------------------- warehouses


def _relations(ws: Workspace) -> dict[str, Relation]:
    """The test sources as typed tables, without a connection, to compile against."""
    types = {
        "crm": {
            "account_id": sa.String(),
            "plan": sa.String(),
            "seats": sa.Float(),
            "active": sa.Boolean(),
            "signed_at": sa.Date(),
            "created_at": sa.Date(),
            "updated_at": sa.DateTime(),
        },
        "product": {
            "email": sa.String(),
            "ts": sa.DateTime(),
            "event": sa.String(),
            "value": sa.Float(),
        },
        "people": {"email": sa.String(), "account_id": sa.String()},
    }
    out = {}
    for name, cfg in ws.sources.items():
        table = sa.table(name, *[sa.column(c, t) for c, t in types[name].items()], schema="s")
        out[name] = Relation(name, cfg, table, list(types[name]), types[name], "typed")
    return out


@pytest.mark.parametrize(
    ("dialect", "days"),
    [
        ("snowflake.sqlalchemy.snowdialect:SnowflakeDialect", "DATEDIFF(day,"),
        ("sqlalchemy_bigquery.base:BigQueryDialect", "DATE_DIFF("),
        ("trino.sqlalchemy.dialect:TrinoDialect", "date_diff('day',"),
    ],
)
def test_the_statements_compile_for_warehouse_dialects(tmp_path, dialect, days):
    module_name, _, class_name = dialect.partition(":")
    module = pytest.importorskip(module_name)
    ws = pg_workspace(tmp_path, "postgresql://unused/x")
    compiled = compile_dataset(ws, _relations(ws), AS_OF)
    flags, names = compile_members(compiled, parsed(ws))
    text = str(
        compiled.statement.add_columns(*flags).compile(
            dialect=getattr(module, class_name)(), compile_kwargs={"literal_binds": True}
        )
    )
    assert names == ["big", "not-big", "paid", "recent"]
    assert days in text and "GROUP BY" in text and "rank() OVER" in text.replace("RANK", "rank")
    assert text.count("WITH ") == 1  # one statement of CTEs, not one query per segment


def test_more_segments_than_one_packed_flag_column_holds(tmp_path):
    many = [
        {"name": f"s{i:02d}", "title": f"S{i}", "owner": "U1", "rule": f"seats >= {i % 12}"}
        for i in range(70)
    ]
    ws = csv_workspace(tmp_path, segments=many)
    reference, _ = load(ws, as_of=AS_OF, engine="pandas")
    got, members = load(ws, as_of=AS_OF, engine="duckdb", rules=parsed(ws))
    ids = {k: sorted(v) for k, v in members.ids.items()}
    assert ids == expected_members(ws, reference)
    assert ids["s61"] == ids["s01"] != ids["s62"]
