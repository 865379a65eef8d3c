"""The worker: job store semantics, catalog sync, leadership through the lease, and two
real worker processes sharing one database."""

from __future__ import annotations

import os
import pickle
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from apscheduler.events import EVENT_JOB_EXECUTED, JobExecutionEvent
from apscheduler.schedulers.base import STATE_PAUSED
from slack_sdk import WebClient
from sqlalchemy import text
from sqlalchemy.exc import OperationalError
from sqlmodel import select

from commands.jobs import REFRESH_FAILED, RefreshJobResult, scheduled_refresh
from commands.settings import Settings
from segments.cadence import cadence_trigger
from segments.errors import SegopsError
from store import lease
from store.db import make_engine, session_scope, upgrade
from store.models import Alert, Segment, SlackEvent, utcnow
from worker import leader as worker_module
from worker.jobs import run_live_reconcile, run_prune_events, run_prune_jobs, run_refresh
from worker.leader import Worker, check, run_worker
from worker.scheduler import (
    JOB_OPTIONS,
    MOVED_FUNCTIONS,
    PERSISTENT,
    LeaderScheduler,
    build_scheduler,
    catalog_state,
    rename_moved_jobs,
    sync_jobs,
)

ROOT = Path(__file__).resolve().parents[2]
PROBE = f"{__name__}:record_run"
RUNS: list[str] = []
WED = datetime(2026, 3, 4, 10, 1, tzinfo=UTC)


def record_run(tag: str) -> None:
    """A job function named by import path, like the worker's own jobs."""
    RUNS.append(tag)


def wait_for(condition: Callable[[], object], *, timeout: float = 10.0, every: float = 0.05):
    """Poll ``condition`` until it is truthy; fail after ``timeout`` seconds."""
    deadline = time.monotonic() + timeout
    while True:
        value = condition()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"condition not met within {timeout} s")
        time.sleep(every)


@pytest.fixture
def make_worker(engine) -> Iterator[Callable[..., Worker]]:
    workers: list[Worker] = []

    def make(worker_id: str, **options) -> Worker:
        options.setdefault("ttl", 5.0)
        options.setdefault("renew_every", 0.2)
        settings = options.pop("settings", None) or Settings()
        worker = Worker(settings, engine=engine, worker_id=worker_id, **options)
        workers.append(worker)
        return worker

    yield make
    for worker in workers:
        worker.close()


@pytest.fixture
def paused(engine) -> Iterator[LeaderScheduler]:
    """A started, paused scheduler on the test database: jobs are stored, none run."""
    scheduler = build_scheduler(engine)
    scheduler.start(paused=True)
    yield scheduler
    scheduler.shutdown()


@pytest.fixture
def fx(engine, tmp_path):
    from tests import factories

    return factories.applied(engine, tmp_path, accounts=60)


# --- missed runs after downtime --------------------------------------------------------


def last_daily_slot(now: datetime) -> datetime:
    slot = now.replace(hour=6, minute=0, second=0, microsecond=0)
    return slot if slot <= now else slot - timedelta(days=1)


@pytest.mark.parametrize(
    ("options", "expected_runs"),
    [
        pytest.param(JOB_OPTIONS, 1, id="worker-options-run-once"),
        pytest.param({**JOB_OPTIONS, "coalesce": False}, 5, id="without-coalesce-every-slot"),
        pytest.param({**JOB_OPTIONS, "misfire_grace_time": 1}, 0, id="short-grace-skips"),
    ],
)
def test_a_job_days_overdue_runs_once_when_the_scheduler_starts(engine, options, expected_runs):
    tag = f"overdue-{expected_runs}-{time.monotonic_ns()}"
    overdue = last_daily_slot(datetime.now(UTC)) - timedelta(days=4)  # five slots missed
    down = build_scheduler(engine)
    down.start(paused=True)
    down.add_job(
        PROBE,
        cadence_trigger("daily"),
        id="refresh:probe",
        args=[tag],
        jobstore=PERSISTENT,
        next_run_time=overdue,
        **options,
    )
    down.shutdown()

    restarted = build_scheduler(engine)
    restarted.start()
    try:
        wait_for(
            lambda: restarted.get_job("refresh:probe").next_run_time > datetime.now(UTC),
            timeout=10,
        )
    finally:
        restarted.shutdown(wait=True)  # lets submitted runs finish
    assert RUNS.count(tag) == expected_runs


