"""The refresh path end to end: publish, diff, gate, drift, idempotence, crash safety."""

from __future__ import annotations

import multiprocessing
import os
import signal
import socket
import subprocess
import sys
import time
from datetime import timedelta

import numpy as np
import pandas as pd
import pytest
from sqlmodel import func, select

from commands.refresh import REFRESH_LEASE, RefreshRunning
from commands.stats import members, trend
from segments import membership
from store import lease
from store.db import make_engine, session_scope
from store.models import (
    Alert,
    Entity,
    OutboxMessage,
    Segment,
    SegmentResult,
    SegmentVersion,
    Snapshot,
)
from tests import factories
from tests.factories import AS_OF


def count(engine, model) -> int:
    with session_scope(engine) as session:
        return session.exec(select(func.count()).select_from(model)).one()


def current_size(engine, name: str) -> int:
    with session_scope(engine) as session:
        segment = session.exec(select(Segment).where(Segment.name == name)).one()
        return session.get(SegmentResult, segment.current_result_id).size


def test_published_members_match_an_independent_pandas_computation(engine, tmp_path):
    fx = factories.applied(engine, tmp_path)
    report = fx.refresh(engine, AS_OF)
    crm = fx.crm_at(AS_OF)
    expected = sorted(crm.index[(crm.plan == "enterprise") | (crm.seats >= 50)])
    assert sorted(members(engine, "enterprise")) == expected
    outcome = next(o for o in report.segments if o.segment == "enterprise")
    assert (outcome.status, outcome.size, outcome.joined, outcome.left) == (
        "published",
        len(expected),
        len(expected),
        0,
    )


def test_joined_and_left_are_bitmap_differences_with_reasons(engine, tmp_path):
    fx = factories.refreshed(engine, tmp_path, as_of=AS_OF - timedelta(days=30))
    before = set(members(engine, "smb"))
    big = fx.crm.account_id.isin(sorted(before)[:7])
    fx.crm.loc[big, "seats"] = 80  # seven smb accounts grow out of the segment
    fx.write_data()
    report = fx.refresh(engine, AS_OF)
    smb = next(o for o in report.segments if o.segment == "smb")
    after = set(members(engine, "smb"))
    assert smb.left == len(before - after) >= 7
    assert smb.joined == len(after - before)
    assert smb.leave_reasons.get("seats < 50", 0) >= 7


def test_rerunning_the_same_as_of_on_the_same_data_is_a_no_op(engine, tmp_path):
    fx = factories.refreshed(engine, tmp_path)
    snapshots, alerts, outbox = (
        count(engine, Snapshot),
        count(engine, Alert),
        count(engine, OutboxMessage),
    )
    report = fx.refresh(engine, AS_OF)
    assert {o.status for o in report.segments} == {"unchanged"}
    assert report.snapshot_id is None
    assert (count(engine, Snapshot), count(engine, Alert), count(engine, OutboxMessage)) == (
        snapshots,
        alerts,
        outbox,
    )


def test_failed_quality_gate_blocks_and_keeps_previous_snapshot(engine, tmp_path):
    fx = factories.refreshed(engine, tmp_path, as_of=AS_OF - timedelta(days=7))
    size_before = current_size(engine, "enterprise")
    fx.crm = pd.concat([fx.crm, fx.crm.head(5)])  # duplicate ids in an entity source
    fx.write_data()
    report = fx.refresh(engine, AS_OF)
    enterprise = next(o for o in report.segments if o.segment == "enterprise")
    assert enterprise.status == "blocked"
    assert [a.kind for a in enterprise.alerts] == ["quality_duplicates"]
    assert "crm" in enterprise.alerts[0].message
    assert current_size(engine, "enterprise") == size_before
    with session_scope(engine) as session:
        kinds = session.exec(select(Alert.kind).where(Alert.kind == "quality_duplicates")).all()
        queued = session.exec(
            select(OutboxMessage).where(OutboxMessage.kind == "blocked_alert")
        ).all()
        channels = {
            s.channel
            for s in session.exec(select(Segment)).all()
            if s.name in {o.segment for o in report.segments if o.status == "blocked"}
        }
    assert len(kinds) == len([o for o in report.segments if o.status == "blocked"]) >= 1
    assert len(queued) == len(channels)  # one message per channel, grouped by cause
    blocked = [o.segment for o in report.segments if o.status == "blocked"]
    text = " ".join(row.text + str(row.blocks) for row in queued)
    assert all(f"`{name}`" in text for name in blocked)


