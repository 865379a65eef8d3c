"""What a real refresh queues reads as its readers need: labelled numbers, a first
snapshot as such, and no alert repeated in a summary when its drift alert is posted."""

from __future__ import annotations

from datetime import timedelta

import yaml
from sqlmodel import select

from store.db import session_scope
from store.models import OutboxMessage, Segment, SegmentResult
from tests import factories
from tests.commands.test_alerts import DRIFT_DAY, _drift_template, drift, drift_alerts  # noqa: F401 (fixtures)
from tests.factories import AS_OF

LABELS = {"seats": {"label": "Seats", "format": "count", "unit": "seats", "good_direction": "up"}}


def labelled(engine, tmp_path) -> factories.Factory:
    fx = factories.build(tmp_path)
    raw = fx.workspace_data() | {"labels": LABELS}
    fx.path.write_text(yaml.safe_dump(raw, sort_keys=False))
    fx._ws = None
    fx.apply(engine)
    return fx


def rows(engine, kind: str) -> list[OutboxMessage]:
    with session_scope(engine) as session:
        return list(session.exec(select(OutboxMessage).where(OutboxMessage.kind == kind)).all())


def test_the_first_refresh_is_a_first_snapshot_in_labelled_words(engine, tmp_path) -> None:
    fx = labelled(engine, tmp_path)
    fx.refresh(engine, AS_OF - timedelta(days=7))
    (summary,) = rows(engine, "refresh_summary")  # the segments share one channel
    shown = summary.text + str(summary.blocks)
    assert "first snapshot: " in shown and "joined" not in shown
    details = " ".join(str(r.blocks) for r in rows(engine, "refresh_detail"))
    assert "first snapshot: " in details and "*Seats*" in details and "*seats*" not in details
    assert " seats" in details  # the unit follows the value
    with session_scope(engine) as session:
        stats = [r.stats for r in session.exec(select(SegmentResult)).all()]
    tracked = [s for s in stats if "seats" in (s.get("kpis") or {})]
    assert tracked and all(s["labels"]["seats"]["label"] == "Seats" for s in tracked)


def test_a_summary_leaves_out_what_its_drift_alert_already_says(engine, request) -> None:
    request.getfixturevalue("drift")
    posted = drift_alerts(engine, "enterprise")
    assert posted
    with session_scope(engine) as session:
        channel = session.exec(select(Segment.channel).where(Segment.name == "enterprise")).one()
        summaries = session.exec(
            select(OutboxMessage).where(
                OutboxMessage.kind.in_(["refresh_summary", "refresh_detail"]),
                OutboxMessage.channel == channel,
            )
        ).all()
    latest = [
        r
        for r in summaries
        if "enterprise" in str(r.blocks) and DRIFT_DAY.isoformat() in str(r.blocks)
    ]
    assert latest
    for row in latest:
        text = str(row.blocks)
        for alert in posted:
            if alert.severity in ("warning", "critical"):
                assert alert.message not in text
        assert "joined · " in text or "Movement" in text
    assert any("posted separately" in str(r.blocks) for r in latest)
