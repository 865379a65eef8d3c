"""``segops rename`` and ``renamed_from`` in ``segops apply``, through the console entry
point."""

from __future__ import annotations

import json

import pytest

from commands.catalog import history
from tests import factories
from tests.cli.test_proposals_cli import run
from tests.factories import OWNER, PROPOSER


@pytest.fixture
def fx(engine, tmp_path, monkeypatch):
    fx = factories.applied(engine, tmp_path)
    monkeypatch.setenv("DATABASE_URL", engine.url.render_as_string(hide_password=False))
    monkeypatch.setenv("SEGOPS_WORKSPACE", str(fx.path))
    return fx


def test_rename_is_proposed_then_approved_on_the_cli(fx, engine, monkeypatch, capsys):
    code, out, err = run(
        monkeypatch,
        capsys,
        "rename",
        "trial",
        "trials",
        "--as",
        PROPOSER,
        "--reason",
        "plural",
        "--json",
    )
    assert code == 0, err
    (proposed,) = json.loads(out)["proposed"]
    assert proposed["segment"] == "trial"
    code, out, err = run(
        monkeypatch, capsys, "proposals", "approve", str(proposed["proposal"]), "--as", OWNER
    )
    assert code == 0, err
    code, out, err = run(monkeypatch, capsys, "history", "trials", "--json")
    assert code == 0, err
    assert [v["change_kind"] for v in json.loads(out)] == ["rename", "create"]
    assert history(engine, "engaged-trial")[0].rule.startswith("in_segment('trials')")


def test_a_file_with_renamed_from_prints_the_rename(fx, engine, monkeypatch, capsys):
    fx.segment("trial").update({"name": "trials", "renamed_from": "trial"})
    fx.segment("engaged-trial")["rule"] = "in_segment('trials') and logins_30d >= 4"
    fx.write_workspace()
    args = ("apply", str(fx.path), "--as", PROPOSER, "--approved-by", OWNER, "--reason", "plural")
    code, out, err = run(monkeypatch, capsys, *args)
    assert code == 0, err
    assert "renamed trial -> trials" in " ".join(out.split())
    assert "updated engaged-trial" in " ".join(out.split())
    code, out, err = run(monkeypatch, capsys, *args)
    assert code == 0 and "nothing to change" in out


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (("rename", "nothing", "x"), "error: no segment named 'nothing'"),
        (("rename", "trial", "smb"), "error: a segment named 'smb' already exists"),
        (("rename", "trial", "trials", "--as", PROPOSER), "need approval"),
    ],
)
def test_rename_errors_are_one_line_and_change_nothing(
    fx, engine, monkeypatch, capsys, args, message
):
    code, out, err = run(monkeypatch, capsys, *args)
    assert code == 1 and message in err and len(err.strip().splitlines()) == 1
    assert [v.version for v in history(engine, "trial")] == [1]
