"""Loading sources into the entity frame: formats, ids, as_of cuts, features, scores."""

from __future__ import annotations

import io
import math
from datetime import date
from pathlib import Path
from textwrap import dedent
from typing import Any

import numpy as np
import pandas as pd
import pytest
import sqlalchemy as sa

from segments.errors import SegopsError
from segments.sources import Dataset, SourceError, load_dataset
from segments.workspace import Workspace, declared_schema

AS_OF = date(2026, 1, 31)

CRM = """\
    account_id,plan,seats,active,signed_at,created_at,updated_at
    a1,pro,10,true,2025-03-01,2025-01-01,2026-01-30T08:00:00
    a2,free,1,false,2025-04-15,2025-02-01,2026-01-29T08:00:00
    a3,team,,,,2025-03-01,
"""

EVENTS = """\
    account_id,ts,event,value
    a,2026-01-31T23:00:00,login,5
    a,2026-01-30T10:00:00,login,3
    a,2026-01-20T10:00:00,purchase,100
    a,2026-01-02T10:00:00,login,1
    a,2026-01-01T10:00:00,login,7
    a,2026-02-01T00:00:00,login,50
    b,2026-01-25T08:00:00,purchase,40
    b,2026-01-25T08:00:00,purchase,60
    b,2026-01-10T08:00:00,login,
"""

ACCOUNTS = """\
    account_id,name
    a,Acme
    b,Bolt
    c,Crow
"""


def write(tmp_path: Path, name: str, text: str) -> str:
    (tmp_path / name).write_text(dedent(text), encoding="utf-8")
    return name


def workspace(tmp_path: Path, sources: dict[str, Any], **rest: Any) -> Workspace:
    return Workspace.model_validate({"sources": sources, "base_dir": tmp_path, **rest})


def crm_source(path: str = "crm.csv", **extra: Any) -> dict[str, Any]:
    return {
        "kind": "entity",
        "path": path,
        "id": "account_id",
        "columns": {"plan": "string", "seats": "number", "active": "bool", "signed_at": "date"},
        **extra,
    }


def load(ws: Workspace, as_of: date = AS_OF) -> Dataset:
    return load_dataset(ws, as_of=as_of)


# --------------------------------------------------------------------------- formats and kinds


def test_csv_entity_source_gives_one_row_per_id_with_declared_kinds(tmp_path: Path) -> None:
    ws = workspace(tmp_path, {"crm": crm_source(write(tmp_path, "crm.csv", CRM))})

    frame = load(ws).frame

    assert list(frame.index) == ["a1", "a2", "a3"]
    assert frame["plan"].dtype == "category"
    assert frame["seats"].dtype == "float64"
    assert frame["active"].dtype == "boolean"
    assert frame["signed_at"].dtype == "datetime64[ns]"
    assert frame.loc["a1", "plan"] == "pro"
    assert frame.loc["a2", "seats"] == 1.0
    assert bool(frame.loc["a2", "active"]) is False
    assert frame.loc["a2", "signed_at"] == pd.Timestamp("2025-04-15")
    assert frame.loc["a3", ["seats", "active", "signed_at"]].isna().all()


def test_frame_columns_and_kinds_agree_with_declared_schema(tmp_path: Path) -> None:
    write(tmp_path, "crm.csv", CRM)
    write(tmp_path, "billing.csv", "account_id,plan,mrr\na1,pro,99\n")
    write(tmp_path, "events.csv", EVENTS)
    ws = workspace(
        tmp_path,
        {
            "crm": crm_source(),
            "billing": {
                "kind": "entity",
                "path": "billing.csv",
                "id": "account_id",
                "columns": {"plan": "string", "mrr": "number"},
            },
            "product": events_source(),
        },
        features={"logins": {"source": "product", "event": "login", "agg": "count"}},
        scores={"health": {"weights": {"logins": 1.0, "mrr": 1.0}}},
    )
    dtypes = {
        "number": "float64",
        "string": "category",
        "bool": "boolean",
        "date": "datetime64[ns]",
    }

    ds = load(ws)

    schema = declared_schema(ws)
    assert list(ds.frame.columns) == list(schema.columns)
    assert {c: str(ds.frame[c].dtype) for c in ds.frame} == {
        c: dtypes[k] for c, k in schema.columns.items()
    }
    assert ds.schema == schema


def test_parquet_source_loads_like_csv(tmp_path: Path) -> None:
    write(tmp_path, "crm.csv", CRM)
    source = pd.read_csv(tmp_path / "crm.csv", dtype={"account_id": str, "plan": str})
    source.to_parquet(tmp_path / "crm.parquet", index=False)
    from_csv = load(workspace(tmp_path, {"crm": crm_source("crm.csv")})).frame
    from_parquet = load(workspace(tmp_path, {"crm": crm_source("crm.parquet")})).frame

    pd.testing.assert_frame_equal(from_parquet, from_csv)


def test_text_categories_are_the_values_after_the_cut_in_first_seen_order(
    tmp_path: Path,
) -> None:
    # a CSV's text comes dictionary-encoded from the reader: a value only on rows cut
    # (created after as_of) is no category; the others keep their first-seen order
    write(
        tmp_path,
        "crm.csv",
        """\
        account_id,plan,seats,active,signed_at,created_at
        a1,zeta,1,true,2025-01-01,2026-06-01
        a2,beta,1,true,2025-01-01,2025-01-01
        a3,alpha,1,true,2025-01-01,2025-01-01
        a2,gamma,1,true,2025-01-01,2025-01-01
        a4,,1,true,2025-01-01,2025-01-01
        a5,beta,1,true,2025-01-01,2025-01-01
        """,
    )
    source = pd.read_csv(tmp_path / "crm.csv", dtype={"account_id": str, "plan": str})
    source.to_parquet(tmp_path / "crm.parquet", index=False)

    from_csv = load(workspace(tmp_path, {"crm": crm_source(created="created_at")})).frame
    from_parquet = load(
        workspace(tmp_path, {"crm": crm_source("crm.parquet", created="created_at")})
    ).frame

    assert list(from_csv.index) == ["a2", "a3", "a4", "a5"]
    assert list(from_csv["plan"].cat.categories) == ["beta", "alpha", "gamma"]
    assert from_csv["plan"].astype(object).tolist()[:2] == ["beta", "alpha"]
    assert from_csv["plan"].isna().tolist() == [False, False, True, False]
    pd.testing.assert_frame_equal(from_parquet, from_csv)


