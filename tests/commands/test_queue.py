"""The job queue: each job claimed once under concurrent drainers, retried while a refresh
runs, taken over when its worker died, answered once; on SQLite and PostgreSQL."""

from __future__ import annotations

import threading
from datetime import UTC, date, datetime, timedelta
from pathlib import Path

import pytest
import yaml
from sqlalchemy import Engine
from sqlmodel import select

from commands import queue
from commands.catalog import apply_workspace
from commands.refresh import exclusive_refresh
from segments.errors import SegopsError
from segments.workspace import load_workspace
from store.db import make_engine, session_scope
from store.models import Job

WORKSPACE = {
    "sources": {
        "crm": {
            "kind": "entity",
            "path": "crm.csv",
            "id": "account_id",
            "columns": {"plan": "string"},
        }
    },
    "segments": [
        {"name": "trial", "title": "Trial", "owner": "U111", "rule": "plan = 'trial'"},
    ],
}
ASKER = queue.ReplyTo(user="U333", channel="C111", response_url="http://127.0.0.1:9/r")


@pytest.fixture
def workspace(engine: Engine, tmp_path: Path) -> Path:
    path = tmp_path / "workspace.yaml"
    path.write_text(yaml.safe_dump(WORKSPACE))
    (tmp_path / "crm.csv").write_text("account_id,plan\nA1,trial\nA2,pro\nA3,trial\n")
    apply_workspace(engine, load_workspace(path), reason="set up", author="U111")
    return path


def _job(engine: Engine, job_id: int) -> Job:
    with session_scope(engine) as session:
        return session.get(Job, job_id)


def test_two_drainers_racing_claim_every_job_exactly_once(engine: Engine, workspace: Path):
    queued = [
        queue.queue_refresh(engine, only="trial", as_of=date(2026, 6, 1), reply_to=ASKER).id
        for _ in range(40)
    ]
    url = engine.url.render_as_string(hide_password=False)
    claimed: dict[str, list[int]] = {"a": [], "b": []}
    start = threading.Barrier(2)

    def drainer(name: str) -> None:
        own = make_engine(url)
        try:
            start.wait()
            while (job := queue.claim_next(own, worker=name)) is not None:
                claimed[name].append(job.id)
        finally:
            own.dispose()

    threads = [threading.Thread(target=drainer, args=(n,)) for n in claimed]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(60)
    assert not set(claimed["a"]) & set(claimed["b"])
    assert sorted(claimed["a"] + claimed["b"]) == queued
    with session_scope(engine) as session:
        rows = session.exec(select(Job)).all()
    assert {(r.status, r.attempts) for r in rows} == {("running", 1)}
    assert {r.claimed_by for r in rows if r.id in claimed["a"]} <= {"a"}


def test_a_refresh_that_finds_another_running_waits_in_the_queue(engine: Engine, workspace: Path):
    job = queue.queue_refresh(engine, only="trial", as_of=date(2026, 6, 1), reply_to=ASKER)
    claimed = queue.claim_next(engine, worker="w")
    with exclusive_refresh(engine):  # a scheduled refresh holds the lease
        back = queue.run_job(engine, claimed, load_workspace=lambda: load_workspace(workspace))
    assert back.status == "pending"
    row = _job(engine, job.id)
    assert row.status == "pending" and row.not_before > datetime.now(UTC)
    assert queue.claim_next(engine, worker="w") is None  # not before its retry time
    later = datetime.now(UTC) + queue.BUSY_RETRY + timedelta(seconds=1)
    again = queue.claim_next(engine, worker="w", now=later)
    assert again is not None and again.attempts == 2
    done = queue.run_job(engine, again, load_workspace=lambda: load_workspace(workspace))
    assert done.status == "done"
    assert [s["segment"] for s in done.result["segments"]] == ["trial"]


def test_a_job_whose_worker_died_is_claimed_again_only_once_stale(engine: Engine, workspace: Path):
    queue.queue_refresh(engine, only=None, as_of=date(2026, 6, 1), reply_to=ASKER)
    first = queue.claim_next(engine, worker="dead")
    assert queue.claim_next(engine, worker="alive") is None
    later = datetime.now(UTC) + queue.STALE_CLAIM + timedelta(seconds=1)
    second = queue.claim_next(engine, worker="alive", now=later)
    assert second is not None and second.id == first.id and second.attempts == 2
    # the dead worker's late outcome is not recorded over the live run's
    late = queue.run_job(engine, first, load_workspace=lambda: load_workspace(workspace))
    assert late.status == "done"
    assert _job(engine, first.id).status == "running"
    assert _job(engine, first.id).claimed_by == "alive"


def test_a_finished_job_is_answered_once(engine: Engine, workspace: Path):
    job = queue.queue_refresh(engine, only="trial", as_of=date(2026, 6, 1), reply_to=ASKER)
    claimed = queue.claim_next(engine, worker="w")
    queue.run_job(engine, claimed, load_workspace=lambda: load_workspace(workspace))
    assert queue.unreplied(engine) == [job.id]
    assert queue.take_reply(engine, job.id) is not None
    assert queue.take_reply(engine, job.id) is None
    assert queue.unreplied(engine) == [] and queue.outstanding(engine) == 0


def test_a_refresh_of_an_unknown_segment_is_refused_and_nothing_queued(
    engine: Engine, workspace: Path
):
    with pytest.raises(SegopsError, match="nope"):
        queue.queue_refresh(engine, only="nope", as_of=date(2026, 6, 1), reply_to=ASKER)
    with session_scope(engine) as session:
        assert session.exec(select(Job)).all() == []


def test_an_expired_response_url_is_not_used(engine: Engine, workspace: Path):
    job = queue.queue_refresh(engine, only="trial", as_of=date(2026, 6, 1), reply_to=ASKER)
    assert job.response_url_fresh()
    assert not job.response_url_fresh(job.created_at + queue.RESPONSE_URL_LIFETIME)


def test_previews_drained_in_one_pass_each_get_their_own_impact(engine: Engine, workspace: Path):
    from commands import proposals
    from store.models import Proposal

    ws = load_workspace(workspace)
    asked = {}
    for rule, expected in (("plan = 'pro'", 1), ("plan in ('trial', 'pro')", 3)):
        view = proposals.propose(
            engine,
            ws,
            segment="trial",
            proposer="U333",
            kind="edit",
            changes={"rule": rule},
            reason="try it",
            queue_impact=ASKER,
        )
        assert view.impact_pending
        asked[view.id] = expected
    queue.queue_refresh(engine, only="trial", as_of=date(2026, 6, 1), reply_to=ASKER)
    archive = proposals.propose(
        engine,
        ws,
        segment="trial",
        proposer="U333",
        kind="archive",
        changes={},
        reason="done with it",
        queue_impact=ASKER,
    )
    asked[archive.id] = 0

    ran = queue.drain(engine, worker="w", load_workspace=lambda: load_workspace(workspace))

    assert [j.status for j in ran] == ["done"] * 4
    with session_scope(engine) as session:
        for proposal_id, size_after in asked.items():
            impact = session.get(Proposal, proposal_id).impact
            assert (impact["size_now"], impact["size_after"]) == (2, size_after)
