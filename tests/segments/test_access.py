"""What a workspace may reach: read-only single-SELECT SQL sources and contained file paths."""

from __future__ import annotations

import os
from datetime import date
from pathlib import Path
from typing import Any

import pandas as pd
import pytest
import sqlalchemy as sa
import yaml
from pydantic import ValidationError

from commands.settings import Settings
from segments.access import AccessError, check_query, read_only
from segments.sources import SourceError, load_dataset
from segments.workspace import Workspace, WorkspaceError, load_workspace

AS_OF = date(2026, 1, 31)
CRM = "account_id,plan\na1,pro\na2,free\n"


def sql_source(url: str, query: str) -> dict[str, Any]:
    return {
        "kind": "entity",
        "url": url,
        "query": query,
        "id": "account_id",
        "columns": {"plan": "string"},
    }


def write_workspace(folder: Path, sources: dict[str, Any], **rest: Any) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / "workspace.yaml"
    path.write_text(yaml.safe_dump({"sources": sources, **rest}, sort_keys=False))
    return path


def unchecked(folder: Path, sources: dict[str, Any]) -> Workspace:
    """A workspace built without validation, so only the checks at load time apply."""
    return Workspace.model_validate({"sources": sources, "base_dir": folder})


@pytest.fixture(params=["sqlite", pytest.param("postgresql", marks=pytest.mark.postgres)])
def db(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    """A database URL holding table ``crm`` (two rows), on SQLite and PostgreSQL."""
    if request.param == "sqlite":
        url = f"sqlite:///{tmp_path / 'source.db'}"
    else:
        url = request.getfixturevalue("pg_url")
    engine = sa.create_engine(url)
    with engine.begin() as conn:
        pd.DataFrame({"account_id": ["a1", "a2"], "plan": ["pro", "free"]}).to_sql(
            "crm", conn, index=False
        )
    engine.dispose()
    return url


def crm_rows(url: str) -> int:
    engine = sa.create_engine(url)
    try:
        with engine.connect() as conn:
            return conn.execute(sa.text("SELECT count(*) FROM crm")).scalar_one()
    finally:
        engine.dispose()


# --------------------------------------------------------------------------- SQL sources

REFUSED = [
    ("select * from crm; drop table crm", "a single SELECT statement, found 2 statements"),
    ("SELECT 1 AS account_id;\nDROP TABLE crm;", "found 2 statements"),
    ("update crm set plan = 'x'", "must be a SELECT statement, found UPDATE"),
    ("DELETE FROM crm", "must be a SELECT statement, found DELETE"),
    ("insert into crm values ('a3', 'pro')", "found INSERT"),
    ("create table evil as select * from crm", "found CREATE"),
    ("drop table crm", "found DROP"),
    (
        "with gone as (delete from crm returning *) select * from gone",
        "must only read: found DELETE",
    ),
    ("select * into copied from crm", "must only read: found SELECT ... INTO"),
    ("select * from crm for update", "must only read: found a row lock"),
    ("vacuum", "found VACUUM"),
    ("select * from (select 1", "query is not valid SQL"),
]


@pytest.mark.parametrize(("query", "message"), REFUSED)
def test_writing_or_multi_statement_queries_are_refused_at_validation(
    tmp_path: Path, db: str, query: str, message: str
) -> None:
    path = write_workspace(tmp_path / "ws", {"crm": sql_source(db, query)})

    with pytest.raises(WorkspaceError) as info:
        load_workspace(path)

    text = str(info.value)
    assert text.startswith(f"{path}: source 'crm': ")
    assert message in text
    assert "\n" not in text
    assert crm_rows(db) == 2


@pytest.mark.parametrize(("query", "message"), REFUSED[:5])
def test_unchecked_workspaces_are_refused_at_load(
    tmp_path: Path, db: str, query: str, message: str
) -> None:
    ws = unchecked(tmp_path, {"crm": sql_source(db, query)})

    with pytest.raises(SourceError, match=f"^source 'crm': .*{message}"):
        load_dataset(ws, as_of=AS_OF)
    assert crm_rows(db) == 2


def test_a_cte_select_reads_normally(tmp_path: Path, db: str) -> None:
    query = (
        "WITH paid AS (SELECT account_id, plan FROM crm WHERE plan <> 'free') "
        "SELECT account_id, plan FROM paid"
    )
    path = write_workspace(tmp_path / "ws", {"crm": sql_source(db, query)})

    frame = load_dataset(load_workspace(path), as_of=AS_OF).frame

    assert frame["plan"].to_dict() == {"a1": "pro"}


def test_a_table_source_reads_inside_a_read_only_transaction(tmp_path: Path, db: str) -> None:
    source = {**sql_source(db, ""), "query": None, "table": "crm"}
    ws = load_workspace(write_workspace(tmp_path / "ws", {"crm": source}))

    assert load_dataset(ws, as_of=AS_OF).frame["plan"].to_dict() == {"a1": "pro", "a2": "free"}


def test_read_only_sqlite_connection_refuses_writes_and_is_restored(tmp_path: Path) -> None:
    engine = sa.create_engine(f"sqlite:///{tmp_path / 'x.db'}")
    with engine.begin() as conn:
        conn.exec_driver_sql("CREATE TABLE t (a INTEGER)")
    with engine.connect() as conn:
        with read_only(conn):
            with pytest.raises(sa.exc.OperationalError, match="readonly"):
                conn.exec_driver_sql("INSERT INTO t VALUES (1)")
        assert conn.exec_driver_sql("PRAGMA query_only").scalar() == 0
    engine.dispose()


@pytest.mark.postgres
def test_a_writing_function_inside_a_select_fails_on_postgresql(
    tmp_path: Path, pg_url: str
) -> None:
    engine = sa.create_engine(pg_url)
    with engine.begin() as conn:
        conn.exec_driver_sql("CREATE TABLE written (n integer)")
        conn.exec_driver_sql(
            "CREATE FUNCTION sneaky() RETURNS text LANGUAGE sql VOLATILE AS "
            "$$ INSERT INTO written VALUES (1); SELECT 'a1'::text $$"
        )
    query = "SELECT sneaky() AS account_id, 'pro' AS plan"
    path = write_workspace(tmp_path / "ws", {"crm": sql_source(pg_url, query)})
    ws = load_workspace(path)  # a plain SELECT: the statement check lets it through

    with pytest.raises(SourceError, match=r"^source 'crm': .*read-only transaction"):
        load_dataset(ws, as_of=AS_OF)

    with engine.connect() as conn:
        assert conn.exec_driver_sql("SELECT count(*) FROM written").scalar_one() == 0
    engine.dispose()


@pytest.mark.postgres
def test_sequences_cannot_advance_from_a_select_on_postgresql(tmp_path: Path, pg_url: str) -> None:
    engine = sa.create_engine(pg_url)
    with engine.begin() as conn:
        conn.exec_driver_sql("CREATE SEQUENCE counter")
    engine.dispose()
    query = "SELECT nextval('counter')::text AS account_id, 'pro' AS plan"
    ws = load_workspace(write_workspace(tmp_path / "ws", {"crm": sql_source(pg_url, query)}))

    with pytest.raises(SourceError, match="read-only transaction"):
        load_dataset(ws, as_of=AS_OF)


def test_checks_follow_the_dialect_of_the_url() -> None:
    check_query("select $$x$$ as account_id", "postgresql+psycopg://h/db")
    with pytest.raises(AccessError, match="found ATTACH"):
        check_query("attach database 'other.db' as other", "sqlite:///x.db")


# --------------------------------------------------------------------------- file paths


def file_source(path: str) -> dict[str, Any]:
    return {"kind": "entity", "path": path, "id": "account_id", "columns": {"plan": "string"}}


@pytest.fixture
def layout(tmp_path: Path) -> tuple[Path, Path]:
    """``ws/`` (the workspace folder, with data/crm.csv) and ``outside/`` (with crm.csv)."""
    ws, outside = tmp_path / "ws", tmp_path / "outside"
    (ws / "data").mkdir(parents=True)
    outside.mkdir()
    (ws / "data" / "crm.csv").write_text(CRM)
    (outside / "crm.csv").write_text(CRM)
    return ws, outside


def test_relative_paths_inside_the_workspace_folder_are_allowed(layout: tuple[Path, Path]) -> None:
    ws, _ = layout
    path = write_workspace(ws, {"crm": file_source("data/../data/crm.csv")})

    assert len(load_dataset(load_workspace(path), as_of=AS_OF).frame) == 2


@pytest.mark.parametrize("target", ["../../etc/passwd", "/etc/passwd", "../outside/crm.csv"])
def test_paths_outside_the_workspace_folder_are_refused(
    layout: tuple[Path, Path], target: str
) -> None:
    ws, _ = layout
    path = write_workspace(ws, {"crm": file_source(target)})

    with pytest.raises(WorkspaceError) as info:
        load_workspace(path)

    text = str(info.value)
    assert text.startswith(f"{path}: source 'crm': path {target!r} resolves to ")
    assert f"outside the workspace folder {ws.resolve()}" in text
    assert "SEGOPS_DATA_ROOTS" in text
    assert "\n" not in text


def test_an_absolute_path_outside_is_refused(layout: tuple[Path, Path]) -> None:
    ws, outside = layout
    target = str(outside / "crm.csv")
    path = write_workspace(ws, {"crm": file_source(target)})

    with pytest.raises(WorkspaceError, match=f"source 'crm': path '{target}' resolves to"):
        load_workspace(path)


def test_a_symlink_pointing_outside_is_refused(layout: tuple[Path, Path]) -> None:
    ws, outside = layout
    (ws / "data" / "leak.csv").symlink_to(outside / "crm.csv")
    (ws / "elsewhere").symlink_to(outside, target_is_directory=True)

    for target in ("data/leak.csv", "elsewhere/crm.csv"):
        path = write_workspace(ws, {"crm": file_source(target)})
        with pytest.raises(WorkspaceError) as info:
            load_workspace(path)
        assert f"source 'crm': path {target!r} resolves to {outside.resolve()}" in str(info.value)


def test_a_symlink_that_stays_inside_is_allowed(layout: tuple[Path, Path]) -> None:
    ws, _ = layout
    (ws / "latest.csv").symlink_to(ws / "data" / "crm.csv")
    path = write_workspace(ws, {"crm": file_source("latest.csv")})

    assert len(load_dataset(load_workspace(path), as_of=AS_OF).frame) == 2


def test_data_roots_allow_absolute_folders(
    layout: tuple[Path, Path], monkeypatch: pytest.MonkeyPatch
) -> None:
    ws, outside = layout
    path = write_workspace(ws, {"crm": file_source(str(outside / "crm.csv"))})

    assert load_workspace(path, data_roots=[outside]).sources["crm"].path
    monkeypatch.setenv("SEGOPS_DATA_ROOTS", os.pathsep.join(["/nowhere", str(outside)]))
    with pytest.raises(WorkspaceError, match="outside the workspace folder"):
        load_workspace(path)  # the environment reaches the engine only through Settings
    loaded = load_workspace(path, data_roots=Settings().data_root_paths)
    assert len(load_dataset(loaded, as_of=AS_OF).frame) == 2


def test_data_roots_must_be_absolute(
    layout: tuple[Path, Path], monkeypatch: pytest.MonkeyPatch
) -> None:
    ws, _ = layout
    path = write_workspace(ws, {"crm": file_source("data/crm.csv")})

    with pytest.raises(WorkspaceError, match="data_roots: 'outside' is not an absolute path"):
        load_workspace(path, data_roots=["outside"])
    monkeypatch.setenv("SEGOPS_DATA_ROOTS", "relative/dir")
    with pytest.raises(ValidationError, match="'relative/dir' is not an absolute path") as info:
        Settings()
    assert info.value.errors()[0]["loc"] == ("SEGOPS_DATA_ROOTS",)


def test_the_workspace_file_cannot_widen_its_own_roots(layout: tuple[Path, Path]) -> None:
    ws, outside = layout
    path = write_workspace(
        ws, {"crm": file_source(str(outside / "crm.csv"))}, data_roots=[str(outside)]
    )

    with pytest.raises(WorkspaceError, match="data_roots cannot be set in the workspace file"):
        load_workspace(path)


def test_paths_are_checked_again_at_load(layout: tuple[Path, Path]) -> None:
    ws, outside = layout

    with pytest.raises(SourceError, match=r"^source 'crm': path '\.\./outside/crm\.csv' resolves"):
        load_dataset(unchecked(ws, {"crm": file_source("../outside/crm.csv")}), as_of=AS_OF)


def test_a_parquet_folder_with_an_entry_leading_outside_is_refused_at_load(
    layout: tuple[Path, Path],
) -> None:
    ws, outside = layout
    folder = ws / "parts"
    folder.mkdir()
    pd.DataFrame({"account_id": ["a1"], "plan": ["pro"]}).to_parquet(folder / "0.parquet")
    pd.DataFrame({"account_id": ["z9"], "plan": ["pro"]}).to_parquet(outside / "1.parquet")
    source = {**file_source("parts"), "format": "parquet"}
    path = write_workspace(ws, {"crm": source})
    assert list(load_dataset(load_workspace(path), as_of=AS_OF).frame.index) == ["a1"]

    (folder / "1.parquet").symlink_to(outside / "1.parquet")

    with pytest.raises(SourceError, match=r"path 'parts/1\.parquet' resolves to .*outside"):
        load_dataset(load_workspace(path), as_of=AS_OF)