# --- catalog sync ----------------------------------------------------------------------


def test_sync_adds_one_refresh_job_per_active_segment_on_its_cadence(engine, fx, paused):
    result = sync_jobs(paused, catalog_state(engine)[1])
    assert sorted(result.added) == ["engaged-trial", "enterprise", "smb", "trial"]
    job = paused.get_job("refresh:enterprise")
    assert repr(job.trigger) == repr(cadence_trigger("weekly"))
    assert (job.func_ref, job.args, job.executor) == (
        "worker.jobs:run_refresh",
        ("enterprise",),
        "refresh",
    )
    assert (job.coalesce, job.max_instances, job.misfire_grace_time) == (True, 1, None)


def test_sync_leaves_an_unchanged_job_and_its_missed_run_alone(engine, fx, paused):
    cadences = catalog_state(engine)[1]
    sync_jobs(paused, cadences)
    missed = datetime.now(UTC) - timedelta(days=3)
    paused.modify_job("refresh:trial", next_run_time=missed)
    assert sync_jobs(paused, cadences).added == []
    assert paused.get_job("refresh:trial").next_run_time == missed


def update_catalog(engine, fx, *, cadence: dict[str, str], drop: str, add: dict) -> None:
    for segment in fx.segments:
        if segment["name"] in cadence:
            segment["cadence"] = cadence[segment["name"]]
    fx.segments = [s for s in fx.segments if s["name"] != drop] + [add]
    fx.write_workspace()
    fx._ws = None
    fx.apply(engine, reason="reshuffle")


def test_the_sync_job_follows_catalog_changes_without_a_restart(engine, fx, make_worker):
    worker = make_worker("a")
    assert worker.step()
    assert {j.id for j in worker.scheduler.get_jobs(jobstore=PERSISTENT)} >= {
        "refresh:trial",
        "refresh:smb",
    }
    assert worker.sync() is None  # fingerprint unchanged: nothing to do

    new = {
        **fx.segment("trial"),
        "name": "late-trial",
        "title": "Late trials",
        "cadence": "0 7 * * 0",
    }
    update_catalog(engine, fx, cadence={"trial": "daily"}, drop="smb", add=new)
    result = worker.sync()
    assert (result.added, result.rescheduled, result.removed) == (
        ["late-trial"],
        ["trial"],
        ["smb"],
    )
    jobs = {j.id: j for j in worker.scheduler.get_jobs(jobstore=PERSISTENT)}
    assert "refresh:smb" not in jobs
    assert repr(jobs["refresh:trial"].trigger) == repr(cadence_trigger("daily"))
    assert jobs["refresh:late-trial"].trigger.get_next_fire_time(None, WED) == datetime(
        2026, 3, 8, 7, 0, tzinfo=UTC
    )
    assert worker.sync() is None


def test_a_refresh_does_not_change_the_catalog_fingerprint(engine, fx):
    before = catalog_state(engine)[0]
    with session_scope(engine) as session:
        segment = session.exec(select(Segment).where(Segment.name == "trial")).one()
        segment.updated_at = datetime.now(UTC) + timedelta(hours=1)
        session.add(segment)
    assert catalog_state(engine)[0] == before


def test_the_sync_job_runs_every_30_seconds(make_worker):
    worker = make_worker("a")
    worker.step()
    job = worker.scheduler.get_job("catalog-sync", jobstore="local")
    assert job.trigger.interval == timedelta(seconds=30)


# --- built-in jobs ---------------------------------------------------------------------


