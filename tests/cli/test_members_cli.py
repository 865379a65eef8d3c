"""``segops members --as-of/--joined/--left/--since`` and ``segops lineage``."""

from __future__ import annotations

import json
from datetime import timedelta

import pytest

from tests.cli.test_proposals_cli import run
from tests.commands.test_snapshots import DAY1, DAY2, trial_ids
from tests.commands.test_snapshots import fx as snapshots_fx  # noqa: F401


@pytest.fixture
def cli(snapshots_fx, engine, monkeypatch):  # noqa: F811
    monkeypatch.setenv("DATABASE_URL", engine.url.render_as_string(hide_password=False))
    monkeypatch.setenv("SEGOPS_WORKSPACE", str(snapshots_fx.path))
    return snapshots_fx


def test_members_as_of_and_joined(cli, monkeypatch, capsys):
    code, out, err = run(monkeypatch, capsys, "members", "trial", "--as-of", str(DAY1))
    before = set(out.split())
    assert code == 0 and f"{len(before)} members of trial as of {DAY1}, computed by v1" in err
    code, out, err = run(monkeypatch, capsys, "members", "trial")
    after = set(out.split())
    assert after == trial_ids(cli, DAY2) and after != before
    code, out, err = run(monkeypatch, capsys, "members", "trial", "--joined", "--json")
    data = json.loads(out)
    assert set(data["ids"]) == after - before
    assert (data["compared_with"], data["count"]) == (DAY1.isoformat(), len(data["ids"]))
    code, out, err = run(
        monkeypatch, capsys, "members", "trial", "--left", "--since", str(DAY1 + timedelta(days=1))
    )
    assert code == 0 and set(out.split()) == before - after and len(before - after) == 5


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (("members", "trial", "--joined", "--left"), "choose one of --joined and --left"),
        (("members", "trial", "--as-of", "yesterday"), "is not a date"),
        (("members", "trial", "--as-of", "2020-01-01"), "no published refresh on or before"),
        (("lineage", "trail"), "unknown segment 'trail'"),
    ],
)
def test_errors_are_one_line(cli, monkeypatch, capsys, args, message):
    code, _, err = run(monkeypatch, capsys, *args)
    assert code == 1 and message in err and len(err.strip().splitlines()) == 1


def test_lineage(cli, monkeypatch, capsys):
    code, out, _ = run(monkeypatch, capsys, "lineage", "engaged-trial")
    assert code == 0
    assert "sources crm, product" in out
    assert "feature logins_30d: count of product over 30 days" in out
    assert "refers to trial v1" in out
    code, out, _ = run(monkeypatch, capsys, "lineage", "trial", "--json")
    assert [d["name"] for d in json.loads(out)["dependants"]] == ["engaged-trial"]