def sqlite_url(tmp_path: Path, tables: dict[str, pd.DataFrame]) -> str:
    path = tmp_path / "warehouse.db"
    engine = sa.create_engine(f"sqlite:///{path}")
    with engine.begin() as conn:
        for name, frame in tables.items():
            frame.to_sql(name, conn, index=False)
    engine.dispose()
    return f"sqlite:///{path}"


def crm_frame(tmp_path: Path) -> pd.DataFrame:
    write(tmp_path, "crm.csv", CRM)
    return pd.read_csv(tmp_path / "crm.csv", parse_dates=["signed_at"])


def test_sql_table_source_loads_like_csv(tmp_path: Path) -> None:
    url = sqlite_url(tmp_path, {"crm": crm_frame(tmp_path)})
    sql = {k: v for k, v in crm_source().items() if k != "path"}
    from_sql = load(workspace(tmp_path, {"crm": {**sql, "url": url, "table": "crm"}})).frame
    from_csv = load(workspace(tmp_path, {"crm": crm_source()})).frame

    pd.testing.assert_frame_equal(from_sql, from_csv)


def test_sql_query_source_reads_the_query_result(tmp_path: Path) -> None:
    url = sqlite_url(tmp_path, {"crm": crm_frame(tmp_path)})
    query = "SELECT account_id, plan FROM crm WHERE plan != 'free';"
    ws = workspace(
        tmp_path,
        {
            "crm": {
                "kind": "entity",
                "url": url,
                "query": query,
                "id": "account_id",
                "columns": {"plan": "string"},
            }
        },
    )

    frame = load(ws).frame

    assert frame["plan"].to_dict() == {"a1": "pro", "a3": "team"}


@pytest.fixture
def statements() -> Any:
    seen: list[str] = []

    def record(conn: Any, cursor: Any, statement: str, *args: Any) -> None:
        seen.append(statement)

    sa.event.listen(sa.engine.Engine, "before_cursor_execute", record)
    yield seen
    sa.event.remove(sa.engine.Engine, "before_cursor_execute", record)


def test_sql_events_table_selects_needed_columns_and_cuts_at_as_of_in_sql(
    tmp_path: Path, statements: list[str]
) -> None:
    write(tmp_path, "accounts.csv", ACCOUNTS)
    events = pd.read_csv(io.StringIO(dedent(EVENTS)), parse_dates=["ts"])
    events["secret"] = "x"
    url = sqlite_url(tmp_path, {"events": events})
    ws = workspace(
        tmp_path,
        {
            "accounts": accounts_source(),
            "product": {**events_source(), "path": None, "url": url, "table": "events"},
        },
    )

    ds = load(ws)

    select = next(s for s in statements if "FROM events" in s)
    assert "secret" not in select
    assert "WHERE events.ts < ?" in select
    assert ds.sources["product"].rows == 8


def test_sql_events_query_is_cut_at_as_of(tmp_path: Path) -> None:
    write(tmp_path, "accounts.csv", ACCOUNTS)
    url = sqlite_url(tmp_path, {"raw": pd.read_csv(io.StringIO(dedent(EVENTS)))})
    product = {**events_source(), "path": None, "url": url, "query": "SELECT * FROM raw"}
    ws = workspace(tmp_path, {"accounts": accounts_source(), "product": product})

    ds = load(ws)

    assert ds.sources["product"].rows == 8
    assert ds.sources["product"].max_timestamp == pd.Timestamp("2026-01-31 23:00")


def test_missing_file_is_a_clear_error(tmp_path: Path) -> None:
    ws = workspace(tmp_path, {"crm": crm_source("nowhere.csv")})

    with pytest.raises(SourceError, match=r"source 'crm': file not found: nowhere\.csv"):
        load(ws)


def test_missing_id_column_is_a_clear_error(tmp_path: Path) -> None:
    write(tmp_path, "crm.csv", "customer,plan\na1,pro\n")
    ws = workspace(tmp_path, {"crm": crm_source()})

    with pytest.raises(SegopsError, match="source 'crm': id column 'account_id' not found"):
        load(ws)


def test_missing_declared_column_is_added_as_null_and_reported(tmp_path: Path) -> None:
    write(tmp_path, "crm.csv", "account_id,plan,active,signed_at\na1,pro,true,2025-01-01\n")
    ws = workspace(tmp_path, {"crm": crm_source()})

    ds = load(ws)

    assert ds.sources["crm"].missing_columns == ["seats"]
    assert ds.frame["seats"].dtype == "float64"
    assert ds.frame["seats"].isna().all()


def test_values_that_do_not_parse_become_null(tmp_path: Path) -> None:
    write(
        tmp_path,
        "crm.csv",
        "account_id,plan,seats,active,signed_at\na1,pro,n/a,maybe,someday\na2,pro,3,yes,2025-01-01\n",
    )
    frame = load(workspace(tmp_path, {"crm": crm_source()})).frame

    assert frame["seats"].isna().tolist() == [True, False]
    assert frame["active"].tolist() == [pd.NA, True]
    assert frame["signed_at"].isna().tolist() == [True, False]


def test_string_columns_keep_leading_zeros(tmp_path: Path) -> None:
    write(tmp_path, "crm.csv", "account_id,zip\n007,01234\n")
    source = {"kind": "entity", "path": "crm.csv", "id": "account_id", "columns": {"zip": "string"}}

    frame = load(workspace(tmp_path, {"crm": source})).frame

    assert frame.loc["007", "zip"] == "01234"


# --------------------------------------------------------------------------- ids