def test_housekeeping_jobs_fire_at_their_documented_times(make_worker):
    worker = make_worker("a")
    worker.step()
    jobs = {j.id: j for j in worker.scheduler.get_jobs(jobstore=PERSISTENT)}
    fire = {name: jobs[name].trigger.get_next_fire_time(None, WED) for name in jobs}
    assert fire == {
        "feedback-digest": datetime(2026, 3, 5, 8, 0, tzinfo=UTC),
        "proposal-reminders": datetime(2026, 3, 4, 11, 0, tzinfo=UTC),
        "catalog-health": datetime(2026, 3, 9, 9, 0, tzinfo=UTC),  # Monday
        "prune-events": datetime(2026, 3, 5, 3, 30, tzinfo=UTC),
        "experiments-close": datetime(2026, 3, 5, 7, 0, tzinfo=UTC),
        "clinic-agenda": datetime(2026, 3, 9, 9, 30, tzinfo=UTC),  # Monday
        "live-reconcile": datetime(2026, 3, 4, 10, 15, tzinfo=UTC),
        "prune-jobs": datetime(2026, 3, 5, 3, 45, tzinfo=UTC),
    }
    assert all(j.coalesce and j.misfire_grace_time is None for j in jobs.values())


def test_the_prune_job_forgets_slack_events_past_the_retry_window(make_worker, engine):
    old, recent = utcnow() - timedelta(days=3), utcnow() - timedelta(hours=1)
    with session_scope(engine) as session:
        session.add(SlackEvent(event_id="Ev-old", received_at=old))
        session.add(SlackEvent(event_id="Ev-new", received_at=recent))
    worker = make_worker("a")
    worker.step()
    run_prune_events()
    with session_scope(engine) as session:
        assert session.exec(select(SlackEvent.event_id)).all() == ["Ev-new"]


def test_the_reconcile_job_alerts_on_a_live_segment_out_of_step(make_worker, engine, tmp_path):
    from commands import live
    from tests.live import build, event, incoming

    setup = build(tmp_path)
    ws = setup.applied(engine)
    rt = live.load_runtime(engine, ws, lateness=timedelta(hours=1), today=setup.now.date())
    live.build(engine, rt, now=setup.now)
    logins = [event(f"j{i}", "a1", "login", setup.now) for i in range(2)]  # never in the batch
    live.apply_events(engine, rt, incoming(*logins), now=setup.now)
    from commands.refresh import refresh

    setup.write_events([event("j9", "a0", "view", setup.now)])
    refresh(engine, ws, as_of=setup.now.date(), notify=False)
    worker = make_worker("a")
    worker.step()
    run_live_reconcile()
    with session_scope(engine) as session:
        alert = session.exec(select(Alert).where(Alert.kind == "live_divergence")).one()
    assert alert.details["ids"] == ["a1"]


def test_the_queue_is_drained_every_2_seconds(make_worker):
    worker = make_worker("a")
    worker.step()
    job = worker.scheduler.get_job("queue", jobstore="local")
    assert job.trigger.interval == timedelta(seconds=2)


def test_the_prune_job_forgets_jobs_finished_and_answered_a_week_ago(make_worker, engine):
    from store.models import Job

    long_ago, recent = utcnow() - timedelta(days=8), utcnow() - timedelta(days=1)
    with session_scope(engine) as session:
        for name, finished, replied in (
            ("old", long_ago, long_ago),
            ("old-unanswered", long_ago, None),
            ("recent", recent, recent),
        ):
            session.add(
                Job(
                    kind="refresh",
                    args={"only": name},
                    status="done",
                    finished_at=finished,
                    replied_at=replied,
                )
            )
        session.add(Job(kind="refresh", args={"only": "pending"}, created_at=long_ago))
    worker = make_worker("a")
    worker.step()
    run_prune_jobs()
    with session_scope(engine) as session:
        left = sorted(job.args["only"] for job in session.exec(select(Job)).all())
    assert left == ["old-unanswered", "pending", "recent"]


