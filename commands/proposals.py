"""Change proposals: propose an edit, rename, archive or persona change; decide it once.

The path of one proposal (DESIGN.md):

1. :func:`propose` builds the new definition from the segment's current version plus
   the requested changes, validates it exactly like ``apply`` does (the catalog's
   active definitions with this one replaced go through ``check_workspace``), measures
   its impact on the latest data (``commands.refresh.preview``) and stores a pending
   :class:`store.models.Proposal` against the current version.
2. The Slack layer posts it and calls :func:`set_message`; a reaction finds it again
   with :func:`find_by_message`.
3. :func:`decide` lets only the owner or a listed approver decide, never the proposer
   alone (the owner may approve their own change on a non-core segment). The decision
   is claimed with ``UPDATE proposal SET status=... WHERE id=:id AND status='pending'``
   and the segment's version is checked with a conditional update in the same
   transaction, so across any number of processes exactly one decision wins; the loser
   gets :class:`AlreadyDecided`. A proposal whose segment changed since it was made is
   marked stale and refused. Approving records a new ``SegmentVersion`` (author =
   proposer, approver = decider, reason = the proposal's reason) in that transaction.

The Slack form parsed by :func:`parse_proposal_text`::

    trial rule: plan = 'trial' and seats >= 3 reason: reps ignore one-seat trials
    trial rename: trials reason: plural like the others
    trial archive reason: replaced by self-serve
"""

from __future__ import annotations

import html
import re
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

from pydantic import ValidationError
from sqlalchemy import Engine, update
from sqlmodel import Session, select

from commands.catalog import record_version
from commands.errors import AlreadyDecided, NotAuthorised, Refused, StaleProposal, person
from commands.lookup import find_segment
from segments import rules
from segments.errors import SegopsError
from segments.workspace import SegmentDef, Workspace, WorkspaceError, check_workspace
from store.db import session_scope
from store.models import Proposal, Segment, SegmentVersion

KINDS = ("edit", "rename", "archive", "persona")
VIAS = ("button", "reaction", "cli")
CHANGE_KIND = {"edit": "edit", "persona": "edit", "rename": "rename", "archive": "archive"}
MAX_REASON = 2000
USAGE = (
    "usage: NAME rule: NEW RULE reason: WHY | NAME rename: NEW-NAME reason: WHY "
    "| NAME archive reason: WHY"
)
# Fields an edit may change; the name and status change through rename and archive.
EDITABLE = frozenset(SegmentDef.model_fields) - {"name", "status"}


# --- parsing the Slack form ------------------------------------------------------------


@dataclass(frozen=True)
class ProposalRequest:
    """A parsed ``/segment propose`` text."""

    segment: str
    kind: str
    changes: dict[str, Any]
    reason: str


_QUOTES = str.maketrans({"\u2018": "'", "\u2019": "'", "\u201c": '"', "\u201d": '"'})
_HEAD = re.compile(r"\s*(?P<name>[^\s:]+)\s+(?P<verb>rule|rename|archive)\b\s*:?", re.I)
_REASON = re.compile(r"reason\s*:", re.I)


def _find_reason(text: str) -> int | None:
    """Offset of the first ``reason:`` outside quotes, or None."""
    quote: str | None = None
    i = 0
    while i < len(text):
        ch = text[i]
        if quote:
            if ch == "\\":
                i += 2
                continue
            if ch == quote:
                quote = None
        elif ch in "'\"`":
            quote = ch
        elif (i == 0 or not text[i - 1].isalnum()) and _REASON.match(text, i):
            return i
        i += 1
    return None