def test_ids_are_trimmed_and_case_folded(tmp_path: Path) -> None:
    write(tmp_path, "crm.csv", "account_id,plan\n  ACC-1 ,pro\nacc-2,free\n")
    write(tmp_path, "events.csv", "account_id,ts,event\nAcc-1  ,2026-01-30,login\n")
    ws = workspace(
        tmp_path,
        {
            "crm": {**plan_source(), "id_case": "lower"},
            "product": {**events_source(), "id_case": "lower"},
        },
        features={"logins": {"source": "product", "agg": "count"}},
    )

    ds = load(ws)

    assert list(ds.frame.index) == ["acc-1", "acc-2"]
    assert ds.frame["logins"].tolist() == [1.0, 0.0]
    assert ds.sources["product"].frame["account_id"].tolist() == ["acc-1"]


def test_preserved_case_keeps_ids_apart(tmp_path: Path) -> None:
    write(tmp_path, "crm.csv", "account_id,plan\nA1,pro\na1,free\n")

    frame = load(workspace(tmp_path, {"crm": plan_source()})).frame

    assert frame["plan"].to_dict() == {"A1": "pro", "a1": "free"}


def test_upper_case_folding(tmp_path: Path) -> None:
    write(tmp_path, "crm.csv", "account_id,plan\nab,pro\n")

    frame = load(workspace(tmp_path, {"crm": {**plan_source(), "id_case": "upper"}})).frame

    assert list(frame.index) == ["AB"]


def test_empty_ids_are_dropped_and_counted(tmp_path: Path) -> None:
    write(tmp_path, "crm.csv", 'account_id,plan\na1,pro\n"  ",free\n,team\n')

    ds = load(workspace(tmp_path, {"crm": plan_source()}))

    assert list(ds.frame.index) == ["a1"]
    assert ds.sources["crm"].unmapped == 2
    assert ds.sources["crm"].rows == 3


def test_numeric_ids_read_as_text(tmp_path: Path) -> None:
    frame = pd.DataFrame({"account_id": [1.0, 2.0, None], "plan": ["pro", "free", "team"]})
    frame.to_parquet(tmp_path / "crm.parquet", index=False)

    ds = load(workspace(tmp_path, {"crm": plan_source("crm.parquet")}))

    assert list(ds.frame.index) == ["1", "2"]


def test_repeated_id_keeps_the_first_row_and_is_counted(tmp_path: Path) -> None:
    write(tmp_path, "crm.csv", "account_id,plan\na1,pro\na2,free\na1,team\nA1 ,free\n")

    ds = load(workspace(tmp_path, {"crm": {**plan_source(), "id_case": "lower"}}))

    assert ds.frame["plan"].to_dict() == {"a1": "pro", "a2": "free"}
    assert ds.sources["crm"].duplicate_ids == 1


PEOPLE = """\
    email,account_id
    Ann@Acme.com,a
    bob@bolt.io,b
    eve@bolt.io,B
"""


def mapped_events_workspace(tmp_path: Path, events: str) -> Workspace:
    write(tmp_path, "accounts.csv", ACCOUNTS)
    write(tmp_path, "people.csv", PEOPLE)
    write(tmp_path, "events.csv", events)
    return workspace(
        tmp_path,
        {
            "accounts": {**accounts_source(), "id_case": "lower"},
            "product": {
                "kind": "events",
                "path": "events.csv",
                "id": "email",
                "id_case": "lower",
                "map_via": "people",
                "timestamp": "ts",
                "event": "event",
            },
            "people": {
                "kind": "mapping",
                "path": "people.csv",
                "key": "email",
                "id": "account_id",
                "id_case": "lower",
            },
        },
        features={"events": {"source": "product", "agg": "count"}},
    )


def test_events_map_through_a_mapping_source(tmp_path: Path) -> None:
    events = """\
        email,ts,event
        ann@acme.com,2026-01-30,login
        ANN@ACME.COM ,2026-01-30,login
        eve@bolt.io,2026-01-30,login
        nobody@x.io,2026-01-30,login
    """
    ds = load(mapped_events_workspace(tmp_path, events))

    assert ds.frame["events"].to_dict() == {"a": 2.0, "b": 1.0, "c": 0.0}
    assert ds.sources["product"].unmapped == 1
    assert ds.lineage["events"] == {"product", "people"}


def test_events_of_unknown_entities_are_dropped_and_counted(tmp_path: Path) -> None:
    write(tmp_path, "accounts.csv", ACCOUNTS)
    write(tmp_path, "events.csv", "account_id,ts,event\na,2026-01-30,x\nzz,2026-01-30,x\n")
    ws = workspace(
        tmp_path,
        {"accounts": accounts_source(), "product": events_source()},
        features={"events": {"source": "product", "agg": "count"}},
    )

    ds = load(ws)

    assert ds.frame["events"].sum() == 1
    assert ds.sources["product"].unknown == 1
    assert ds.sources["product"].unmapped == 0


def test_entity_source_can_map_its_ids(tmp_path: Path) -> None:
    write(tmp_path, "people.csv", PEOPLE)
    write(tmp_path, "survey.csv", "email,nps\nann@acme.com,9\nghost@x.io,3\n")
    ws = workspace(
        tmp_path,
        {
            "survey": {
                "kind": "entity",
                "path": "survey.csv",
                "id": "email",
                "id_case": "lower",
                "map_via": "people",
                "columns": {"nps": "number"},
            },
            "people": {"kind": "mapping", "path": "people.csv", "key": "email", "id": "account_id"},
        },
    )

    ds = load(ws)

    assert ds.frame["nps"].to_dict() == {"a": 9.0}
    assert ds.sources["survey"].unmapped == 1
    assert ds.lineage["nps"] == {"survey", "people"}


def test_mapping_keys_pointing_at_two_ids_are_counted(tmp_path: Path) -> None:
    write(tmp_path, "people.csv", "email,account_id\nx@a.io,a\nx@a.io,b\ny@a.io,a\ny@a.io,a\n")
    write(tmp_path, "accounts.csv", ACCOUNTS)
    ws = workspace(
        tmp_path,
        {
            "accounts": accounts_source(),
            "people": {"kind": "mapping", "path": "people.csv", "key": "email", "id": "account_id"},
        },
    )

    assert load(ws).sources["people"].duplicate_ids == 1


