"""Making a proposal: validate the change, measure its impact on the latest data and
store it as pending.
"""

from __future__ import annotations

from typing import Any

from sqlalchemy import Engine

from commands.errors import Refused
from commands.lookup import find_segment
from commands.proposals.definition import (
    active_definitions,
    build_definition,
    validate_definition,
)
from commands.proposals.text import USAGE
from commands.proposals.views import ProposalView, proposal_view
from segments import rules
from segments.errors import SegopsError
from segments.workspace import SegmentDef, Workspace
from store.db import session_scope
from store.models import Proposal, Segment, SegmentVersion

MAX_REASON = 2000


def _measure(
    engine: Engine,
    ws: Workspace | None,
    *,
    kind: str,
    current: SegmentDef,
    new: SegmentDef,
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
            engine, ws, segment=current.name, definition=current if kind == "archive" else new
        )
    except (SegopsError, OSError) as exc:
        return {"note": f"impact not measured: {exc}"}
    data = impact.to_dict()
    if kind == "archive":
        data.update(size_after=0, joined=0, left=data["size_now"])
    return data


def propose(
    engine: Engine,
    ws: Workspace | None,
    *,
    segment: str,
    proposer: str,
    kind: str,
    changes: dict[str, Any],
    reason: str,
) -> ProposalView:
    """Validate, measure and store a pending proposal; nothing is written on error."""
    reason = (reason or "").strip()
    proposer = (proposer or "").strip()
    if not proposer:
        raise SegopsError("a proposal needs a proposer")
    if len(reason) > MAX_REASON:
        raise SegopsError(
            f"the reason is too long ({len(reason)} characters, at most {MAX_REASON})"
        )
    with session_scope(engine) as session:
        row = find_segment(session, segment)
        if row.status == "archived":
            raise SegopsError(f"segment '{row.name}' is archived: nothing to propose")
        base = session.get(SegmentVersion, row.current_version_id)
        current = SegmentDef.model_validate(base.definition)
        definitions = active_definitions(session)
        base_version_id = base.id
    if not reason:
        if current.tier == "core":
            raise Refused(
                f"segment '{current.name}' is core: changing it needs a written reason "
                "(reason: WHY)"
            )
        raise SegopsError(f"a proposal needs a reason (reason: WHY): {USAGE}")
    new = build_definition(current, kind, changes)
    if new.fingerprint() == current.fingerprint():
        raise SegopsError(f"the proposal does not change segment '{current.name}'")
    validate_definition(ws, current=current, new=new, definitions=definitions)
    impact = (
        {"note": "persona changes do not move members"}
        if kind == "persona"
        else _measure(engine, ws, kind=kind, current=current, new=new)
    )
    stored_changes = _stored_changes(current, new, kind, changes)
    with session_scope(engine) as session:
        row = session.get(Segment, row.id)
        proposal = Proposal(
            segment_id=row.id,
            base_version_id=base_version_id,
            proposer=proposer,
            kind=kind,
            changes=stored_changes,
            reason=reason,
            impact=impact,
            status="pending",
        )
        session.add(proposal)
        session.flush()
        return proposal_view(session, proposal, row)


def _stored_changes(
    current: SegmentDef, new: SegmentDef, kind: str, changes: dict[str, Any]
) -> dict[str, Any]:
    """The changed fields in canonical form (rules as canonical text)."""
    before, after = current.canonical(), new.canonical()
    if kind == "persona":
        return {"persona": {k: after["persona"][k] for k in changes.get("persona", {})}}
    # Optional fields (a hypothesis) may be present on one side only.
    keys = [*after, *(k for k in before if k not in after)]
    return {k: after.get(k) for k in keys if after.get(k) != before.get(k)}
