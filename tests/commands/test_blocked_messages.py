"""A stale source that blocks many segments is one message per channel, one line per
cause, whether the segments read the source or refer to a segment that does; blocked
segments without a channel reach their owner in one direct message."""

from __future__ import annotations

from datetime import timedelta

import pandas as pd
from sqlmodel import select

from store.db import session_scope
from store.models import OutboxMessage
from tests import factories
from tests.factories import AS_OF, END, OWNER, _segment

OTHER_CHANNEL = "C222"
OTHER_OWNER = "U444"
FIRST = AS_OF - timedelta(days=14)


def blocked_messages(engine) -> list[OutboxMessage]:
    with session_scope(engine) as session:
        return list(
            session.exec(
                select(OutboxMessage)
                .where(OutboxMessage.kind == "blocked_alert")
                .order_by(OutboxMessage.id)  # type: ignore[arg-type]
            ).all()
        )


def _no_channel(segment: dict, owner: str = OWNER) -> dict:
    return {**{k: v for k, v in segment.items() if k != "channel"}, "owner": owner}


SEGMENTS = [
    # seven segments of the shared channel stop on the product events: four read them,
    # three refer to one that does
    _segment("active", "Active accounts", "tactical", "logins_30d >= 1"),
    _segment("heavy", "Heavy users", "tactical", "logins_30d >= 10"),
    _segment("dormant", "Dormant accounts", "tactical", "days_since_login >= 7"),
    _segment("reporters", "Reporters", "tactical", "logins_30d >= 2 and seats >= 5"),
    _segment(
        "active-trial", "Active trials", "tactical", "in_segment('active') and plan = 'trial'"
    ),
    _segment("active-pro", "Active pro", "tactical", "in_segment('active') and plan = 'pro'"),
    _segment(
        "heavy-enterprise", "Heavy enterprise", "tactical", "in_segment('heavy') and seats >= 20"
    ),
    # publishes: reads the CRM only
    _segment("enterprise", "Enterprise accounts", "core", "plan = 'enterprise'"),
    # alone in its channel
    {**_segment("lapsing", "Lapsing", "tactical", "days_since_login >= 3"), "channel": "C222"},
    # no channel: two of one owner, one of another
    _no_channel(_segment("quiet", "Quiet accounts", "tactical", "days_since_login >= 30")),
    _no_channel(
        _segment(
            "quiet-trial", "Quiet trials", "tactical", "in_segment('quiet') and plan = 'trial'"
        )
    ),
    _no_channel(_segment("lapsed", "Lapsed", "tactical", "days_since_login >= 14"), OTHER_OWNER),
]


def test_one_stale_source_is_one_message_per_channel_and_one_line_per_cause(engine, tmp_path):
    fx = factories.applied(engine, tmp_path, segments=SEGMENTS)
    fx.refresh(engine, FIRST)
    cut = pd.to_datetime(fx.events["ts"]).dt.date <= END - timedelta(days=12)
    fx.events = fx.events[cut]  # the product export stops: 12 days old at the next refresh
    fx.write_data()

    report = fx.refresh(engine, AS_OF)

    blocked = sorted(o.segment for o in report.segments if o.status == "blocked")
    assert blocked == sorted(s["name"] for s in SEGMENTS if s["name"] != "enterprise")
    queued = blocked_messages(engine)
    by_target = {row.channel: row for row in queued}
    texts = {row.channel: row.text + "\n" + _sections(row.blocks) for row in queued}
    assert len(queued) == len(by_target) == 4  # not one per segment
    assert set(by_target) == {factories.CHANNEL, OTHER_CHANNEL, OWNER, OTHER_OWNER}

    shared = texts[factories.CHANNEL]
    cause = "*product: newest row is 12 days old (limit 3)*"
    assert shared.count("newest row is") == 1
    assert f"{cause}: 7 segments keep their {FIRST.isoformat()} members" in shared
    for name in ("active", "active-trial", "active-pro", "heavy-enterprise"):
        assert f"(`{name}`, <@{OWNER}>)" in shared
    assert "`enterprise`" not in shared

    assert "Refresh blocked · Lapsing" in texts[OTHER_CHANNEL]
    mine = texts[OWNER]
    assert f"{cause}: 2 segments keep their {FIRST.isoformat()} members" in mine
    assert "`quiet`" in mine and "`quiet-trial`" in mine and "`lapsed`" not in mine
    assert "Refresh blocked · Lapsed" in texts[OTHER_OWNER]


def test_segments_blocked_through_a_reference_share_the_line_of_what_blocked_it(engine, tmp_path):
    segments = [
        dict(s, min_size=100_000, block_on_min_size=True) if s["name"] == "trial" else s
        for s in factories.SEGMENTS
    ]
    segments.append(
        _segment("trial-pro-seats", "Big trials", "tactical", "in_segment('engaged-trial')")
    )
    fx = factories.applied(engine, tmp_path, segments=segments)

    report = fx.refresh(engine, AS_OF)

    trial = next(o for o in report.segments if o.segment == "trial")
    why = next(a.message for a in trial.alerts if a.kind == "min_size")
    (message,) = blocked_messages(engine)  # all three share the channel
    text = _sections(message.blocks)
    assert "refers to segment" not in text
    assert f"*{why}*: 3 segments" in text
    lines = {
        name: next(line for line in text.splitlines() if f"`{name}`" in line)
        for name in ("trial", "engaged-trial", "trial-pro-seats")
    }
    assert not lines["trial"].endswith("via Trials")
    assert lines["engaged-trial"].endswith("· via Trials")
    assert lines["trial-pro-seats"].endswith("· via Trials")  # the segment at the root


def _sections(blocks: list[dict]) -> str:
    out = []
    for block in blocks:
        text = block.get("text")
        if isinstance(text, dict):
            out.append(text.get("text", ""))
        for element in block.get("elements") or []:
            if isinstance(element, dict) and "text" in element:
                out.append(str(element["text"]))
    return "\n".join(out)