# --------------------------------------------------------------------------- joins and as_of


def plan_source(path: str = "crm.csv") -> dict[str, Any]:
    return {"kind": "entity", "path": path, "id": "account_id", "columns": {"plan": "string"}}


def accounts_source() -> dict[str, Any]:
    return {
        "kind": "entity",
        "path": "accounts.csv",
        "id": "account_id",
        "columns": {"name": "string"},
    }


def events_source() -> dict[str, Any]:
    return {
        "kind": "events",
        "path": "events.csv",
        "id": "account_id",
        "timestamp": "ts",
        "event": "event",
        "value": "value",
    }


def test_entities_are_the_union_of_entity_sources(tmp_path: Path) -> None:
    write(tmp_path, "crm.csv", "account_id,plan\na,pro\nb,free\n")
    write(tmp_path, "billing.csv", "account_id,mrr\nb,10\nc,20\n")
    billing = {"kind": "entity", "path": "billing.csv", "id": "account_id"}
    ws = workspace(
        tmp_path,
        {"crm": plan_source(), "billing": {**billing, "columns": {"mrr": "number"}}},
    )

    frame = load(ws).frame

    assert list(frame.index) == ["a", "b", "c"]
    assert frame["plan"].tolist() == ["pro", "free", np.nan]
    assert frame["mrr"].tolist()[1:] == [10.0, 20.0]
    assert math.isnan(frame.loc["a", "mrr"])


def test_a_column_in_several_entity_sources_is_qualified(tmp_path: Path) -> None:
    write(tmp_path, "crm.csv", "account_id,plan,seats\na,pro,3\n")
    write(tmp_path, "billing.csv", "account_id,plan\na,team\n")
    ws = workspace(
        tmp_path,
        {
            "crm": {**plan_source(), "columns": {"plan": "string", "seats": "number"}},
            "billing": {**plan_source("billing.csv")},
        },
    )

    ds = load(ws)

    assert list(ds.frame.columns) == ["crm.plan", "billing.plan", "seats"]
    assert ds.frame.loc["a", "crm.plan"] == "pro"
    assert ds.frame.loc["a", "billing.plan"] == "team"
    assert ds.lineage == {"crm.plan": {"crm"}, "billing.plan": {"billing"}, "seats": {"crm"}}


def test_rows_created_after_as_of_are_left_out(tmp_path: Path) -> None:
    write(
        tmp_path,
        "crm.csv",
        "account_id,plan,created_at\nold,pro,2025-01-01\nsame_day,pro,2026-01-31T22:00:00\n"
        "later,pro,2026-02-01T00:00:00\nunknown,pro,\n",
    )
    ws = workspace(tmp_path, {"crm": {**plan_source(), "created": "created_at"}})

    ds = load(ws)

    assert list(ds.frame.index) == ["old", "same_day", "unknown"]
    assert ds.sources["crm"].rows == 3


def test_events_after_as_of_are_left_out(tmp_path: Path) -> None:
    write(tmp_path, "accounts.csv", ACCOUNTS)
    write(tmp_path, "events.csv", EVENTS)
    ws = workspace(tmp_path, {"accounts": accounts_source(), "product": events_source()})

    src = load(ws).sources["product"]

    assert src.rows == 8
    assert src.max_timestamp == pd.Timestamp("2026-01-31 23:00")
    assert src.frame["ts"].max() < pd.Timestamp("2026-02-01")


def test_aware_timestamps_are_converted_to_utc(tmp_path: Path) -> None:
    write(tmp_path, "accounts.csv", ACCOUNTS)
    write(
        tmp_path,
        "events.csv",
        "account_id,ts,event\na,2026-01-31T23:30:00-02:00,x\na,2026-01-31T23:30:00+02:00,x\n",
    )
    ws = workspace(tmp_path, {"accounts": accounts_source(), "product": events_source()})

    src = load(ws).sources["product"]

    assert src.rows == 1
    assert src.max_timestamp == pd.Timestamp("2026-01-31 21:30")


def test_without_entity_sources_the_entities_come_from_events(tmp_path: Path) -> None:
    write(tmp_path, "events.csv", EVENTS)
    ws = workspace(
        tmp_path,
        {"product": events_source()},
        features={"events": {"source": "product", "agg": "count"}},
    )

    frame = load(ws).frame

    assert frame["events"].to_dict() == {"a": 5.0, "b": 3.0}


# --------------------------------------------------------------------------- features


FEATURES: dict[str, tuple[dict[str, Any], dict[str, float]]] = {
    "count_window_event": (
        {"agg": "count", "event": "login", "window_days": 30},
        {"a": 3, "b": 1, "c": 0},
    ),
    "count_all_history": ({"agg": "count", "event": "login"}, {"a": 4, "b": 1, "c": 0}),
    "count_event_list": (
        {"agg": "count", "event": ["login", "purchase"]},
        {"a": 5, "b": 3, "c": 0},
    ),
    "count_one_day": ({"agg": "count", "window_days": 1}, {"a": 1, "b": 0, "c": 0}),
    "count_fill": ({"agg": "count", "event": "login", "fill": -1}, {"a": 4, "b": 1, "c": -1}),
    "sum": ({"agg": "sum", "event": "purchase"}, {"a": 100, "b": 100, "c": 0}),
    "avg": ({"agg": "avg", "event": "login"}, {"a": 4, "b": math.nan, "c": math.nan}),
    "min": ({"agg": "min"}, {"a": 1, "b": 40, "c": math.nan}),
    "max_window": ({"agg": "max", "window_days": 30}, {"a": 100, "b": 60, "c": math.nan}),
    "first": ({"agg": "first", "event": "login"}, {"a": 7, "b": math.nan, "c": math.nan}),
    "last": ({"agg": "last", "event": "login"}, {"a": 5, "b": math.nan, "c": math.nan}),
    "first_tie_takes_largest": ({"agg": "first", "event": "purchase"}, {"a": 100, "b": 60}),
    "last_window": ({"agg": "last", "window_days": 10}, {"a": 5, "b": 60, "c": math.nan}),
    "days_since": ({"agg": "days_since", "event": "login"}, {"a": 0, "b": 21, "c": math.nan}),
    "days_since_purchase": ({"agg": "days_since", "event": "purchase"}, {"a": 11, "b": 6}),
    "days_since_fill": (
        {"agg": "days_since", "event": "login", "fill": 999},
        {"a": 0, "b": 21, "c": 999},
    ),
}


