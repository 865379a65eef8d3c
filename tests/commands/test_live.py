"""Live segments through the store: classification at apply, events applied once, late
and bad events, the sweep, transitions with their cause, reconciliation alerts."""

from __future__ import annotations

import json
from datetime import timedelta
from pathlib import Path

import pytest
from sqlalchemy import Engine
from sqlmodel import func, select

from commands import live
from commands.catalog import show_segment
from commands.refresh import refresh
from store import live as store_live
from store.db import session_scope
from store.entities import entity_keys
from store.models import (
    Alert,
    LiveDeadLetter,
    LiveEvent,
    LiveMember,
    LiveTransition,
    OutboxMessage,
    Segment,
)
from tests.live import OWNER, LiveSetup, build, event, incoming

LATENESS = timedelta(hours=1)


@pytest.fixture
def setup(tmp_path: Path) -> LiveSetup:
    return build(tmp_path)


def runtime(engine: Engine, setup: LiveSetup) -> live.Runtime:
    ws = setup.applied(engine)
    rt = live.load_runtime(engine, ws, lateness=LATENESS, today=setup.now.date())
    live.build(engine, rt, now=setup.now)
    return rt


def members(engine: Engine, name: str) -> list[str]:
    with session_scope(engine) as session:
        segment = session.exec(select(Segment).where(Segment.name == name)).one()
        keys = entity_keys(session)
        return sorted(keys[i] for i in store_live.members(session, segment_id=segment.id))


def transitions(engine: Engine) -> list[tuple[str, str, str, str | None, str]]:
    with session_scope(engine) as session:
        keys = entity_keys(session)
        rows = session.exec(select(LiveTransition, Segment.name).join(Segment)).all()
        return [(name, keys[t.entity_id], t.kind, t.event_id, t.clause) for t, name in rows]


def count(engine: Engine, model: type) -> int:
    with session_scope(engine) as session:
        return session.exec(select(func.count()).select_from(model)).one()


def test_show_says_live_or_batch_and_why(engine: Engine, setup: LiveSetup) -> None:
    setup.applied(engine)
    buyers = show_segment(engine, "buyers", privacy_floor=1)["live"]
    assert buyers["mode"] == "live"
    assert "plan: entity property" in buyers["reasons"]
    pros = show_segment(engine, "pros", privacy_floor=1)["live"]
    assert pros == {
        "mode": "batch",
        "reasons": ["cadence weekly: refreshed in batch (cadence: live opts in)"],
    }


def test_an_event_joins_a_member_with_its_event_and_clause(engine: Engine, setup) -> None:
    rt = runtime(engine, setup)
    now = setup.now
    first = live.apply_events(
        engine, rt, incoming(event("e1", "a0", "login", now - timedelta(minutes=5))), now=now
    )
    assert (first.applied, first.joins) == (1, 0)
    second = live.apply_events(
        engine,
        rt,
        incoming(
            event("e2", "a0", "login", now - timedelta(minutes=1)),
            event("e3", "a2", "purchase", now, 80),
            event("e4", "a1", "purchase", now, 500),  # free plan: never a buyer
        ),
        now=now,
    )
    assert (second.applied, second.joins, second.leaves) == (3, 2, 0)
    assert members(engine, "active") == ["a0"]
    assert members(engine, "buyers") == ["a2"]
    assert sorted(transitions(engine)) == [
        ("active", "a0", "join", "e2", "logins_7d >= 2"),
        ("buyers", "a2", "join", "e3", "spend_30d > 50"),
    ]


def test_duplicates_apply_once_within_and_across_batches(engine: Engine, setup) -> None:
    rt = runtime(engine, setup)
    now = setup.now
    login = event("d1", "a3", "login", now)
    report = live.apply_events(engine, rt, incoming(login, login), now=now)
    assert (report.applied, report.duplicates) == (1, 1)
    again = live.apply_events(engine, rt, incoming(login), now=now)
    assert (again.applied, again.duplicates, again.joins) == (0, 1, 0)
    assert members(engine, "active") == []  # one login counted, not three
    with session_scope(engine) as session:
        counters = store_live.counters(session)
    assert counters["applied"] == 1 and counters["duplicates"] == 2


def test_out_of_order_events_within_the_lateness_count(engine: Engine, setup) -> None:
    rt = runtime(engine, setup)
    now = setup.now
    live.apply_events(engine, rt, incoming(event("o2", "a4", "login", now)), now=now)
    earlier = event("o1", "a4", "login", now - timedelta(minutes=50))
    report = live.apply_events(engine, rt, incoming(earlier), now=now)
    assert (report.applied, report.late, report.joins) == (1, 0, 1)
    assert members(engine, "active") == ["a4"]


def test_events_older_than_the_lateness_are_counted_and_left_to_batch(engine, setup) -> None:
    rt = runtime(engine, setup)
    now = setup.now
    old = [event(f"l{i}", "a5", "login", now - timedelta(hours=2, minutes=i)) for i in range(3)]
    report = live.apply_events(engine, rt, incoming(*old), now=now)
    assert (report.applied, report.late, report.joins) == (0, 3, 0)
    assert members(engine, "active") == []
    assert count(engine, LiveEvent) == 0
    with session_scope(engine) as session:
        assert store_live.counters(session)["late"] == 3


