"""The demo's experiment: a win-back holdout on ``churn-risk`` with a real effect.

After the first refresh the demo starts the experiment the sample workspace declares
(20 % of the members held out, logins expected to rise) and writes the effect into the
product export: about half the treated accounts log in three more times in September
and in October (:func:`cli.demo.effect.add_logins`), so the true effect on
``logins_30d`` is +1.5 per treated account. The September refresh shows the
always-valid interim readout; after the October one the window has closed, the
experiment is closed and its learning records the fixed-horizon effect.
"""

from __future__ import annotations

from datetime import date
from pathlib import Path

from rich.console import Console
from sqlalchemy import Engine

from cli.demo.effect import add_logins
from commands import experiments
from commands.stats import members
from segments.workspace import Workspace
from store.db import session_scope
from store.entities import entity_keys

SEGMENT = "churn-risk"


def start(
    engine: Engine, ws: Workspace, data_dir: Path, months: list[date], console: Console
) -> float:
    """Start the experiment and write its effect; return the true effect."""
    view = experiments.start(engine, ws, SEGMENT, by="U0AAACSM1")
    held = experiments.holdout_ids(engine, SEGMENT)
    with session_scope(engine) as session:
        keys = entity_keys(session)
    held_keys = set(keys[list(held)])
    treated = [key for key in members(engine, SEGMENT) if key not in held_keys]
    true_effect = add_logins(data_dir, treated, months=months)
    plan = view.plan
    console.print(
        f"experiment #{view.id} on {SEGMENT}: {plan['needed']:,} members needed for a "
        f"{view.mde:.0%} rise of {view.kpi}, {plan['available']:,} available; "
        f"{len(held):,} held out until {view.ends_on}",
        markup=False,
        highlight=False,
    )
    return true_effect


def read(engine: Engine, ws: Workspace, as_of: date, true_effect: float, console: Console) -> None:
    """The interim readout, or at the window's end the final one and its learning."""
    from commands.learnings import list_learnings

    closed = experiments.close_due(engine, ws, as_of=as_of)
    result = closed[0] if closed else experiments.readout(engine, ws, segment=SEGMENT, as_of=as_of)
    low, high = result.kpis[0]["interval"] if result.kpis else (None, None)
    covered = low is not None and low <= true_effect <= high
    console.print(
        f"readout ({result.phase}): {result.summary}; true effect {true_effect:+.2f} "
        f"{'inside' if covered else 'outside'} the interval",
        markup=False,
        highlight=False,
    )
    if closed:
        learning = list_learnings(engine, segment=SEGMENT, limit=1)[0]
        console.print(f"learning recorded: {learning.line}", markup=False, highlight=False)