@pytest.mark.parametrize("name", list(FEATURES))
def test_feature_aggregation(tmp_path: Path, name: str) -> None:
    write(tmp_path, "accounts.csv", ACCOUNTS)
    write(tmp_path, "events.csv", EVENTS)
    spec, expected = FEATURES[name]
    ws = workspace(
        tmp_path,
        {"accounts": accounts_source(), "product": events_source()},
        features={name: {"source": "product", **spec}},
    )

    column = load(ws).frame[name]

    assert column.dtype == "float64"
    for entity, value in expected.items():
        got = column[entity]
        assert (math.isnan(got) and math.isnan(value)) or got == value, (entity, got, value)


def test_event_names_are_matched_after_trimming(tmp_path: Path) -> None:
    write(tmp_path, "accounts.csv", ACCOUNTS)
    write(tmp_path, "events.csv", "account_id,ts,event\na,2026-01-30, login \n")
    ws = workspace(
        tmp_path,
        {"accounts": accounts_source(), "product": events_source()},
        features={"logins": {"source": "product", "event": "login", "agg": "count"}},
    )

    assert load(ws).frame.loc["a", "logins"] == 1


# --------------------------------------------------------------------------- scores


def score_workspace(tmp_path: Path, weights: dict[str, float], method: str) -> Workspace:
    write(tmp_path, "crm.csv", "account_id,x,y\na,1,10\nb,2,20\nc,3,40\nd,,10\n")
    crm = {
        "kind": "entity",
        "path": "crm.csv",
        "id": "account_id",
        "columns": {"x": "number", "y": "number"},
    }
    return workspace(tmp_path, {"crm": crm}, scores={"s": {"weights": weights, "method": method}})


def test_rank_score_uses_percentile_rank_and_nulls_earn_nothing(tmp_path: Path) -> None:
    frame = load(score_workspace(tmp_path, {"x": 1.0}, "rank")).frame

    assert frame["s"].to_dict() == {"a": 0.0, "b": 50.0, "c": 100.0, "d": 0.0}


def test_negative_weight_inverts_but_a_null_still_earns_nothing(tmp_path: Path) -> None:
    frame = load(score_workspace(tmp_path, {"x": -1.0}, "rank")).frame

    assert frame["s"].to_dict() == {"a": 100.0, "b": 50.0, "c": 0.0, "d": 0.0}


def test_minmax_score_weighs_inputs_and_rounds_to_one_decimal(tmp_path: Path) -> None:
    frame = load(score_workspace(tmp_path, {"x": 2.0, "y": -1.0}, "minmax")).frame

    # x: 0, .5, 1, null; y inverted: 1, 2/3, 0, 1 -> (2x + y') / 3
    assert frame["s"].to_dict() == {"a": 33.3, "b": 55.6, "c": 66.7, "d": 33.3}


def test_rank_ties_share_their_average_rank(tmp_path: Path) -> None:
    frame = load(score_workspace(tmp_path, {"y": 1.0}, "rank")).frame

    # y = 10, 20, 40, 10: ranks 0.5, 2, 3, 0.5 of 3
    assert frame["s"].to_dict() == {"a": 16.7, "b": 66.7, "c": 100.0, "d": 16.7}


def test_score_lineage_is_the_union_of_its_inputs(tmp_path: Path) -> None:
    write(tmp_path, "accounts.csv", "account_id,seats\na,1\nb,2\n")
    write(tmp_path, "events.csv", EVENTS)
    accounts = {**accounts_source(), "columns": {"seats": "number"}}
    ws = workspace(
        tmp_path,
        {"accounts": accounts, "product": events_source()},
        features={"n": {"source": "product", "agg": "count"}},
        scores={"s": {"weights": {"n": 1, "accounts.seats": 1}}},
    )

    ds = load(ws)

    assert ds.lineage["s"] == {"accounts", "product"}
    assert ds.frame["s"].between(0, 100).all()


# --------------------------------------------------------------------------- fingerprint


def test_fingerprint_is_stable_for_the_same_data(tmp_path: Path) -> None:
    write(tmp_path, "crm.csv", CRM)
    ws = workspace(tmp_path, {"crm": crm_source()})

    assert load(ws).fingerprint == load(ws).fingerprint


def test_fingerprint_changes_with_the_data(tmp_path: Path) -> None:
    write(tmp_path, "crm.csv", CRM)
    ws = workspace(tmp_path, {"crm": crm_source()})
    before = load(ws).fingerprint
    write(tmp_path, "crm.csv", CRM.replace("pro,10", "pro,11"))

    assert load(ws).fingerprint != before


def test_fingerprint_changes_with_as_of(tmp_path: Path) -> None:
    write(tmp_path, "crm.csv", CRM)
    ws = workspace(tmp_path, {"crm": crm_source()})

    assert load(ws).fingerprint != load(ws, date(2026, 2, 1)).fingerprint


def test_progress_reports_each_step(tmp_path: Path) -> None:
    write(tmp_path, "crm.csv", CRM)
    messages: list[str] = []

    load_dataset(workspace(tmp_path, {"crm": crm_source()}), as_of=AS_OF, progress=messages.append)

    assert "crm: 3 rows, 0 duplicate ids, 0 unmapped" in messages


def test_csv_with_a_byte_order_mark_reads_its_first_column(tmp_path: Path) -> None:
    (tmp_path / "crm.csv").write_bytes("\ufeffaccount_id,plan\na1,pro\n".encode())

    frame = load(workspace(tmp_path, {"crm": plan_source()})).frame

    assert frame["plan"].to_dict() == {"a1": "pro"}


