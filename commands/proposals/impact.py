"""Measuring a proposal's impact: what its change would do to the latest data.

Measuring loads the whole dataset, so Slack leaves it to the worker (its ``preview``
job calls :func:`measure_impact`); the CLI and the demo measure in place.
"""

from __future__ import annotations

from typing import Any

from sqlalchemy import Engine, update

from commands.proposals.definition import build_definition
from segments import rules
from segments.errors import SegopsError
from segments.workspace import SegmentDef, Workspace
from store.db import session_scope
from store.models import Proposal, SegmentVersion


def measure(
    engine: Engine,
    ws: Workspace | None,
    *,
    kind: str,
    current: SegmentDef,
    new: SegmentDef,
    load: Any = None,
) -> dict[str, Any]:
    """Impact of the change on the latest data, or ``{"note": why not}``."""
    rule_changed = rules.to_text(rules.parse(new.rule)) != rules.to_text(rules.parse(current.rule))
    if kind != "archive" and not rule_changed:
        return {"note": "the rule is unchanged: membership stays the same"}
    if ws is None:
        return {"note": "no workspace configured: impact not measured"}
    from commands.refresh import preview

    try:
        impact = preview(
            engine,
            ws,
            segment=current.name,
            definition=current if kind == "archive" else new,
            load=load,
        )
    except (SegopsError, OSError) as exc:
        return {"note": f"impact not measured: {exc}"}
    data = impact.to_dict()
    if kind == "archive":
        data.update(size_after=0, joined=0, left=data["size_now"])
    return data


def measure_impact(
    engine: Engine, ws: Workspace | None, proposal_id: int, *, load: Any = None
) -> dict[str, Any]:
    """Measure proposal ``proposal_id``'s impact on the latest data and store it.

    Stored whatever the proposal's status meanwhile (a decided proposal keeps the
    figures it was decided without). Returns the impact (or ``{"note": why not}``).
    ``load``: see ``commands.refresh.preview``.
    """
    with session_scope(engine) as session:
        proposal = session.get(Proposal, proposal_id)
        if proposal is None:
            raise SegopsError(f"no proposal #{proposal_id}")
        base = session.get(SegmentVersion, proposal.base_version_id)
        current = SegmentDef.model_validate(base.definition)
        kind = proposal.kind
        changes = {"status": "archived"} if kind == "archive" else dict(proposal.changes)
    new = build_definition(current, kind, changes)
    impact = measure(engine, ws, kind=kind, current=current, new=new, load=load)
    with session_scope(engine) as session:
        session.exec(update(Proposal).where(Proposal.id == proposal_id).values(impact=impact))
    return impact


def moves_members(kind: str, current: SegmentDef, new: SegmentDef) -> bool:
    """Whether the change can move members (else there is nothing to measure)."""
    if kind == "archive":
        return True
    return rules.to_text(rules.parse(new.rule)) != rules.to_text(rules.parse(current.rule))