def parse_proposal_text(text: str) -> ProposalRequest:
    """Parse ``NAME rule: RULE reason: WHY`` (or ``rename: NEW`` / ``archive``)."""
    # Slack escapes &, < and > in command text and may curl quotes.
    cleaned = html.unescape(text or "").translate(_QUOTES).strip()
    head = _HEAD.match(cleaned)
    if not head:
        raise SegopsError(f"cannot read the proposal: {USAGE}")
    name, verb = head.group("name"), head.group("verb").lower()
    body = cleaned[head.end() :]
    at = _find_reason(body)
    if at is None:
        raise SegopsError(f"a proposal needs a reason ('reason: WHY'): {USAGE}")
    value, reason = body[:at].strip(), body[at:].split(":", 1)[1].strip()
    if not reason:
        raise SegopsError(f"the reason is empty: {USAGE}")
    if verb == "rule":
        if not value:
            raise SegopsError(f"the new rule is empty: {USAGE}")
        return ProposalRequest(name, "edit", {"rule": value}, reason)
    if verb == "rename":
        if not value or len(value.split()) != 1:
            raise SegopsError(f"rename needs one new name: {USAGE}")
        return ProposalRequest(name, "rename", {"name": value}, reason)
    if value:
        raise SegopsError(f"unexpected text after 'archive': {value!r}: {USAGE}")
    return ProposalRequest(name, "archive", {"status": "archived"}, reason)


# --- views -----------------------------------------------------------------------------


@dataclass
class ProposalView:
    """A stored proposal with what a reviewer needs to decide."""

    id: int
    segment: str
    title: str
    tier: str
    owner: str
    approvers: list[str]
    kind: str
    proposer: str
    reason: str
    changes: dict[str, Any]
    impact: dict[str, Any] | None
    impact_note: str | None
    status: str
    base_version: int
    created_at: str
    decided_by: str | None = None
    decided_at: str | None = None
    decision_via: str | None = None
    channel: str | None = None
    message_ts: str | None = None
    applied_version: int | None = None
    segment_channel: str | None = None

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


@dataclass
class DecisionView:
    """The outcome of a decision: enough for Slack to update the message in place."""

    proposal_id: int
    segment: str
    kind: str
    status: str
    decided_by: str | None
    decided_at: str | None
    decision_via: str | None
    channel: str | None
    message_ts: str | None
    version: int | None = None
    proposer: str | None = None
    notes: list[str] = field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def _iso(value: datetime | None) -> str | None:
    return value.isoformat(timespec="seconds") if value else None


def _impact(stored: dict[str, Any]) -> tuple[dict[str, Any] | None, str | None]:
    if stored and "size_now" in stored:
        return {k: stored[k] for k in ("size_now", "size_after", "joined", "left", "as_of")}, None
    return None, (stored or {}).get("note")


def _view(session: Session, proposal: Proposal, segment: Segment) -> ProposalView:
    versions = {
        v.id: v.version
        for v in session.exec(
            select(SegmentVersion).where(
                SegmentVersion.id.in_(  # type: ignore[union-attr]
                    [i for i in (proposal.base_version_id, proposal.applied_version_id) if i]
                )
            )
        ).all()
    }
    impact, note = _impact(proposal.impact)
    return ProposalView(
        id=proposal.id,
        segment=segment.name,
        title=segment.title,
        tier=segment.tier,
        owner=segment.owner,
        approvers=list(segment.approvers or []),
        kind=proposal.kind,
        proposer=proposal.proposer,
        reason=proposal.reason,
        changes=dict(proposal.changes),
        impact=impact,
        impact_note=note,
        status=proposal.status,
        base_version=versions.get(proposal.base_version_id, 0),
        created_at=_iso(proposal.created_at) or "",
        decided_by=proposal.decided_by,
        decided_at=_iso(proposal.decided_at),
        decision_via=proposal.decision_via,
        channel=proposal.channel,
        message_ts=proposal.message_ts,
        applied_version=versions.get(proposal.applied_version_id)
        if proposal.applied_version_id
        else None,
        segment_channel=segment.channel,
    )


# --- building and validating the proposed definition -----------------------------------


