"""Retiring: a segment archived, or taken out of a destination's scope, is emptied from
every kind of destination by a run, held for approval like a large change, and
cancelled when the segment comes back first."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta

import pandas as pd
import sqlalchemy as sa
from sqlalchemy import select

from commands.syncs import approve, failing, status
from store.db import make_engine, session_scope
from store.models import OutboxMessage, SyncRun
from sync import run_syncs
from tests.factories import AS_OF, OWNER, build
from tests.sync.fakes import FakeHubSpot, WebhookReceiver, running
from tests.sync.helpers import Clock, members, settings, sync_until_quiet, with_destinations

START = datetime(2026, 4, 1, tzinfo=UTC)
FAST = {"rate_per_second": 500, "timeout": 0.3}


def _destinations(hook, hubspot, segments):
    return {
        "warehouse": {"kind": "sql_table", "url_secret": "warehouse", "segments": segments},
        "exports": {"kind": "files", "path": "exports", "segments": segments},
        "crm-hook": {
            "kind": "webhook",
            "url": hook.url,
            "secret": "hook",
            "segments": segments,
            **FAST,
        },
        "hubspot-sales": {
            "kind": "hubspot",
            "list_id": "123",
            "secret": "hubspot",
            "api_url": hubspot.url,
            "segments": segments,
            "batch_size": 10,
            **FAST,
        },
    }


def _warehouse(url: str, segment: str) -> tuple[set[str], set]:
    engine = make_engine(url)
    try:
        with engine.connect() as connection:
            current = connection.execute(
                sa.text("SELECT entity_id FROM segment_membership_current WHERE segment = :s"),
                {"s": segment},
            )
            closed = connection.execute(
                sa.text("SELECT DISTINCT valid_to FROM segment_membership WHERE segment = :s"),
                {"s": segment},
            )
            return {r[0] for r in current}, {r[0] for r in closed}
    finally:
        engine.dispose()


def _held_dms(engine) -> list[OutboxMessage]:
    with session_scope(engine) as session:
        return list(
            session.execute(
                select(OutboxMessage).where(OutboxMessage.idempotency_key.like("sync-held:%"))
            ).scalars()
        )


class _World:
    """Four destinations receiving ``enterprise`` and ``smb``, synced once."""

    def __init__(self, engine, tmp_path, hook, hubspot):
        self.engine, self.hook, self.hubspot = engine, hook, hubspot
        self.url = f"sqlite:///{tmp_path / 'warehouse.db'}"
        self.cfg = settings(warehouse=self.url)
        self.fx = build(tmp_path)
        hubspot.records = set(self.fx.crm["account_id"])
        self.set_scope(["enterprise", "smb"])
        self.fx.refresh(engine, AS_OF)
        self.clock = Clock(START)
        self.sync()
        self.smb = members(engine, "smb")
        self.enterprise = members(engine, "enterprise")
        assert self.smb and self.hook.members["smb"] == self.smb
        assert self.hubspot.lists["123"] == self.smb | self.enterprise

    def set_scope(self, segments, *, archive_smb: bool = False) -> None:
        self.fx.segment("smb")["status"] = "archived" if archive_smb else "active"
        with_destinations(self.fx, _destinations(self.hook, self.hubspot, segments))
        self.fx.apply(self.engine, reason="scope")

    def sync(self, cfg=None):
        return sync_until_quiet(self.engine, self.fx, cfg or self.cfg, self.clock)

    def assert_smb_emptied(self) -> None:
        current, closed = _warehouse(self.url, "smb")
        assert current == set() and None not in closed
        snapshot = pd.read_csv(self.fx.root / "exports" / "smb" / "current.csv")
        assert snapshot.empty and list(snapshot.columns) == ["entity_id"]
        assert self.hook.members["smb"] == set() and not self.hook.problems
        assert self.hubspot.lists["123"] == self.enterprise  # the other segment stays
        assert _warehouse(self.url, "enterprise")[0] == self.enterprise


def test_an_archived_segment_is_emptied_from_every_kind_of_destination(engine, tmp_path):
    with running(WebhookReceiver()) as hook, running(FakeHubSpot(records=set())) as hubspot:
        world = _World(engine, tmp_path, hook, hubspot)
        world.set_scope(["enterprise", "smb"], archive_smb=True)
        world.sync()
        world.assert_smb_emptied()
        with session_scope(engine) as session:
            kinds = session.execute(
                select(SyncRun.kind).where(SyncRun.status == "done", SyncRun.kind == "retire")
            ).scalars()
            assert len(list(kinds)) == 4
        listed = {s["segment"] for r in status(engine, world.fx.ws()) for s in r["segments"]}
        assert listed == {"enterprise"}  # nothing left of smb anywhere
        assert world.sync()[0].planned == 0


def test_a_segment_taken_out_of_scope_is_emptied_and_waits_for_approval(engine, tmp_path):
    with running(WebhookReceiver()) as hook, running(FakeHubSpot(records=set())) as hubspot:
        world = _World(engine, tmp_path, hook, hubspot)
        world.set_scope(["enterprise"])
        strict = settings(warehouse=world.url).model_copy(update={"sync_change_limit": 0.3})
        world.sync(strict)
        assert hook.members["smb"] == world.smb  # held: nothing removed yet
        dms = _held_dms(engine)
        assert len(dms) == 4 and {dm.channel for dm in dms} == {OWNER}
        told = json.dumps(dms[0].blocks)
        assert "the segment left the destination's scope" in told
        assert f"would add 0 and remove {len(world.smb)}" in told
        rows = {r["destination"]: r for r in status(engine, world.fx.ws())}
        smb = next(s for s in rows["crm-hook"]["segments"] if s["segment"] == "smb")
        assert smb["retiring"] == "the segment left the destination's scope"
        assert smb["acknowledged"] == len(world.smb) and not smb["in_step"]
        assert (smb["run"]["kind"], smb["run"]["status"]) == ("retire", "held")
        held = {f.destination: f for f in failing(engine, owner=OWNER)}
        assert held["crm-hook"].problem == "waiting for approval"
        assert held["crm-hook"].command == "segops sync approve crm-hook smb"
        for name in ("warehouse", "exports", "crm-hook", "hubspot-sales"):
            approve(engine, world.fx.ws(), destination=name, segment="smb", by=OWNER)
        world.sync(strict)
        world.assert_smb_emptied()
        assert failing(engine, owner=OWNER) == []


def test_retiring_is_cancelled_when_the_segment_comes_back_first(engine, tmp_path):
    with running(WebhookReceiver()) as hook, running(FakeHubSpot(records=set())) as hubspot:
        world = _World(engine, tmp_path, hook, hubspot)
        calls = hook.calls
        world.set_scope(["enterprise"], archive_smb=True)
        strict = settings(warehouse=world.url).model_copy(update={"sync_change_limit": 0.3})
        world.sync(strict)  # four retire runs, held
        world.set_scope(["enterprise", "smb"])
        world.clock.now += timedelta(minutes=1)
        world.sync(strict)
        with session_scope(engine) as session:
            statuses = session.execute(
                select(SyncRun.status).where(SyncRun.kind == "retire")
            ).scalars()
            assert sorted(statuses) == ["cancelled"] * 4
        assert hook.calls == calls and hook.members["smb"] == world.smb
        assert hubspot.lists["123"] == world.smb | world.enterprise
        assert _warehouse(world.url, "smb")[0] == world.smb
        assert all(s["in_step"] for r in status(engine, world.fx.ws()) for s in r["segments"])
        assert run_syncs(engine, world.fx.ws(), strict, now=world.clock.tick()).planned == 0
