"""``segops experiments``, ``learnings`` and ``agenda`` through the console entry point."""

from __future__ import annotations

import json
from datetime import timedelta

import pytest

from tests import factories
from tests.cli.test_app import run
from tests.commands.test_experiments import with_experiment
from tests.factories import START


@pytest.fixture
def fx(tmp_path, db_url, monkeypatch):
    fx = factories.build(tmp_path, accounts=1000, segments=with_experiment())
    monkeypatch.setenv("DATABASE_URL", db_url)
    monkeypatch.setenv("SEGOPS_WORKSPACE", str(fx.path))
    return fx


def ok(monkeypatch, capsys, *args: str) -> str:
    code, out, err = run(monkeypatch, capsys, *args)
    assert code == 0, err
    return out


def test_plan_start_readout_and_learnings(fx, monkeypatch, capsys) -> None:
    ok(monkeypatch, capsys, "apply", str(fx.path))
    ok(monkeypatch, capsys, "refresh", "--as-of", START.isoformat())
    plan = json.loads(ok(monkeypatch, capsys, "experiments", "plan", "smb", "--json"))
    assert plan["enough"] is True and plan["share"] == 0.3
    assert "started" in ok(monkeypatch, capsys, "experiments", "start", "smb", "--by", "U111")
    day = (START + timedelta(days=15)).isoformat()
    data = json.loads(
        ok(monkeypatch, capsys, "experiments", "readout", "smb", "--as-of", day, "--json")
    )
    assert data["phase"] == "interim" and data["kpis"][0]["kpi"] == "logins_30d"
    listed = json.loads(ok(monkeypatch, capsys, "learnings", "list", "smb", "--json"))
    assert [entry["kind"] for entry in listed] == ["experiment"]
    shown = ok(monkeypatch, capsys, "learnings", "show", str(listed[0]["id"]))
    assert "why: An onboarding call gets small teams logging in more." in shown
    agenda = ok(monkeypatch, capsys, "agenda")
    assert "Segmentation clinic agenda" in agenda and "#1 `smb` on logins_30d" in agenda


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (("experiments", "plan", "trial"), "segment 'trial' declares no experiment"),
        (("experiments", "readout", "smb"), "there is no data after that day to read out yet"),
        (("experiments", "readout", "smb", "--as-of", "2026-13-01"), "is not a date"),
        (("experiments", "readout"), "name a segment or pass --id"),
        (("learnings", "show", "999"), "no learning #999"),
        (("agenda", "--post"), "no clinic channel: set SEGOPS_CLINIC_CHANNEL"),
    ],
)
def test_user_errors_exit_1_with_one_line(fx, monkeypatch, capsys, args, message) -> None:
    ok(monkeypatch, capsys, "apply", str(fx.path))
    ok(monkeypatch, capsys, "refresh", "--as-of", START.isoformat())
    ok(monkeypatch, capsys, "experiments", "start", "smb")
    code, _out, err = run(monkeypatch, capsys, *args)
    assert code == 1
    assert message in err
    assert len(err.strip().splitlines()) == 1 and "Traceback" not in err


def test_a_holdout_share_out_of_bounds_is_refused_on_apply(fx, monkeypatch, capsys) -> None:
    fx.segment("smb")["experiment"]["holdout"] = 0.7
    fx.write_workspace()
    code, _out, err = run(monkeypatch, capsys, "apply", str(fx.path))
    assert code == 1
    assert "segment 'smb', field experiment.holdout: holdout share 0.7 must be above 0" in err
    assert len(err.strip().splitlines()) == 1
