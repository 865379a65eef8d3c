"""The segops command line, driven in-process through its console-script entry point."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from cli.app import main

CRM = """account_id,plan,seats,region,updated_at
A1,pro,40,EMEA,2026-06-29
A2,pro,5,NA,2026-06-29
A3,trial,3,NA,2026-06-29
A4,enterprise,300,APAC,2026-06-29
A5,starter,12,EMEA,2026-06-30
"""

WORKSPACE = {
    "sources": {
        "crm": {
            "kind": "entity",
            "path": "crm.csv",
            "id": "account_id",
            "timestamp": "updated_at",
            "columns": {
                "plan": "string",
                "seats": "number",
                "region": "string",
                "updated_at": "date",
            },
        }
    },
    "segments": [
        {
            "name": "paid",
            "title": "Paid",
            "owner": "U111",
            "tier": "core",
            "rule": "plan in ('pro', 'enterprise', 'starter')",
        },
        {
            "name": "big",
            "title": "Big",
            "owner": "U111",
            "rule": "in_segment('paid') and seats >= 30",
            "kpis": ["seats"],
        },
    ],
}


@pytest.fixture
def workspace(tmp_path, monkeypatch) -> Path:
    (tmp_path / "crm.csv").write_text(CRM)
    path = tmp_path / "workspace.yaml"
    path.write_text(yaml.safe_dump(WORKSPACE, sort_keys=False))
    monkeypatch.setenv("DATABASE_URL", f"sqlite:///{tmp_path / 'cli.db'}")
    monkeypatch.setenv("SEGOPS_WORKSPACE", str(path))
    monkeypatch.setenv("SEGOPS_PRIVACY_FLOOR", "1")  # these segments have 2 and 4 members
    return path


def run(monkeypatch, capsys, *args: str) -> tuple[int, str, str]:
    monkeypatch.setattr(sys, "argv", ["segops", *args])
    code = 0
    try:
        main()
    except SystemExit as exc:
        code = exc.code if isinstance(exc.code, int) else (0 if exc.code is None else 1)
    captured = capsys.readouterr()
    return code, captured.out, captured.err


def test_apply_refresh_and_read_back(workspace, monkeypatch, capsys):
    code, out, _ = run(monkeypatch, capsys, "apply", str(workspace), "--json")
    assert code == 0
    assert sorted(json.loads(out)["created"]) == ["big", "paid"]

    code, out, _ = run(monkeypatch, capsys, "refresh", "--as-of", "2026-06-30", "--json")
    assert code == 0
    report = json.loads(out)
    assert report["as_of"] == "2026-06-30"
    by_name = {s["segment"]: s for s in report["segments"]}
    assert by_name["paid"]["size"] == 4 and by_name["big"]["size"] == 2
    assert by_name["big"] == {
        "segment": "big",
        "status": "published",
        "size": 2,
        "previous_size": None,
        "joined": 2,
        "left": 0,
        "alerts": by_name["big"]["alerts"],
    }

    code, out, _ = run(monkeypatch, capsys, "members", "big")
    assert code == 0
    assert out.split() == ["A1", "A4"]

    code, out, _ = run(monkeypatch, capsys, "list", "--json")
    sizes = {row["name"]: row["size"] for row in json.loads(out)}
    assert sizes == {"big": 2, "paid": 4}


def test_rerunning_the_same_refresh_is_unchanged(workspace, monkeypatch, capsys):
    run(monkeypatch, capsys, "apply", str(workspace))
    run(monkeypatch, capsys, "refresh", "--as-of", "2026-06-30", "--json")
    code, out, _ = run(monkeypatch, capsys, "refresh", "--as-of", "2026-06-30", "--json")
    assert code == 0
    statuses = {s["segment"]: s["status"] for s in json.loads(out)["segments"]}
    assert statuses == {"big": "unchanged", "paid": "unchanged"}
    code, out, _ = run(monkeypatch, capsys, "history", "paid", "--json")
    assert len(json.loads(out)) == 1


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (("show", "pad"), "unknown segment 'pad' (did you mean 'paid'?)"),
        (("refresh", "--as-of", "30/06/2026"), "is not a date"),
        (("members", "nobody"), "unknown segment 'nobody'"),
        (("brief", "paid", "--kind", "haiku"), "haiku"),
    ],
)
def test_user_errors_exit_1_with_one_line(workspace, monkeypatch, capsys, args, message):
    run(monkeypatch, capsys, "apply", str(workspace))
    code, out, err = run(monkeypatch, capsys, *args)
    assert code == 1
    assert message in err
    assert len(err.strip().splitlines()) == 1
    assert "Traceback" not in err


def test_invalid_workspace_is_refused_and_nothing_written(workspace, monkeypatch, capsys):
    broken = dict(WORKSPACE)
    broken["segments"] = [dict(WORKSPACE["segments"][0], rule="plan in ('pro'")]
    bad = workspace.with_name("bad.yaml")
    bad.write_text(yaml.safe_dump(broken))
    code, _, err = run(monkeypatch, capsys, "apply", str(bad))
    assert code == 1
    assert "bad.yaml: segment 'paid': rule:" in err
    code, out, _ = run(monkeypatch, capsys, "list", "--json")
    assert json.loads(out) == []


def test_missing_workspace_is_a_clear_error(tmp_path, monkeypatch, capsys):
    monkeypatch.setenv("DATABASE_URL", f"sqlite:///{tmp_path / 'x.db'}")
    code, _, err = run(monkeypatch, capsys, "refresh")
    assert code == 1
    assert "no workspace file" in err


def test_console_script_reports_errors_without_traceback(tmp_path):
    """The installed entry point, as a user runs it."""
    env = {"DATABASE_URL": f"sqlite:///{tmp_path / 'y.db'}", "PATH": ""}
    proc = subprocess.run(
        [sys.executable, "-m", "cli.app", "apply", str(tmp_path / "missing.yaml")],
        capture_output=True,
        text=True,
        env=env,
        timeout=60,
    )
    assert proc.returncode == 1
    assert "workspace file not found" in proc.stderr
    assert "Traceback" not in proc.stderr


def test_console_script_output_and_writes_are_whole(workspace, tmp_path):
    """The script leaves without the collector's last passes: its JSON still arrives whole
    through a pipe and what it committed is there for the next process."""
    env = {
        "DATABASE_URL": f"sqlite:///{tmp_path / 'cli.db'}",
        "SEGOPS_WORKSPACE": str(workspace),
        "SEGOPS_PRIVACY_FLOOR": "1",
        "PATH": "",
    }

    def segops(*args: str) -> subprocess.CompletedProcess[str]:
        command = [sys.executable, "-m", "cli.app", *args]
        return subprocess.run(command, capture_output=True, text=True, env=env, timeout=120)

    assert segops("apply", str(workspace)).returncode == 0
    refreshed = segops("refresh", "--json", "--as-of", "2026-06-30")
    assert refreshed.returncode == 0, refreshed.stderr
    report = json.loads(refreshed.stdout)
    assert {s["segment"]: s["size"] for s in report["segments"]} == {"paid": 4, "big": 2}
    listed = json.loads(segops("list", "--json").stdout)
    assert {row["name"]: row["size"] for row in listed} == {"paid": 4, "big": 2}


def test_serve_without_slack_credentials_names_what_is_missing(tmp_path, monkeypatch, capsys):
    monkeypatch.setenv("DATABASE_URL", f"sqlite:///{tmp_path / 'z.db'}")
    code, _, err = run(monkeypatch, capsys, "serve")
    assert code == 1
    assert "missing environment: SLACK_BOT_TOKEN, SLACK_SIGNING_SECRET" in err
    assert "Traceback" not in err


def test_data_roots_from_the_environment_let_apply_and_refresh_read_outside(
    workspace, tmp_path, monkeypatch, capsys
):
    shared = tmp_path.parent / f"{tmp_path.name}-shared"
    shared.mkdir()
    (shared / "crm.csv").write_text(CRM)
    moved = {**WORKSPACE, "sources": {"crm": {**WORKSPACE["sources"]["crm"]}}}
    moved["sources"]["crm"]["path"] = str(shared / "crm.csv")
    workspace.write_text(yaml.safe_dump(moved, sort_keys=False))

    code, _, err = run(monkeypatch, capsys, "apply", str(workspace))
    assert code == 1 and "outside the workspace folder" in err

    monkeypatch.setenv("SEGOPS_DATA_ROOTS", str(shared))
    assert run(monkeypatch, capsys, "apply", str(workspace))[0] == 0
    code, out, _ = run(monkeypatch, capsys, "refresh", "--as-of", "2026-06-30", "--json")
    assert code == 0
    assert {s["segment"]: s["size"] for s in json.loads(out)["segments"]}["paid"] == 4


def test_a_relative_data_root_is_a_configuration_error(workspace, monkeypatch, capsys):
    monkeypatch.setenv("SEGOPS_DATA_ROOTS", "relative/dir")
    code, _, err = run(monkeypatch, capsys, "list")
    assert code == 1
    assert "configuration: SEGOPS_DATA_ROOTS:" in err and "'relative/dir'" in err
    assert len(err.strip().splitlines()) == 1