def test_stale_source_blocks_with_a_freshness_alert(engine, tmp_path):
    fx = factories.refreshed(engine, tmp_path, as_of=AS_OF - timedelta(days=30))
    report = fx.refresh(engine, AS_OF + timedelta(days=20))  # newest data is 20 days old
    kinds = {a.kind for o in report.segments for a in o.alerts}
    assert "quality_freshness" in kinds
    assert {o.status for o in report.segments} == {"blocked"}


def test_no_drift_alert_without_real_change(engine, tmp_path):
    fx = factories.refreshed(engine, tmp_path, as_of=AS_OF - timedelta(days=1))
    report = fx.refresh(engine, AS_OF)
    drift = [a for o in report.segments for a in o.alerts if not a.kind.startswith("quality")]
    assert drift == []


def test_real_shift_raises_a_size_alert_and_a_drift_message(engine, tmp_path):
    fx = factories.refreshed(engine, tmp_path, accounts=600, as_of=AS_OF - timedelta(days=1))
    rng = np.random.default_rng(3)
    pick = fx.crm.index[(fx.crm.plan == "starter").to_numpy() & (rng.random(len(fx.crm)) < 0.7)]
    fx.crm.loc[pick, "plan"] = "enterprise"
    fx.write_data()
    report = fx.refresh(engine, AS_OF)
    enterprise = next(o for o in report.segments if o.segment == "enterprise")
    kinds = {a.kind for a in enterprise.alerts}
    assert "size_change" in kinds
    with session_scope(engine) as session:
        drift_posts = session.exec(
            select(OutboxMessage).where(OutboxMessage.kind == "drift_alert")
        ).all()
    assert any("enterprise" in row.idempotency_key for row in drift_posts)
    assert all(row.files for row in drift_posts)  # each carries its chart


def test_bitmaps_use_dense_ids_from_the_dictionary(engine, tmp_path):
    factories.refreshed(engine, tmp_path)
    with session_scope(engine) as session:
        segment = session.exec(select(Segment).where(Segment.name == "trial")).one()
        result = session.get(SegmentResult, segment.current_result_id)
        ids = membership.to_ids(membership.decode(result.bitmap))
        keys = dict(session.exec(select(Entity.id, Entity.key)).all())
    assert sorted(keys[int(i)] for i in ids) == sorted(members(engine, "trial"))


def _refresh_and_hang(url: str, root: str, marker: str) -> None:
    """Child process: refresh, and stop dead inside the publishing transaction."""
    from commands.refresh import refresh
    from segments.workspace import load_workspace

    def progress(phase: str) -> None:
        if phase == "commit":
            with open(marker, "w") as fh:
                fh.write("in transaction")
            time.sleep(600)

    engine = make_engine(url)
    refresh(engine, load_workspace(root), as_of=AS_OF, progress=progress)


@pytest.mark.slow
def test_refresh_killed_mid_transaction_leaves_previous_snapshot_current(engine, tmp_path):
    fx = factories.refreshed(engine, tmp_path, as_of=AS_OF - timedelta(days=30))
    fx.crm.loc[fx.crm.index[:40], "seats"] = 99
    fx.write_data()
    before = {
        "snapshots": count(engine, Snapshot),
        "results": count(engine, SegmentResult),
        "entities": count(engine, Entity),
        "alerts": count(engine, Alert),
        "outbox": count(engine, OutboxMessage),
        "enterprise": current_size(engine, "enterprise"),
    }
    marker = tmp_path / "marker"
    ctx = multiprocessing.get_context("spawn")
    url = engine.url.render_as_string(hide_password=False)
    child = ctx.Process(target=_refresh_and_hang, args=(url, str(fx.path), str(marker)))
    child.start()
    deadline = time.monotonic() + 120
    while not marker.exists():
        assert child.is_alive(), "the refresh ended before reaching its commit"
        assert time.monotonic() < deadline, "the refresh never reached its commit"
        time.sleep(0.05)
    os.kill(child.pid, signal.SIGKILL)
    child.join(30)
    after = {
        "snapshots": count(engine, Snapshot),
        "results": count(engine, SegmentResult),
        "entities": count(engine, Entity),
        "alerts": count(engine, Alert),
        "outbox": count(engine, OutboxMessage),
        "enterprise": current_size(engine, "enterprise"),
    }
    assert after == before
    # and the next refresh publishes normally
    report = fx.refresh(engine, AS_OF)
    assert "published" in {o.status for o in report.segments}


