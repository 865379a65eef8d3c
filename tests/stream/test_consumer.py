"""The consumer on a real Redis stream: apply then acknowledge, redelivery after a crash,
bad entries, trimming, and a consumer killed with SIGKILL in the middle of a stream."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from datetime import UTC, datetime, timedelta

import pytest
from sqlalchemy import Engine
from sqlmodel import func, select

from commands import live
from segments.live import EntityState, day_of
from store import live as store_live
from store.db import session_scope
from store.entities import entity_keys
from store.models import LiveDeadLetter, LiveEvent, LiveTransition, Segment
from stream.consumer import Consumer
from stream.log import EventLog
from tests.live import LiveSetup, event

LATENESS = timedelta(hours=1)


def consumer(engine: Engine, setup: LiveSetup, log: EventLog, name: str = "c1", **kw) -> Consumer:
    return Consumer(engine, setup.workspace, log, name=name, lateness=LATENESS, block_ms=50, **kw)


def publish(log: EventLog, *events: dict | str) -> None:
    payloads = [e if isinstance(e, str) else json.dumps(e) for e in events]
    log.publish(payloads, accepted_at=time.time())


def members(engine: Engine, name: str) -> list[str]:
    with session_scope(engine) as session:
        segment = session.exec(select(Segment).where(Segment.name == name)).one()
        keys = entity_keys(session)
        return sorted(keys[i] for i in store_live.members(session, segment_id=segment.id))


def count(engine: Engine, model: type) -> int:
    with session_scope(engine) as session:
        return session.exec(select(func.count()).select_from(model)).one()


def drain(c: Consumer, rounds: int = 20) -> None:
    """Step until two rounds in a row find nothing."""
    idle = 0
    for _ in range(rounds):
        idle = idle + 1 if c.step() == 0 else 0
        if idle == 2:
            return


def test_the_consumer_applies_then_acknowledges(engine, live_setup, event_log) -> None:
    now = datetime.now(UTC)
    publish(event_log, *(event(f"e{i}", "a2", "login", now) for i in range(3)))
    c = consumer(engine, live_setup, event_log)
    drain(c)
    assert members(engine, "active") == ["a2"]
    assert event_log.status()["pending"] == 0
    assert c.totals.applied == 3


def test_bad_entries_are_dead_letters_and_the_consumer_goes_on(
    engine, live_setup, event_log
) -> None:
    now = datetime.now(UTC)
    publish(event_log, "{broken", event("x1", "ghost", "login", now))
    event_log.client.xadd(event_log.stream, {"nothing": "here"})
    publish(event_log, event("x2", "a0", "login", now), event("x3", "a0", "login", now))
    drain(consumer(engine, live_setup, event_log))
    assert count(engine, LiveDeadLetter) == 3
    assert members(engine, "active") == ["a0"]
    assert event_log.status()["pending"] == 0


def test_entries_read_but_never_acknowledged_come_back_once(engine, live_setup, event_log) -> None:
    now = datetime.now(UTC)
    publish(event_log, event("p1", "a4", "login", now), event("p2", "a4", "login", now))
    first = consumer(engine, live_setup, event_log)
    first.start()
    # The first consumer applies and commits, then dies before XACK.
    entries = event_log.read("c1", count=10, block_ms=10)
    live.apply_events(
        engine, first.runtime, [live.Incoming(f["e"], now, i) for i, f in entries], now=now
    )
    assert event_log.status()["pending"] == 2
    again = consumer(engine, live_setup, event_log)  # the same name, restarted
    drain(again)
    assert event_log.status()["pending"] == 0
    assert again.totals.duplicates == 2 and again.totals.applied == 0
    assert count(engine, LiveEvent) == 2
    assert members(engine, "active") == ["a4"]


def test_another_consumer_claims_what_a_dead_one_left_pending(
    engine, live_setup, event_log
) -> None:
    now = datetime.now(UTC)
    publish(event_log, event("q1", "a1", "login", now), event("q2", "a1", "login", now))
    assert len(event_log.read("dead", count=10, block_ms=10)) == 2  # read, never applied
    other = consumer(engine, live_setup, event_log, name="c2", claim_idle_ms=0)
    drain(other)
    assert members(engine, "active") == ["a1"]
    assert event_log.status()["pending"] == 0


def test_trimming_drops_only_what_was_acknowledged(engine, live_setup, event_log) -> None:
    now = datetime.now(UTC)
    publish(event_log, *(event(f"t{i}", "a3", "view", now) for i in range(5)))
    drain(consumer(engine, live_setup, event_log))
    publish(event_log, event("t9", "a3", "view", now))
    event_log.read("slow", count=10, block_ms=10)  # delivered, not acknowledged
    event_log.trim()
    assert event_log.status()["length"] == 1


def test_a_new_day_sweeps_expired_windows(engine, live_setup, event_log) -> None:
    start = datetime.now(UTC)
    clock = [start]
    publish(event_log, event("w1", "a5", "login", start), event("w2", "a5", "login", start))
    c = consumer(engine, live_setup, event_log, clock=lambda: clock[0])
    drain(c)
    assert members(engine, "active") == ["a5"]
    clock[0] = start + timedelta(days=8)
    c.step()
    assert members(engine, "active") == []
    with session_scope(engine) as session:
        leave = session.exec(select(LiveTransition).where(LiveTransition.kind == "leave")).one()
    assert (leave.event_id, leave.clause) == (None, "logins_7d >= 2")


CHILD_ENV_KEYS = ("DATABASE_URL", "SEGOPS_WORKSPACE", "SEGOPS_STREAM", "SEGOPS_REDIS_URL")


@pytest.mark.slow
def test_a_consumer_killed_mid_stream_loses_nothing_and_applies_nothing_twice(
    engine, live_setup, event_log
) -> None:
    now = datetime.now(UTC)
    entities = [f"a{i}" for i in range(6)]
    events = [
        event(f"k{i}", entities[i % 6], ("login", "purchase", "view")[i % 3], now, i % 40)
        for i in range(3000)
    ]
    for start in range(0, len(events), 100):
        chunk = events[start : start + 100]
        publish(event_log, *chunk, *chunk[:5])  # and a few duplicates on the log
    env = {
        **os.environ,
        "DATABASE_URL": engine.url.render_as_string(hide_password=False),
        "SEGOPS_WORKSPACE": str(live_setup.path),
        "SEGOPS_STREAM": event_log.stream,
        "SEGOPS_REDIS_URL": "redis://127.0.0.1:6379/0",
    }
    command = [sys.executable, "-m", "cli.app", "stream", "--name", "killed", "--batch", "50"]
    for _round in range(3):
        child = subprocess.Popen(command, env=env, stdout=subprocess.DEVNULL)
        deadline = time.monotonic() + 60
        target = count(engine, LiveEvent) + 300
        while count(engine, LiveEvent) < target and time.monotonic() < deadline:
            time.sleep(0.05)
        child.send_signal(signal.SIGKILL)
        child.wait()
    child = subprocess.Popen(command, env=env, stdout=subprocess.DEVNULL)
    try:
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline:
            if count(engine, LiveEvent) == 3000 and event_log.status()["pending"] == 0:
                break
            time.sleep(0.1)
    finally:
        child.terminate()
        child.wait(timeout=30)
    assert count(engine, LiveEvent) == 3000
    assert event_log.status()["pending"] == 0
    with session_scope(engine) as session:
        states = dict(store_live.all_states(session))
        counters = store_live.counters(session)
    totals = sum(
        EntityState.from_json(d).aggregate("product", None, None, 10**6)[0] for d in states.values()
    )
    assert totals == 3000  # every event counted once in the state
    assert counters["applied"] == 3000
    # The members are those of one evaluation of all the events at once.
    rt = live.load_runtime(engine, live_setup.workspace(), lateness=LATENESS, today=now.date())
    fresh = {key: EntityState() for key in entities}
    for e in events:
        fresh[e["entity"]].add("product", e["event"], day_of(now), e["value"])
    props = rt.properties.loc[entities]
    _frame, masks = rt.model.evaluate(props, [fresh[k] for k in entities], day_of(now))
    for name in ("active", "buyers"):
        expected = [k for k, hit in zip(entities, masks[name], strict=True) if hit]
        assert members(engine, name) == expected
    assert members(engine, "active") == ["a0", "a3"] and members(engine, "buyers") == ["a4"]


def test_two_consumers_of_one_group_take_turns_on_the_same_entities(
    engine, live_setup, event_log
) -> None:
    import threading

    now = datetime.now(UTC)
    events = [event(f"c{i}", ("a0", "a1")[i % 2], "login", now) for i in range(600)]
    stop = threading.Event()
    consumers = [consumer(engine, live_setup, event_log, name=n, batch=25) for n in ("x", "y")]
    threads = [threading.Thread(target=c.run, args=(stop,)) for c in consumers]
    for t in threads:
        t.start()
    time.sleep(1.0)  # both wait on the log: Redis hands new entries to waiting readers in turn
    for start in range(0, 600, 50):
        publish(event_log, *events[start : start + 50])
        time.sleep(0.02)
    deadline = time.monotonic() + 120
    while count(engine, LiveEvent) < 600 and time.monotonic() < deadline:
        time.sleep(0.05)
    stop.set()
    for t in threads:
        t.join(timeout=30)
    assert all(c.totals.applied > 0 for c in consumers)  # both did work
    with session_scope(engine) as session:
        states = dict(store_live.all_states(session))
    logins = [
        EntityState.from_json(d).aggregate("product", None, None, 10**6)[0] for d in states.values()
    ]
    assert sorted(logins) == [300.0, 300.0]


def test_after_a_batch_refresh_changed_properties_move_members(
    engine, live_setup, event_log
) -> None:
    from commands.refresh import refresh

    now = datetime.now(UTC)
    purchase = event("r1", "a2", "purchase", now, 90)
    publish(event_log, purchase)
    c = consumer(engine, live_setup, event_log, reload_every=0.0)
    drain(c)
    assert members(engine, "buyers") == ["a2"]
    crm = (live_setup.folder / "crm.csv").read_text().replace("a2,pro", "a2,free")
    (live_setup.folder / "crm.csv").write_text(crm)
    live_setup.write_events([purchase])
    refresh(engine, live_setup.workspace(), as_of=now.date(), notify=False)
    c.step()
    assert members(engine, "buyers") == []
    with session_scope(engine) as session:
        leave = session.exec(select(LiveTransition).where(LiveTransition.kind == "leave")).one()
    assert (leave.event_id, leave.clause) == (None, "plan = 'pro'")


def test_the_consumer_posts_a_live_notice_for_a_segment_that_asked(
    engine, tmp_path, event_log
) -> None:
    import yaml

    from store.models import OutboxMessage
    from tests.live import build

    (tmp_path / "notices").mkdir()
    setup = build(tmp_path / "notices")
    data = yaml.safe_load(setup.path.read_text())
    data["segments"][0].update(channel="C0LIVE001", live_notifications={"every_minutes": 1})
    setup.path.write_text(yaml.safe_dump(data))
    setup.applied(engine)
    clock = [datetime.now(UTC)]
    c = consumer(engine, setup, event_log, clock=lambda: clock[0], notify_every=0)
    drain(c)  # notices turned on: where the transitions stand is recorded
    publish(event_log, *(event(f"n{i}", "a4", "login", clock[0]) for i in range(2)))
    drain(c)
    clock[0] += timedelta(minutes=1)
    drain(c)
    with session_scope(engine) as session:
        rows = session.exec(select(OutboxMessage).where(OutboxMessage.kind == "live_notice")).all()
    assert [(m.channel, m.text.split("\n")[0]) for m in rows] == [
        ("C0LIVE001", "⚡ Active: +1 joined · 0 left")
    ]