def test_jobs_stored_under_a_moved_function_path_keep_their_pending_run(engine):
    missed = datetime(2026, 3, 1, 6, 0, tzinfo=UTC)
    paused = build_scheduler(engine)
    paused.start(paused=True)
    paused.add_job(
        PROBE, cadence_trigger("daily"), id="refresh:trial", args=["old"], jobstore=PERSISTENT
    )
    paused.modify_job("refresh:trial", next_run_time=missed)
    paused.shutdown(wait=False)
    old_path = next(iter(MOVED_FUNCTIONS))
    with engine.begin() as connection:  # as a previous release stored it
        blob = connection.execute(text("SELECT job_state FROM segops_jobs")).scalar_one()
        state = pickle.loads(blob)
        state["func"] = old_path
        connection.execute(
            text("UPDATE segops_jobs SET job_state = :s"), {"s": pickle.dumps(state)}
        )
    assert rename_moved_jobs(engine) == 1
    scheduler = build_scheduler(engine)
    scheduler.start(paused=True)
    try:
        job = scheduler.get_job("refresh:trial", jobstore=PERSISTENT)
        assert (job.func_ref, job.next_run_time) == (MOVED_FUNCTIONS[old_path], missed)
    finally:
        scheduler.shutdown(wait=False)
    assert rename_moved_jobs(engine) == 0


def test_without_a_slack_token_nothing_is_delivered(make_worker):
    worker = make_worker("a")
    worker.step()
    assert worker.scheduler.get_job("deliver", jobstore="local") is None


def test_with_a_slack_client_the_outbox_is_delivered_every_5_seconds(make_worker):
    client = WebClient(token="xoxb-test", base_url="http://127.0.0.1:9/")
    worker = make_worker("a", client=client)
    worker.step()
    job = worker.scheduler.get_job("deliver", jobstore="local")
    assert job.trigger.interval == timedelta(seconds=5)


# --- retries ---------------------------------------------------------------------------


def test_a_failed_refresh_gets_a_retry_job_until_it_succeeds(engine, fx, make_worker):
    worker = make_worker("a")
    worker.step()
    retry_at = datetime.now(UTC) + timedelta(minutes=10)
    worker.after_refresh(RefreshJobResult("trial", "failed", failures=1, retry_at=retry_at))
    job = worker.scheduler.get_job("retry:trial:1")
    assert job.next_run_time == retry_at
    assert (job.func_ref, job.args, job.executor) == (
        "worker.jobs:run_refresh",
        ("trial",),
        "refresh",
    )
    worker.after_refresh(RefreshJobResult("trial", "ok"))
    assert worker.scheduler.get_job("retry:trial:1") is None


def test_no_retry_job_when_the_regular_run_comes_first(engine, fx, make_worker):
    worker = make_worker("a")
    worker.step()
    regular = worker.scheduler.get_job("refresh:enterprise").next_run_time
    late = RefreshJobResult(
        "enterprise", "failed", failures=2, retry_at=regular + timedelta(hours=1)
    )
    worker.after_refresh(late)
    assert worker.scheduler.get_job("retry:enterprise:2") is None


def test_the_refresh_job_records_a_failure_and_schedules_its_retry(
    engine, fx, make_worker, tmp_path
):
    settings = Settings(SEGOPS_WORKSPACE=str(tmp_path / "missing.yaml"))
    worker = make_worker("a", settings=settings)
    worker.step()
    run_refresh("trial")
    with session_scope(engine) as session:
        alert = session.exec(select(Alert).where(Alert.kind == REFRESH_FAILED)).one()
    assert alert.details["failures"] == 1
    assert "workspace file not found" in alert.details["last_error"]
    assert worker.scheduler.get_job("retry:trial:1") is not None


def test_a_new_leader_plans_the_retries_a_previous_leader_had_planned(
    engine, fx, make_worker, tmp_path
):
    def broken():
        raise SegopsError("workspace.yaml: workspace file not found")

    failed = scheduled_refresh(engine, broken, "smb", now=datetime.now(UTC))
    worker = make_worker("a")
    worker.step()
    job = worker.scheduler.get_job("retry:smb:1")
    assert job.next_run_time == failed.retry_at


# --- leadership ------------------------------------------------------------------------


def test_only_the_lease_holder_runs_a_scheduler(make_worker):
    leader, standby = make_worker("a"), make_worker("b")
    assert leader.step() and leader.leading
    assert not standby.step()
    assert standby.scheduler is None