def test_queued_refresh_messages_use_the_users_template_folder(engine, tmp_path):
    fx = factories.applied(engine, tmp_path)
    folder = tmp_path / "templates"
    folder.mkdir()
    (folder / "refresh-summary.j2").write_text("<section>Our own summary of {{ segment.name }}\n")
    (folder / "refresh-group.j2").write_text("<section>Our own digest for {{ channel }}\n")
    fx.refresh(engine, AS_OF, templates_dir=folder)
    with session_scope(engine) as session:
        texts = session.exec(
            select(OutboxMessage.text).where(
                OutboxMessage.kind.in_(["refresh_summary", "refresh_detail"])  # type: ignore[attr-defined]
            )
        ).all()
    assert texts
    assert all(t.startswith("Our own") for t in texts)


# --- catalog changes committed while a refresh runs -----------------------------------


def _current_version(engine, name: str) -> tuple[int, str, int | None]:
    with session_scope(engine) as session:
        segment = session.exec(select(Segment).where(Segment.name == name)).one()
        version = session.get(SegmentVersion, segment.current_version_id)
        return version.version, segment.status, segment.current_result_id


def test_a_rule_applied_during_a_refresh_is_never_reverted(engine, tmp_path):
    fx = factories.refreshed(engine, tmp_path, as_of=AS_OF - timedelta(days=30))
    before = _current_version(engine, "enterprise")
    fx.segment("enterprise")["rule"] = "plan = 'enterprise' and seats >= 100"
    fx.write_workspace()

    def apply_meanwhile() -> None:  # after loading and evaluating, before publishing
        fx.apply(engine, reason="tighter enterprise rule")

    report = fx.refresh(engine, AS_OF, after_evaluate=apply_meanwhile)
    version, status, result_id = _current_version(engine, "enterprise")
    assert (version, status) == (before[0] + 1, "active")
    assert result_id == before[2]  # the old result stays current until the next refresh
    outcome = next(o for o in report.segments if o.segment == "enterprise")
    assert outcome.status == "skipped" and "definition changed" in outcome.note
    assert outcome.to_dict()["note"] == outcome.note
    others = [o for o in report.segments if o.segment != "enterprise"]
    assert others and "skipped" not in {o.status for o in others}

    again = fx.refresh(engine, AS_OF)
    enterprise = next(o for o in again.segments if o.segment == "enterprise")
    assert enterprise.status == "published"
    with session_scope(engine) as session:
        segment = session.exec(select(Segment).where(Segment.name == "enterprise")).one()
        result = session.get(SegmentResult, segment.current_result_id)
        assert result.version_id == segment.current_version_id


def test_an_archive_during_a_refresh_stays_archived(engine, tmp_path):
    fx = factories.refreshed(engine, tmp_path, as_of=AS_OF - timedelta(days=30))
    fx.segments = [s for s in fx.segments if s["name"] != "smb"]
    fx.write_workspace()
    report = fx.refresh(
        engine, AS_OF, after_evaluate=lambda: fx.apply(engine, reason="smb retired")
    )
    assert _current_version(engine, "smb")[1] == "archived"
    assert next(o for o in report.segments if o.segment == "smb").status == "skipped"


def test_when_every_segment_changed_nothing_is_published(engine, tmp_path):
    fx = factories.refreshed(engine, tmp_path, as_of=AS_OF - timedelta(days=30))
    snapshots = count(engine, Snapshot)
    for segment in fx.segments:
        segment["title"] = segment["title"] + " (renamed)"
    fx.write_workspace()
    report = fx.refresh(engine, AS_OF, after_evaluate=lambda: fx.apply(engine, reason="titles"))
    assert {o.status for o in report.segments} == {"skipped"}
    assert report.snapshot_id is None and count(engine, Snapshot) == snapshots


# --- one refresh at a time ------------------------------------------------------------


