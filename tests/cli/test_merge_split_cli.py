"""``segops merge`` and ``segops split``: the same merge or split a file declaring
``merged_from`` / ``split_from`` makes, from the catalog, through the console entry point."""

from __future__ import annotations

import json

import pytest

from commands.catalog import history, show_segment
from tests import factories
from tests.cli.test_proposals_cli import run
from tests.commands.test_merge_split import origins_of
from tests.factories import APPROVER, OWNER, PROPOSER


@pytest.fixture
def fx(engine, tmp_path, monkeypatch):
    fx = factories.applied(engine, tmp_path)
    monkeypatch.setenv("DATABASE_URL", engine.url.render_as_string(hide_password=False))
    monkeypatch.setenv("SEGOPS_WORKSPACE", str(fx.path))
    return fx


def test_merge_creates_the_segment_and_proposes_the_sources_archives(
    fx, engine, monkeypatch, capsys
):
    rule = "plan in ('starter', 'pro', 'enterprise') or seats >= 50"
    code, out, err = run(
        monkeypatch, capsys, "merge", "paying", "enterprise", "smb", "--rule", rule,
        "--as", PROPOSER, "--reason", "one paying segment", "--json",
    )  # fmt: skip
    assert code == 0, err
    result = json.loads(out)
    assert result["created"] == ["paying"]
    assert sorted(p["segment"] for p in result["proposed"]) == ["enterprise", "smb"]
    (created,) = history(engine, "paying")
    assert created.change_kind == "merge"
    assert "merged from 'enterprise' (v1), 'smb' (v1)" in created.reason
    assert origins_of(engine, "paying") == [("merge", "enterprise", 1), ("merge", "smb", 1)]
    shown = show_segment(engine, "paying", privacy_floor=1)["definition"]
    assert (shown["owner"], shown["rule"], shown["title"]) == (OWNER, rule, "Paying")


def test_merge_approved_by_an_approver_archives_the_sources_at_once(
    fx, engine, monkeypatch, capsys
):
    code, out, err = run(
        monkeypatch, capsys, "merge", "paying", "enterprise", "smb", "--rule", "plan != 'trial'",
        "--as", OWNER, "--reason", "one", "--approved-by", APPROVER, "--json",
    )  # fmt: skip
    assert code == 0, err
    assert sorted(json.loads(out)["archived"]) == ["enterprise", "smb"]
    (archive, _created) = history(engine, "smb")
    assert archive.change_kind == "archive" and "merged into 'paying'" in archive.reason


def test_split_creates_a_part_and_keeps_its_parent(fx, engine, monkeypatch, capsys):
    code, out, err = run(
        monkeypatch, capsys, "split", "smb-starter", "smb", "--rule",
        "plan = 'starter' and seats < 50", "--as", OWNER, "--reason", "by plan", "--json",
    )  # fmt: skip
    assert code == 0, err
    assert json.loads(out)["created"] == ["smb-starter"]
    assert show_segment(engine, "smb", privacy_floor=1)["status"] == "active"
    assert origins_of(engine, "smb-starter") == [("split", "smb", 1)]


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["merge", "paying", "smb", "nope", "--rule", "plan = 'pro'"], "no segment named 'nope'"),
        (["merge", "trial", "smb", "enterprise", "--rule", "plan = 'pro'"], "already exists"),
        (["split", "part", "smb", "--rule", "nosuch = 1"], "nosuch"),
        (["merge", "paying", "smb", "--rule", "plan = 'pro'"], "at least two"),
        (
            ["merge", "all", "smb", "trial", "--rule", "plan = 'pro'"],
            "cannot merge 'trial' away: active segments refer to it: 'engaged-trial'",
        ),
    ],
)
def test_a_merge_or_split_that_cannot_be_made_is_one_line_and_writes_nothing(
    fx, engine, monkeypatch, capsys, args, message
):
    before = [v.version for v in history(engine, "smb")]
    code, out, err = run(monkeypatch, capsys, *args, "--as", OWNER, "--reason", "x")
    assert code == 1 and message in err and len(err.strip().splitlines()) == 1, err
    assert [v.version for v in history(engine, "smb")] == before


def test_lineage_names_what_a_merge_came_from_and_what_a_source_went_into(
    fx, engine, monkeypatch, capsys
):
    code, _out, err = run(
        monkeypatch, capsys, "merge", "paying", "enterprise", "smb", "--rule", "plan != 'trial'",
        "--as", OWNER, "--reason", "one", "--approved-by", APPROVER,
    )  # fmt: skip
    assert code == 0, err
    code, out, err = run(monkeypatch, capsys, "lineage", "paying", "--json")
    assert code == 0, err
    assert json.loads(out)["came_from"] == [
        {"kind": "merge", "name": "enterprise", "version": 1},
        {"kind": "merge", "name": "smb", "version": 1},
    ]
    code, out, err = run(monkeypatch, capsys, "lineage", "smb")
    assert code == 0, err
    assert "merged into paying (from v1)" in " ".join(out.split())
