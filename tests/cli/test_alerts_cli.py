"""``segops alerts list|ack|mute`` through the console entry point."""

from __future__ import annotations

import json
import sys
from datetime import UTC, datetime, timedelta

import pytest

from cli.app import main
from store.db import session_scope
from store.models import Alert
from tests import factories
from tests.commands.test_alerts import stored_alert
from tests.factories import APPROVER, OWNER


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
def alert_id(engine, tmp_path, monkeypatch) -> int:
    factories.applied(engine, tmp_path)
    monkeypatch.setenv("DATABASE_URL", engine.url.render_as_string(hide_password=False))
    return stored_alert(engine)


def alert_row(engine, number: int) -> Alert:
    with session_scope(engine) as session:
        return session.get(Alert, number)


def listed(monkeypatch, capsys, *args: str) -> list[dict]:
    code, out, err = run(monkeypatch, capsys, "alerts", "list", "--json", *args)
    assert code == 0, err
    return json.loads(out)


def test_list_then_acknowledge_as_an_approver(engine, alert_id, monkeypatch, capsys):
    (open_alert,) = listed(monkeypatch, capsys)
    assert (open_alert["id"], open_alert["segment"], open_alert["status"]) == (
        alert_id,
        "trial",
        "open",
    )
    assert open_alert["as_of"] == "2026-03-30"
    code, out, _ = run(monkeypatch, capsys, "alerts", "ack", str(alert_id), "--as", APPROVER)
    assert code == 0 and f"acknowledged alert #{alert_id} on 'trial'" in out
    assert alert_row(engine, alert_id).acknowledged_by == APPROVER
    assert listed(monkeypatch, capsys) == []
    assert [
        a["acknowledged_by"] for a in listed(monkeypatch, capsys, "--status", "acknowledged")
    ] == [APPROVER]
    code, out, _ = run(monkeypatch, capsys, "alerts", "ack", str(alert_id), "--as", OWNER)
    assert code == 0 and f"already acknowledged by {APPROVER}" in out


def test_the_owner_mutes_and_the_mute_runs_out(engine, alert_id, monkeypatch, capsys):
    code, out, _ = run(
        monkeypatch, capsys, "alerts", "mute", str(alert_id), "--as", OWNER, "--days", "3"
    )
    assert code == 0 and f"muted alert #{alert_id} on 'trial' until" in out
    (muted,) = listed(monkeypatch, capsys, "--status", "muted", "--segment", "trial")
    until = datetime.fromisoformat(muted["muted_until"])
    assert timedelta(days=2, hours=23) < until - datetime.now(UTC) <= timedelta(days=3)
    with session_scope(engine) as session:
        row = session.get(Alert, alert_id)
        row.muted_until = datetime.now(UTC) - timedelta(minutes=1)
        session.add(row)
    assert [a["id"] for a in listed(monkeypatch, capsys)] == [alert_id]


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (("alerts", "mute", "{id}", "--as", APPROVER), "only the owner @U111 can mute"),
        (("alerts", "ack", "{id}", "--as", "U999"), "only the owner @U111 or approvers @U222"),
        (("alerts", "ack", "{id}"), "who is acknowledging? pass --as U123"),
        (("alerts", "mute", "{id}", "--as", OWNER, "--days", "91"), "a mute lasts 1 to 90 days"),
        (("alerts", "ack", "999", "--as", OWNER), "no alert #999"),
        (("alerts", "list", "--status", "closed"), "status 'closed' must be one of"),
    ],
)
def test_user_errors_are_one_line_and_change_nothing(
    engine, alert_id, monkeypatch, capsys, args, message
):
    code, _, err = run(monkeypatch, capsys, *(a.format(id=alert_id) for a in args))
    assert code == 1 and message in err
    assert len(err.strip().splitlines()) == 1 and "Traceback" not in err
    row = alert_row(engine, alert_id)
    assert (row.status, row.acknowledged_by, row.muted_until) == ("open", None, None)
