"""Drift alerts: who may acknowledge or mute, exactly once, and what the next refresh posts."""

from __future__ import annotations

import shutil
import threading
from datetime import UTC, date, datetime, timedelta
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from sqlmodel import select

from briefs.render import render_messages
from commands.alerts import acknowledge, alert_context, mute
from commands.errors import NotAuthorised
from commands.notify import ACKNOWLEDGED_AS, _suppressed, covered, drift_fingerprint, drift_signal
from segments.errors import SegopsError
from store.db import make_engine, session_scope
from store.models import Alert, OutboxMessage, Segment, SegmentResult, Snapshot
from tests import factories
from tests.conftest import migrated_url
from tests.factories import APPROVER, AS_OF, OWNER, PROPOSER

NOW = datetime(2026, 4, 1, 9, 0, tzinfo=UTC)
DRIFT_DAY = AS_OF - timedelta(days=1)


# --- a stored alert, without a refresh ----------------------------------------------------


@pytest.fixture
def fx(engine, tmp_path):
    return factories.applied(engine, tmp_path)


def stored_alert(engine, segment: str = "trial", *, kind: str = "size_change", **fields) -> int:
    """One open alert on ``segment`` in a published result of its own snapshot."""
    with session_scope(engine) as session:
        row = session.exec(select(Segment).where(Segment.name == segment)).one()
        snapshot = Snapshot(as_of=date(2026, 3, 30), status="published", data_fingerprint="x")
        session.add(snapshot)
        session.flush()
        result = SegmentResult(
            snapshot_id=snapshot.id,
            segment_id=row.id,
            version_id=row.current_version_id,
            status="published",
            size=40,
            previous_size=20,
        )
        session.add(result)
        session.flush()
        alert = Alert(
            segment_id=row.id,
            result_id=result.id,
            kind=kind,
            severity="critical",
            message="size doubled: 20 -> 40",
            fingerprint=drift_fingerprint(segment, kind, {}),
            **fields,
        )
        session.add(alert)
        session.flush()
        return alert.id


def alert_row(engine, alert_id: int) -> Alert:
    with session_scope(engine) as session:
        return session.get(Alert, alert_id)


def test_the_owner_acknowledges_an_alert(engine, fx):
    alert_id = stored_alert(engine)
    view = acknowledge(engine, alert_id=alert_id, user=OWNER)
    assert (view.status, view.acknowledged_by, view.changed) == ("acknowledged", OWNER, True)
    row = alert_row(engine, alert_id)
    assert (row.status, row.acknowledged_by) == ("acknowledged", OWNER)


def test_an_approver_may_acknowledge(engine, fx):
    alert_id = stored_alert(engine)
    assert acknowledge(engine, alert_id=alert_id, user=APPROVER).acknowledged_by == APPROVER


def test_anyone_else_may_not_acknowledge_and_nothing_changes(engine, fx):
    alert_id = stored_alert(engine)
    only = f"only the owner @{OWNER} or approvers @{APPROVER}"
    with pytest.raises(NotAuthorised, match=only):
        acknowledge(engine, alert_id=alert_id, user=PROPOSER)
    row = alert_row(engine, alert_id)
    assert (row.status, row.acknowledged_by) == ("open", None)


def test_acknowledging_twice_is_a_quiet_no_op(engine, fx):
    alert_id = stored_alert(engine)
    acknowledge(engine, alert_id=alert_id, user=APPROVER)
    again = acknowledge(engine, alert_id=alert_id, user=OWNER)
    assert (again.changed, again.acknowledged_by) == (False, APPROVER)
    assert alert_row(engine, alert_id).acknowledged_by == APPROVER


