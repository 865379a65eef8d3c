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
        raise UnknownSegment(name, store_catalog.segment_names(session))
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
