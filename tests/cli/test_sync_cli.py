"""``segops sync``: run, status, resync, approve and the errors of bad destinations."""

from __future__ import annotations

import copy
import json
from pathlib import Path

import pytest
import yaml

from tests.cli.test_app import CRM, WORKSPACE, run

DESTINATIONS = {
    "exports": {"kind": "files", "path": "exports", "tiers": ["core"]},
    "crm-hook": {
        "kind": "webhook",
        "url": "http://127.0.0.1:9/hook",
        "secret": "crm-hook",
        "segments": ["big"],
        "max_attempts": 1,
    },
}


def _workspace(tmp_path: Path, monkeypatch, destinations) -> Path:
    (tmp_path / "crm.csv").write_text(CRM)
    data = copy.deepcopy(WORKSPACE)
    data["destinations"] = destinations
    path = tmp_path / "workspace.yaml"
    path.write_text(yaml.safe_dump(data, sort_keys=False))
    monkeypatch.setenv("DATABASE_URL", f"sqlite:///{tmp_path / 'cli.db'}")
    monkeypatch.setenv("SEGOPS_WORKSPACE", str(path))
    return path


def test_run_writes_files_and_names_a_missing_secret(tmp_path, monkeypatch, capsys):
    path = _workspace(tmp_path, monkeypatch, DESTINATIONS)
    assert run(monkeypatch, capsys, "apply", str(path))[0] == 0
    assert run(monkeypatch, capsys, "refresh", "--as-of", "2026-06-30")[0] == 0
    code, out, _ = run(monkeypatch, capsys, "sync", "run")
    assert code == 1
    assert "crm-hook: destination 'crm-hook': secret 'crm-hook' is not set" in out
    snapshot = tmp_path / "exports" / "paid" / "current.csv"
    assert snapshot.read_text().split() == ["entity_id", "A1", "A2", "A4", "A5"]

    code, out, _ = run(monkeypatch, capsys, "sync", "status", "--json")
    rows = {r["destination"]: r for r in json.loads(out)}
    assert rows["exports"]["segments"][0]["in_step"] is True
    hook = rows["crm-hook"]["segments"][0]
    assert hook["in_step"] is False and "is not set" in hook["run"]["last_error"]

    code, out, _ = run(monkeypatch, capsys, "sync", "resync", "exports")
    assert code == 0 and "rebuilding exports for 1 segment(s): sent 1 batches" in out


def test_a_large_change_waits_for_approval(tmp_path, monkeypatch, capsys):
    path = _workspace(tmp_path, monkeypatch, {"exports": DESTINATIONS["exports"]})
    run(monkeypatch, capsys, "apply", str(path))
    run(monkeypatch, capsys, "refresh", "--as-of", "2026-06-30")
    run(monkeypatch, capsys, "sync", "run")
    moved = CRM.replace("A2,pro", "A2,trial").replace("A5,starter", "A5,trial")
    (tmp_path / "crm.csv").write_text(moved)
    run(monkeypatch, capsys, "refresh", "--as-of", "2026-07-01")
    code, out, _ = run(monkeypatch, capsys, "sync", "run")
    assert code == 0 and "(1 held)" in out
    code, out, _ = run(monkeypatch, capsys, "sync", "status", "--json")
    seg = json.loads(out)[0]["segments"][0]
    assert seg["run"]["status"] == "held" and "50%" in seg["run"]["note"]
    assert (tmp_path / "exports" / "paid" / "current.csv").read_text().split()[1:] == [
        "A1",
        "A2",
        "A4",
        "A5",
    ]
    code, out, _ = run(monkeypatch, capsys, "sync", "approve", "exports", "paid", "--by", "U111")
    assert code == 0 and "sent 1 batches" in out
    current = (tmp_path / "exports" / "paid" / "current.csv").read_text().split()
    assert current == ["entity_id", "A1", "A4"]


