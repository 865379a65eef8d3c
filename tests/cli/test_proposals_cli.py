"""``segops proposals`` and the governed ``segops apply``, through the console entry point."""

from __future__ import annotations

import json
import sys

import pytest

from cli.app import main
from commands.catalog import history
from commands.proposals import get_proposal
from tests import factories
from tests.factories import APPROVER, OWNER, PROPOSER


def run(monkeypatch, capsys, *args: str) -> tuple[int, str, str]:
    monkeypatch.setattr(sys, "argv", ["segops", *args])
    code = 0
    try:
        main()
    except SystemExit as exc:
        code = exc.code if isinstance(exc.code, int) else (0 if exc.code is None else 1)
    captured = capsys.readouterr()
    return code, captured.out, captured.err


@pytest.fixture
def fx(engine, tmp_path, monkeypatch):
    fx = factories.applied(engine, tmp_path)
    monkeypatch.setenv("DATABASE_URL", engine.url.render_as_string(hide_password=False))
    monkeypatch.setenv("SEGOPS_WORKSPACE", str(fx.path))
    return fx


def propose_by_file(fx, monkeypatch, capsys, *extra: str) -> int:
    fx.segment("smb")["rule"] = "plan in ('starter', 'pro') and seats < 40"
    fx.write_workspace()
    code, out, err = run(
        monkeypatch,
        capsys,
        "apply",
        str(fx.path),
        "--as",
        PROPOSER,
        "--reason",
        "why",
        "--json",
        *extra,
    )
    assert code == 0, err
    (proposed,) = json.loads(out)["proposed"]
    return proposed["proposal"]


def test_list_show_and_reject(fx, engine, monkeypatch, capsys):
    number = propose_by_file(fx, monkeypatch, capsys)
    code, out, _ = run(monkeypatch, capsys, "proposals", "list")
    assert code == 0 and f"{number}" in out and "smb" in out
    code, out, _ = run(monkeypatch, capsys, "proposals", "show", str(number), "--json")
    shown = json.loads(out)
    assert shown["status"] == "pending"
    assert shown["diff"] == [
        {
            "field": "rule",
            "before": "plan in ('starter', 'pro') and seats < 50",
            "after": "plan in ('starter', 'pro') and seats < 40",
        }
    ]
    code, out, _ = run(monkeypatch, capsys, "proposals", "show", str(number))
    assert code == 0 and "seats < 40" in out
    code, out, _ = run(monkeypatch, capsys, "proposals", "reject", str(number), "--as", APPROVER)
    assert code == 0 and f"rejected proposal #{number} on 'smb'" in out
    assert len(history(engine, "smb")) == 1
    code, out, _ = run(monkeypatch, capsys, "proposals", "list", "--json")
    assert json.loads(out) == []
    code, out, _ = run(monkeypatch, capsys, "proposals", "list", "--status", "rejected", "--json")
    assert [p["decided_by"] for p in json.loads(out)] == [APPROVER]


def test_the_cli_user_comes_from_the_environment(fx, engine, monkeypatch, capsys):
    number = propose_by_file(fx, monkeypatch, capsys)
    monkeypatch.setenv("SEGOPS_CLI_USER", OWNER)
    code, out, err = run(monkeypatch, capsys, "proposals", "approve", str(number))
    assert code == 0, err
    assert history(engine, "smb")[0].approver == OWNER


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (("proposals", "approve", "1"), "who is deciding? pass --as U123"),
        (("proposals", "approve", "1", "--as", "bob"), "--as 'bob' is not a Slack user id"),
        (("proposals", "approve", "99", "--as", OWNER), "no proposal #99"),
        (("proposals", "show", "99"), "no proposal #99"),
        (("proposals", "list", "--status", "open"), "status 'open' must be one of"),
        (("proposals", "list", "--segment", "smbb"), "unknown segment 'smbb'"),
    ],
)
def test_user_errors_are_one_line(fx, monkeypatch, capsys, args, message):
    code, _, err = run(monkeypatch, capsys, *args)
    assert code == 1 and message in err
    assert len(err.strip().splitlines()) == 1 and "Traceback" not in err


def test_direct_tiers_from_the_environment_apply_at_once(fx, engine, monkeypatch, capsys):
    monkeypatch.setenv("SEGOPS_APPLY_DIRECT_TIERS", "strategic")
    fx.segment("smb")["rule"] = "plan in ('starter', 'pro') and seats < 40"
    fx.write_workspace()
    code, out, _ = run(monkeypatch, capsys, "apply", str(fx.path), "--as", PROPOSER)
    assert code == 0 and "updated smb" in " ".join(out.split())
    assert history(engine, "smb")[0].author == PROPOSER


def test_core_cannot_be_configured_to_apply_directly(fx, monkeypatch, capsys):
    monkeypatch.setenv("SEGOPS_APPLY_DIRECT_TIERS", "tactical,core")
    code, _, err = run(monkeypatch, capsys, "apply", str(fx.path))
    assert code == 1 and "core segments always need an approval" in err


def test_approved_by_records_the_approver(fx, engine, monkeypatch, capsys):
    fx.segment("smb")["rule"] = "plan in ('starter', 'pro') and seats < 40"
    fx.write_workspace()
    code, out, err = run(
        monkeypatch, capsys, "apply", str(fx.path), "--as", PROPOSER, "--approved-by", APPROVER
    )
    assert code == 0, err
    latest = history(engine, "smb")[0]
    assert (latest.author, latest.approver) == (PROPOSER, APPROVER)


def test_show_history_drift_and_list_name_the_version_behind_the_numbers(
    fx, engine, monkeypatch, capsys
):
    from commands.refresh import refresh

    refresh(engine, fx.ws(), as_of=factories.AS_OF)
    number = propose_by_file(fx, monkeypatch, capsys)
    assert run(monkeypatch, capsys, "proposals", "approve", str(number), "--as", OWNER)[0] == 0
    code, out, _ = run(monkeypatch, capsys, "show", "smb")
    text = " ".join(out.split())
    assert code == 0 and "computed by v1" in text
    preview = get_proposal(engine, number).impact["size_after"]
    assert (
        f"definition changed since last refresh (v1 -> v2), preview: {preview:,} members; "
        "these numbers are v1's" in text
    )
    code, out, _ = run(monkeypatch, capsys, "list", "--json")
    smb = next(r for r in json.loads(out) if r["name"] == "smb")
    assert (smb["version"], smb["size_version"], smb["definition_changed"]) == (2, 1, True)
    assert smb["expected_size"] == preview
    code, out, _ = run(monkeypatch, capsys, "drift", "smb", "--json")
    assert [p["version"] for p in json.loads(out)["points"]] == [1]
    code, out, _ = run(monkeypatch, capsys, "history", "smb", "--json")
    assert [(v["version"], v["refreshes"]) for v in json.loads(out)] == [(2, 0), (1, 1)]