def test_a_standby_takes_over_once_the_silent_leader_s_lease_expires(make_worker):
    ttl = 1.0
    leader, standby = make_worker("a", ttl=ttl), make_worker("b", ttl=ttl)
    renewed = time.monotonic()  # the lease's expiry is counted from within this call
    leader.step()
    wait_for(standby.step, timeout=ttl + 5)
    assert time.monotonic() - renewed >= ttl
    assert standby.leading
    # the old leader wakes up, cannot renew, and pauses at once
    assert not leader.step()
    assert leader.scheduler.state == STATE_PAUSED


def test_a_leader_pauses_when_renewal_fails(make_worker, monkeypatch):
    worker = make_worker("a")
    worker.step()

    def unreachable(*args, **kwargs):
        raise OperationalError("SELECT 1", {}, Exception("server closed the connection"))

    monkeypatch.setattr(worker_module.lease, "acquire", unreachable)
    assert not worker.step()
    assert worker.scheduler.state == STATE_PAUSED


def test_a_leader_that_could_not_renew_in_time_submits_no_job(make_worker):
    worker = make_worker("a", ttl=0.6)
    worker.step()
    wait_for(lambda: not worker.lease_valid(), timeout=5)
    tag = f"late-{time.monotonic_ns()}"
    worker.scheduler.add_job(
        record_run, "date", run_date=datetime.now(UTC), args=[tag], jobstore="local"
    )
    wait_for(lambda: worker.scheduler.state == STATE_PAUSED, timeout=5)
    assert tag not in RUNS


def test_close_releases_the_lease_for_an_immediate_takeover(engine, make_worker):
    leader, standby = make_worker("a"), make_worker("b")
    leader.step()
    leader.close()
    assert leader.scheduler is None
    assert standby.step()


# --- segops worker ---------------------------------------------------------------------


def test_run_worker_needs_a_workspace():
    with pytest.raises(SegopsError, match="workspace"):
        run_worker(Settings())


def test_run_worker_leads_until_stopped_then_releases_the_lease(engine, fx):
    settings = Settings(
        DATABASE_URL=engine.url.render_as_string(hide_password=False),
        SEGOPS_WORKSPACE=str(fx.path),
    )
    stop = threading.Event()
    thread = threading.Thread(
        target=run_worker,
        args=(settings,),
        kwargs={"stop": stop, "worker_id": "w", "ttl": 5.0, "renew_every": 0.2},
    )
    thread.start()
    try:
        wait_for(lambda: lease.current(engine, name="scheduler") or None, timeout=20)
        held = lease.current(engine, name="scheduler")
        assert held.holder == "w" and held.expires_at > datetime.now(UTC)
    finally:
        stop.set()
        thread.join(timeout=20)
    assert not thread.is_alive()
    assert lease.current(engine, name="scheduler").expires_at <= datetime.now(UTC)


# --- two worker processes --------------------------------------------------------------

PROBE_TTL = 2.0
PROBE_RENEW = 0.25
PROBE_INTERVAL = 0.5


def probe_main(url: str, worker_id: str, log_path: str) -> None:
    """A worker process whose only job appends ``worker scheduled_time wall_time`` per run."""
    import logging

    logging.basicConfig(level=logging.WARNING)
    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stop.set())

    def record(event: JobExecutionEvent) -> None:
        if event.job_id == "probe":
            line = f"{worker_id} {event.scheduled_run_time.timestamp():.6f} {time.time():.6f}\n"
            with open(log_path, "a") as log:
                log.write(line)

    def configure(scheduler: LeaderScheduler) -> None:
        if scheduler.get_job("probe", jobstore=PERSISTENT) is None:
            scheduler.add_job(
                PROBE,
                "interval",
                seconds=PROBE_INTERVAL,
                id="probe",
                args=["probe"],
                jobstore=PERSISTENT,
                **JOB_OPTIONS,
            )
        scheduler.add_listener(record, EVENT_JOB_EXECUTED)

    worker = Worker(
        Settings(DATABASE_URL=url),
        worker_id=worker_id,
        ttl=PROBE_TTL,
        renew_every=PROBE_RENEW,
        configure=configure,
    )
    with open(log_path + ".ready", "a") as ready:
        ready.write(worker_id + "\n")
    worker.run(stop)


