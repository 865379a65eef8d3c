"""The segment catalog: apply a workspace, export it back, list, show and history.

Every applied change is a new :class:`store.models.SegmentVersion` holding the
full canonical definition, so any version can be shown or restored. Applying an
unchanged workspace writes nothing. A segment removed from the file is archived;
archiving a ``core`` segment (by removal or ``status: archived``) needs a reason.
An active segment may not refer (``in_segment``) to a segment archived after the apply,
so archiving a segment that active segments refer to is refused, naming them.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import Engine
from sqlmodel import Session, select

from commands.errors import Refused
from commands.learnings import record_change
from commands.lookup import current_definition, current_version, find_segment
from commands.policy import is_hidden, visible_size, visible_stats
from commands.stats import latest_stats, previewed_size
from segments import rules
from segments.workspace import SegmentDef, Workspace, archived_reference, dump_workspace
from store.db import session_scope
from store.models import Segment, SegmentResult, SegmentVersion, Snapshot
from store.results import current_result


@dataclass
class ApplyResult:
    """What an apply did, segment by segment."""

    created: list[str] = field(default_factory=list)
    updated: list[str] = field(default_factory=list)
    archived: list[str] = field(default_factory=list)
    unchanged: list[str] = field(default_factory=list)
    proposed: dict[str, int] = field(default_factory=dict)
    """Segments whose change became a new proposal: name -> proposal id."""
    pending: dict[str, int] = field(default_factory=dict)
    """Segments whose change is already a pending proposal: name -> proposal id."""
    renamed: dict[str, str] = field(default_factory=dict)
    """Segments renamed: old name -> new name."""

    @property
    def changed(self) -> bool:
        return bool(self.created or self.updated or self.archived or self.renamed)

    def to_dict(self) -> dict[str, Any]:
        return {
            "created": self.created,
            "updated": self.updated,
            "archived": self.archived,
            "unchanged": self.unchanged,
            "proposed": [{"segment": n, "proposal": i} for n, i in self.proposed.items()],
            "pending": [{"segment": n, "proposal": i} for n, i in self.pending.items()],
            "renamed": [{"from": o, "to": n} for o, n in self.renamed.items()],
        }


@dataclass
class SegmentSummary:
    """One row of the catalog list."""

    name: str
    title: str
    tier: str
    status: str
    owner: str
    cadence: str
    version: int | None
    size: int | None
    as_of: str | None
    size_version: int | None = None
    """The definition version that computed ``size`` (it may be older than ``version``)."""
    expected_size: int | None = None
    """When ``size_version`` is older: the size the approved proposal's preview measured
    for ``version`` (None: not measured, or hidden under the privacy floor)."""

    @property
    def definition_changed(self) -> bool:
        return self.size_version is not None and self.size_version != self.version

    def stats(self) -> dict[str, Any]:
        """The keys :func:`briefs.wording.definition_notice` reads."""
        return {
            "version": self.size_version,
            "current_version": self.version,
            "definition_changed": self.definition_changed,
            "expected_size": self.expected_size,
        }

    def to_dict(self) -> dict[str, Any]:
        return {**self.__dict__, "definition_changed": self.definition_changed}


@dataclass
class VersionView:
    """One entry of a segment's history."""

    version: int
    change_kind: str
    author: str
    approver: str | None
    reason: str | None
    created_at: str
    rule: str
    refreshes: int = 0
    """Published refreshes computed by this version."""
    last_as_of: str | None = None
    last_size: int | None = None
    """Size of the newest of them (None: none, or under the privacy floor)."""

    def to_dict(self) -> dict[str, Any]:
        return self.__dict__.copy()


def _now() -> datetime:
    return datetime.now(UTC)