def test_racing_acknowledgements_apply_once(engine, fx):
    alert_id = stored_alert(engine)
    views, start = [], threading.Barrier(2)

    def click(user: str) -> None:
        start.wait()
        views.append(acknowledge(engine, alert_id=alert_id, user=user))

    threads = [threading.Thread(target=click, args=(u,)) for u in (OWNER, APPROVER)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(10)
    winners = [v for v in views if v.changed]
    assert len(views) == 2 and len(winners) == 1
    assert alert_row(engine, alert_id).acknowledged_by == winners[0].acknowledged_by


def test_acknowledging_clears_a_mute(engine, fx):
    alert_id = stored_alert(engine, status="muted", muted_until=NOW + timedelta(days=3))
    acknowledge(engine, alert_id=alert_id, user=OWNER)
    row = alert_row(engine, alert_id)
    assert (row.status, row.muted_until) == ("acknowledged", None)


def test_the_owner_mutes_for_seven_days(engine, fx):
    alert_id = stored_alert(engine)
    view = mute(engine, alert_id=alert_id, user=OWNER, now=NOW)
    assert (view.status, view.changed) == ("muted", True)
    row = alert_row(engine, alert_id)
    assert (row.status, row.muted_until) == ("muted", NOW + timedelta(days=7))


def test_an_approver_may_not_mute(engine, fx):
    alert_id = stored_alert(engine)
    with pytest.raises(NotAuthorised, match=f"only the owner @{OWNER} can mute"):
        mute(engine, alert_id=alert_id, user=APPROVER, now=NOW)
    row = alert_row(engine, alert_id)
    assert (row.status, row.muted_until) == ("open", None)


def test_muting_a_muted_alert_is_a_no_op(engine, fx):
    alert_id = stored_alert(engine)
    mute(engine, alert_id=alert_id, user=OWNER, now=NOW)
    again = mute(engine, alert_id=alert_id, user=OWNER, now=NOW + timedelta(days=1))
    assert again.changed is False
    assert alert_row(engine, alert_id).muted_until == NOW + timedelta(days=7)


def test_a_mute_that_ran_out_can_be_renewed(engine, fx):
    alert_id = stored_alert(engine)
    mute(engine, alert_id=alert_id, user=OWNER, now=NOW)
    later = NOW + timedelta(days=8)
    assert mute(engine, alert_id=alert_id, user=OWNER, now=later).changed is True
    assert alert_row(engine, alert_id).muted_until == later + timedelta(days=7)


def test_muting_an_acknowledged_alert_is_a_no_op(engine, fx):
    alert_id = stored_alert(engine)
    acknowledge(engine, alert_id=alert_id, user=OWNER)
    assert mute(engine, alert_id=alert_id, user=OWNER, now=NOW).changed is False
    row = alert_row(engine, alert_id)
    assert (row.status, row.muted_until) == ("acknowledged", None)


@pytest.mark.parametrize("days", [0, 91])
def test_a_mute_lasts_one_to_ninety_days(engine, fx, days):
    alert_id = stored_alert(engine)
    with pytest.raises(SegopsError, match="a mute lasts 1 to 90 days"):
        mute(engine, alert_id=alert_id, user=OWNER, days=days, now=NOW)


def test_an_unknown_alert_is_named(engine, fx):
    with pytest.raises(SegopsError, match="no alert #999"):
        acknowledge(engine, alert_id=999, user=OWNER)


def test_the_context_shows_a_mute_that_ran_out_as_open(engine, fx):
    alert_id = stored_alert(engine, status="muted", muted_until=NOW - timedelta(days=1))
    (shown,) = alert_context(engine, alert_id, privacy_floor=1, now=NOW)["alerts"]
    assert shown["status"] == "open"


# --- real drift, through refresh and notify -----------------------------------------------


def _shift(fx: factories.Factory) -> None:
    """Turn most starter accounts into enterprise ones."""
    rng = np.random.default_rng(3)
    pick = fx.crm.index[(fx.crm.plan == "starter").to_numpy() & (rng.random(len(fx.crm)) < 0.7)]
    fx.crm.loc[pick, "plan"] = "enterprise"
    fx.write_data()


def _build_drift(engine, root: Path) -> tuple[factories.Factory, pd.DataFrame]:
    fx = factories.refreshed(engine, root, accounts=300, as_of=AS_OF - timedelta(days=2))
    original = fx.crm.copy()
    _shift(fx)
    fx.refresh(engine, DRIFT_DAY)
    return fx, original


@pytest.fixture(scope="session")
def _drift_template(tmp_path_factory) -> tuple[Path, factories.Factory, pd.DataFrame]:
    """The SQLite file and workspace of ``drift``, built once and copied for each test."""
    root = tmp_path_factory.mktemp("drift")
    engine = make_engine(migrated_url(root))
    try:
        fx, original = _build_drift(engine, root)
    finally:
        engine.dispose()
    return root, fx, original


@pytest.fixture
def drift(engine, tmp_path, request):
    """Refreshed two days before AS_OF, then a shift to enterprise posted the day after.

    ``drift.revert()`` puts the data back, so a refresh at AS_OF raises the same drift
    (same segments, kinds and columns) in the other direction.
    """
    if engine.dialect.name == "sqlite":
        root, built, original = request.getfixturevalue("_drift_template")
        engine.dispose()
        shutil.copyfile(root / "segops.db", engine.url.database)
        shutil.copytree(built.root, tmp_path / "ws")
        fx = factories.Factory(tmp_path / "ws", built.crm.copy(), built.events.copy())
    else:
        fx, original = _build_drift(engine, tmp_path)

    def revert() -> None:
        fx.crm = original.copy()
        fx.write_data()

    fx.revert = revert
    return fx


def drift_alerts(engine, segment: str, as_of: date = DRIFT_DAY) -> list[Alert]:
    with session_scope(engine) as session:
        return list(
            session.exec(
                select(Alert)
                .join(SegmentResult, SegmentResult.id == Alert.result_id)
                .join(Snapshot, Snapshot.id == SegmentResult.snapshot_id)
                .join(Segment, Segment.id == Alert.segment_id)
                .where(Segment.name == segment, Snapshot.as_of == as_of)
                .order_by(Alert.id)
            ).all()
        )


def drift_posts(engine, as_of: date) -> list[str]:
    """Segments that got a drift-alert message from the refresh at ``as_of``."""
    with session_scope(engine) as session:
        snapshot = session.exec(select(Snapshot.id).where(Snapshot.as_of == as_of)).one()
        keys = session.exec(
            select(OutboxMessage.idempotency_key).where(OutboxMessage.kind == "drift_alert")
        ).all()
    return sorted(k.split(":")[2] for k in keys if k.startswith(f"drift:{snapshot}:"))


def test_the_same_drift_is_posted_again_when_nobody_acknowledged_it(engine, drift):
    drift.revert()
    drift.refresh(engine, AS_OF)
    assert drift_posts(engine, AS_OF) == ["enterprise", "smb"]


def test_after_acknowledging_the_drift_in_the_other_direction_is_posted(engine, drift):
    for alert in drift_alerts(engine, "enterprise"):
        acknowledge(engine, alert_id=alert.id, user=OWNER)
    drift.revert()
    drift.refresh(engine, AS_OF)
    assert drift_posts(engine, AS_OF) == ["enterprise", "smb"]
    size = next(a for a in drift_alerts(engine, "enterprise", AS_OF) if a.kind == "size_change")
    assert (size.status, size.acknowledged_by) == ("open", None)


def test_after_muting_the_same_drift_is_not_posted_again(engine, drift):
    for alert in drift_alerts(engine, "enterprise"):
        mute(engine, alert_id=alert.id, user=OWNER)
    drift.revert()
    drift.refresh(engine, AS_OF)
    assert drift_posts(engine, AS_OF) == ["smb"]
    assert {a.status for a in drift_alerts(engine, "enterprise", AS_OF)} == {"muted"}


def test_acknowledging_an_older_message_leaves_the_newer_alert_open(engine, drift):
    old = drift_alerts(engine, "enterprise")[0]
    drift.revert()
    drift.refresh(engine, AS_OF)
    acknowledge(engine, alert_id=old.id, user=OWNER)
    newer = next(a for a in drift_alerts(engine, "enterprise", AS_OF) if a.kind == old.kind)
    assert (newer.status, newer.acknowledged_by) == ("open", None)


def queued_messages(engine, segment: str, as_of: date) -> list[dict]:
    with session_scope(engine) as session:
        snapshot = session.exec(select(Snapshot.id).where(Snapshot.as_of == as_of)).one()
        key = f"drift:{snapshot}:{segment}"
        rows = session.exec(
            select(OutboxMessage)
            .where(OutboxMessage.idempotency_key.startswith(key))
            .order_by(OutboxMessage.id)
        ).all()
        return [{"text": r.text, "blocks": r.blocks} for r in rows]


def test_the_context_renders_the_message_exactly_as_it_was_posted(engine, drift):
    alert = drift_alerts(engine, "smb")[0]
    rendered = render_messages("drift-alert", alert_context(engine, alert.id, privacy_floor=1))
    assert rendered == queued_messages(engine, "smb", DRIFT_DAY)


def test_one_acknowledgement_covers_every_alert_of_the_message(engine, drift):
    first, second = drift_alerts(engine, "enterprise")[:2]
    view = acknowledge(engine, alert_id=first.id, user=APPROVER)
    assert view.changed
    ctx = alert_context(engine, second.id, privacy_floor=1)
    states = {a["id"]: (a["status"], a["acknowledged_by"]) for a in ctx["alerts"]}
    assert states[first.id] == states[second.id] == ("acknowledged", APPROVER)
    (message,) = render_messages("drift-alert", ctx)
    assert [b for b in message["blocks"] if b["type"] == "actions"] == []
    assert f"Acknowledged by <@{APPROVER}>" in str(message["blocks"])
    assert not acknowledge(engine, alert_id=second.id, user=OWNER).changed


def test_one_mute_silences_every_alert_of_the_message(engine, drift):
    first, second = drift_alerts(engine, "enterprise")[:2]
    mute(engine, alert_id=first.id, user=OWNER)
    states = {
        a["id"]: a["status"] for a in alert_context(engine, first.id, privacy_floor=1)["alerts"]
    }
    assert states[first.id] == states[second.id] == "muted"


def test_the_context_leaves_out_alerts_silenced_when_the_message_was_queued(engine, drift):
    size, kpi = (
        next(a for a in drift_alerts(engine, "enterprise") if a.kind == kind)
        for kind in ("size_change", "kpi")
    )
    with session_scope(engine) as session:  # only the size drift is muted, as by an earlier message
        row = session.get(Alert, size.id)
        row.status, row.muted_until = "muted", datetime.now(UTC) + timedelta(days=7)
        session.add(row)
    drift.revert()
    drift.refresh(engine, AS_OF)
    posted = next(a for a in drift_alerts(engine, "enterprise", AS_OF) if a.kind == kpi.kind)
    assert [a["id"] for a in alert_context(engine, posted.id, privacy_floor=1)["alerts"]] == [
        posted.id
    ]


# --- one occurrence: what an acknowledgement or a mute covers -----------------------------


def size_alert(engine, change: float, **fields) -> int:
    """A stored size_change alert on ``trial`` moving by ``change`` (a share, +0.2 = +20 %)."""
    alert_id = stored_alert(engine, **fields)
    with session_scope(engine) as session:
        alert = session.get(Alert, alert_id)
        alert.details = {
            "size": round(100 * (1 + change)),
            "previous_size": 100,
            "change": round(100 * change),
            "relative_change": change,
        }
        session.add(alert)
    return alert_id


def posted(engine, alert_id: int, now: datetime = NOW) -> bool:
    """Whether the drift message would show ``alert_id`` (not silenced by an earlier alert)."""
    with session_scope(engine) as session:
        alert = session.get(Alert, alert_id)
        segment = session.get(Segment, alert.segment_id)
        return not _suppressed(session, segment, alert, now)


def test_an_acknowledged_size_drop_does_not_silence_a_size_rise(engine, fx):
    acknowledge(engine, alert_id=size_alert(engine, -0.3), user=OWNER)
    assert posted(engine, size_alert(engine, +0.3))


def test_an_acknowledgement_covers_the_same_drift_until_it_is_materially_larger(engine, fx):
    acknowledge(engine, alert_id=size_alert(engine, +0.20), user=OWNER)
    similar = size_alert(engine, +0.22)
    assert not posted(engine, similar)
    row = alert_row(engine, similar)
    assert (row.status, row.acknowledged_by) == ("acknowledged", OWNER)
    assert row.details[ACKNOWLEDGED_AS]["magnitude"] == pytest.approx(0.20)
    assert posted(engine, size_alert(engine, +0.40))


def test_small_steps_are_measured_against_the_acknowledged_drift(engine, fx):
    acknowledge(engine, alert_id=size_alert(engine, +0.20), user=OWNER)
    assert not posted(engine, size_alert(engine, +0.25))
    assert posted(engine, size_alert(engine, +0.31))  # 1.55x of +20 %, 1.24x of +25 %


def test_a_mute_silences_until_it_runs_out_and_never_after(engine, fx):
    mute(engine, alert_id=size_alert(engine, +0.2), user=OWNER, now=NOW, days=7)
    assert not posted(engine, size_alert(engine, -0.5), now=NOW + timedelta(days=6))
    assert posted(engine, size_alert(engine, +0.2), now=NOW + timedelta(days=8))


@pytest.mark.parametrize(
    ("kind", "before", "after", "covered_"),
    [
        ("composition", {"psi": 0.3}, {"psi": 0.4}, True),
        ("composition", {"psi": 0.3}, {"psi": 0.45}, False),
        ("kpi", {"delta": 5.0, "relative_change": 0.1}, {"delta": -5.0}, False),
        (
            "kpi",
            {"delta": 5.0, "relative_change": 0.1},
            {"delta": 6, "relative_change": 0.12},
            True,
        ),
        (
            "control_limit",
            {"size": 130, "mean": 100, "sigma": 10},
            {"size": 70, "mean": 100},
            False,
        ),
    ],
)
def test_direction_and_magnitude_come_from_the_alert_details(kind, before, after, covered_):
    assert covered(drift_signal(kind, before), drift_signal(kind, after)) is covered_