def read_runs(path: Path) -> list[tuple[str, float, float]]:
    if not path.exists():
        return []
    rows = [line.split() for line in path.read_text().splitlines() if line.strip()]
    return [(w, float(s), float(t)) for w, s, t in rows]


def spawn(url: str, worker_id: str, log: Path) -> subprocess.Popen:
    code = f"from {__name__} import probe_main; probe_main(*__import__('sys').argv[1:])"
    return subprocess.Popen(
        [sys.executable, "-c", code, url, worker_id, str(log)],
        cwd=ROOT,
        env={**os.environ, "PYTHONPATH": str(ROOT)},
    )


@pytest.fixture(params=["sqlite", pytest.param("postgresql", marks=pytest.mark.postgres)])
def shared_url(request, tmp_path) -> str:
    if request.param == "sqlite":
        return request.getfixturevalue("db_url")
    url = request.getfixturevalue("pg_url")
    upgrade(url)
    return url


@pytest.mark.slow
def test_two_worker_processes_run_each_slot_once_and_survive_kill_9(shared_url, tmp_path):
    log = tmp_path / "runs.log"
    procs = {name: spawn(shared_url, name, log) for name in ("w1", "w2")}
    try:
        ready = Path(str(log) + ".ready")
        wait_for(lambda: ready.exists() and len(ready.read_text().split()) == 2, timeout=30)
        wait_for(lambda: len(read_runs(log)) >= 3, timeout=20)
        time.sleep(4 * PROBE_RENEW)  # the standby has polled the lease several times
        before = read_runs(log)
        leaders = {w for w, _, _ in before}
        assert len(leaders) == 1, f"two workers ran the schedule: {before}"
        leader = leaders.pop()
        standby = "w2" if leader == "w1" else "w1"

        procs[leader].send_signal(signal.SIGKILL)
        procs[leader].wait(timeout=10)
        killed_at = time.time()
        taken = wait_for(
            lambda: [r for r in read_runs(log) if r[0] == standby][:1],
            timeout=PROBE_TTL + PROBE_RENEW + 15,
        )
        wait_for(lambda: len([r for r in read_runs(log) if r[0] == standby]) >= 3, timeout=10)
        procs[standby].send_signal(signal.SIGTERM)
        assert procs[standby].wait(timeout=20) == 0
    finally:
        for proc in procs.values():
            if proc.poll() is None:
                proc.kill()
                proc.wait(timeout=10)

    runs = read_runs(log)
    slots = [s for _, s, _ in runs]
    assert len(slots) == len(set(slots)), "a scheduled time ran twice"
    first = min(slots)
    assert all(
        abs((s - first) / PROBE_INTERVAL - round((s - first) / PROBE_INTERVAL)) < 1e-3
        for s in slots
    )
    last_of_leader = max(s for w, s, _ in runs if w == leader)
    assert min(s for w, s, _ in runs if w == standby) > last_of_leader
    takeover = taken[0][2] - killed_at
    assert takeover < PROBE_TTL + PROBE_RENEW + 3.0, f"takeover took {takeover:.1f} s"

    engine = make_engine(shared_url)
    try:
        held = lease.current(engine, name="scheduler")
    finally:
        engine.dispose()
    assert held.holder == standby
    assert held.expires_at <= datetime.now(UTC)  # released on SIGTERM


def test_the_delivery_client_leaves_retries_to_the_outbox(engine):
    """The SDK's blind retry after a connection error could post twice."""
    from bot.app import build_client
    from commands.settings import Settings

    settings = Settings(SLACK_BOT_TOKEN="xoxb-test", SLACK_API_URL="http://127.0.0.1:9/api/")
    worker = Worker(settings, engine=engine)
    assert worker._delivery_client().retry_handlers == []
    assert build_client(settings).retry_handlers != []  # the web app keeps the SDK default


# --- a leader that leads ----------------------------------------------------------------


def _hold_write_lock(engine, seconds: float) -> threading.Thread:
    """Another connection holds SQLite's write lock for ``seconds`` (longer than its 5 s
    busy wait, so the job store's writes fail meanwhile)."""
    other = make_engine(engine.url)
    taken = threading.Event()

    def hold() -> None:
        with other.connect() as connection:
            connection.exec_driver_sql("BEGIN IMMEDIATE")
            taken.set()
            time.sleep(seconds)
            connection.rollback()
        other.dispose()

    thread = threading.Thread(target=hold)
    thread.start()
    assert taken.wait(10)
    return thread


