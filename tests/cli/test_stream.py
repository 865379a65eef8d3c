"""``segops show`` says live or batch; ``segops stream status`` and ``reconcile``; the
consumer refuses to start without a workspace or before a batch refresh."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from pathlib import Path

import pytest

from tests.cli.test_app import run
from tests.live import build


@pytest.fixture
def live_ws(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    setup = build(tmp_path)
    monkeypatch.setenv("DATABASE_URL", f"sqlite:///{tmp_path / 'cli.db'}")
    monkeypatch.setenv("SEGOPS_WORKSPACE", str(setup.path))
    monkeypatch.setenv("SEGOPS_STREAM", f"segops:test:cli:{tmp_path.name}")
    return setup.path


def test_show_prints_live_and_why(live_ws, monkeypatch, capsys) -> None:
    assert run(monkeypatch, capsys, "apply", str(live_ws))[0] == 0
    code, out, _ = run(monkeypatch, capsys, "show", "buyers")
    assert code == 0
    assert "live plan: entity property; spend_30d: sum of purchase over 30 days" in out
    code, out, _ = run(monkeypatch, capsys, "show", "pros", "--json")
    assert json.loads(out)["live"]["mode"] == "batch"


def test_the_consumer_needs_a_batch_refresh_first(live_ws, monkeypatch, capsys) -> None:
    run(monkeypatch, capsys, "apply", str(live_ws))
    code, _out, err = run(monkeypatch, capsys, "stream")
    assert code == 1
    assert "no entity is known yet: run 'segops refresh' once before going live" in err
    assert "Traceback" not in err


def test_the_consumer_needs_a_workspace(live_ws, monkeypatch, capsys) -> None:
    monkeypatch.delenv("SEGOPS_WORKSPACE")
    code, _out, err = run(monkeypatch, capsys, "stream")
    assert code == 1 and "no workspace file" in err


def test_status_and_reconcile_read_the_store(live_ws, monkeypatch, capsys) -> None:
    run(monkeypatch, capsys, "apply", str(live_ws))
    today = datetime.now(UTC).date().isoformat()
    assert run(monkeypatch, capsys, "refresh", "--as-of", today)[0] == 0
    code, out, _ = run(monkeypatch, capsys, "stream", "status", "--json")
    assert code == 0
    data = json.loads(out)
    assert data["counters"] == {} and data["segments"] == []
    code, out, _ = run(monkeypatch, capsys, "stream", "reconcile")
    assert code == 0 and "nothing to reconcile" in out


def test_the_events_endpoint_needs_its_token(live_ws, monkeypatch, capsys) -> None:
    code, _out, err = run(monkeypatch, capsys, "stream", "http")
    assert code == 1 and "SEGOPS_EVENTS_TOKEN" in err