def record_version(
    session: Session,
    *,
    segment: Segment | None,
    definition: SegmentDef,
    change_kind: str,
    author: str,
    approver: str | None = None,
    reason: str | None = None,
) -> SegmentVersion:
    """Store ``definition`` as the segment's next version and make it current.

    Creates the segment when ``segment`` is None. Does not commit.
    """
    now = _now()
    previous_id = segment.current_version_id if segment is not None else None
    if segment is None:
        segment = Segment(name=definition.name, created_at=now)
        number = 1
    else:
        latest = session.exec(
            select(SegmentVersion.version)
            .where(SegmentVersion.segment_id == segment.id)
            .order_by(SegmentVersion.version.desc())  # type: ignore[attr-defined]
        ).first()
        number = (latest or 0) + 1
    segment.name = definition.name
    segment.title = definition.title
    segment.tier = definition.tier
    segment.status = definition.status
    segment.owner = definition.owner
    segment.approvers = list(definition.approvers)
    segment.channel = definition.channel
    segment.cadence = definition.effective_cadence
    segment.updated_at = now
    session.add(segment)
    session.flush()
    canonical = definition.canonical()
    version = SegmentVersion(
        segment_id=segment.id,
        version=number,
        definition=canonical,
        rule_text=canonical["rule"],
        definition_hash=definition.fingerprint(),
        change_kind=change_kind,
        author=author,
        approver=approver,
        reason=reason,
        created_at=now,
    )
    session.add(version)
    session.flush()
    segment.current_version_id = version.id
    session.add(segment)
    session.flush()
    record_change(
        session,
        segment=segment,
        version=version,
        previous=session.get(SegmentVersion, previous_id) if previous_id else None,
        definition=definition,
    )
    return version


def refuse_core_archive(definition: SegmentDef, reason: str | None, how: str) -> None:
    if definition.tier == "core" and not (reason and reason.strip()):
        raise Refused(
            f"segment '{definition.name}' is core: {how} it needs a written reason (--reason)"
        )


def refuse_archived_references(ws: Workspace, existing: dict[str, Segment]) -> None:
    """Refuse an active segment that would refer to an archived one after the apply.

    A segment is archived after the apply when the file says so, or when the file leaves
    it out (already archived in the catalog, or archived now by removal).
    """
    active = {d.name for d in ws.segments if d.status == "active"}
    archived = {d.name for d in ws.segments if d.status == "archived"}
    archived |= {name for name in existing if name not in active}
    referrers: dict[str, list[str]] = {}
    for definition in ws.segments:
        if definition.status == "active":
            for target in sorted(rules.dependencies(definition.tree()) & archived):
                referrers.setdefault(target, []).append(definition.name)
    if referrers:
        target = min(referrers)
        raise Refused(archived_reference(target, referrers[target]))


def apply_workspace(
    engine: Engine, ws: Workspace, *, reason: str | None, author: str
) -> ApplyResult:
    """Bring the catalog in line with ``ws`` in one transaction (all or nothing)."""
    result = ApplyResult()
    with session_scope(engine) as session:
        existing = {s.name: s for s in session.exec(select(Segment)).all()}
        refuse_archived_references(ws, existing)
        for definition in ws.segments:
            segment = existing.get(definition.name)
            if segment is None:
                record_version(
                    session,
                    segment=None,
                    definition=definition,
                    change_kind="create",
                    author=author,
                    reason=reason,
                )
                result.created.append(definition.name)
                continue
            version = current_version(session, segment)
            if version.definition_hash == definition.fingerprint():
                result.unchanged.append(definition.name)
                continue
            archiving = definition.status == "archived" and segment.status != "archived"
            if archiving:
                previous = SegmentDef.model_validate(version.definition)
                refuse_core_archive(previous, reason, "archiving")
            record_version(
                session,
                segment=segment,
                definition=definition,
                change_kind="archive" if archiving else "edit",
                author=author,
                reason=reason,
            )
            (result.archived if archiving else result.updated).append(definition.name)
        named = {d.name for d in ws.segments}
        for name, segment in sorted(existing.items()):
            if name in named or segment.status == "archived":
                continue
            previous = current_definition(session, segment)
            refuse_core_archive(previous, reason, "removing")
            archived = previous.model_copy(update={"status": "archived"})
            record_version(
                session,
                segment=segment,
                definition=archived,
                change_kind="archive",
                author=author,
                reason=reason or "removed from the workspace",
            )
            result.archived.append(name)
        from commands.live import record_classifications

        record_classifications(session, ws)
    return result


def catalog_workspace(engine: Engine, ws: Workspace) -> Workspace:
    """``ws`` with its segments replaced by the catalog's current definitions, each
    marked with the version it is (``based_on``)."""
    with session_scope(engine) as session:
        segments = session.exec(select(Segment).order_by(Segment.name)).all()
        definitions = []
        for segment in segments:
            version = current_version(session, segment)
            definition = SegmentDef.model_validate(version.definition)
            definitions.append(definition.model_copy(update={"based_on": version.version}))
    order = {d.name: i for i, d in enumerate(ws.segments)}
    definitions.sort(key=lambda d: (order.get(d.name, len(order)), d.name))
    return ws.model_copy(update={"segments": definitions})


