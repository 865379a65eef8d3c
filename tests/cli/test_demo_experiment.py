"""``segops demo`` end to end: the churn-risk experiment's readouts cover the true effect
built into the sample data, and its learning is recorded when the window closes."""

from __future__ import annotations

import re

import pytest
from sqlmodel import select

from store.db import make_engine, session_scope
from store.models import Experiment, Learning
from tests.cli.test_app import run


@pytest.mark.slow
def test_the_demo_experiment_finds_the_effect_built_into_the_data(
    tmp_path, monkeypatch, capsys
) -> None:
    out_dir = tmp_path / "demo"
    code, out, err = run(monkeypatch, capsys, "demo", "--out", str(out_dir))
    assert code == 0, err
    flat = re.sub(r"\s+", " ", out)
    assert "readout (interim): logins_30d +" in flat
    assert "readout (final): logins_30d +" in flat
    assert flat.count("true effect +1.50 inside the interval") == 2
    assert "learning recorded: #1 experiment on churn-risk" in flat
    engine = make_engine(f"sqlite:///{out_dir / 'segops.db'}")
    with session_scope(engine) as session:
        (experiment,) = session.exec(select(Experiment)).all()
        learning = session.exec(
            select(Learning).where(Learning.experiment_id == experiment.id)
        ).one()
    engine.dispose()
    assert experiment.status == "closed"
    low, high = experiment.readout["kpis"][0]["interval"]
    assert low <= 1.5 <= high
    assert learning.verdict == "validated" and learning.closed_on.isoformat() == "2026-10-31"
