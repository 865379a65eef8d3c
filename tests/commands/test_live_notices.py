"""Live notices: a segment's live joins and leaves posted to its channel, grouped, at most
once per interval, only for segments that asked, from where notices were turned on."""

from __future__ import annotations

from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
import yaml
from sqlalchemy import Engine
from sqlmodel import select

from commands import live
from commands.catalog import apply_workspace
from commands.live_notices import post_notices
from segments.errors import SegopsError
from segments.workspace import load_workspace
from store.db import session_scope
from store.models import LiveSegment, OutboxMessage, Segment
from tests.live import OWNER, LiveSetup, build, event, incoming

LATENESS = timedelta(hours=1)
CHANNEL = "C0LIVE001"


def _edit(setup: LiveSetup, **changes: Any) -> None:
    data = yaml.safe_load(setup.path.read_text())
    for segment in data["segments"]:
        if segment["name"] == "active":
            for key, value in changes.items():
                if value is None:
                    segment.pop(key, None)
                else:
                    segment[key] = value
    setup.path.write_text(yaml.safe_dump(data))


@pytest.fixture
def setup(tmp_path: Path) -> LiveSetup:
    s = build(tmp_path)
    _edit(s, channel=CHANNEL, live_notifications={"every_minutes": 15, "shown": 2})
    return s


def runtime(engine: Engine, setup: LiveSetup) -> live.Runtime:
    ws = setup.applied(engine)
    rt = live.load_runtime(engine, ws, lateness=LATENESS, today=setup.now.date())
    live.build(engine, rt, now=setup.now)
    return rt


def logins(rt: live.Runtime, engine: Engine, now: datetime, *entities: str, tag: str) -> None:
    events = [
        event(f"{tag}-{entity}-{n}", entity, "login", now - timedelta(minutes=n))
        for entity in entities
        for n in (1, 2)
    ]
    live.apply_events(engine, rt, incoming(*events), now=now)


def notices(engine: Engine) -> list[OutboxMessage]:
    with session_scope(engine) as session:
        query = select(OutboxMessage).where(OutboxMessage.kind == "live_notice")
        return list(session.exec(query.order_by(OutboxMessage.id)).all())


def cursor(engine: Engine) -> tuple[int | None, datetime | None]:
    with session_scope(engine) as session:
        segment = session.exec(select(Segment).where(Segment.name == "active")).one()
        row = session.get(LiveSegment, segment.id)
        return row.notified_transition_id, row.notified_at


def text_of(message: OutboxMessage) -> str:
    from briefs.blocks import blocks_text

    return message.text + "\n" + blocks_text(message.blocks)


def test_joins_since_the_last_notice_are_posted_once_per_interval(engine, setup) -> None:
    rt = runtime(engine, setup)
    t0 = setup.now
    assert post_notices(engine, now=t0) == []  # turned on: only records where things stand
    logins(rt, engine, t0, "a0", "a2", "a4", tag="first")

    assert post_notices(engine, now=t0 + timedelta(minutes=5)) == []  # not due yet
    assert notices(engine) == []

    [notice] = post_notices(engine, now=t0 + timedelta(minutes=15))
    assert (notice.segment, notice.joined, notice.left) == ("active", 3, 0)
    assert set(notice.joined_ids) < {"a0", "a2", "a4"} and len(notice.joined_ids) == 2
    [message] = notices(engine)
    assert message.channel == CHANNEL
    assert message.text.startswith("⚡ Active: +3 joined · 0 left")
    body = text_of(message)
    assert "3 now match “Logins 7d at least 2”" in body
    assert "and 1 more" in body

    # nothing new: nothing posted, however often it runs
    assert post_notices(engine, now=t0 + timedelta(minutes=40)) == []
    # after a quiet spell the first change is posted at once, then the interval holds
    logins(rt, engine, t0 + timedelta(minutes=41), "a1", tag="second")
    [second] = post_notices(engine, now=t0 + timedelta(minutes=42))
    assert (second.joined, second.left, second.joined_ids) == (1, 0, ["a1"])
    logins(rt, engine, t0 + timedelta(minutes=43), "a3", tag="third")
    assert post_notices(engine, now=t0 + timedelta(minutes=50)) == []  # 8 min after the last
    [third] = post_notices(engine, now=t0 + timedelta(minutes=57))
    assert (third.joined, third.joined_ids) == (1, ["a3"])  # counted from the last notice
    firsts = [m.text.split("\n")[0] for m in notices(engine)]
    assert firsts[1:] == ["⚡ Active: +1 joined · 0 left"] * 2