def export_workspace(engine: Engine, ws: Workspace) -> str:
    """The catalog as workspace YAML (sources, features and scores from ``ws``)."""
    return dump_workspace(catalog_workspace(engine, ws))


def history(engine: Engine, name: str, *, privacy_floor: int | None = None) -> list[VersionView]:
    """Every version of a segment, newest first, with the published refreshes it computed
    (``last_size`` only with a ``privacy_floor``, under which it is None)."""
    with session_scope(engine) as session:
        segment = find_segment(session, name)
        versions = session.exec(
            select(SegmentVersion)
            .where(SegmentVersion.segment_id == segment.id)
            .order_by(SegmentVersion.version.desc())  # type: ignore[attr-defined]
        ).all()
        made: dict[int, list[tuple[str, int]]] = {}
        for version_id, as_of, size in session.exec(
            select(SegmentResult.version_id, Snapshot.as_of, SegmentResult.size)
            .join(Snapshot, Snapshot.id == SegmentResult.snapshot_id)
            .where(SegmentResult.segment_id == segment.id, SegmentResult.status == "published")
            .order_by(Snapshot.as_of, SegmentResult.id)  # type: ignore[arg-type]
        ).all():
            made.setdefault(version_id, []).append((as_of.isoformat(), size))
        return [
            VersionView(
                version=v.version,
                change_kind=v.change_kind,
                author=v.author,
                approver=v.approver,
                reason=v.reason,
                created_at=v.created_at.isoformat(timespec="seconds"),
                rule=v.rule_text,
                refreshes=len(made.get(v.id, [])),
                last_as_of=made[v.id][-1][0] if made.get(v.id) else None,
                last_size=visible_size(made[v.id][-1][1], privacy_floor)
                if made.get(v.id) and privacy_floor is not None
                else None,
            )
            for v in versions
        ]


def active_names(engine: Engine) -> list[str]:
    """The names of the active segments, by status then name (the catalog's order)."""
    with session_scope(engine) as session:
        rows = session.exec(select(Segment).order_by(Segment.status, Segment.name)).all()
        return [s.name for s in rows if s.status == "active"]


def _version_number(session: Session, version_id: int) -> int | None:
    version = session.get(SegmentVersion, version_id)
    return version.version if version is not None else None


def list_segments(engine: Engine, *, privacy_floor: int) -> list[SegmentSummary]:
    """Every segment, active first, with its latest published size (None under the floor)."""
    with session_scope(engine) as session:
        out = []
        for segment in session.exec(select(Segment).order_by(Segment.status, Segment.name)).all():
            version = current_version(session, segment)
            result, snapshot = current_result(session, segment=segment)
            size = visible_size(result.size, privacy_floor) if result is not None else None
            as_of = snapshot.as_of.isoformat() if snapshot is not None else None
            size_version = _version_number(session, result.version_id) if result else None
            expected = None
            if size is not None and size_version not in (None, version.version):
                expected = visible_size(previewed_size(session, version), privacy_floor)
            out.append(
                SegmentSummary(
                    name=segment.name,
                    title=segment.title,
                    tier=segment.tier,
                    status=segment.status,
                    owner=segment.owner,
                    cadence=segment.cadence,
                    version=version.version,
                    size=size,
                    as_of=as_of,
                    size_version=size_version,
                    expected_size=expected,
                )
            )
        return out


def show_segment(engine: Engine, name: str, *, privacy_floor: int) -> dict[str, Any]:
    """The current definition, its rule in plain words, and the latest stats.

    Stats of a segment under ``privacy_floor`` are hidden (:func:`policy.visible_stats`);
    ``hidden`` says so and ``privacy_floor`` carries the floor for the message.
    """
    with session_scope(engine) as session:
        segment = find_segment(session, name)
        version = current_version(session, segment)
        stats = latest_stats(session, segment)
        from commands.live import classification_of

        return {
            "name": segment.name,
            "status": segment.status,
            "version": version.version,
            "cadence": segment.cadence,
            "definition": version.definition,
            "criteria": rules.describe(rules.parse(version.rule_text)),
            "stats": visible_stats(stats.to_dict() if stats else None, privacy_floor),
            "hidden": bool(stats) and is_hidden(stats.size, privacy_floor),
            "privacy_floor": privacy_floor,
            "live": classification_of(session, segment),
        }