def _field_error(exc: ValidationError) -> str:
    err = exc.errors()[0]
    where = ".".join(str(p) for p in err["loc"]) or "definition"
    return f"{where}: {err['msg'].removeprefix('Value error, ')}"


def build_definition(current: SegmentDef, kind: str, changes: dict[str, Any]) -> SegmentDef:
    """The definition ``current`` would become under ``changes`` (validated fields)."""
    name = current.name
    if kind not in KINDS:
        raise SegopsError(f"proposal kind {kind!r} must be one of {', '.join(KINDS)}")
    if not isinstance(changes, dict):
        raise SegopsError("changes must be a mapping of field -> new value")
    allowed = {
        "edit": EDITABLE,
        "rename": {"name"},
        "archive": {"status"},
        "persona": {"persona"},
    }[kind]
    unknown = sorted(set(changes) - allowed)
    if unknown:
        raise SegopsError(
            f"a {kind} proposal cannot change {', '.join(unknown)} "
            f"(it may change {', '.join(sorted(allowed))})"
        )
    if kind == "archive":
        if current.status == "archived":
            raise SegopsError(f"segment '{name}' is already archived")
        changes = {"status": "archived"}
    if kind == "rename" and not str(changes.get("name") or "").strip():
        raise SegopsError("a rename proposal needs the new name")
    if kind == "edit" and not changes:
        raise SegopsError(f"nothing to change in segment '{name}'")
    data = current.model_dump(mode="json")
    for key, value in changes.items():
        if key == "persona":
            if not isinstance(value, dict):
                raise SegopsError("persona changes must be a mapping of persona fields")
            data["persona"] = {**data["persona"], **value}
        else:
            data[key] = value.strip() if isinstance(value, str) else value
    try:
        definition = SegmentDef.model_validate(data)
    except ValidationError as exc:
        raise SegopsError(f"segment '{name}': {_field_error(exc)}") from None
    try:
        rules.parse(definition.rule)
    except SegopsError as exc:
        raise SegopsError(f"segment '{name}': rule: {exc}") from None
    return definition


def _active_definitions(session: Session) -> dict[str, SegmentDef]:
    rows = session.exec(
        select(Segment.name, SegmentVersion.definition)
        .join(SegmentVersion, SegmentVersion.id == Segment.current_version_id)
        .where(Segment.status == "active")
    ).all()
    return {name: SegmentDef.model_validate(definition) for name, definition in rows}


def _dependents(definitions: dict[str, SegmentDef], target: str) -> list[str]:
    """Active segments whose rule references ``target`` with ``in_segment``."""
    return sorted(
        name
        for name, d in definitions.items()
        if name != target and target in rules.dependencies(rules.parse(d.rule))
    )


def _check_references(
    definitions: dict[str, SegmentDef], current: SegmentDef, new: SegmentDef
) -> None:
    """Renaming or archiving must not break another segment's ``in_segment``."""
    if new.name == current.name and new.status == "active":
        return
    users = _dependents(definitions, current.name)
    if users:
        verb = "archiving" if new.status == "archived" else f"renaming it to '{new.name}'"
        raise SegopsError(
            f"segment '{current.name}' is used by in_segment(\"{current.name}\") in "
            f"{', '.join(repr(u) for u in users)}: {verb} would break "
            f"{'them' if len(users) > 1 else 'it'}; change {'those' if len(users) > 1 else 'that'}"
            " segment first"
        )