def test_missing_sql_table_is_a_clear_error(tmp_path: Path) -> None:
    url = sqlite_url(tmp_path, {"other": pd.DataFrame({"a": [1]})})
    source = {"kind": "entity", "url": url, "table": "crm", "id": "account_id"}

    with pytest.raises(SourceError, match="source 'crm': table 'crm' not found"):
        load(workspace(tmp_path, {"crm": source}))


@pytest.mark.postgres
@pytest.mark.parametrize("text_timestamps", [False, True])
def test_postgresql_events_table_is_cut_at_as_of(
    tmp_path: Path, pg_url: str, text_timestamps: bool
) -> None:
    write(tmp_path, "accounts.csv", ACCOUNTS)
    events = pd.read_csv(io.StringIO(dedent(EVENTS)), parse_dates=["ts"])
    if text_timestamps:
        events["ts"] = events["ts"].dt.strftime("%Y-%m-%dT%H:%M:%S")
    engine = sa.create_engine(pg_url)
    with engine.begin() as conn:
        events.to_sql("events", conn, index=False)
    engine.dispose()
    product = {**events_source(), "path": None, "url": pg_url, "table": "events"}
    ws = workspace(
        tmp_path,
        {"accounts": accounts_source(), "product": product},
        features={"logins": {"source": "product", "event": "login", "agg": "count"}},
    )

    ds = load(ws)

    assert ds.sources["product"].rows == 8
    assert ds.frame["logins"].to_dict() == {"a": 4.0, "b": 1.0, "c": 0.0}


@pytest.mark.postgres
def test_postgresql_events_query_is_cut_at_as_of(tmp_path: Path, pg_url: str) -> None:
    write(tmp_path, "accounts.csv", ACCOUNTS)
    engine = sa.create_engine(pg_url)
    with engine.begin() as conn:
        frame = pd.read_csv(io.StringIO(dedent(EVENTS)), parse_dates=["ts"])
        frame.to_sql("raw", conn, index=False)
    engine.dispose()
    query = "SELECT account_id, ts, event, value FROM raw"
    product = {**events_source(), "path": None, "url": pg_url, "query": query}
    ws = workspace(tmp_path, {"accounts": accounts_source(), "product": product})

    assert load(ws).sources["product"].rows == 8


def test_failing_query_reports_the_database_message(tmp_path: Path) -> None:
    url = sqlite_url(tmp_path, {"crm": pd.DataFrame({"account_id": ["a"]})})
    source = {"kind": "entity", "url": url, "query": "SELECT nope FROM crm", "id": "account_id"}

    with pytest.raises(SourceError, match="source 'crm': cannot read query: no such column: nope"):
        load(workspace(tmp_path, {"crm": source}))


def reference(events: pd.DataFrame, spec: dict[str, Any]) -> pd.Series:
    """The same feature computed the slow, obvious way with a pandas groupby."""
    before = pd.Timestamp(AS_OF) + pd.Timedelta(days=1)
    sel = events[events["ts"] < before]
    if "event" in spec:
        sel = sel[sel["event"].isin([spec["event"]])]
    if "window_days" in spec:
        sel = sel[sel["ts"] >= before - pd.Timedelta(days=spec["window_days"])]
    agg = spec["agg"]
    if agg == "count":
        return sel.groupby("account_id").size().astype(float)
    if agg == "days_since":
        latest = sel.groupby("account_id")["ts"].max().dt.normalize()
        return (pd.Timestamp(AS_OF) - latest).dt.days.astype(float)
    sel = sel.dropna(subset=["value"])
    if agg in ("first", "last"):  # same timestamp: the largest value wins
        ordered = sel.sort_values(["ts", "value"], ascending=[True, agg == "last"])
        return ordered.groupby("account_id")["value"].agg(agg)
    return sel.groupby("account_id")["value"].agg({"avg": "mean"}.get(agg, agg))


RANDOM_SPECS = [
    {"agg": "count", "event": "login", "window_days": 7},
    {"agg": "sum", "window_days": 30},
    {"agg": "avg", "event": "buy"},
    {"agg": "min", "window_days": 14},
    {"agg": "max"},
    {"agg": "first", "event": "login"},
    {"agg": "last", "window_days": 20},
    {"agg": "days_since", "event": "buy"},
]


def test_features_agree_with_a_plain_groupby_on_random_events(tmp_path: Path) -> None:
    rng = np.random.default_rng(7)
    n = 3000
    events = pd.DataFrame(
        {
            "account_id": rng.choice([f"e{i}" for i in range(40)], n),
            "ts": pd.Timestamp("2025-12-01")
            + pd.to_timedelta(rng.integers(0, 70, n), unit="D")
            + pd.to_timedelta(rng.choice([0, 6, 12], n), unit="h"),
            "event": rng.choice(["login", "buy", "view"], n),
            "value": np.where(rng.random(n) < 0.2, np.nan, rng.integers(0, 5, n)),
        }
    )
    events.to_parquet(tmp_path / "events.parquet", index=False)
    features = {f"f{i}": {"source": "product", **spec} for i, spec in enumerate(RANDOM_SPECS)}
    ws = workspace(
        tmp_path, {"product": {**events_source(), "path": "events.parquet"}}, features=features
    )

    frame = load(ws).frame

    for name, spec in features.items():
        expected = reference(events, spec).reindex(frame.index)
        if spec["agg"] in ("count", "sum"):
            expected = expected.fillna(0.0)
        pd.testing.assert_series_equal(frame[name], expected, check_names=False, obj=name)


# --------------------------------------------------------------------------- id and value counts


def test_id_stats_count_blank_and_unresolved_ids_per_source(tmp_path: Path) -> None:
    events = """\
        email,ts,event
        ann@acme.com,2026-01-30,login
        "  ",2026-01-30,login
        nobody@x.io,2026-01-30,login
        zed@zeta.io,2026-01-30,login
    """
    ws = mapped_events_workspace(tmp_path, events)
    write(tmp_path, "people.csv", PEOPLE + "    zed@zeta.io,z\n    ,c\n")  # z is no account

    ds = load(ws)

    assert ds.id_stats == {
        "accounts": {"rows": 3, "blank": 0, "unresolved": 0},
        "product": {"rows": 4, "blank": 1, "unresolved": 2},
        "people": {"rows": 5, "blank": 1, "unresolved": 1},
    }
    assert (ds.sources["product"].unmapped, ds.sources["product"].unknown) == (2, 1)


