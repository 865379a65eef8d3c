"""Memberships over time and what a segment is made of.

* :func:`member_export`: the ids of a segment's members in its published result of a day
  (``as_of``: the newest published on or before it; the current result without one), or
  the ids that joined or left in it, compared with the published result before it or
  with the one of a chosen earlier day (``since``).
* :func:`lineage`: the sources, features and scores a segment reads (through the segments
  it refers to), the segments it refers to and those that refer to it, with the version
  and the published result of each.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from datetime import date
from typing import Any

from pyroaring import BitMap
from sqlalchemy import Engine
from sqlmodel import Session, select

from commands.lookup import current_version, find_segment
from commands.proposals.definition import active_definitions
from segments import membership, rules
from segments.errors import SegopsError
from segments.workspace import SegmentDef, Workspace, declared_schema
from store.db import session_scope
from store.entities import keys_of
from store.models import Segment, SegmentOrigin, SegmentResult, SegmentVersion, Snapshot
from store.results import current_result

CHANGES = ("joined", "left")


@dataclass
class MemberExport:
    """Member ids of one published result (or those that joined or left in it)."""

    segment: str
    as_of: str | None
    version: int | None
    ids: list[str]
    change: str | None = None
    compared_with: str | None = None
    """as_of of the result the change is measured against (None: nothing before it)."""

    def to_dict(self) -> dict[str, Any]:
        data = asdict(self)
        data["count"] = len(self.ids)
        return data


def _published_on_or_before(
    session: Session, segment: Segment, day: date, *, strictly: bool = False
) -> tuple[SegmentResult, Snapshot] | tuple[None, None]:
    query = (
        select(SegmentResult, Snapshot)
        .join(Snapshot, Snapshot.id == SegmentResult.snapshot_id)
        .where(SegmentResult.segment_id == segment.id, SegmentResult.status == "published")
        .where(Snapshot.as_of < day if strictly else Snapshot.as_of <= day)
        .order_by(Snapshot.as_of.desc(), SegmentResult.id.desc())  # type: ignore[attr-defined]
    )
    row = session.exec(query).first()
    return (row[0], row[1]) if row is not None else (None, None)


def _bitmap(result: SegmentResult | None) -> BitMap:
    return membership.decode(result.bitmap) if result is not None and result.bitmap else BitMap()


def member_export(
    engine: Engine,
    name: str,
    *,
    as_of: date | None = None,
    change: str | None = None,
    since: date | None = None,
) -> MemberExport:
    """See the module docstring; SegopsError when there is no published result to read."""
    if change is not None and change not in CHANGES:
        raise SegopsError(f"change {change!r} must be joined or left")
    if since is not None and change is None:
        raise SegopsError("--since needs --joined or --left")
    with session_scope(engine) as session:
        segment = find_segment(session, name)
        if as_of is None:
            result, snapshot = current_result(session, segment=segment)
        else:
            result, snapshot = _published_on_or_before(session, segment, as_of)
        if result is None:
            when = f" on or before {as_of.isoformat()}" if as_of else ""
            if change is None and as_of is None:
                return MemberExport(segment.name, None, None, [])
            raise SegopsError(f"segment '{segment.name}' has no published refresh{when}")
        version = session.get(SegmentVersion, result.version_id)
        members = _bitmap(result)
        export = MemberExport(
            segment=segment.name,
            as_of=snapshot.as_of.isoformat(),
            version=version.version if version is not None else None,
            ids=[],
            change=change,
        )
        if change is None:
            export.ids = keys_of(session, dense=members)
            return export
        if since is not None and since >= snapshot.as_of:
            raise SegopsError(
                f"--since {since.isoformat()} must be before the refresh of "
                f"{snapshot.as_of.isoformat()}"
            )
        base, base_snapshot = (
            _published_on_or_before(session, segment, since)
            if since is not None
            else _published_on_or_before(session, segment, snapshot.as_of, strictly=True)
        )
        before = _bitmap(base)
        export.compared_with = base_snapshot.as_of.isoformat() if base_snapshot else None
        export.ids = keys_of(
            session, dense=members - before if change == "joined" else before - members
        )
        return export


@dataclass
class SegmentLink:
    """A segment in a lineage, with its definition version and its published result."""

    name: str
    version: int | None
    status: str
    as_of: str | None = None
    result_version: int | None = None


@dataclass
class Lineage:
    """What a segment reads, directly and through the segments it refers to."""

    segment: str
    version: int
    as_of: str | None
    result_version: int | None
    data_fingerprint: str | None
    sources: list[str] = field(default_factory=list)
    features: dict[str, dict[str, Any]] = field(default_factory=dict)
    scores: dict[str, dict[str, Any]] = field(default_factory=dict)
    columns: list[str] = field(default_factory=list)
    references: list[SegmentLink] = field(default_factory=list)
    dependants: list[SegmentLink] = field(default_factory=list)
    came_from: list[dict[str, Any]] = field(default_factory=list)
    """The segments merged or split into this one: ``{kind, name, version}`` (the version
    of the source that fed it)."""
    went_into: list[dict[str, Any]] = field(default_factory=list)
    """The segments this one was merged or split into: ``{kind, name, version}`` (its own
    version that fed them)."""

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def _origins(session: Session, segment: Segment) -> tuple[list[dict], list[dict]]:
    """(came_from, went_into) of ``segment``, from ``segment_origin``."""
    rows = session.exec(
        select(SegmentOrigin, SegmentVersion.version)
        .join(SegmentVersion, SegmentVersion.id == SegmentOrigin.source_version_id)
        .where(
            (SegmentOrigin.segment_id == segment.id)
            | (SegmentOrigin.source_segment_id == segment.id)
        )
        .order_by(SegmentOrigin.id)  # type: ignore[arg-type]
    ).all()
    came, went = [], []
    for origin, version in rows:
        if origin.segment_id == segment.id:
            name = session.get(Segment, origin.source_segment_id).name
            came.append({"kind": origin.kind, "name": name, "version": version})
        else:
            name = session.get(Segment, origin.segment_id).name
            went.append({"kind": origin.kind, "name": name, "version": version})
    return came, went


def _link(session: Session, segment: Segment) -> SegmentLink:
    version = current_version(session, segment)
    result, snapshot = current_result(session, segment=segment)
    made = session.get(SegmentVersion, result.version_id) if result is not None else None
    return SegmentLink(
        name=segment.name,
        version=version.version,
        status=segment.status,
        as_of=snapshot.as_of.isoformat() if snapshot is not None else None,
        result_version=made.version if made is not None else None,
    )


def _reads(ws: Workspace | None, definitions: list[SegmentDef]) -> tuple[set, dict, dict, set]:
    """(columns, features, scores, sources) the definitions read, from the workspace."""
    columns: set[str] = set()
    for definition in definitions:
        columns |= rules.columns(definition.tree()) | set(definition.kpis)
    if ws is None:
        return columns, {}, {}, set()
    schema = declared_schema(ws)
    features: dict[str, dict[str, Any]] = {}
    scores: dict[str, dict[str, Any]] = {}
    sources: set[str] = set()
    pending = list(columns)
    seen: set[str] = set()
    while pending:
        column = pending.pop()
        if column in seen:
            continue
        seen.add(column)
        if column in ws.scores:
            scores[column] = ws.scores[column].model_dump(mode="json", exclude_none=True)
            pending.extend(ws.scores[column].weights)
        elif column in ws.features:
            feature = ws.features[column]
            features[column] = feature.model_dump(mode="json", exclude_none=True)
            sources.add(feature.source)
            via = ws.sources[feature.source].map_via
            if via:
                sources.add(via)
        else:
            try:
                frame_name = schema.resolve(column)
            except SegopsError:
                continue
            sources |= {
                alias.split(".", 1)[0]
                for alias, target in schema.aliases.items()
                if target == frame_name
            }
    for definition in definitions:
        sources |= set(definition.data_sources)
    return columns, features, scores, sources


def lineage(engine: Engine, ws: Workspace | None, name: str) -> Lineage:
    """See the module docstring (sources, features and scores need ``ws``)."""
    with session_scope(engine) as session:
        segment = find_segment(session, name)
        version = current_version(session, segment)
        definition = SegmentDef.model_validate(version.definition)
        every = {s.name: s for s in session.exec(select(Segment)).all()}
        definitions = active_definitions(session)
        definitions.setdefault(definition.name, definition)
        referenced: list[str] = []
        stack = sorted(rules.dependencies(definition.tree()))
        while stack:
            target = stack.pop(0)
            if target in referenced or target not in every:
                continue
            referenced.append(target)
            target_def = definitions.get(target) or SegmentDef.model_validate(
                current_version(session, every[target]).definition
            )
            stack.extend(sorted(rules.dependencies(target_def.tree())))
        dependants: list[str] = []
        frontier = [definition.name]
        while frontier:
            target = frontier.pop(0)
            for other, other_def in sorted(definitions.items()):
                if other in dependants or other == definition.name:
                    continue
                if target in rules.dependencies(other_def.tree()):
                    dependants.append(other)
                    frontier.append(other)
        read = [definition] + [definitions[n] for n in referenced if n in definitions]
        columns, features, scores, sources = _reads(ws, read)
        own = _link(session, segment)
        result, snapshot = current_result(session, segment=segment)
        came_from, went_into = _origins(session, segment)
        return Lineage(
            segment=segment.name,
            version=version.version,
            as_of=own.as_of,
            result_version=own.result_version,
            data_fingerprint=snapshot.data_fingerprint if snapshot is not None else None,
            sources=sorted(sources),
            features=dict(sorted(features.items())),
            scores=dict(sorted(scores.items())),
            columns=sorted(columns),
            references=[_link(session, every[n]) for n in referenced],
            dependants=[_link(session, every[n]) for n in dependants],
            came_from=came_from,
            went_into=went_into,
        )
