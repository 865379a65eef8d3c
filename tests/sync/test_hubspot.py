"""HubSpot destinations against a fake lists API that enforces HubSpot's limits."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta

import yaml
from sqlalchemy import select

from commands.syncs import resync, status
from store.db import session_scope
from store.models import OutboxMessage, SyncDestination, SyncRun
from sync import run_syncs
from tests.factories import AS_OF, build
from tests.sync.fakes import FakeHubSpot, Faults, running
from tests.sync.helpers import Clock, members, settings, sync_until_quiet, with_destinations

START = datetime(2026, 4, 1, tzinfo=UTC)


def _setup(engine, tmp_path, hubspot, as_of=AS_OF, **extra):
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
    fx.refresh(engine, as_of)
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
        run_syncs(engine, fx.ws(), settings(), now=START)
        assert hubspot.lists["123"] == expected_all - set(unknown)
        assert hubspot.oversized == 0 and hubspot.unauthorised == 0
        with session_scope(engine) as session:
            run = session.execute(select(SyncRun)).scalars().one()
        assert run.status == "done" and run.missing == 3
        (row,) = status(engine, fx.ws())
        entry = row["segments"][0]
        assert entry["in_step"] and entry["run"]["missing"] == 3
        assert row["missing"] == entry["missing"] == 3
        assert entry["acknowledged"] == len(expected_all) - 3
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


def _planned(engine, fx, at) -> int:
    return run_syncs(engine, fx.ws(), settings(), now=at).planned


def _summaries(engine) -> list[str]:
    with session_scope(engine) as session:
        rows = session.execute(
            select(OutboxMessage)
            .where(OutboxMessage.kind == "sync_summary")
            .order_by(OutboxMessage.id)
        ).scalars()
        return [row.text for row in rows]


def test_ids_not_found_are_retried_after_a_doubling_wait_until_hubspot_knows_them(engine, tmp_path):
    fx0 = build(tmp_path / "probe")
    with running(FakeHubSpot(records=_records(fx0))) as hubspot:
        fx = _setup(engine, tmp_path, hubspot)
        everyone = members(engine, "enterprise")
        unknown = set(sorted(everyone)[:3])
        hubspot.records -= unknown
        minutes = lambda m: START + timedelta(minutes=m)  # noqa: E731
        assert _planned(engine, fx, minutes(0)) == 1
        assert _planned(engine, fx, minutes(14)) == 0  # waiting 15 minutes
        assert _planned(engine, fx, minutes(15)) == 1  # sent again, not found again
        assert _planned(engine, fx, minutes(44)) == 0  # now waiting 30 minutes
        assert _planned(engine, fx, minutes(45)) == 1  # not found a third time
        assert _planned(engine, fx, minutes(104)) == 0  # 60 minutes
        entry = status(engine, fx.ws())[0]["segments"][0]
        assert entry["missing"] == 3 and entry["missing_retry_at"] == "2026-04-01T01:45:00+00:00"
        hubspot.records |= unknown
        assert _planned(engine, fx, minutes(105)) == 1
        assert hubspot.lists["123"] == everyone
        assert _planned(engine, fx, minutes(10_000)) == 0
        (row,) = status(engine, fx.ws())
        assert row["missing"] == 0 and row["segments"][0]["acknowledged"] == len(everyone)
    # the retries that found nothing posted nothing; the one that landed did
    assert _summaries(engine) == [
        f"HubSpot list '123': +{len(everyone)} / -0, 3 ids not found",
        "HubSpot list '123': +3 / -0",
    ]


def test_the_next_refresh_sends_ids_not_found_again_without_waiting(engine, tmp_path):
    fx0 = build(tmp_path / "probe")
    with running(FakeHubSpot(records=_records(fx0))) as hubspot:
        fx = _setup(engine, tmp_path, hubspot, as_of=AS_OF - timedelta(days=1))
        unknown = set(sorted(members(engine, "enterprise"))[:2])
        hubspot.records -= unknown
        assert _planned(engine, fx, START) == 1
        assert _planned(engine, fx, START + timedelta(minutes=1)) == 0
        hubspot.records |= unknown
        fx.refresh(engine, AS_OF)
        assert _planned(engine, fx, START + timedelta(minutes=2)) == 1
        assert hubspot.lists["123"] == members(engine, "enterprise")
        assert status(engine, fx.ws())[0]["missing"] == 0


def _shared_list(engine, tmp_path, hubspot, segments):
    fx = build(tmp_path)
    config = {
        "kind": "hubspot",
        "list_id": "123",
        "secret": "hubspot",
        "api_url": hubspot.url,
        "batch_size": 10,
        "rate_per_second": 500,
        "timeout": 0.3,
    }
    with_destinations(fx, {"hubspot-sales": {**config, "segments": segments}})
    fx.apply(engine)
    fx.refresh(engine, AS_OF)
    return fx


def test_a_list_shared_by_two_segments_holds_both_and_a_rebuild_keeps_the_other(engine, tmp_path):
    fx0 = build(tmp_path / "probe")
    with running(FakeHubSpot(records=_records(fx0))) as hubspot:
        fx = _shared_list(engine, tmp_path, hubspot, ["enterprise", "smb"])
        both = members(engine, "enterprise") | members(engine, "smb")
        sync_until_quiet(engine, fx, settings(), Clock(START))
        assert hubspot.lists["123"] == both
        hubspot.lists["123"].add(sorted(hubspot.records - both)[0])  # added by hand in HubSpot
        assert resync(engine, fx.ws(), destination="hubspot-sales", segment="enterprise") == 1
        sync_until_quiet(engine, fx, settings(), Clock(START + timedelta(hours=1)))
        assert hubspot.lists["123"] == both  # smb's records stay, the stray one is gone
        assert all(s["in_step"] for s in status(engine, fx.ws())[0]["segments"])


def test_a_member_of_two_segments_on_one_list_stays_while_one_still_has_it(engine, tmp_path):
    fx0 = build(tmp_path / "probe")
    with running(FakeHubSpot(records=_records(fx0))) as hubspot:
        fx = _shared_list(engine, tmp_path, hubspot, ["trial", "engaged-trial"])
        engaged = members(engine, "engaged-trial")
        assert engaged and engaged < members(engine, "trial")
        sync_until_quiet(engine, fx, settings(), Clock(START))
        assert hubspot.lists["123"] == members(engine, "trial")
        # engaged-trial loses everyone (its rule now matches nobody): trial keeps them
        data = fx.workspace_data()
        data["destinations"] = yaml.safe_load(fx.path.read_text())["destinations"]
        rule = next(s for s in data["segments"] if s["name"] == "engaged-trial")
        rule["rule"] = 'in_segment("trial") and logins_30d >= 100000'
        fx.path.write_text(yaml.safe_dump(data, sort_keys=False))
        fx._ws = None
        fx.apply(engine, reason="narrow")
        fx.refresh(engine, AS_OF)
        assert not members(engine, "engaged-trial")
        sync_until_quiet(engine, fx, settings(), Clock(START + timedelta(hours=1)))
        assert hubspot.lists["123"] == members(engine, "trial")
