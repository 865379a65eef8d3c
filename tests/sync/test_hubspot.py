"""HubSpot destinations against a fake lists API that enforces HubSpot's limits."""

from __future__ import annotations

import json
from datetime import UTC, datetime

from sqlalchemy import select

from commands.syncs import status
from store.db import session_scope
from store.models import OutboxMessage, SyncDestination, SyncRun
from tests.factories import AS_OF, build
from tests.sync.fakes import FakeHubSpot, Faults, running
from tests.sync.helpers import Clock, members, settings, sync_until_quiet, with_destinations

START = datetime(2026, 4, 1, tzinfo=UTC)


def _setup(engine, tmp_path, hubspot, **extra):
    fx = build(tmp_path)
    with_destinations(
        fx,
        {
            "hubspot-enterprise": {
                "kind": "hubspot",
                "list_id": "123",
                "secret": "hubspot",
                "api_url": hubspot.url,
                "segments": ["enterprise"],
                "batch_size": 10,
                "rate_per_second": 500,
                "timeout": 0.3,
                **extra,
            }
        },
    )
    fx.apply(engine)
    fx.refresh(engine, AS_OF)
    return fx


def _records(fx, *, without: int = 0) -> set[str]:
    keys = sorted(fx.crm["account_id"])
    return set(keys[without:])


def test_list_matches_the_segment_and_unknown_records_are_reported(engine, tmp_path):
    fx0 = build(tmp_path / "probe")
    known = _records(fx0)
    expected_all = None
    with running(FakeHubSpot(records=known)) as hubspot:
        fx = _setup(engine, tmp_path, hubspot)
        expected_all = members(engine, "enterprise")
        unknown = sorted(expected_all)[:3]
        hubspot.records -= set(unknown)
        sync_until_quiet(engine, fx, settings(), Clock(START))
        assert hubspot.lists["123"] == expected_all - set(unknown)
        assert hubspot.oversized == 0 and hubspot.unauthorised == 0
        with session_scope(engine) as session:
            run = session.execute(select(SyncRun)).scalars().one()
        assert run.status == "done" and run.missing == 3
        entry = status(engine, fx.ws())[0]["segments"][0]
        assert entry["in_step"] and entry["run"]["missing"] == 3
        with session_scope(engine) as session:
            line = session.execute(
                select(OutboxMessage).where(OutboxMessage.kind == "sync_summary")
            ).scalar_one()
            summary = session.execute(
                select(OutboxMessage).where(OutboxMessage.idempotency_key == line.thread_key)
            ).scalar_one()
        assert summary.kind == "refresh_summary"
        added = len(expected_all)
        assert line.text == f"HubSpot list '123': +{added} / -0, 3 ids not found"


def test_a_batch_larger_than_hubspot_accepts_is_dead_not_retried(engine, tmp_path):
    fx0 = build(tmp_path / "probe")
    with running(FakeHubSpot(records=_records(fx0), max_batch=5)) as hubspot:
        fx = _setup(engine, tmp_path, hubspot, max_attempts=3)
        sync_until_quiet(engine, fx, settings(), Clock(START), passes=3)
        assert hubspot.oversized >= 1 and not hubspot.lists["123"]
        with session_scope(engine) as session:
            run = session.execute(select(SyncRun).order_by(SyncRun.id)).scalars().first()
        assert run.status == "failed"


def test_rate_limits_and_faults_end_in_step(engine, tmp_path):
    fx0 = build(tmp_path / "probe")
    faults = Faults(rate=0.4, hang=0.6, seed=11)
    with running(FakeHubSpot(records=_records(fx0), faults=faults, rate_limit=3)) as hubspot:
        fx = _setup(engine, tmp_path, hubspot, max_attempts=40)
        sync_until_quiet(engine, fx, settings(), Clock(START), passes=120)
        assert hubspot.lists["123"] == members(engine, "enterprise")
        assert faults.counts["429"] + hubspot.rate_limited > 0


def test_an_unknown_list_disables_the_destination(engine, tmp_path):
    fx0 = build(tmp_path / "probe")
    with running(FakeHubSpot(records=_records(fx0), lists=("999",))) as hubspot:
        fx = _setup(engine, tmp_path, hubspot)
        sync_until_quiet(engine, fx, settings(), Clock(START))
        with session_scope(engine) as session:
            row = session.execute(select(SyncDestination)).scalar_one()
            told = (
                session.execute(select(OutboxMessage).where(OutboxMessage.kind == "sync_status"))
                .scalars()
                .all()
            )
        assert row.status == "disabled" and "404" in row.disabled_reason
        assert len(told) == 1 and "no such list" in json.dumps(told[0].blocks)


def test_a_missing_token_is_a_clear_error_at_first_run(engine, tmp_path):
    fx0 = build(tmp_path / "probe")
    with running(FakeHubSpot(records=_records(fx0))) as hubspot:
        fx = _setup(engine, tmp_path, hubspot, secret="not-configured", max_attempts=2)
        runs = sync_until_quiet(engine, fx, settings(), Clock(START))
        assert hubspot.calls == 0
        message = "secret 'not-configured' is not set in SEGOPS_DESTINATION_SECRETS"
        assert runs[0].errors["hubspot-enterprise"].endswith(message)
        entry = status(engine, fx.ws())[0]["segments"][0]
        assert message in entry["run"]["last_error"]
