"""Renaming a segment: the segment keeps its row, so its versions, memberships, alerts,
feedback and proposals stay with it; only its name changes, as a ``rename`` version.

Other segments that refer to it with ``in_segment("old")`` are rewritten to the new name
in the same transaction, each as a new version of its own whose reason says why. The
rewrite changes no member (the referenced segment is the same), so it is carried by the
rename's approval: the author and approver of the rename are recorded on it.
"""

from __future__ import annotations

from sqlmodel import Session, select

from commands.catalog import record_version
from commands.proposals.definition import active_definitions, dependents, renamed_reference
from store.models import Segment


def rewrite_dependents(
    session: Session,
    *,
    old: str,
    new: str,
    author: str,
    approver: str | None,
) -> list[str]:
    """Record a new version of every active segment whose rule refers to ``old``, naming
    ``new`` instead (same transaction; call it after the rename's own version)."""
    definitions = active_definitions(session)
    names = dependents(definitions, old)
    for name in names:
        segment = session.exec(select(Segment).where(Segment.name == name)).one()
        record_version(
            session,
            segment=segment,
            definition=renamed_reference(definitions[name], old, new),
            change_kind="edit",
            author=author,
            approver=approver,
            reason=f"in_segment('{old}') now names '{new}': segment '{old}' was renamed",
        )
    return names