def test_a_second_refresh_while_one_runs_is_refused_with_a_clear_message(engine, tmp_path):
    fx = factories.applied(engine, tmp_path)
    refused: list[Exception] = []

    def second_refresh() -> None:
        with pytest.raises(RefreshRunning, match="another refresh is running") as caught:
            fx.refresh(engine, AS_OF)
        refused.append(caught.value)

    report = fx.refresh(engine, AS_OF, after_evaluate=second_refresh)
    assert refused and report.snapshot_id is not None
    assert count(engine, Snapshot) == 1
    assert fx.refresh(engine, AS_OF).snapshot_id is None  # the lease was released: unchanged


def test_a_refresh_lease_held_elsewhere_refuses_and_one_left_by_a_dead_process_does_not(
    engine, tmp_path
):
    fx = factories.applied(engine, tmp_path)
    lease.acquire(engine, name=REFRESH_LEASE, holder="other-host:123:abc", ttl=60)
    with pytest.raises(RefreshRunning, match=r"\(other-host:123\)"):
        fx.refresh(engine, AS_OF)
    assert count(engine, Snapshot) == 0
    lease.release(engine, name=REFRESH_LEASE, holder="other-host:123:abc")

    child = subprocess.Popen([sys.executable, "-c", "pass"])
    child.wait()  # a pid that no longer runs
    lease.acquire(
        engine, name=REFRESH_LEASE, holder=f"{socket.gethostname()}:{child.pid}:dead", ttl=60
    )
    assert fx.refresh(engine, AS_OF).snapshot_id is not None


def test_entity_file_with_blank_ids_blocks_and_keeps_previous_snapshot(engine, tmp_path):
    fx = factories.refreshed(engine, tmp_path, as_of=AS_OF - timedelta(days=7))
    names = ("enterprise", "trial", "engaged-trial", "smb")
    before = {name: (current_size(engine, name), sorted(members(engine, name))) for name in names}
    fx.crm["account_id"] = ""  # an export that lost its ids
    fx.write_data()

    report = fx.refresh(engine, AS_OF)

    assert {o.status for o in report.segments} == {"blocked"}
    enterprise = next(o for o in report.segments if o.segment == "enterprise")
    assert [(a.kind, a.message) for a in enterprise.alerts] == [
        ("quality_blank_ids", "crm: 100% of account_id values are blank (limit 50%)")
    ]
    engaged = next(o for o in report.segments if o.segment == "engaged-trial")
    assert {a.kind for a in engaged.alerts} == {"quality_blank_ids", "quality_unresolved_ids"}
    after = {name: (current_size(engine, name), sorted(members(engine, name))) for name in names}
    assert after == before
    with session_scope(engine) as session:
        kinds = session.exec(select(Alert.kind).where(Alert.kind == "quality_blank_ids")).all()
    assert len(kinds) == len(names)


def test_a_back_fill_is_stored_as_history_and_never_replaces_a_newer_current(engine, tmp_path):
    earlier = AS_OF - timedelta(days=30)
    fx = factories.refreshed(engine, tmp_path, as_of=AS_OF)
    before = members(engine, "smb")
    with session_scope(engine) as session:
        current_before = session.exec(select(Segment).where(Segment.name == "smb")).one()
        current_id = current_before.current_result_id
    report = fx.refresh(engine, earlier)
    smb = next(o for o in report.segments if o.segment == "smb")
    assert smb.status == "published"
    assert smb.note == (
        f"back-fill: stored as history; the current snapshot of {AS_OF.isoformat()} stays current"
    )
    assert smb.previous_size is None  # nothing published on or before the back-filled day
    assert members(engine, "smb") == before
    with session_scope(engine) as session:
        segment = session.exec(select(Segment).where(Segment.name == "smb")).one()
        assert segment.current_result_id == current_id
        history = trend(session, segment)
        assert [day for day, _ in history] == [earlier.isoformat(), AS_OF.isoformat()]
        backfilled = session.exec(
            select(SegmentResult)
            .join(Snapshot, Snapshot.id == SegmentResult.snapshot_id)
            .where(SegmentResult.segment_id == segment.id, Snapshot.as_of == earlier)
        ).one()
        assert backfilled.status == "published"
    again = fx.refresh(engine, earlier)
    assert next(o for o in again.segments if o.segment == "smb").status == "unchanged"
    later = fx.refresh(engine, AS_OF + timedelta(days=1))
    assert all(o.note is None for o in later.segments)
    with session_scope(engine) as session:
        segment = session.exec(select(Segment).where(Segment.name == "smb")).one()
        assert segment.current_result_id != current_id
