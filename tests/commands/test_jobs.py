"""The worker's use cases: scheduled refreshes with failure tracking,
catalog health, proposal reminders and the feedback digest, on a controllable clock."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from sqlmodel import select

from commands.feedback import add_feedback
from commands.jobs import (
    ALERT_AFTER_FAILURES,
    REFRESH_FAILED,
    catalog_health,
    feedback_digest,
    proposal_reminders,
    retry_delay,
    scheduled_refresh,
)
from segments.engine import EngineOptions
from segments.errors import SegopsError
from segments.workspace import load_workspace
from store.db import session_scope
from store.models import (
    Alert,
    OutboxMessage,
    Proposal,
    Segment,
    SegmentResult,
    Snapshot,
)
from tests import factories

# 2026-03-04 is a Wednesday
WED = datetime(2026, 3, 4, 10, 0, tzinfo=UTC)
NOW = datetime.combine(factories.END, datetime.min.time(), tzinfo=UTC) + timedelta(hours=6)


def utc(*args: int) -> datetime:
    return datetime(*args, tzinfo=UTC)


# --- scheduled refresh -----------------------------------------------------------------


@pytest.fixture
def fx(engine, tmp_path):
    return factories.applied(engine, tmp_path, accounts=60)


def break_data(fx) -> None:
    (fx.root / "data" / "crm.csv").unlink()


def streak(engine, name: str = "trial") -> Alert | None:
    with session_scope(engine) as session:
        segment = session.exec(select(Segment).where(Segment.name == name)).one()
        return session.exec(
            select(Alert).where(Alert.segment_id == segment.id, Alert.kind == REFRESH_FAILED)
        ).first()


def outbox(engine, kind: str) -> list[OutboxMessage]:
    with session_scope(engine) as session:
        return list(session.exec(select(OutboxMessage).where(OutboxMessage.kind == kind)).all())


def test_scheduled_refresh_publishes_the_segment(engine, fx):
    result = scheduled_refresh(engine, fx.ws, "trial", now=NOW)
    assert (result.status, result.refresh_status, result.failures) == ("ok", "published", 0)
    with session_scope(engine) as session:
        segment = session.exec(select(Segment).where(Segment.name == "trial")).one()
        snapshot = session.get(
            Snapshot, session.get(SegmentResult, segment.current_result_id).snapshot_id
        )
    assert snapshot.as_of == NOW.date()


def test_scheduled_refresh_of_an_archived_or_unknown_segment_is_skipped(engine, fx):
    assert scheduled_refresh(engine, fx.ws, "nope", now=NOW).status == "skipped"


def test_a_failure_is_recorded_with_a_retry_time_instead_of_raising(engine, fx):
    break_data(fx)
    result = scheduled_refresh(engine, fx.ws, "trial", now=NOW)
    assert (result.status, result.failures) == ("failed", 1)
    assert result.retry_at == NOW + timedelta(minutes=10)
    assert "crm.csv" in result.error
    alert = streak(engine)
    assert (alert.status, alert.severity, alert.details["failures"]) == ("open", "warning", 1)
    assert outbox(engine, "refresh_failed") == []


def test_a_run_before_the_retry_time_backs_off_without_refreshing(engine, fx):
    break_data(fx)
    scheduled_refresh(engine, fx.ws, "trial", now=NOW)
    fx.write_data()  # would succeed now, but the retry is not due yet
    result = scheduled_refresh(engine, fx.ws, "trial", now=NOW + timedelta(minutes=5))
    assert (result.status, result.failures) == ("backoff", 1)
    assert streak(engine).details["failures"] == 1


def test_a_broken_workspace_file_counts_as_a_failure(engine, fx):
    fx.path.write_text("sources: [")
    result = scheduled_refresh(engine, lambda: load_workspace(fx.path), "trial", now=NOW)
    assert (result.status, result.failures) == ("failed", 1)


def test_retry_delays_double_up_to_the_cap():
    assert [retry_delay(n) for n in (1, 2, 3, 4)] == [
        timedelta(minutes=m) for m in (10, 20, 40, 80)
    ]
    assert retry_delay(20) == timedelta(hours=6)


def fail_in_a_row(engine, fx, times: int) -> list:
    now, results = NOW, []
    for _ in range(times):
        result = scheduled_refresh(engine, fx.ws, "trial", now=now)
        results.append(result)
        now = result.retry_at
    return results


def test_the_owner_is_told_once_after_three_failures_in_a_row(engine, fx):
    break_data(fx)
    results = fail_in_a_row(engine, fx, ALERT_AFTER_FAILURES + 1)
    assert [r.failures for r in results] == [1, 2, 3, 4]
    assert [r.owner_alerted for r in results] == [False, False, True, False]
    [message] = outbox(engine, "refresh_failed")
    assert message.channel == factories.OWNER
    assert "Refresh failing: Trials" in message.text
    assert "crm.csv" in str(message.blocks)
    alert = streak(engine)
    assert (alert.severity, alert.details["notified"]) == ("critical", True)


def test_success_closes_the_failure_streak_and_tells_a_notified_owner(engine, fx):
    break_data(fx)
    results = fail_in_a_row(engine, fx, ALERT_AFTER_FAILURES)
    fx.write_data()
    result = scheduled_refresh(engine, fx.ws, "trial", now=results[-1].retry_at)
    assert result.status == "ok"
    alert = streak(engine)
    assert alert.status == "acknowledged"
    assert "resolved_at" in alert.details
    assert len(outbox(engine, "refresh_recovered")) == 1
    # the next failure starts a new streak from one
    break_data(fx)
    again = scheduled_refresh(engine, fx.ws, "trial", now=results[-1].retry_at + timedelta(days=1))
    assert again.failures == 1


def test_success_after_a_silent_failure_sends_nothing(engine, fx):
    break_data(fx)
    first = scheduled_refresh(engine, fx.ws, "trial", now=NOW)
    fx.write_data()
    assert scheduled_refresh(engine, fx.ws, "trial", now=first.retry_at).status == "ok"
    assert outbox(engine, "refresh_recovered") == []


# --- catalog health --------------------------------------------------------------------


def publish(engine, name: str, at: datetime, size: int = 42) -> None:
    """Record a published result for ``name`` refreshed at ``at`` (no data needed)."""
    with session_scope(engine) as session:
        segment = session.exec(select(Segment).where(Segment.name == name)).one()
        snapshot = Snapshot(as_of=at.date(), status="published", data_fingerprint="f" * 64)
        session.add(snapshot)
        session.flush()
        result = SegmentResult(
            snapshot_id=snapshot.id,
            segment_id=segment.id,
            version_id=segment.current_version_id,
            status="published",
            size=size,
            created_at=at,
        )
        session.add(result)
        session.flush()
        segment.current_result_id = result.id
        session.add(segment)


def health_of(report, name: str):
    return next(s for s in report.segments if s.name == name)


MONDAY = utc(2026, 3, 2, 6, 5)  # just after enterprise's weekly refresh slot


def test_health_flags_a_segment_that_missed_two_scheduled_refreshes(engine, fx):
    publish(engine, "enterprise", MONDAY)  # core: weekly
    just_before = catalog_health(engine, now=utc(2026, 3, 16, 5, 59))
    assert health_of(just_before, "enterprise").problem is None
    report = catalog_health(engine, now=utc(2026, 3, 16, 6, 0))
    item = health_of(report, "enterprise")
    assert (item.stale, item.problem, item.size) == (True, "stale", 42)


def test_health_lists_never_refreshed_segments_and_open_alerts(engine, fx):
    publish(engine, "enterprise", MONDAY)
    with session_scope(engine) as session:
        segment = session.exec(select(Segment).where(Segment.name == "enterprise")).one()
        session.add(
            Alert(
                segment_id=segment.id, kind="kpi", severity="warning", message="m", fingerprint="x"
            )
        )
    report = catalog_health(engine, now=MONDAY + timedelta(days=1))
    assert health_of(report, "enterprise").open_alerts == 1
    assert {s.name for s in report.attention} == {"trial", "engaged-trial", "smb"}
    assert {s.problem for s in report.attention} == {"never refreshed"}


def test_health_sends_each_owner_one_message_a_week(engine, fx):
    publish(engine, "enterprise", MONDAY)
    report = catalog_health(engine, now=utc(2026, 3, 23, 9))
    assert report.queued == 1
    [message] = outbox(engine, "catalog_health")
    assert message.channel == factories.OWNER
    text = str(message.blocks)
    assert "Needs attention" in text and "never refreshed" in text and "stale" in text
    assert catalog_health(engine, now=utc(2026, 3, 24, 9)).queued == 0
    assert catalog_health(engine, now=utc(2026, 3, 30, 9)).queued == 1


def test_health_goes_to_one_channel_when_given(engine, fx):
    catalog_health(engine, now=WED, channel="C999")
    assert [m.channel for m in outbox(engine, "catalog_health")] == ["C999"]


def test_health_of_an_empty_catalog_sends_nothing(engine):
    assert catalog_health(engine, now=WED).queued == 0


# --- proposal reminders ----------------------------------------------------------------


def add_proposal(engine, *, created_at: datetime, name: str = "trial", **extra) -> int:
    with session_scope(engine) as session:
        segment = session.exec(select(Segment).where(Segment.name == name)).one()
        proposal = Proposal(
            segment_id=segment.id,
            base_version_id=segment.current_version_id,
            proposer=factories.PROPOSER,
            kind="edit",
            changes={"min_size": 5},
            reason="too small to matter",
            created_at=created_at,
            **extra,
        )
        session.add(proposal)
        session.flush()
        return proposal.id


def test_a_proposal_pending_over_two_days_is_reminded_once_a_day(engine, fx):
    proposal = add_proposal(engine, created_at=WED - timedelta(days=2, hours=1))
    assert proposal_reminders(engine, now=WED) == [proposal]
    assert proposal_reminders(engine, now=WED + timedelta(hours=1)) == []
    assert proposal_reminders(engine, now=WED + timedelta(hours=23)) == [proposal]
    messages = outbox(engine, "proposal_reminder")
    assert [m.channel for m in messages] == [factories.OWNER] * 2
    assert "Waiting for a decision for 2 days" in str(messages[0].blocks)
    assert "proposal_approve" in str(messages[0].blocks)


def test_young_decided_and_stale_proposals_get_no_reminder(engine, fx):
    add_proposal(engine, created_at=WED - timedelta(days=1))
    add_proposal(engine, created_at=WED - timedelta(days=5), status="rejected")
    stale = add_proposal(engine, created_at=WED - timedelta(days=5))
    with session_scope(engine) as session:
        other = session.exec(select(Segment).where(Segment.name == "smb")).one()
        proposal = session.get(Proposal, stale)
        proposal.base_version_id = other.current_version_id  # not trial's current version
        session.add(proposal)
    assert proposal_reminders(engine, now=WED) == []
    assert outbox(engine, "proposal_reminder") == []


# --- feedback digest -------------------------------------------------------------------


def test_the_digest_sends_new_feedback_to_the_owner_once(engine, fx):
    add_feedback(
        engine, segment="trial", author="U444", text="pricing page confuses them", origin="slack"
    )
    add_feedback(engine, segment="smb", author="U555", text="want SSO", origin="cli")
    assert feedback_digest(engine) == 1
    [message] = outbox(engine, "feedback_digest")
    assert message.channel == factories.OWNER
    assert "pricing page confuses them" in str(message.blocks)
    assert feedback_digest(engine) == 0
    assert len(outbox(engine, "feedback_digest")) == 1


def test_the_digest_without_new_feedback_sends_nothing(engine, fx):
    assert feedback_digest(engine, now=datetime.now(UTC)) == 0


def test_a_digest_that_fails_to_render_leaves_its_feedback_for_the_next_run(engine, fx, tmp_path):
    add_feedback(engine, segment="trial", author="U444", text="pricing confuses", origin="cli")
    broken = tmp_path / "templates"
    broken.mkdir()
    (broken / "feedback-digest.j2").write_text("<section>{{ no_such_key }}\n")
    with pytest.raises(SegopsError):
        feedback_digest(engine, templates_dir=broken)
    assert outbox(engine, "feedback_digest") == []
    assert feedback_digest(engine) == 1  # nothing was marked digested by the failed run


def test_scheduled_refresh_runs_on_the_engine_it_is_given(engine, fx):
    result = scheduled_refresh(engine, fx.ws, "trial", now=NOW, engine_name="duckdb")
    assert (result.status, result.refresh_status) == ("ok", "published")


@pytest.mark.parametrize(
    ("engine_name", "options", "message"),
    [
        ("sql", None, "engine 'sql' needs every source to be a table or query on one database"),
        (
            "duckdb",
            EngineOptions(memory_limit="lots"),
            "engine 'duckdb': memory limit 'lots' (SEGOPS_DUCKDB_MEMORY_LIMIT)",
        ),
    ],
)
def test_scheduled_refresh_records_what_its_engine_refused(
    engine, fx, engine_name, options, message
):
    result = scheduled_refresh(
        engine, fx.ws, "trial", now=NOW, engine_name=engine_name, engine_options=options
    )
    assert (result.status, result.failures) == ("failed", 1)
    assert message in result.error
    with session_scope(engine) as session:
        segment = session.exec(select(Segment).where(Segment.name == "trial")).one()
        assert segment.current_result_id is None