@pytest.mark.slow
@pytest.mark.parametrize("engine", ["sqlite"], indirect=True)
def test_jobs_resume_after_the_job_store_s_database_was_locked(make_worker, engine):
    RUNS.clear()

    def every_second(scheduler) -> None:
        scheduler.add_job(
            PROBE,
            "interval",
            seconds=1,
            id="probe",
            args=["tick"],
            jobstore=PERSISTENT,
            **JOB_OPTIONS,
        )

    worker = make_worker("a", configure=every_second, ttl=30.0, renew_every=0.5)
    assert worker.step()
    wait_for(lambda: len(RUNS) >= 1)
    holder = _hold_write_lock(engine, seconds=7)
    holder.join()
    ran = len(RUNS)
    wait_for(lambda: len(RUNS) >= ran + 2, timeout=20)
    assert worker.scheduler.alive and worker.leading


def test_a_leader_whose_scheduler_stopped_gives_the_lease_to_the_standby(make_worker, engine):
    leader, standby = make_worker("a"), make_worker("b")
    assert leader.step() and not standby.step()
    leader.scheduler.shutdown(wait=False)  # the scheduler thread is gone
    wait_for(lambda: not leader.scheduler.alive)
    assert not leader.step()  # it does not keep renewing a lease it cannot use
    assert lease.current(engine, name="scheduler").expires_at <= utcnow()
    assert standby.step() and standby.leading
    assert not leader.step()  # and it stands by now


def test_the_health_check_sees_a_live_leader_and_its_jobs_then_none(make_worker, engine):
    settings = Settings(DATABASE_URL=engine.url.render_as_string(hide_password=False))
    assert check(settings).healthy is False and check(settings).leader is None
    worker = make_worker("a")
    assert worker.step()
    health = check(settings)
    assert health.healthy and health.leader == "a"
    assert {"catalog-health", "feedback-digest", "prune-events"} <= {j.id for j in health.jobs}
    assert not any(j.overdue for j in health.jobs)
    worker.close()
    after = check(settings)
    assert not after.healthy and after.to_dict()["leader"] == "a"


@pytest.mark.parametrize(
    ("environment", "message"),
    [
        ({"SEGOPS_ENGINE": "sql"}, "engine 'sql' needs every source"),
        (
            {"SEGOPS_ENGINE": "duckdb", "SEGOPS_DUCKDB_MEMORY_LIMIT": "lots"},
            "memory limit 'lots' (SEGOPS_DUCKDB_MEMORY_LIMIT)",
        ),
    ],
)
def test_the_refresh_job_runs_on_the_engine_of_the_settings(
    engine, fx, make_worker, environment, message
):
    worker = make_worker("a", settings=Settings(SEGOPS_WORKSPACE=str(fx.path), **environment))
    worker.step()
    run_refresh("trial")
    with session_scope(engine) as session:
        alert = session.exec(select(Alert).where(Alert.kind == REFRESH_FAILED)).one()
    assert message in alert.details["last_error"]


def test_the_refresh_job_publishes_on_duckdb_with_the_settings_memory_limit(
    engine, tmp_path, make_worker
):
    from tests import factories

    # The job refreshes as of today, long after the sample data ends: no freshness limit.
    fx = factories.applied(engine, tmp_path, accounts=60, quality={"max_age_days": 100_000})
    settings = Settings(
        SEGOPS_WORKSPACE=str(fx.path), SEGOPS_ENGINE="duckdb", SEGOPS_DUCKDB_MEMORY_LIMIT="1GB"
    )
    worker = make_worker("a", settings=settings)
    worker.step()
    run_refresh("trial")
    with session_scope(engine) as session:
        segment = session.exec(select(Segment).where(Segment.name == "trial")).one()
        assert segment.current_result_id is not None
        assert session.exec(select(Alert).where(Alert.kind == REFRESH_FAILED)).first() is None
