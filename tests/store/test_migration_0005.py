"""Revision 0005 adds the experiment and learning tables to a database with data in place."""

from __future__ import annotations

from datetime import date

from sqlalchemy import Engine, inspect
from sqlmodel import select

from store.db import downgrade, session_scope, upgrade
from store.models import (
    Experiment,
    ExperimentHoldout,
    Learning,
    LearningNote,
    Segment,
    SegmentResult,
    SegmentVersion,
    Snapshot,
)
from tests.store.migration_steps import previous_revision

REVISION = "0005"
NEW_TABLES = {"experiment", "experiment_holdout", "learning", "learning_note"}


def _seed(engine: Engine) -> dict[str, int]:
    with session_scope(engine) as session:
        segment = Segment(name="trial", title="Trials", owner="U111", cadence="weekly")
        session.add(segment)
        session.flush()
        version = SegmentVersion(
            segment_id=segment.id,
            version=1,
            definition={"name": "trial"},
            rule_text="plan = 'trial'",
            definition_hash="h",
            change_kind="create",
            author="U111",
        )
        snapshot = Snapshot(as_of=date(2026, 3, 1), status="published", data_fingerprint="f")
        session.add_all([version, snapshot])
        session.flush()
        result = SegmentResult(
            snapshot_id=snapshot.id,
            segment_id=segment.id,
            version_id=version.id,
            status="published",
            size=3,
            bitmap=b"",
        )
        session.add(result)
        session.flush()
        return {
            "segment": segment.id,
            "version": version.id,
            "snapshot": snapshot.id,
            "result": result.id,
        }


def test_upgrade_keeps_the_catalog_and_adds_working_tables(empty_engine: Engine) -> None:
    upgrade(empty_engine, previous_revision(REVISION))
    assert not NEW_TABLES & set(inspect(empty_engine).get_table_names())
    ids = _seed(empty_engine)
    upgrade(empty_engine)
    assert NEW_TABLES <= set(inspect(empty_engine).get_table_names())
    with session_scope(empty_engine) as session:
        assert session.exec(select(Segment.name)).all() == ["trial"]
        experiment = Experiment(
            segment_id=ids["segment"],
            version_id=ids["version"],
            salt="trial:2026-03-01",
            kpi="logins_30d",
            kind="mean",
            direction="increase",
            mde=0.1,
            window_days=28,
            holdout_share=0.1,
            started_on=date(2026, 3, 1),
            ends_on=date(2026, 3, 29),
            start_result_id=ids["result"],
            started_by="U111",
        )
        session.add(experiment)
        session.flush()
        session.add(
            ExperimentHoldout(
                experiment_id=experiment.id,
                snapshot_id=ids["snapshot"],
                result_id=ids["result"],
                members=3,
                held_out=1,
                bitmap=b"x",
            )
        )
        learning = Learning(
            segment_id=ids["segment"],
            kind="experiment",
            title="holdout",
            experiment_id=experiment.id,
        )
        session.add(learning)
        session.flush()
        session.add(LearningNote(learning_id=learning.id, author="U222", text="worked"))
    with session_scope(empty_engine) as session:
        assert session.exec(select(Experiment.status)).all() == ["running"]
        assert session.exec(select(LearningNote.text)).all() == ["worked"]


def test_downgrade_drops_only_the_new_tables(empty_engine: Engine) -> None:
    upgrade(empty_engine, previous_revision(REVISION))
    _seed(empty_engine)
    upgrade(empty_engine)
    downgrade(empty_engine, previous_revision(REVISION))
    assert not NEW_TABLES & set(inspect(empty_engine).get_table_names())
    with session_scope(empty_engine) as session:
        assert session.exec(select(SegmentResult.size)).all() == [3]