def validate_definition(
    ws: Workspace | None,
    *,
    current: SegmentDef,
    new: SegmentDef,
    definitions: dict[str, SegmentDef],
) -> None:
    """Validate ``new`` in the catalog as ``apply`` would; raise one clear SegopsError."""
    origin = f"proposal for '{current.name}'"
    if new.name != current.name and new.name in definitions:
        raise SegopsError(f"{origin}: a segment named '{new.name}' already exists")
    _check_references(definitions, current, new)
    others = {n: d for n, d in definitions.items() if n != current.name}
    candidate = list(others.values()) + ([new] if new.status == "active" else [])
    if ws is None:
        # No workspace: syntax, segment references and cycles only (columns unknown).
        try:
            deps = {}
            for d in candidate:
                rule = rules.parse(d.rule)
                missing = sorted(rules.dependencies(rule) - {c.name for c in candidate})
                if missing:
                    raise SegopsError(f"unknown segment '{missing[0]}'")
                deps[d.name] = rules.dependencies(rule)
            rules.order_segments(deps)
        except SegopsError as exc:
            raise SegopsError(f"{origin}: segment '{new.name}': rule: {exc}") from None
        return
    check = ws.model_copy(update={"segments": candidate})
    try:
        check_workspace(check, origin=origin)
    except WorkspaceError as exc:
        raise SegopsError(str(exc)) from None


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
        definitions = _active_definitions(session)
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
        return _view(session, proposal, row)


def _stored_changes(
    current: SegmentDef, new: SegmentDef, kind: str, changes: dict[str, Any]
) -> dict[str, Any]:
    """The changed fields in canonical form (rules as canonical text)."""
    before, after = current.canonical(), new.canonical()
    if kind == "persona":
        return {"persona": {k: after["persona"][k] for k in changes.get("persona", {})}}
    return {k: after[k] for k in after if after[k] != before[k]}


# --- deciding --------------------------------------------------------------------------


def _people(users: list[str]) -> str:
    return ", ".join(person(u) for u in users)


def authorise(
    *, segment: Segment, proposal_id: int, proposer: str, user: str, approve: bool
) -> None:
    """Raise NotAuthorised unless ``user`` may take this decision."""
    approvers = list(segment.approvers or [])
    is_owner = user == segment.owner
    if not is_owner and user not in approvers:
        who = f"the owner {person(segment.owner)}"
        if approvers:
            who += f" or approvers {_people(approvers)}"
        raise NotAuthorised(
            f"only {who} can decide on proposal #{proposal_id}", users=[segment.owner, *approvers]
        )
    if approve and user == proposer and not (is_owner and segment.tier != "core"):
        others = [u for u in [segment.owner, *approvers] if u != user]
        ask = f": ask {_people(others)}" if others else ""
        why = "core segment" if segment.tier == "core" else "segment you do not own"
        raise NotAuthorised(
            f"you proposed #{proposal_id} and cannot approve your own change to a {why}{ask}",
            users=others,
        )


def _decision(proposal: Proposal, segment_name: str, version: int | None) -> DecisionView:
    return DecisionView(
        proposal_id=proposal.id,
        segment=segment_name,
        kind=proposal.kind,
        status=proposal.status,
        decided_by=proposal.decided_by,
        decided_at=_iso(proposal.decided_at),
        decision_via=proposal.decision_via,
        channel=proposal.channel,
        message_ts=proposal.message_ts,
        version=version,
        proposer=proposal.proposer,
    )


def _already(proposal: Proposal, segment_name: str) -> AlreadyDecided:
    by = f" by {person(proposal.decided_by)}" if proposal.decided_by else ""
    error = AlreadyDecided(
        f"proposal #{proposal.id} was already {proposal.status}{by}",
        users=[proposal.decided_by] if proposal.decided_by else [],
    )
    error.decision = _decision(proposal, segment_name, None)  # type: ignore[attr-defined]
    return error