def test_a_notice_counts_leaves_with_the_clause_that_stopped_matching(engine, setup) -> None:
    rt = runtime(engine, setup)
    t0 = setup.now
    post_notices(engine, now=t0)
    logins(rt, engine, t0, "a0", tag="in")
    post_notices(engine, now=t0 + timedelta(minutes=15))
    # a day later the 7-day window still holds; eight days later the sweep ends it
    later = t0 + timedelta(days=8)
    rt = live.load_runtime(engine, setup.workspace(), lateness=LATENESS, today=later.date())
    live.sweep(engine, rt, now=later)
    [notice] = post_notices(engine, now=later)
    assert (notice.joined, notice.left, notice.left_ids) == (0, 1, ["a0"])
    body = text_of(notices(engine)[-1])
    assert "1 no longer “Logins 7d at least 2”" in body


def test_segments_that_did_not_ask_get_no_notice(engine, setup) -> None:
    rt = runtime(engine, setup)
    t0 = setup.now
    post_notices(engine, now=t0)
    # a2 becomes a buyer (live, no notifications) and nothing else changes
    live.apply_events(engine, rt, incoming(event("p1", "a2", "purchase", t0, 80)), now=t0)
    assert post_notices(engine, now=t0 + timedelta(hours=1)) == []
    assert notices(engine) == []


def test_turning_notices_off_forgets_where_they_were(engine, setup) -> None:
    rt = runtime(engine, setup)
    t0 = setup.now
    post_notices(engine, now=t0)
    assert cursor(engine)[0] == 0
    logins(rt, engine, t0, "a0", tag="x")
    _edit(setup, live_notifications=None)
    apply_workspace(engine, setup.workspace(), reason="quiet", author="test")
    assert post_notices(engine, now=t0 + timedelta(hours=1)) == []
    assert cursor(engine) == (None, None)
    # turned on again: the transitions from while they were off are not posted
    _edit(setup, live_notifications=True)
    apply_workspace(engine, setup.workspace(), reason="loud", author="test")
    rt = live.load_runtime(engine, setup.workspace(), lateness=LATENESS, today=t0.date())
    live.build(engine, rt, now=t0)
    assert post_notices(engine, now=t0 + timedelta(hours=2)) == []
    assert post_notices(engine, now=t0 + timedelta(hours=3)) == []
    assert notices(engine) == []


def test_a_small_segment_hides_its_size_but_names_who_moved(engine, setup) -> None:
    rt = runtime(engine, setup)
    t0 = setup.now
    post_notices(engine, now=t0, privacy_floor=10)
    logins(rt, engine, t0, "a0", tag="f")
    post_notices(engine, now=t0 + timedelta(minutes=20), privacy_floor=10)
    body = text_of(notices(engine)[0])
    assert "fewer than 10 members now" in body
    assert "1 member now" not in body
    assert "`a0`" in body


def test_without_a_channel_the_owner_gets_the_notice_by_dm(engine, setup) -> None:
    _edit(setup, channel=None)
    rt = runtime(engine, setup)
    t0 = setup.now
    post_notices(engine, now=t0)
    logins(rt, engine, t0, "a0", tag="dm")
    post_notices(engine, now=t0 + timedelta(minutes=15))
    assert [m.channel for m in notices(engine)] == [OWNER]


def test_notices_need_a_live_cadence(setup) -> None:
    _edit(setup, cadence="weekly")
    with pytest.raises(SegopsError, match="live_notifications needs cadence: live"):
        load_workspace(setup.path)


def test_false_is_refused_with_the_way_to_turn_them_off(setup) -> None:
    _edit(setup, live_notifications=False)
    with pytest.raises(SegopsError, match="leave the key out to turn them off"):
        load_workspace(setup.path)
