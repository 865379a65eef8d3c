"""Live events keyed by e-mail: an events source with ``map_via`` is mapped to its
accounts through the mapping source, as the batch refresh maps it."""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path

import pytest
import yaml
from sqlalchemy import Engine
from sqlmodel import select

from commands import live
from store import live as store_live
from store.db import session_scope
from store.entities import entity_keys
from store.models import LiveDeadLetter, Segment
from tests.live import LiveSetup, build, event, incoming

LATENESS = timedelta(hours=1)
PEOPLE = {"ann@a0.example": "a0", "bo@a2.example": "a2", "cy@a2.example": "a2"}


@pytest.fixture
def setup(tmp_path: Path) -> LiveSetup:
    s = build(tmp_path)
    data = yaml.safe_load(s.path.read_text())
    data["sources"]["product"].update(id="email", map_via="people", id_case="lower")
    data["sources"]["people"] = {
        "kind": "mapping",
        "path": "people.csv",
        "key": "email",
        "id": "account_id",
    }
    s.path.write_text(yaml.safe_dump(data))
    rows = "".join(f"{e},{a}\n" for e, a in PEOPLE.items())
    (s.folder / "people.csv").write_text("email,account_id\n" + rows, encoding="utf-8")
    (s.folder / "events.csv").write_text(
        "email,ts,event,value\n"
        f"ann@a0.example,{(s.now - timedelta(days=2)).replace(tzinfo=None).isoformat()},view,\n",
        encoding="utf-8",
    )
    return s


def members(engine: Engine, name: str) -> list[str]:
    with session_scope(engine) as session:
        segment = session.exec(select(Segment).where(Segment.name == name)).one()
        keys = entity_keys(session)
        return sorted(keys[i] for i in store_live.members(session, segment_id=segment.id))


def test_events_keyed_by_email_move_the_mapped_accounts(engine: Engine, setup) -> None:
    ws = setup.applied(engine)
    rt = live.load_runtime(engine, ws, lateness=LATENESS, today=setup.now.date())
    live.build(engine, rt, now=setup.now)
    now = setup.now
    report = live.apply_events(
        engine,
        rt,
        incoming(
            # two people of account a2 log in once each: a2 has two logins
            event("m1", "bo@a2.example", "login", now - timedelta(minutes=2)),
            event("m2", " CY@a2.example ", "login", now - timedelta(minutes=1)),
            event("m3", "ann@a0.example", "login", now),
            event("m4", "nobody@nowhere.example", "login", now),
        ),
        now=now,
    )
    assert (report.applied, report.joins, report.dead) == (3, 1, 1)
    assert members(engine, "active") == ["a2"]
    with session_scope(engine) as session:
        [letter] = session.exec(select(LiveDeadLetter)).all()
    assert letter.event_id == "m4"
    assert letter.reason == "entity: 'nobody@nowhere.example' maps to no entity through 'people'"


def test_the_edge_leaves_mapped_ids_to_the_consumer(engine: Engine, setup) -> None:
    ws = setup.applied(engine)
    now = setup.now.isoformat()
    raw = [
        {"id": "h1", "entity": "bo@a2.example", "event": "login", "ts": now},
        {"id": "h2", "entity": "nobody@nowhere.example", "event": "login", "ts": now},
    ]
    mapped = live.mapped_sources(ws)
    assert mapped == ["product"]
    checked = live.check_batch(engine, raw, sources=live.event_sources(ws), mapped=mapped)
    assert checked.problems == [] and len(checked.events) == 2
    # without the mapping the same e-mails are unknown entities
    plain = live.check_batch(engine, raw, sources=live.event_sources(ws))
    assert [p["error"] for p in plain.problems] == [
        "entity: unknown 'bo@a2.example'",
        "entity: unknown 'nobody@nowhere.example'",
    ]