def decide(engine: Engine, *, proposal_id: int, user: str, approve: bool, via: str) -> DecisionView:
    """Approve or reject a pending proposal exactly once.

    Raises NotAuthorised, AlreadyDecided (someone decided first: Slack treats it as a
    quiet no-op), or StaleProposal (the segment changed since; the proposal is marked
    stale). The exceptions carry ``.decision`` where a message update is useful.
    """
    if via not in VIAS:
        raise SegopsError(f"decision via {via!r} must be one of {', '.join(VIAS)}")
    with session_scope(engine) as session:
        proposal = session.get(Proposal, proposal_id)
        if proposal is None:
            raise SegopsError(f"no proposal #{proposal_id}")
        segment = session.get(Segment, proposal.segment_id)
        authorise(
            segment=segment,
            proposal_id=proposal.id,
            proposer=proposal.proposer,
            user=user,
            approve=approve,
        )
        if proposal.status == "stale":
            raise _stale(proposal.id, segment.name, _decision(proposal, segment.name, None))
        if proposal.status != "pending":
            raise _already(proposal, segment.name)

    now = datetime.now(UTC)
    status = "approved" if approve else "rejected"
    stale = False
    version_number: int | None = None
    with session_scope(engine) as session:
        # Claim the decision first: the one writer whose conditional update matches wins.
        claimed = session.exec(
            update(Proposal)
            .where(Proposal.id == proposal_id, Proposal.status == "pending")
            .values(status=status, decided_by=user, decided_at=now, decision_via=via)
        ).rowcount
        if claimed != 1:
            session.rollback()
            proposal = session.get(Proposal, proposal_id)
            raise _already(proposal, session.get(Segment, proposal.segment_id).name)
        base_version_id = proposal.base_version_id
        # Lock the segment row at the version the proposal was made against.
        current = session.exec(
            update(Segment)
            .where(Segment.id == segment.id, Segment.current_version_id == base_version_id)
            .values(current_version_id=Segment.current_version_id)
        ).rowcount
        if current != 1:
            stale = True
            session.exec(
                update(Proposal)
                .where(Proposal.id == proposal_id)
                .values(status="stale", decided_by=None, decision_via=None, decided_at=now)
            )
        elif approve:
            version_number = _apply(session, proposal_id=proposal_id, approver=user)
        proposal = session.get(Proposal, proposal_id)
        session.refresh(proposal)
        segment = session.get(Segment, proposal.segment_id)
        session.refresh(segment)
        decision = _decision(proposal, segment.name, version_number)
    if stale:
        raise _stale(proposal_id, segment.name, decision)
    return decision


def _stale(proposal_id: int, segment_name: str, decision: DecisionView) -> StaleProposal:
    error = StaleProposal(
        f"proposal #{proposal_id} is stale: segment '{segment_name}' changed since it "
        "was made; propose the change again against the current version"
    )
    error.decision = decision  # type: ignore[attr-defined]
    return error


def _apply(session: Session, *, proposal_id: int, approver: str) -> int:
    """Record the approved change as the segment's next version (same transaction)."""
    proposal = session.get(Proposal, proposal_id)
    session.refresh(proposal)
    segment = session.get(Segment, proposal.segment_id)
    session.refresh(segment)
    base = session.get(SegmentVersion, proposal.base_version_id)
    current = SegmentDef.model_validate(base.definition)
    new = build_definition(current, proposal.kind, _replayable(proposal))
    if new.name != current.name or new.status == "archived":
        definitions = _active_definitions(session)
        if new.name != current.name and new.name in definitions:
            raise SegopsError(f"a segment named '{new.name}' already exists")
        _check_references(definitions, current, new)
    version = record_version(
        session,
        segment=segment,
        definition=new,
        change_kind=CHANGE_KIND[proposal.kind],
        author=proposal.proposer,
        approver=approver,
        reason=proposal.reason,
    )
    session.exec(
        update(Proposal).where(Proposal.id == proposal_id).values(applied_version_id=version.id)
    )
    return version.version


def _replayable(proposal: Proposal) -> dict[str, Any]:
    changes = dict(proposal.changes)
    if proposal.kind == "archive":
        return {"status": "archived"}
    return changes


# --- Slack bookkeeping and queries -----------------------------------------------------


