"""Drift alerts hide sizes under the privacy floor: the posted message and its
notification text, the alerts of the refresh summary and report, the alert lists and
the agenda name what moved but never a size under the floor."""

from __future__ import annotations

import json
from datetime import timedelta

import pytest
from sqlmodel import select

from commands.agenda import agenda
from commands.alerts import alert_context, list_alerts
from commands.policy import visible_outcome
from commands.stats import members, recent_alerts
from store.db import session_scope
from store.models import OutboxMessage
from tests import factories
from tests.factories import AS_OF

FLOOR = 10
SMALL = 3
DAY1 = AS_OF - timedelta(days=1)


def shrink_trials(fx: factories.Factory, keep: int) -> None:
    """Every trial account but the first ``keep`` moves to the pro plan."""
    trials = fx.crm.index[fx.crm["plan"] == "trial"]
    fx.crm.loc[trials[keep:], "plan"] = "pro"
    fx.write_data()


def drift_row(engine) -> OutboxMessage:
    with session_scope(engine) as session:
        return session.exec(
            select(OutboxMessage).where(
                OutboxMessage.idempotency_key.like("drift:%:trial")  # type: ignore[attr-defined]
            )
        ).one()


def revealing(size: int) -> list[str]:
    """Ways a posted text could tell ``size``."""
    return [f"to {size} members", f"→ {size}", f"-> {size}", f"Size {size} ", f"{size} members"]


@pytest.fixture
def shrunk(engine, tmp_path):
    """``trial`` refreshed with about 50 members, then with ``SMALL`` under a floor of 10."""
    fx = factories.refreshed(engine, tmp_path, as_of=DAY1)
    big = len(members(engine, "trial"))
    shrink_trials(fx, SMALL)
    report = fx.refresh(engine, AS_OF, privacy_floor=FLOOR)
    return fx, big, report


def test_a_drift_alert_of_a_segment_under_the_floor_names_no_size(engine, shrunk):
    _fx, big, _report = shrunk
    row = drift_row(engine)
    posted = row.text + json.dumps(row.blocks, ensure_ascii=False)
    assert row.text.startswith("🔴 Trials: Members changed; the numbers are under the privacy")
    assert "under the privacy floor of 10" in posted
    for text in revealing(SMALL):
        assert text not in posted
    assert f"{big} →" not in posted  # the movement would tell the size too


def button_value(row: OutboxMessage) -> int:
    actions = next(b for b in row.blocks if b["type"] == "actions")
    return int(actions["elements"][0]["value"])


def test_the_message_re_rendered_after_a_click_hides_the_same_numbers(engine, shrunk):
    ctx = alert_context(engine, button_value(drift_row(engine)), privacy_floor=FLOOR)
    assert ctx["evidence"]["size"] is None and ctx["evidence"]["trend"][-1][1] != SMALL
    assert all(a.get("hidden") for a in ctx["alerts"] if a["kind"] == "size_change")
    shown = json.dumps(ctx, ensure_ascii=False)
    for text in revealing(SMALL):
        assert text not in shown


def test_reports_lists_and_the_agenda_name_no_size_under_the_floor(engine, shrunk):
    _fx, _big, report = shrunk
    trial = next(s for s in report.segments if s.segment == "trial")
    shown = visible_outcome(trial.to_dict(details=True), FLOOR)
    assert shown["hidden"] is True and shown["alerts"]
    messages = [a["message"] for a in shown["alerts"]]
    messages += [a["message"] for a in list_alerts(engine, segment="trial", privacy_floor=FLOOR)]
    messages += [a["message"] for a in recent_alerts(engine, "trial", privacy_floor=FLOOR)]
    (listed,) = [d for d in agenda(engine, privacy_floor=FLOOR)["drift"] if d["segment"] == "trial"]
    messages += [a["message"] for a in listed["alerts"]]
    assert messages and all("under the privacy floor of 10" in m for m in messages)
    for text in revealing(SMALL):
        assert not any(text in m for m in messages)
    stored = [a["message"] for a in list_alerts(engine, segment="trial", privacy_floor=1)]
    assert any(f"-> {SMALL}" in m for m in stored)  # the alert itself keeps its numbers


def test_a_previous_size_under_the_floor_is_not_told_by_the_movement(engine, tmp_path):
    fx = factories.refreshed(engine, tmp_path, as_of=DAY1 - timedelta(days=1))
    shrink_trials(fx, SMALL)
    fx.refresh(engine, DAY1, privacy_floor=FLOOR)
    fx.crm = factories.build(tmp_path / "again").crm
    fx.write_data()
    report = fx.refresh(engine, AS_OF, privacy_floor=FLOOR)
    trial = next(s for s in report.segments if s.segment == "trial")
    assert trial.size >= FLOOR and trial.previous_size == SMALL
    with session_scope(engine) as session:
        rows = session.exec(
            select(OutboxMessage).where(
                OutboxMessage.idempotency_key.like("drift:%:trial")  # type: ignore[attr-defined]
            )
        ).all()
    posted = rows[-1].text + json.dumps(rows[-1].blocks, ensure_ascii=False)
    assert posted.startswith("🟠 Trials") or posted.startswith("🔴 Trials")
    assert "the numbers are under the privacy floor of 10" in posted
    shown = visible_outcome(trial.to_dict(details=True), FLOOR)
    reported = json.dumps(shown["alerts"], ensure_ascii=False)
    assert shown["previous_size"] is None and "under the privacy floor of 10" in reported
    for text in (f"{SMALL} →", f"{SMALL} -> ", f"({SMALL} ->", f"from {SMALL}"):
        assert text not in posted and text not in reported


def test_a_blocked_alert_does_not_tell_the_size_of_the_snapshot_it_keeps(engine, tmp_path):
    fx = factories.refreshed(engine, tmp_path, as_of=DAY1)
    kept = len(members(engine, "trial"))
    report = fx.refresh(engine, AS_OF + timedelta(days=30), privacy_floor=10_000)
    assert {s.status for s in report.segments} == {"blocked"}
    with session_scope(engine) as session:
        rows = session.exec(
            select(OutboxMessage).where(OutboxMessage.kind == "blocked_alert")
        ).all()
    posted = " ".join(r.text + json.dumps(r.blocks, ensure_ascii=False) for r in rows)
    assert rows and "size hidden" in posted
    assert f"{kept} members" not in posted and "members as of" not in posted