def test_id_stats_of_an_entity_source_with_blank_and_unmapped_ids(tmp_path: Path) -> None:
    write(tmp_path, "people.csv", PEOPLE)
    write(tmp_path, "survey.csv", 'email,nps\nann@acme.com,9\nghost@x.io,3\n" ",4\n')
    ws = workspace(
        tmp_path,
        {
            "survey": {
                "kind": "entity",
                "path": "survey.csv",
                "id": "email",
                "id_case": "lower",
                "map_via": "people",
                "columns": {"nps": "number"},
            },
            "people": {"kind": "mapping", "path": "people.csv", "key": "email", "id": "account_id"},
        },
    )

    ds = load(ws)

    assert ds.sources["survey"].id_stats == {"rows": 3, "blank": 1, "unresolved": 1}
    assert ds.sources["survey"].unmapped == 2


def test_values_that_do_not_parse_are_counted_with_examples(tmp_path: Path) -> None:
    write(
        tmp_path,
        "crm.csv",
        """\
        account_id,plan,seats,active,signed_at
        a1,pro,10,true,2025-03-01
        a2,free,ten,maybe,soon
        a3,team,inf,,
        a4,team,"1,2x",no,2025-04-01
        a5,team,-inf,yes,9999-01-01
        """,
    )

    ds = load(workspace(tmp_path, {"crm": crm_source()}))

    values = ds.sources["crm"].values
    assert values["seats"].present == 5 and values["seats"].invalid == 4
    assert values["seats"].examples == ("ten", "inf", "1,2x")
    assert (values["active"].present, values["active"].invalid) == (4, 1)
    assert values["active"].examples == ("maybe",)
    assert (values["signed_at"].present, values["signed_at"].invalid) == (4, 2)
    assert "plan" not in values  # text cannot fail to parse
    assert ds.frame["seats"].tolist()[0] == 10.0
    assert ds.frame["seats"].isna().tolist() == [False, True, True, True, True]


def test_clean_columns_count_no_invalid_values(tmp_path: Path) -> None:
    ws = workspace(tmp_path, {"crm": crm_source(write(tmp_path, "crm.csv", CRM))})

    values = load(ws).sources["crm"].values

    assert {c: (v.present, v.invalid) for c, v in values.items()} == {
        "seats": (2, 0),
        "active": (2, 0),
        "signed_at": (2, 0),
    }


def test_events_timestamps_and_values_are_counted(tmp_path: Path) -> None:
    write(
        tmp_path,
        "events.csv",
        "account_id,ts,event,value\na,2026-01-30,x,1\nb,later,x,2\na,2026-01-30,x,lots\n",
    )
    ws = workspace(
        tmp_path,
        {"product": events_source()},
        features={"events": {"source": "product", "agg": "count"}},
    )

    values = load(ws).sources["product"].values

    assert (values["ts"].present, values["ts"].invalid, values["ts"].examples) == (3, 1, ("later",))
    assert (values["value"].present, values["value"].invalid) == (2, 1)


def test_entity_timestamps_are_kept_for_the_freshness_check(tmp_path: Path) -> None:
    ws = workspace(
        tmp_path, {"crm": crm_source(write(tmp_path, "crm.csv", CRM), timestamp="updated_at")}
    )

    src = load(ws).sources["crm"]

    assert src.timestamps is not None
    assert sorted(pd.to_datetime(src.timestamps)) == [
        pd.Timestamp("2026-01-29 08:00"),
        pd.Timestamp("2026-01-30 08:00"),
    ]
    assert src.values["updated_at"].invalid == 0


# --------------------------------------------------------------------------- CSV reading options


REGIONS = """\
    account_id,region,seats,signed_at
    a1,NA,10,2025-03-01
    a2,EMEA,NA,n/a
    a3,,null,-
    a4,n/a,-,
"""


def region_source(path: str = "crm.csv", **extra: Any) -> dict[str, Any]:
    columns = {"region": "string", "seats": "number", "signed_at": "date"}
    return {"kind": "entity", "path": path, "id": "account_id", "columns": columns, **extra}


def test_na_stays_text_in_string_columns_and_a_rule_selects_it(tmp_path: Path) -> None:
    from segments.rules import parse, to_mask

    ws = workspace(tmp_path, {"crm": region_source(write(tmp_path, "crm.csv", REGIONS))})
    ds = load(ws)
    frame = ds.frame

    assert frame["region"].tolist()[:2] == ["NA", "EMEA"]
    assert pd.isna(frame.loc["a3", "region"])
    assert frame.loc["a4", "region"] == "n/a"
    mask = to_mask(parse("region = 'NA'"), frame, declared_schema(ws))
    assert frame.index[mask].tolist() == ["a1"]


def test_missing_markers_in_typed_columns_are_missing_not_invalid(tmp_path: Path) -> None:
    ws = workspace(tmp_path, {"crm": region_source(write(tmp_path, "crm.csv", REGIONS))})
    ds = load(ws)

    assert ds.frame["seats"].isna().tolist() == [False, True, True, True]
    assert ds.frame["signed_at"].isna().tolist() == [False, True, True, True]
    values = ds.sources["crm"].values
    assert (values["seats"].present, values["seats"].invalid) == (1, 0)
    assert (values["signed_at"].present, values["signed_at"].invalid) == (1, 0)


def test_explicit_na_values_make_na_missing_again(tmp_path: Path) -> None:
    source = region_source(write(tmp_path, "crm.csv", REGIONS), na_values=["NA", "n/a"])
    frame = load(workspace(tmp_path, {"crm": source})).frame

    assert frame["region"].isna().tolist() == [True, False, True, True]


