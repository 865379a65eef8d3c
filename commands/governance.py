"""Applying a workspace file under the catalog's rules (``segops apply``).

The database holds the catalog; the file is how people propose changes to it. Each
segment of the file is one of:

* **new**: created at once, with the person applying as author;
* **unchanged**: left alone (whatever its ``based_on``);
* **changed or removed**: first checked for staleness, then governed.

**Stale files.** The file must be based on the catalog's current version of the
segment. Its base is the segment's ``based_on`` (written by ``segops export``); in a
file without it, the newest version the file is an exact copy of, or else the newest
version not made by approving a proposal made in Slack (so a change approved in Slack
is one the file has not seen, and one proposed from a file is one it has). When the catalog
has a newer version, the whole file is refused with one line naming the fields that
differ and the advice to export first, unless ``force`` with a reason, which is
recorded on the new version.

**Governance.** Decided on the catalog's tier, owner and approvers, never the file's, so
a file cannot lower a core segment's tier to escape its approval:

* a segment whose tier is in ``direct_tiers`` (never ``core``) changes at once;
* with ``approved_by``, a person who may approve it under the same rules as Slack
  (:func:`commands.proposals.authorise`: the owner or a listed approver, never the
  proposer alone on a core segment) changes at once, recorded as the version's approver;
* otherwise the change becomes a pending proposal exactly like ``/segment propose``,
  impact measured, queued to the segment's channel (or its owner) through the outbox with
  its Approve/Reject buttons. Applying the same file again does not propose it twice.

Nothing is written unless the whole file can be applied: the checks and the impact
measurements come first, then one transaction writes the versions, proposals and
messages, after checking that no segment it touches changed meanwhile.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

from pydantic import ValidationError
from sqlalchemy import Engine, update
from sqlmodel import Session, select

from briefs.render import renderer
from commands.catalog import (
    ApplyResult,
    catalog_workspace,
    record_version,
    refuse_archived_references,
    refuse_core_archive,
)
from commands.errors import NotAuthorised, Refused, person
from commands.lookup import current_version
from commands.proposals import authorise, prepare_proposal, store_proposal
from commands.proposals.definition import (
    active_definitions,
    rename_references,
    renamed_reference,
)
from commands.proposals.views import OUTBOX_KIND, OUTBOX_PREFIX, context_for
from commands.renaming import rewrite_dependents
from segments import rules
from segments.workspace import SegmentDef, Workspace, check_workspace
from store.db import session_scope
from store.models import OutboxMessage, Proposal, Segment, SegmentOrigin, SegmentVersion
from store.outbox import add_message


@dataclass
class _Change:
    """One existing segment the file changes (``new`` archived when removed from the file)."""

    segment: Segment
    version: SegmentVersion
    current: SegmentDef
    new: SegmentDef
    removed: bool = False
    how: str = "propose"  # "direct" | "approved" | "propose" | "pending"
    approver: str | None = None
    pending_id: int | None = None

    @property
    def renaming(self) -> bool:
        return self.new.name != self.current.name

    @property
    def archiving(self) -> bool:
        return self.new.status == "archived" and self.current.status != "archived"


def _differences(before: dict[str, Any], after: dict[str, Any]) -> list[str]:
    return [k for k in after if after[k] != before.get(k)]


def _proposal_changes(current: SegmentDef, new: SegmentDef) -> tuple[str, dict[str, Any]]:
    """(proposal kind, changes) that turn ``current`` into ``new``."""
    if new.status == "archived":
        return "archive", {"status": "archived"}
    if new.name != current.name:
        return "rename", {"name": new.name}
    before, after = current.canonical(), new.canonical()
    fields = _differences(before, after)
    if fields == ["persona"]:
        persona = {k: v for k, v in after["persona"].items() if v != before["persona"].get(k)}
        return "persona", {"persona": persona}
    return "edit", {k: after[k] for k in fields}


def _versions_from_slack(session: Session, segment_id: int) -> set[int]:
    """Ids of the segment's versions made by approving a proposal made in Slack (not one
    ``apply`` made from a file, which has its message queued as ``proposal:<id>``)."""
    rows = session.exec(
        select(Proposal.id, Proposal.applied_version_id).where(
            Proposal.segment_id == segment_id,
            Proposal.applied_version_id.is_not(None),  # type: ignore[union-attr]
        )
    ).all()
    if not rows:
        return set()
    keys = {f"{OUTBOX_PREFIX}{pid}" for pid, _ in rows}
    from_files = set(
        session.exec(
            select(OutboxMessage.idempotency_key).where(
                OutboxMessage.idempotency_key.in_(keys)  # type: ignore[attr-defined]
            )
        ).all()
    )
    return {int(vid) for pid, vid in rows if f"{OUTBOX_PREFIX}{pid}" not in from_files}


def _versions(session: Session, segment_id: int) -> list[SegmentVersion]:
    return list(
        session.exec(
            select(SegmentVersion)
            .where(SegmentVersion.segment_id == segment_id)
            .order_by(SegmentVersion.version)  # type: ignore[arg-type]
        ).all()
    )


def _unseen(versions: list[SegmentVersion], base: int) -> list[SegmentVersion]:
    return [v for v in versions if v.version > base]


def _stale_line(change: _Change, base: int, unseen: list[SegmentVersion]) -> str:
    name = change.current.name
    newest = unseen[-1]
    how = f"{newest.change_kind} by {person(newest.author)}"
    if newest.approver:
        how += f", approved by {person(newest.approver)}"
    how += f" on {newest.created_at:%Y-%m-%d}"
    fields = _differences(change.new.canonical(), change.current.canonical())
    differs = f"; the file differs from it in {', '.join(fields)}" if fields else ""
    return (
        f"segment '{name}': the file is based on version {base} but the catalog is at "
        f"version {newest.version} ({how}){differs}: applying it would undo that change; "
        "run 'segops export' and edit the exported file, or pass --force --reason WHY"
    )


def _check_stale(session: Session, change: _Change, *, force: bool) -> str | None:
    """Refuse a change that would undo a version the file has not seen; with ``force``,
    the note recorded with the reason."""
    versions = _versions(session, change.segment.id)
    latest = versions[-1].version
    if change.new.based_on is not None:
        base = change.new.based_on
        if base > latest:
            if force:
                return None
            raise Refused(
                f"segment '{change.current.name}': the file says it is based on version "
                f"{base} but the catalog has versions up to {latest}: was it exported from "
                "another database? pass --force --reason WHY to apply it anyway"
            )
    else:
        # A copy of an earlier version was written then; an edited file is taken to be
        # based on the newest version not approved from a proposal made in Slack.
        copies = [v.version for v in versions if v.definition_hash == change.new.fingerprint()]
        from_slack = _versions_from_slack(session, change.segment.id)
        base = (
            max(copies)
            if copies
            else max(v.version for v in versions if v.id not in from_slack or v.version == 1)
        )
    unseen = _unseen(versions, base)
    if not unseen:
        return None
    if not force:
        raise Refused(_stale_line(change, base, unseen))
    return f"applied over version {unseen[-1].version}, which the file had not seen"


def _pending_same(session: Session, change: _Change) -> int | None:
    """A pending proposal on the same version that makes the same change, if any."""
    kind, changes = _proposal_changes(change.current, change.new)
    rows = session.exec(
        select(Proposal).where(
            Proposal.segment_id == change.segment.id,
            Proposal.base_version_id == change.version.id,
            Proposal.status == "pending",
            Proposal.kind == kind,
        )
    ).all()
    for row in rows:
        if dict(row.changes) == changes:
            return row.id
    return None


def _govern(
    change: _Change, *, user: str, approved_by: str | None, direct_tiers: frozenset[str]
) -> None:
    """Decide how ``change`` is written (on the catalog's tier, owner and approvers)."""
    segment = change.segment
    people = {segment.owner, *(segment.approvers or [])}
    if segment.status == "archived" and change.new.status == "archived":
        change.how = "direct"  # an archived segment has no members to move
    elif segment.tier != "core" and segment.tier in direct_tiers:
        change.how = "direct"
    elif approved_by is not None:
        authorise(
            segment=segment,
            proposal_id=None,
            proposer=user,
            user=approved_by,
            approve=True,
            subject=f"the change to segment '{segment.name}'",
        )
        change.how = "approved"
    elif segment.status == "archived":
        raise Refused(
            f"segment '{segment.name}' is archived: bringing it back needs "
            f"--approved-by its owner {person(segment.owner)} or an approver"
        )
    if change.how != "propose" and approved_by in people:
        change.approver = approved_by


def apply_governed(
    engine: Engine,
    ws: Workspace,
    *,
    user: str,
    reason: str | None = None,
    approved_by: str | None = None,
    force: bool = False,
    direct_tiers: frozenset[str] = frozenset(),
    templates_dir: Path | None = None,
    reactions: dict[str, str] | None = None,
    queue_impact: Any = None,
) -> ApplyResult:
    """Apply ``ws`` as described in the module docstring; one transaction, all or nothing.

    ``user`` is who applies (author of new versions, proposer of proposals);
    ``reactions`` the approve/reject emoji shown in queued proposals; ``queue_impact``
    (a :class:`commands.queue.ReplyTo`) leaves the proposals' impact to the worker,
    answering that person, instead of measuring it here.
    """
    reason = (reason or "").strip() or None
    approved_by = (approved_by or "").strip() or None
    if force and not reason:
        raise Refused("--force needs --reason WHY: it is recorded on the new versions")
    result = ApplyResult()
    creates: list[SegmentDef] = []
    changes: list[_Change] = []
    notes: dict[str, str] = {}
    with session_scope(engine) as session:
        existing = {s.name: s for s in session.exec(select(Segment)).all()}
        renames = _renames(ws, existing)
        refuse_archived_references(ws, {n: s for n, s in existing.items() if n not in renames})
        named = {d.name for d in ws.segments} | set(renames)
        for definition in ws.segments:
            segment = existing.get(definition.name)
            old = next((o for o, n in renames.items() if n == definition.name), None)
            if old is not None:
                segment = existing[old]
            if segment is None:
                creates.append(definition)
                continue
            version = current_version(session, segment)
            if version.definition_hash == definition.fingerprint():
                result.unchanged.append(definition.name)
                continue
            current = SegmentDef.model_validate(version.definition)
            if old is None and _only_renamed_references(current, definition, renames):
                # Carried by the rename: rewritten when the rename is recorded.
                result.unchanged.append(definition.name)
                continue
            changes.append(_Change(segment, version, current, definition))
        origins, fed_into = _origins(session, ws, existing, creates)
        for name, segment in sorted(existing.items()):
            if name in named or segment.status == "archived":
                continue
            version = current_version(session, segment)
            current = SegmentDef.model_validate(version.definition)
            archived = current.model_copy(update={"status": "archived"})
            changes.append(_Change(segment, version, current, archived, removed=True))
        for change in changes:
            if change.renaming:
                _refuse_rename_with_edits(change)
            elif not change.removed:
                note = _check_stale(session, change, force=force)
                if note:
                    notes[change.current.name] = note
            _govern(change, user=user, approved_by=approved_by, direct_tiers=direct_tiers)
            if change.how == "propose":
                found = _pending_same(session, change)
                if found is not None:
                    change.how, change.pending_id = "pending", found
            elif change.archiving:
                refuse_core_archive(
                    change.current, reason, "removing" if change.removed else "archiving"
                )
        definitions = active_definitions(session)
    for definition in creates:
        definitions[definition.name] = definition
    for change in changes:
        if change.how in ("direct", "approved"):
            if change.renaming:
                definitions = rename_references(definitions, change.current.name, change.new.name)
            definitions.pop(change.current.name, None)
            if change.new.status == "active":
                definitions[change.new.name] = change.new

    def why(change: _Change) -> str | None:
        """The reason recorded for ``change``: what a source of a merge or split went into."""
        base = reason or ("removed from the workspace" if change.removed else None)
        into = fed_into.get(change.current.name) if change.archiving else None
        return f"{base} ({into})" if base and into else base or into

    proposing = [c for c in changes if c.how == "propose"]
    if proposing and not reason:
        names = ", ".join(f"'{c.current.name}'" for c in proposing)
        raise Refused(
            f"changes to {names} need approval, so they become proposals, and a proposal "
            "needs a reason: pass --reason WHY (or --approved-by an owner or approver)"
        )
    prepared = {
        c.current.name: prepare_proposal(
            engine,
            ws,
            segment=c.current.name,
            proposer=user,
            kind=_proposal_changes(c.current, c.new)[0],
            changes=_proposal_changes(c.current, c.new)[1],
            reason=why(c) or "",
            definitions=definitions,
            queue_impact=queue_impact,
        )
        for c in proposing
    }
    with session_scope(engine) as session:
        for change in changes:
            if change.how == "pending":
                result.pending[change.current.name] = change.pending_id
                continue
            _claim(session, change)
        for definition in creates:
            kind, origin = origins.get(definition.name, ("create", None))
            version = record_version(
                session,
                segment=None,
                definition=definition,
                change_kind=kind,
                author=user,
                reason=f"{reason} ({origin})" if reason and origin else reason or origin,
            )
            if kind in ("merge", "split"):
                _record_origins(session, version.segment_id, definition, kind, existing)
            result.created.append(definition.name)
        for change in changes:
            name = change.current.name
            if change.how in ("direct", "approved"):
                note = notes.get(name)
                said = why(change)
                if change.renaming:
                    said = said or f"renamed from '{name}'"
                record_version(
                    session,
                    segment=session.get(Segment, change.segment.id),
                    definition=change.new,
                    change_kind="archive"
                    if change.archiving
                    else "rename"
                    if change.renaming
                    else "edit",
                    author=user,
                    approver=change.approver,
                    reason=f"{said} ({note})" if note else said,
                )
                if change.renaming:
                    result.renamed[name] = change.new.name
                    result.updated.extend(
                        rewrite_dependents(
                            session,
                            old=name,
                            new=change.new.name,
                            author=user,
                            approver=change.approver,
                        )
                    )
                else:
                    (result.archived if change.archiving else result.updated).append(name)
            elif change.how == "propose":
                proposal = store_proposal(session, prepared[name])
                _queue(session, proposal, templates_dir=templates_dir, reactions=reactions)
                result.proposed[name] = proposal.id
        from commands.live import record_classifications

        record_classifications(session, ws)
    return result


def _renames(ws: Workspace, existing: dict[str, Segment]) -> dict[str, str]:
    """Old name -> new name of the segments the file renames (``renamed_from``).

    A ``renamed_from`` whose new name is already in the catalog was applied before and is
    ignored, unless the old name is still there too: two segments, which is refused.
    """
    renames: dict[str, str] = {}
    for definition in ws.segments:
        old = definition.renamed_from
        if old is None or old == definition.name:
            continue
        if definition.name in existing:
            if old in existing and existing[old].status == "active":
                raise Refused(
                    f"segment '{definition.name}' says renamed_from '{old}', but the catalog "
                    f"has both: drop renamed_from, or remove '{definition.name}' first"
                )
            continue
        if old not in existing:
            raise Refused(
                f"segment '{definition.name}': renamed_from '{old}', but the catalog has no "
                f"segment '{old}'"
            )
        if existing[old].status == "archived":
            raise Refused(f"segment '{definition.name}': renamed_from '{old}', which is archived")
        if old in renames:
            raise Refused(
                f"segments '{renames[old]}' and '{definition.name}' both say renamed_from "
                f"'{old}': a segment has one new name (a split makes new segments)"
            )
        if old in {d.name for d in ws.segments}:
            raise Refused(
                f"segment '{definition.name}': renamed_from '{old}', but the file still has "
                f"a segment '{old}'"
            )
        renames[old] = definition.name
    return renames


def _origins(
    session: Session, ws: Workspace, existing: dict[str, Segment], creates: list[SegmentDef]
) -> tuple[dict[str, tuple[str, str]], dict[str, str]]:
    """For new segments declaring ``merged_from`` or ``split_from``: new name -> (change
    kind, "merged from 'a' (v2), 'b' (v1)"), and source name -> "merged into 'x'" or
    "split into 'x', 'y'" for the reason of its archive."""
    active_in_file = {d.name for d in ws.segments if d.status == "active"}
    origins: dict[str, tuple[str, str]] = {}
    parts: dict[str, list[str]] = {}
    merged: dict[str, str] = {}
    for definition in creates:
        split = [definition.split_from] if definition.split_from else []
        sources = definition.merged_from or split
        key = "merged_from" if definition.merged_from else "split_from"
        if not sources:
            continue
        if definition.merged_from and definition.split_from:
            raise Refused(
                f"segment '{definition.name}': merged_from and split_from together: a new "
                "segment is either a merge of segments or a part of one"
            )
        for source in sources:
            segment = existing.get(source)
            if segment is None or segment.status != "active":
                state = "no segment" if segment is None else "only an archived segment"
                raise Refused(
                    f"segment '{definition.name}': {key} '{source}', but the catalog has "
                    f"{state} '{source}'"
                )
            if definition.merged_from:
                if source in active_in_file:
                    raise Refused(
                        f"segment '{definition.name}' is merged from '{source}', which the file "
                        "keeps active: remove it from the file (it is archived) or archive it"
                    )
                if source in merged:
                    raise Refused(
                        f"segment '{source}' is merged into both '{merged[source]}' and "
                        f"'{definition.name}'"
                    )
                merged[source] = definition.name
            else:
                parts.setdefault(source, []).append(definition.name)
        listed = ", ".join(
            f"'{n}' (v{current_version(session, existing[n]).version})" for n in sources
        )
        kind, verb = ("merge", "merged") if definition.merged_from else ("split", "split")
        origins[definition.name] = (kind, f"{verb} from {listed}")
    fed_into = {source: f"merged into '{target}'" for source, target in merged.items()}
    for source, names in parts.items():
        fed_into[source] = "split into " + ", ".join(f"'{n}'" for n in names)
    return origins, fed_into


def _record_origins(
    session: Session,
    segment_id: int,
    definition: SegmentDef,
    kind: str,
    existing: dict[str, Segment],
) -> None:
    """One ``segment_origin`` row per segment that fed the new one, with the version of it
    in force (before this apply archives it)."""
    sources = definition.merged_from or [definition.split_from]
    for name in sources:
        source = session.get(Segment, existing[name].id)
        session.add(
            SegmentOrigin(
                segment_id=segment_id,
                source_segment_id=source.id,
                source_version_id=source.current_version_id,
                kind=kind,
            )
        )
    session.flush()


def _only_renamed_references(current: SegmentDef, new: SegmentDef, renames: dict[str, str]) -> bool:
    """Whether ``new`` is ``current`` with its references to renamed segments renamed;
    refuse a segment that changes more than that in the same file."""
    used = rules.dependencies(current.tree()) & set(renames)
    if not used:
        return False
    rewritten = current
    for old in sorted(used):
        rewritten = renamed_reference(rewritten, old, renames[old])
    if rewritten.fingerprint() == new.fingerprint():
        return True
    old = min(used)
    raise Refused(
        f"segment '{current.name}' refers to '{old}', which this file renames to "
        f"'{renames[old]}', and changes more than that reference: apply the rename first, "
        f"then the change to '{current.name}'"
    )


def _refuse_rename_with_edits(change: _Change) -> None:
    """A rename changes the name only, so it is decided and recorded on its own."""
    before = change.current.canonical()
    after = change.new.canonical()
    fields = [k for k in _differences(before, after) if k != "name"]
    if fields:
        raise Refused(
            f"segment '{change.current.name}' is renamed to '{change.new.name}' and its "
            f"{', '.join(fields)} changed too: apply the rename alone first, then the other "
            "changes"
        )


def _claim(session: Session, change: _Change) -> None:
    """Lock the segment at the version read, or refuse: it changed while applying."""
    claimed = session.exec(
        update(Segment)
        .where(
            Segment.id == change.segment.id,
            Segment.current_version_id == change.version.id,
        )
        .values(current_version_id=Segment.current_version_id)
    ).rowcount
    if claimed != 1:
        raise Refused(
            f"segment '{change.current.name}' changed while the file was being applied: "
            "nothing was written; apply it again"
        )


def _queue(
    session: Session,
    proposal: Proposal,
    *,
    templates_dir: Path | None,
    reactions: dict[str, str] | None,
) -> None:
    """Queue the proposal, with its buttons, to its segment's channel (else its owner)."""
    segment = session.get(Segment, proposal.segment_id)
    ctx = context_for(session, proposal, reactions=reactions)
    add_message(
        session,
        key=f"{OUTBOX_PREFIX}{proposal.id}",
        kind=OUTBOX_KIND,
        channel=segment.channel,
        messages=renderer(templates_dir).render_messages("proposal", ctx),
        fallback_user=segment.owner,
    )


INHERITED = ("tier", "owner", "approvers", "channel", "cadence", "data_sources", "kpis")
"""What a segment made by ``segops merge`` or ``split`` takes from its first source."""


def derive_segment(
    engine: Engine,
    ws: Workspace,
    *,
    kind: str,
    new: str,
    sources: list[str],
    rule: str,
    title: str | None = None,
    user: str,
    reason: str | None = None,
    approved_by: str | None = None,
    direct_tiers: frozenset[str] = frozenset(),
    templates_dir: Path | None = None,
    reactions: dict[str, str] | None = None,
    queue_impact: Any = None,
    owners_only: bool = False,
) -> ApplyResult:
    """Merge ``sources`` into a new segment ``new`` (``kind="merge"``; the sources are
    archived) or split a part ``new`` off ``sources[0]`` (``kind="split"``; the parent
    stays), under the same rules as a file declaring ``merged_from`` / ``split_from``: the
    catalog as exported plus the new segment, which takes the first source's settings
    (``INHERITED``) with ``rule`` and ``title``, applied by
    :func:`apply_governed` (the new segment at once, the archives governed).

    ``owners_only`` (Slack): ``user`` must be the owner or an approver of every source.
    """
    if kind not in ("merge", "split"):
        raise Refused(f"kind {kind!r} must be merge or split")
    catalog = catalog_workspace(engine, ws)
    by_name = {d.name: d for d in catalog.segments}
    for name in sources:
        if name not in by_name:
            raise Refused(f"no segment named '{name}'")
        source = by_name[name]
        if owners_only and user != source.owner and user not in source.approvers:
            people = [source.owner, *source.approvers]
            raise NotAuthorised(
                f"only the owner or approvers of '{name}' ("
                + ", ".join(person(p) for p in people)
                + f") can {kind} it",
                users=people,
            )
    if new in by_name:
        raise Refused(f"a segment named '{new}' already exists")
    if kind == "split" and len(sources) != 1:
        raise Refused("a split takes one segment, the parent")
    first = by_name[sources[0]].model_dump(mode="json")
    data = {
        **{key: first[key] for key in INHERITED if key in first},
        "name": new,
        "title": title or new.replace("-", " ").replace("_", " ").capitalize(),
        "rule": rule,
        "purpose": f"{'Merged from' if kind == 'merge' else 'Split from'} "
        + ", ".join(f"'{n}'" for n in sources),
    }
    data["merged_from" if kind == "merge" else "split_from"] = (
        list(sources) if kind == "merge" else sources[0]
    )
    try:
        definition = SegmentDef.model_validate(data)
    except ValidationError as exc:
        message = exc.errors()[0]["msg"].removeprefix("Value error, ")
        raise Refused(f"segment '{new}': {message}") from None
    kept = [d for d in catalog.segments if kind == "split" or d.name not in sources]
    if kind == "merge":
        for name in sources:
            users = [
                d.name
                for d in kept
                if d.status == "active" and name in rules.dependencies(d.tree())
            ]
            if users:
                listed = ", ".join(f"'{u}'" for u in users)
                raise Refused(
                    f"cannot merge '{name}' away: active segments refer to it: {listed}; "
                    f"change their rules first"
                )
    derived = catalog.model_copy(update={"segments": [*kept, definition]})
    check_workspace(derived, origin=f"{kind} into '{new}'")
    return apply_governed(
        engine,
        derived,
        user=user,
        reason=reason,
        approved_by=approved_by,
        direct_tiers=direct_tiers,
        templates_dir=templates_dir,
        reactions=reactions,
        queue_impact=queue_impact,
    )


def rename_segment(
    engine: Engine,
    ws: Workspace,
    *,
    old: str,
    new: str,
    user: str,
    reason: str | None = None,
    approved_by: str | None = None,
    direct_tiers: frozenset[str] = frozenset(),
    templates_dir: Path | None = None,
    reactions: dict[str, str] | None = None,
) -> ApplyResult:
    """Rename ``old`` to ``new`` under the same rules as a file declaring ``renamed_from``:
    the catalog as exported, with that one segment renamed and the references to it
    rewritten, applied by :func:`apply_governed`."""
    catalog = catalog_workspace(engine, ws)
    names = {d.name for d in catalog.segments}
    if old not in names:
        raise Refused(f"no segment named '{old}'")
    if new in names:
        raise Refused(f"a segment named '{new}' already exists")
    try:
        renamed = SegmentDef.model_validate(
            {**catalog.segments[0].model_dump(mode="json"), "name": new}
        ).name
    except ValidationError as exc:
        raise Refused(f"new name: {exc.errors()[0]['msg'].removeprefix('Value error, ')}") from None
    segments = []
    by_name = rename_references({d.name: d for d in catalog.segments}, old, renamed)
    for name, definition in by_name.items():
        if name == renamed:
            definition = definition.model_copy(update={"renamed_from": old})
        segments.append(definition)
    return apply_governed(
        engine,
        catalog.model_copy(update={"segments": segments}),
        user=user,
        reason=reason,
        approved_by=approved_by,
        direct_tiers=direct_tiers,
        templates_dir=templates_dir,
        reactions=reactions,
    )