@pytest.mark.parametrize(
    ("destinations", "message"),
    [
        ({"x": {"kind": "salesforce", "segments": ["paid"]}}, "unknown destination kind"),
        ({"x": {"kind": "files", "path": "out", "segments": ["nope"]}}, "unknown segment 'nope'"),
        ({"x": {"kind": "webhook", "url": "ftp://h", "secret": "s", "tiers": ["core"]}}, "http(s)"),
        ({"x": {"kind": "hubspot", "list_id": "1", "tiers": ["core"]}}, "needs 'secret'"),
    ],
)
def test_bad_destinations_are_refused_at_apply(
    tmp_path, monkeypatch, capsys, destinations, message
):
    path = _workspace(tmp_path, monkeypatch, destinations)
    code, out, err = run(monkeypatch, capsys, "apply", str(path))
    assert code == 1 and message in err and "Traceback" not in err
    assert "destination 'x'" in err and len(err.strip().splitlines()) == 1


def test_an_unknown_destination_is_one_line(tmp_path, monkeypatch, capsys):
    path = _workspace(tmp_path, monkeypatch, {"exports": DESTINATIONS["exports"]})
    run(monkeypatch, capsys, "apply", str(path))
    code, _, err = run(monkeypatch, capsys, "sync", "status", "export")
    assert code == 1 and "unknown destination 'export' (known: exports)" in err


def test_retry_sends_a_failed_sync_again_without_waiting_for_its_backoff(
    tmp_path, monkeypatch, capsys
):
    from tests.sync.fakes import WEBHOOK_SECRET, WebhookReceiver, running

    with running(WebhookReceiver()) as hook:
        hook_config = {**DESTINATIONS["crm-hook"], "url": hook.url}
        path = _workspace(tmp_path, monkeypatch, {"crm-hook": hook_config})
        run(monkeypatch, capsys, "apply", str(path))
        run(monkeypatch, capsys, "refresh", "--as-of", "2026-06-30")
        code, out, _ = run(monkeypatch, capsys, "sync", "run")
        assert code == 1 and "1 dead" in out  # no secret yet: the run gives up
        monkeypatch.setenv("SEGOPS_DESTINATION_SECRETS", json.dumps({"crm-hook": WEBHOOK_SECRET}))
        code, out, _ = run(monkeypatch, capsys, "sync", "run")
        assert code == 0 and out.startswith("planned 0 runs")  # waiting after the failure
        code, out, _ = run(monkeypatch, capsys, "sync", "retry", "crm-hook")
        assert code == 0 and "sent 1 batches" in out
        assert hook.members["big"] == {"A1", "A4"}
    code, out, _ = run(monkeypatch, capsys, "sync", "status", "--json")
    assert json.loads(out)[0]["segments"][0]["in_step"] is True


def test_a_segment_out_of_scope_is_retired_once_approved(tmp_path, monkeypatch, capsys):
    path = _workspace(tmp_path, monkeypatch, {"exports": DESTINATIONS["exports"]})
    run(monkeypatch, capsys, "apply", str(path))
    run(monkeypatch, capsys, "refresh", "--as-of", "2026-06-30")
    run(monkeypatch, capsys, "sync", "run")
    data = yaml.safe_load(path.read_text())
    data["destinations"]["exports"] = {"kind": "files", "path": "exports", "segments": ["big"]}
    path.write_text(yaml.safe_dump(data, sort_keys=False))
    assert run(monkeypatch, capsys, "apply", str(path))[0] == 0
    code, out, _ = run(monkeypatch, capsys, "sync", "run")
    assert code == 0 and "(1 held)" in out
    code, out, _ = run(monkeypatch, capsys, "sync", "status")
    assert code == 0 and "4 (retiring:" in out and "#3 held +0" in out
    current = tmp_path / "exports" / "paid" / "current.csv"
    assert current.read_text().split() == ["entity_id", "A1", "A2", "A4", "A5"]
    code, out, _ = run(monkeypatch, capsys, "sync", "approve", "exports", "paid", "--by", "U111")
    assert code == 0 and "sent 1 batches" in out
    assert current.read_text().split() == ["entity_id"]
    code, out, _ = run(monkeypatch, capsys, "sync", "status", "--json")
    assert [s["segment"] for s in json.loads(out)[0]["segments"]] == ["big"]
