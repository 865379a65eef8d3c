"""The command line with the engines: a refresh on DuckDB with timings per phase, an
engine's refusal as one line, and the scale benchmark's argument checks."""

from __future__ import annotations

import json

from tests.cli.test_app import run, workspace  # noqa: F401  (the fixture)


def test_refresh_on_duckdb_reports_the_members_and_its_timings(workspace, monkeypatch, capsys):  # noqa: F811
    assert run(monkeypatch, capsys, "apply", str(workspace), "--json")[0] == 0
    monkeypatch.setenv("SEGOPS_ENGINE", "duckdb")
    code, out, err = run(monkeypatch, capsys, "refresh", "--as-of", "2026-06-30", "--json")
    assert code == 0, err
    report = json.loads(out)
    sizes = {s["segment"]: s["size"] for s in report["segments"]}
    assert sizes == {"paid": 4, "big": 2}
    assert {"load", "quality", "evaluate", "total"} <= set(report["timings"])
    assert all(seconds >= 0 for seconds in report["timings"].values())


def test_an_engine_that_cannot_read_a_source_says_so_in_one_line(workspace, monkeypatch, capsys):  # noqa: F811
    data = workspace.read_text().replace("kind: entity", "kind: entity\n    thousands: ','")
    workspace.write_text(data)
    assert run(monkeypatch, capsys, "apply", str(workspace), "--json")[0] == 0
    monkeypatch.setenv("SEGOPS_ENGINE", "duckdb")
    code, out, err = run(monkeypatch, capsys, "refresh", "--as-of", "2026-06-30")
    assert code == 1
    lines = err.strip().splitlines()
    assert len(lines) == 1 and "engine 'duckdb'" in lines[0] and "'thousands'" in lines[0]
    assert "Traceback" not in err


def test_bench_on_sql_without_a_database_url_is_refused(monkeypatch, capsys, tmp_path):
    code, _, err = run(
        monkeypatch,
        capsys,
        "bench",
        "--engine",
        "sql",
        "--cache",
        str(tmp_path),
        "--customers",
        "1000",
    )
    assert code == 1
    assert "needs --url" in err and len(err.strip().splitlines()) == 1
