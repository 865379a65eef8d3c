"""``segops refresh`` hides the numbers of segments under the privacy floor, in its
table and in ``--json``."""

from __future__ import annotations

import json

import pytest

from commands.stats import members
from tests import factories
from tests.cli.test_proposals_cli import run
from tests.factories import AS_OF


@pytest.fixture
def fx(engine, tmp_path, monkeypatch):
    fx = factories.applied(engine, tmp_path)
    monkeypatch.setenv("DATABASE_URL", engine.url.render_as_string(hide_password=False))
    monkeypatch.setenv("SEGOPS_WORKSPACE", str(fx.path))
    return fx


def test_refresh_json_hides_segments_under_the_floor(fx, engine, monkeypatch, capsys):
    monkeypatch.setenv("SEGOPS_PRIVACY_FLOOR", "10000")
    code, out, err = run(monkeypatch, capsys, "refresh", "--as-of", AS_OF.isoformat(), "--json")
    assert code == 0, err
    rows = {s["segment"]: s for s in json.loads(out)["segments"]}
    assert len(members(engine, "trial")) > 0
    assert rows["trial"]["hidden"] is True
    assert (rows["trial"]["size"], rows["trial"]["joined"], rows["trial"]["left"]) == (
        None,
        None,
        None,
    )
    assert rows["trial"]["status"] == "published"


def test_refresh_json_shows_segments_above_the_floor(fx, engine, monkeypatch, capsys):
    monkeypatch.setenv("SEGOPS_PRIVACY_FLOOR", "1")
    code, out, err = run(monkeypatch, capsys, "refresh", "--as-of", AS_OF.isoformat(), "--json")
    assert code == 0, err
    rows = {s["segment"]: s for s in json.loads(out)["segments"]}
    assert "hidden" not in rows["trial"]
    assert rows["trial"]["size"] == len(members(engine, "trial"))


def test_refresh_table_hides_segments_under_the_floor(fx, engine, monkeypatch, capsys):
    monkeypatch.setenv("SEGOPS_PRIVACY_FLOOR", "10000")
    code, out, err = run(monkeypatch, capsys, "refresh", "--as-of", AS_OF.isoformat())
    assert code == 0, err
    line = next(x for x in out.splitlines() if " trial " in x)
    assert "< 10000" in line and "hidden" in line
    assert f"{len(members(engine, 'trial')):,}" not in line
