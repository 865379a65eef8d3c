"""Finding a segment for a use case: by name with close-name suggestions, its current
version and definition."""

from __future__ import annotations

from sqlmodel import Session

from commands.errors import UnknownSegment
from segments.workspace import SegmentDef
from store import catalog as store_catalog
from store.models import Segment, SegmentVersion


def find_segment(session: Session, name: str) -> Segment:
    """The segment called ``name``, or UnknownSegment with close names."""
    name = name.strip()
    segment = store_catalog.segment_by_name(session, name=name)
    if segment is None:
        # "engaged_trial" finds "engaged-trial" (and the other way round) when only one
        # of them exists: names that differ only by '-' and '_' are refused at apply.
        names = store_catalog.segment_names(session)
        alike = [n for n in names if n.replace("_", "-") == name.replace("_", "-")]
        if len(alike) != 1:
            raise UnknownSegment(name, names)
        segment = store_catalog.segment_by_name(session, name=alike[0])
    return segment


def current_version(session: Session, segment: Segment) -> SegmentVersion:
    """The segment's current version."""
    version = store_catalog.current_version(session, segment=segment)
    if version is None:  # pragma: no cover - every segment is created with a version
        raise UnknownSegment(segment.name)
    return version


def current_definition(session: Session, segment: Segment) -> SegmentDef:
    """The segment's current definition, as the workspace model."""
    return SegmentDef.model_validate(current_version(session, segment).definition)
