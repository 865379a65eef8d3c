"""The worker's experiment and clinic jobs against a leading worker."""

from __future__ import annotations

from sqlmodel import select

from commands import experiments
from commands.learnings import list_learnings
from commands.settings import Settings
from store.db import session_scope
from store.models import Experiment, OutboxMessage
from tests import factories
from tests.commands.test_experiments import with_experiment
from tests.factories import START
from tests.worker.test_scheduler import make_worker  # noqa: F401  (fixture)
from worker.jobs import run_clinic_agenda, run_experiments_close


def test_the_daily_job_closes_experiments_whose_window_has_passed(
    make_worker,  # noqa: F811  (the fixture imported above)
    engine,
    tmp_path,
) -> None:
    fx = factories.build(tmp_path, accounts=1000, segments=with_experiment())
    fx.apply(engine)
    fx.refresh(engine, START)
    experiments.start(engine, fx.ws(), "smb", by="U111")
    worker = make_worker("a", settings=Settings(SEGOPS_WORKSPACE=str(fx.path)))
    worker.step()
    run_experiments_close()  # today is long after the 30-day window
    with session_scope(engine) as session:
        (experiment,) = session.exec(select(Experiment)).all()
    assert experiment.status == "closed" and experiment.readout["phase"] == "final"
    (entry,) = [e for e in list_learnings(engine, segment="smb") if e.kind == "experiment"]
    assert entry.verdict in ("validated", "refuted", "inconclusive") and entry.effect_text


def test_the_weekly_job_posts_the_agenda_only_with_a_channel(
    make_worker,  # noqa: F811  (the fixture imported above)
    engine,
    tmp_path,
) -> None:
    factories.applied(engine, tmp_path)
    worker = make_worker("a", settings=Settings())
    worker.step()
    run_clinic_agenda()
    with session_scope(engine) as session:
        assert session.exec(select(OutboxMessage)).all() == []
    worker.close()
    other = make_worker("b", settings=Settings(SEGOPS_CLINIC_CHANNEL="C999"))
    other.step()
    run_clinic_agenda()
    with session_scope(engine) as session:
        rows = session.exec(select(OutboxMessage).where(OutboxMessage.kind == "clinic_agenda"))
        assert {r.channel for r in rows} == {"C999"}
