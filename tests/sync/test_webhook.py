"""Webhook destinations against a local receiver that verifies Standard Webhooks signatures."""

from __future__ import annotations

import json
from datetime import UTC, datetime

from sqlalchemy import select

from store.db import session_scope
from store.models import OutboxMessage, SyncBatch, SyncDestination
from tests.factories import AS_OF, OWNER, build
from tests.sync.fakes import Faults, WebhookReceiver, running
from tests.sync.helpers import Clock, members, settings, sync_until_quiet, with_destinations

START = datetime(2026, 4, 1, tzinfo=UTC)


def _setup(engine, tmp_path, receiver, **extra):
    fx = build(tmp_path)
    with_destinations(
        fx,
        {
            "crm-hook": {
                "kind": "webhook",
                "url": receiver.url + "/hooks",
                "secret": "hook",
                "segments": ["enterprise"],
                "batch_size": 7,
                "rate_per_second": 200,
                "timeout": 0.3,
                **extra,
            }
        },
    )
    fx.apply(engine)
    fx.refresh(engine, AS_OF)
    return fx


def test_first_sync_sends_every_member_in_signed_batches(engine, tmp_path):
    with running(WebhookReceiver()) as receiver:
        fx = _setup(engine, tmp_path, receiver)
        sync_until_quiet(engine, fx, settings(), Clock(START))
        expected = members(engine, "enterprise")
        assert expected and receiver.members["enterprise"] == expected
        assert receiver.rejected == 0 and not receiver.problems
        with session_scope(engine) as session:
            sizes = session.execute(select(SyncBatch.size)).scalars().all()
        assert max(sizes) <= 7 and sum(sizes) == len(expected)


def test_a_wrong_secret_is_refused_by_the_receiver_and_nothing_is_acknowledged(engine, tmp_path):
    wrong = "whsec_" + "d3Jvbmctc2VjcmV0LWZvci10aGUtd2ViaG9vaw=="
    with running(WebhookReceiver()) as receiver:
        fx = _setup(engine, tmp_path, receiver, max_attempts=1)
        sync_until_quiet(engine, fx, settings(hook=wrong), Clock(START))
        assert receiver.rejected > 0 and not receiver.members["enterprise"]
        with session_scope(engine) as session:
            statuses = set(session.execute(select(SyncBatch.status)).scalars())
            told = (
                session.execute(select(OutboxMessage).where(OutboxMessage.kind == "sync_status"))
                .scalars()
                .all()
            )
        assert statuses == {"dead", "cancelled"}
        assert len(told) == 1 and told[0].channel == OWNER
        assert "answered 401" in json.dumps(told[0].blocks)


def test_410_disables_the_destination_and_tells_the_owner_once(engine, tmp_path):
    with running(WebhookReceiver()) as receiver:
        receiver.gone = True
        fx = _setup(engine, tmp_path, receiver)
        clock = Clock(START)
        sync_until_quiet(engine, fx, settings(), clock)
        sync_until_quiet(engine, fx, settings(), clock)
        with session_scope(engine) as session:
            row = session.execute(select(SyncDestination)).scalar_one()
            told = (
                session.execute(select(OutboxMessage).where(OutboxMessage.kind == "sync_status"))
                .scalars()
                .all()
            )
        assert row.status == "disabled" and "410" in row.disabled_reason
        assert len(told) == 1 and told[0].text.startswith("Sync stopped")
        assert "410 Gone" in json.dumps(told[0].blocks)
        calls = receiver.calls
        sync_until_quiet(engine, fx, settings(), clock)
        assert receiver.calls == calls  # nothing is sent to a disabled destination


def test_retries_with_the_same_webhook_id_never_apply_a_change_twice(engine, tmp_path):
    with running(WebhookReceiver(faults=Faults(rate=0.5, hang=0.6, seed=5))) as receiver:
        fx = _setup(engine, tmp_path, receiver, max_attempts=30, batch_size=2)
        sync_until_quiet(engine, fx, settings(), Clock(START), passes=80)
        assert receiver.members["enterprise"] == members(engine, "enterprise")
        assert not receiver.problems
        assert receiver.faults.counts["hang-applied"] > 0  # answers were lost after applying
        assert max(receiver.deliveries.values()) >= 2  # so those events were delivered again