def test_bad_events_go_to_dead_letters_and_the_rest_applies(engine, setup) -> None:
    rt = runtime(engine, setup)
    now = setup.now
    report = live.apply_events(
        engine,
        rt,
        incoming(
            "not json {",
            {"id": "b1", "entity": "a0", "ts": now.isoformat()},
            event("b2", "nobody", "login", now),
            event("b3", "a0", "login", now + timedelta(hours=1)),
            {"id": "b4", "entity": "a0", "event": "login", "ts": now.isoformat(), "value": "x"},
            event("b5", "a0", "login", now),
        ),
        now=now,
    )
    assert (report.applied, report.dead) == (1, 5)
    with session_scope(engine) as session:
        reasons = sorted(d.reason for d in session.exec(select(LiveDeadLetter)).all())
    assert reasons == [
        "entity: unknown 'nobody'",
        "event: missing",
        "not JSON",
        "ts: in the future",
        "value: must be a number or null",
    ]


def test_the_sweep_ends_memberships_whose_window_ran_out(engine: Engine, setup) -> None:
    rt = runtime(engine, setup)
    now = setup.now
    # both today (time is whole UTC days) and within the lateness bound: a minute apart
    # just after midnight would put them on two days, the older leaving a day sooner
    earlier = max(now - timedelta(minutes=1), now.replace(hour=0, minute=0, second=0))
    logins = [event(f"s{i}", "a1", "login", at) for i, at in enumerate((now, earlier))]
    live.apply_events(engine, rt, incoming(*logins), now=now)
    assert members(engine, "active") == ["a1"]
    unchanged = live.sweep(engine, rt, now=now + timedelta(days=6))
    assert (unchanged.joins, unchanged.leaves) == (0, 0)
    swept = live.sweep(engine, rt, now=now + timedelta(days=7))
    assert (swept.joins, swept.leaves) == (0, 1)
    assert members(engine, "active") == []
    assert ("active", "a1", "leave", None, "logins_7d >= 2") in transitions(engine)


def test_an_edited_live_segment_is_rebuilt_over_every_entity(engine, setup) -> None:
    rt = runtime(engine, setup)
    assert members(engine, "buyers") == []
    data = setup.path.read_text().replace("spend_30d > 50", "spend_30d >= 0")
    setup.path.write_text(data)
    from commands.catalog import apply_workspace

    apply_workspace(engine, setup.workspace(), reason="wider", author="test")
    rt = live.load_runtime(engine, setup.workspace(), lateness=LATENESS, today=setup.now.date())
    assert live.build(engine, rt, now=setup.now) == ["buyers"]
    assert members(engine, "buyers") == ["a0", "a2", "a4"]


def test_reconciliation_in_step_with_the_batch_sends_nothing(engine, setup) -> None:
    rt = runtime(engine, setup)
    now = setup.now
    events = [
        event("r1", "a0", "login", now - timedelta(minutes=3)),
        event("r2", "a0", "login", now - timedelta(minutes=2)),
        event("r3", "a4", "purchase", now - timedelta(minutes=1), 75),
    ]
    live.apply_events(engine, rt, incoming(*events), now=now)
    setup.write_events(events)
    refresh(engine, setup.workspace(), as_of=now.date(), notify=False)
    found = {r.segment: r for r in live.reconcile(engine, today=now.date())}
    assert (found["active"].live, found["active"].batch, found["active"].differing) == (1, 1, 0)
    assert (found["buyers"].live, found["buyers"].batch, found["buyers"].alerted) == (1, 1, False)
    assert count(engine, OutboxMessage) == 0
    assert live.reconcile(engine, today=now.date()) == []  # each batch result once


def test_reconciliation_alerts_the_owner_with_the_ids_that_differ(engine, setup) -> None:
    rt = runtime(engine, setup)
    now = setup.now
    seen_by_batch = [event("v1", "a2", "purchase", now - timedelta(minutes=2), 60)]
    live_only = [
        event("v2", "a3", "login", now - timedelta(minutes=1)),
        event("v3", "a3", "login", now),
    ]
    live.apply_events(engine, rt, incoming(*seen_by_batch, *live_only), now=now)
    setup.write_events(seen_by_batch)
    refresh(engine, setup.workspace(), as_of=now.date(), notify=False)
    found = {r.segment: r for r in live.reconcile(engine, today=now.date())}
    assert found["buyers"].alerted is False
    active = found["active"]
    assert (active.live, active.batch, active.differing, active.ids) == (1, 0, 1, ["a3"])
    assert active.alerted is True
    with session_scope(engine) as session:
        alert = session.exec(select(Alert).where(Alert.kind == "live_divergence")).one()
        message = session.exec(select(OutboxMessage)).one()
    assert alert.details["ids"] == ["a3"] and alert.details["differing"] == 1
    assert message.channel == OWNER and message.kind == "live_divergence"
    assert "Active" in message.text
    shown = json.dumps(message.blocks)
    assert "`a3`" in shown and "1 entity" in shown


def test_load_runtime_needs_a_batch_refresh_first(engine: Engine, setup) -> None:
    from commands.catalog import apply_workspace
    from segments.errors import SegopsError

    apply_workspace(engine, setup.workspace(), reason=None, author="test")
    with pytest.raises(SegopsError, match="run 'segops refresh' once"):
        live.load_runtime(engine, setup.workspace(), lateness=LATENESS, today=setup.now.date())


def test_one_batch_joins_every_entity_it_makes_a_member(engine: Engine, setup) -> None:
    rt = runtime(engine, setup)
    now = setup.now
    batch = [event(f"m{i}", f"a{i % 6}", "login", now - timedelta(minutes=i)) for i in range(14)]
    live.apply_events(engine, rt, incoming(*batch), now=now)
    assert members(engine, "active") == ["a0", "a1", "a2", "a3", "a4", "a5"]
    assert count(engine, LiveMember) == 6