def set_message(engine: Engine, proposal_id: int, channel: str, ts: str) -> None:
    """Remember where the proposal was posted (for reactions and in-place updates)."""
    with session_scope(engine) as session:
        done = session.exec(
            update(Proposal)
            .where(Proposal.id == proposal_id)
            .values(channel=channel, message_ts=ts)
        ).rowcount
        if done != 1:
            raise SegopsError(f"no proposal #{proposal_id}")


def find_by_message(engine: Engine, channel: str, ts: str) -> int | None:
    """The proposal posted as message ``ts`` in ``channel``, if any."""
    with session_scope(engine) as session:
        return session.exec(
            select(Proposal.id).where(Proposal.channel == channel, Proposal.message_ts == ts)
        ).first()


def get_proposal(engine: Engine, proposal_id: int) -> ProposalView:
    """One proposal by id."""
    with session_scope(engine) as session:
        proposal = session.get(Proposal, proposal_id)
        if proposal is None:
            raise SegopsError(f"no proposal #{proposal_id}")
        return _view(session, proposal, session.get(Segment, proposal.segment_id))


def _pending(session: Session, *extra: Any) -> list[tuple[Proposal, Segment]]:
    return list(
        session.exec(
            select(Proposal, Segment)
            .join(Segment, Segment.id == Proposal.segment_id)
            .where(Proposal.status == "pending", *extra)
            .order_by(Proposal.id)  # type: ignore[arg-type]
        ).all()
    )


def pending_for(engine: Engine, user: str) -> list[ProposalView]:
    """Pending proposals ``user`` may decide on (owner or approver), oldest first."""
    with session_scope(engine) as session:
        return [
            _view(session, p, s)
            for p, s in _pending(session)
            if user == s.owner or user in (s.approvers or [])
        ]


def pending_older_than(engine: Engine, days: float) -> list[ProposalView]:
    """Pending proposals created more than ``days`` days ago (for reminders)."""
    cutoff = datetime.now(UTC) - timedelta(days=days)
    with session_scope(engine) as session:
        return [_view(session, p, s) for p, s in _pending(session, Proposal.created_at < cutoff)]


def proposal_context(
    engine: Engine, proposal_id: int, *, reactions: dict[str, str] | None = None
) -> dict[str, Any]:
    """The ``proposal`` brief context: the diff old -> new, impact and decision."""
    with session_scope(engine) as session:
        proposal = session.get(Proposal, proposal_id)
        if proposal is None:
            raise SegopsError(f"no proposal #{proposal_id}")
        segment = session.get(Segment, proposal.segment_id)
        base = session.get(SegmentVersion, proposal.base_version_id)
        applied = (
            session.get(SegmentVersion, proposal.applied_version_id)
            if proposal.applied_version_id
            else None
        )
        before = base.definition
        diff = []
        for key, value in proposal.changes.items():
            if key == "persona" and isinstance(value, dict):
                for sub, after in value.items():
                    diff.append(
                        {
                            "field": f"persona.{sub}",
                            "before": (before.get("persona") or {}).get(sub),
                            "after": after,
                        }
                    )
            else:
                diff.append({"field": key, "before": before.get(key), "after": value})
        impact, _note = _impact(proposal.impact)
        ctx: dict[str, Any] = {
            "proposal": {
                "id": proposal.id,
                "kind": proposal.kind,
                "status": proposal.status,
                "proposer": proposal.proposer,
                "reason": proposal.reason,
                "created_at": _iso(proposal.created_at),
                "decided_by": proposal.decided_by,
                "decided_at": _iso(proposal.decided_at),
                "decision_via": proposal.decision_via,
                "changes": diff,
                "impact": impact,
                "applied_version": applied.version if applied else None,
            },
            "segment": {
                "name": segment.name,
                "title": segment.title,
                "tier": segment.tier,
                "owner": segment.owner,
                "approvers": list(segment.approvers or []),
            },
        }
        if reactions:
            ctx["reactions"] = dict(reactions)
        return ctx