def test_thousands_separators_are_read_when_declared(tmp_path: Path) -> None:
    text = 'account_id,seats\na1,"1,234"\na2,12\na3,"-1,234,567.5"\na4,"12,34"\n'
    source = region_source(write(tmp_path, "crm.csv", text), thousands=",")
    ds = load(workspace(tmp_path, {"crm": source}))

    assert ds.frame["seats"].tolist()[:3] == [1234.0, 12.0, -1234567.5]
    assert np.isnan(ds.frame.loc["a4", "seats"])  # not grouped in threes: not a number
    assert ds.sources["crm"].values["seats"].invalid == 1


def test_european_numbers_with_dot_thousands_and_comma_decimals(tmp_path: Path) -> None:
    text = "account_id;seats\na1;1.234,5\na2;12,25\na3;7\n"
    source = region_source(
        write(tmp_path, "crm.csv", text), delimiter=";", thousands=".", decimal=","
    )
    frame = load(workspace(tmp_path, {"crm": source})).frame

    assert frame["seats"].tolist() == [1234.5, 12.25, 7.0]


def test_without_options_formatted_numbers_are_invalid_not_wrong(tmp_path: Path) -> None:
    text = 'account_id,seats\na1,"1,234"\na2,$12\na3,5\n'
    ds = load(workspace(tmp_path, {"crm": region_source(write(tmp_path, "crm.csv", text))}))

    assert ds.frame["seats"].isna().tolist() == [True, True, False]
    stats = ds.sources["crm"].values["seats"]
    assert (stats.invalid, set(stats.examples)) == (2, {"1,234", "$12"})


def test_non_iso_dates_are_invalid_unless_a_format_is_given(tmp_path: Path) -> None:
    text = "account_id,signed_at\na1,05/01/2026\na2,2026-02-03\na3,2026-02-03T10:30:00\n"
    path = write(tmp_path, "crm.csv", text)

    plain = load(workspace(tmp_path, {"crm": region_source(path)}))
    assert plain.frame["signed_at"].isna().tolist() == [True, False, False]
    assert plain.sources["crm"].values["signed_at"].examples == ("05/01/2026",)

    dated = load(workspace(tmp_path, {"crm": region_source(path, date_format="%d/%m/%Y")}))
    assert dated.frame["signed_at"].tolist() == [
        pd.Timestamp("2026-01-05"),
        pd.Timestamp("2026-02-03"),
        pd.Timestamp("2026-02-03T10:30:00"),
    ]
    assert dated.sources["crm"].values["signed_at"].invalid == 0


def test_date_formats_per_column(tmp_path: Path) -> None:
    text = "account_id,signed_at,updated_at\na1,05/01/2026,01.02.2026 10:00\n"
    source = region_source(
        write(tmp_path, "crm.csv", text),
        timestamp="updated_at",
        date_format={"signed_at": "%d/%m/%Y", "updated_at": "%m.%d.%Y %H:%M"},
    )
    ds = load(workspace(tmp_path, {"crm": source}))

    assert ds.frame.loc["a1", "signed_at"] == pd.Timestamp("2026-01-05")
    assert ds.sources["crm"].max_timestamp == pd.Timestamp("2026-01-02T10:00")


def test_events_csv_with_a_delimiter_and_formats(tmp_path: Path) -> None:
    text = "account_id|ts|event|value\na|31/01/2026 10:00|login|1.000,5\nb|NA|login|2\n"
    source = {
        "kind": "events",
        "path": write(tmp_path, "events.csv", text),
        "id": "account_id",
        "timestamp": "ts",
        "event": "event",
        "value": "value",
        "delimiter": "|",
        "thousands": ".",
        "decimal": ",",
        "date_format": "%d/%m/%Y %H:%M",
    }
    ws = workspace(
        tmp_path,
        {"product": source},
        features={"spend": {"source": "product", "agg": "sum"}},
    )
    ds = load(ws)

    assert ds.frame.loc["a", "spend"] == 1000.5
    assert ds.sources["product"].values["ts"].invalid == 0


def test_a_wrong_delimiter_is_hinted_at(tmp_path: Path) -> None:
    write(tmp_path, "crm.csv", "account_id;plan;seats\na1;pro;3\n")
    ws = workspace(tmp_path, {"crm": region_source()})

    with pytest.raises(SourceError) as err:
        load(ws)
    assert str(err.value) == (
        "source 'crm': column 'account_id' not in crm.csv; its header has one column "
        "'account_id;plan;seats' — is the delimiter ';'?"
    )


@pytest.mark.parametrize(
    ("extra", "message"),
    [
        ({"separator": ";"}, "separator: Extra inputs are not permitted"),
        ({"delimiter": ";;"}, "must be one character"),
        ({"delimiter": ""}, "must be one character"),
        ({"thousands": "1"}, "'1' cannot separate digits"),
        ({"thousands": ",", "decimal": ","}, "'thousands' and 'decimal' are both ','"),
        ({"date_format": "%Q-%m-%d"}, "needs a day, a month and a four-digit year"),
        ({"date_format": "%Y-%m-%d %!"}, "is not a valid strftime format"),
        ({"date_format": {"plan": "%d/%m/%Y"}}, "'plan' is not a date column"),
    ],
)
def test_csv_options_are_validated_in_one_line(
    tmp_path: Path, extra: dict[str, Any], message: str
) -> None:
    import yaml

    from segments.workspace import WorkspaceError, load_workspace

    source = {**crm_source(), **extra}
    path = tmp_path / "workspace.yaml"
    path.write_text(yaml.safe_dump({"sources": {"crm": source}}), encoding="utf-8")

    with pytest.raises(WorkspaceError) as err:
        load_workspace(path)
    assert message in str(err.value)
    assert "\n" not in str(err.value)


def test_csv_options_are_refused_for_other_formats(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="'delimiter' applies to csv sources only"):
        workspace(tmp_path, {"crm": crm_source("crm.parquet", delimiter=";")})


def test_csv_options_dump_only_when_set(tmp_path: Path) -> None:
    plain = workspace(tmp_path, {"crm": crm_source()}).sources["crm"].model_dump()
    assert "delimiter" not in plain and "na_values" not in plain
    set_ = workspace(tmp_path, {"crm": crm_source(delimiter=";")}).sources["crm"].model_dump()
    assert set_["delimiter"] == ";"
