"""Table models: names, constraints and the values they round-trip."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta, timezone

import pytest
from sqlalchemy import Engine
from sqlalchemy.exc import IntegrityError
from sqlmodel import Session, select

from store.db import session_scope
from store.models import (
    Entity,
    Lease,
    OutboxMessage,
    Segment,
    SegmentResult,
    SegmentVersion,
    SlackEvent,
    Snapshot,
    metadata,
)

PLUS_TWO = timezone(timedelta(hours=2))


def _segment(name: str = "trial", **fields: object) -> Segment:
    return Segment(name=name, title="Trial accounts", owner="U111", cadence="daily", **fields)


def _version(segment_id: int, version: int = 1) -> SegmentVersion:
    return SegmentVersion(
        segment_id=segment_id,
        version=version,
        definition={"name": "trial", "rule": "plan = 'trial'"},
        rule_text="plan = 'trial'",
        definition_hash="a" * 64,
        change_kind="create",
        author="U111",
    )


def _outbox(key: str) -> OutboxMessage:
    return OutboxMessage(idempotency_key=key, kind="refresh_summary", channel="C111", text="hi")


def _add_segment(session: Session, name: str = "trial") -> int:
    segment = _segment(name)
    session.add(segment)
    session.flush()
    assert segment.id is not None
    return segment.id


def test_tables_are_the_contracted_ones() -> None:
    assert set(metadata.tables) == {
        "segment",
        "segment_version",
        "segment_origin",
        "snapshot",
        "segment_result",
        "entity",
        "alert",
        "feedback",
        "proposal",
        "outbox_message",
        "slack_event",
        "lease",
        "sync_destination",
        "sync_state",
        "sync_run",
        "sync_batch",
        "api_token",
        "experiment",
        "experiment_holdout",
        "learning",
        "learning_note",
        "live_segment",
        "live_state",
        "live_event",
        "live_member",
        "live_transition",
        "live_dead_letter",
        "live_counter",
        "job",
        "brief_view",
    }


def test_every_constraint_and_index_has_a_name() -> None:
    unnamed = [
        (table.name, type(item).__name__)
        for table in metadata.tables.values()
        for item in [*table.constraints, *table.indexes]
        if not item.name
    ]
    assert unnamed == []


def test_segment_name_is_unique(engine: Engine) -> None:
    with session_scope(engine) as session:
        session.add(_segment("trial"))
    with pytest.raises(IntegrityError), session_scope(engine) as session:
        session.add(_segment("trial"))


def test_segment_version_number_is_unique_per_segment(engine: Engine) -> None:
    with session_scope(engine) as session:
        trial, churn = _add_segment(session, "trial"), _add_segment(session, "churn")
        session.add_all([_version(trial, 1), _version(churn, 1)])
    with pytest.raises(IntegrityError), session_scope(engine) as session:
        session.add(_version(trial, 1))


def test_entity_key_is_unique(engine: Engine) -> None:
    with session_scope(engine) as session:
        session.add(Entity(id=1, key="acct-1"))
    with pytest.raises(IntegrityError), session_scope(engine) as session:
        session.add(Entity(id=2, key="acct-1"))


def test_entity_id_is_the_one_the_application_assigns(engine: Engine) -> None:
    with session_scope(engine) as session:
        session.add_all([Entity(id=42, key="acct-42"), Entity(id=7, key="acct-7")])
    with session_scope(engine) as session:
        assert session.exec(select(Entity.id, Entity.key).order_by(Entity.id)).all() == [
            (7, "acct-7"),
            (42, "acct-42"),
        ]


def test_outbox_idempotency_key_is_unique(engine: Engine) -> None:
    with session_scope(engine) as session:
        session.add(_outbox("refresh:trial:2026-01-31"))
    with pytest.raises(IntegrityError), session_scope(engine) as session:
        session.add(_outbox("refresh:trial:2026-01-31"))


def test_slack_event_id_is_unique(engine: Engine) -> None:
    with session_scope(engine) as session:
        session.add(SlackEvent(event_id="Ev111"))
    with pytest.raises(IntegrityError), session_scope(engine) as session:
        session.add(SlackEvent(event_id="Ev111"))


def test_closed_vocabularies_are_checked(engine: Engine) -> None:
    with pytest.raises(IntegrityError), session_scope(engine) as session:
        session.add(_segment(tier="platinum"))


def test_timestamps_come_back_as_aware_utc(engine: Engine) -> None:
    expires = datetime(2026, 1, 31, 12, 0, tzinfo=PLUS_TWO)
    with session_scope(engine) as session:
        session.add(Lease(name="scheduler", holder="worker-1", expires_at=expires))
    with session_scope(engine) as session:
        lease = session.exec(select(Lease)).one()
    assert lease.expires_at == expires
    assert lease.expires_at.tzinfo == UTC


def test_default_timestamps_are_aware_utc(engine: Engine) -> None:
    with session_scope(engine) as session:
        session.add(SlackEvent(event_id="Ev111"))
    with session_scope(engine) as session:
        event = session.exec(select(SlackEvent)).one()
    assert event.received_at.tzinfo == UTC
    assert abs(datetime.now(UTC) - event.received_at) < timedelta(minutes=1)


def test_timestamp_comparisons_use_utc(engine: Engine) -> None:
    now = datetime.now(UTC)
    with session_scope(engine) as session:
        session.add(Lease(name="old", holder="w1", expires_at=(now - timedelta(minutes=1))))
        session.add(Lease(name="new", holder="w2", expires_at=now.astimezone(PLUS_TWO)))
    with session_scope(engine) as session:
        expired = session.exec(select(Lease.name).where(Lease.expires_at < now)).all()
    assert expired == ["old"]


def test_updated_at_moves_on_update(engine: Engine) -> None:
    with session_scope(engine) as session:
        segment = _segment()
        session.add(segment)
    created = segment.updated_at
    with session_scope(engine) as session:
        stored = session.exec(select(Segment)).one()
        stored.title = "Trial accounts (EU)"
    assert stored.updated_at > created


def test_json_and_bitmap_values_round_trip(engine: Engine) -> None:
    stats = {"kpis": {"mrr": 1250.5}, "histograms": {"seats": [[0, 10], [3, 4]]}}
    with session_scope(engine) as session:
        segment_id = _add_segment(session)
        version = _version(segment_id)
        snapshot = Snapshot(as_of=date(2026, 1, 31), status="published", data_fingerprint="f" * 64)
        session.add_all([version, snapshot])
        session.flush()
        assert version.id is not None and snapshot.id is not None
        session.add(
            SegmentResult(
                snapshot_id=snapshot.id,
                segment_id=segment_id,
                version_id=version.id,
                status="published",
                size=3,
                bitmap=b"\x00\x01\xff",
                stats=stats,
                leave_reasons={"plan = 'trial'": 2},
            )
        )
    with session_scope(engine) as session:
        result = session.exec(select(SegmentResult)).one()
    assert (result.bitmap, result.stats, result.leave_reasons) == (
        b"\x00\x01\xff",
        stats,
        {"plan = 'trial'": 2},
    )
