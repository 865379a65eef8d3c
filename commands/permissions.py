"""Who may start a refresh from Slack: the owner or an approver of the segment named, or
a refresh admin (``SEGOPS_REFRESH_ADMINS``), who alone may refresh every segment at once."""

from __future__ import annotations

from collections.abc import Collection

from sqlalchemy import Engine

from commands.errors import NotAuthorised, person
from commands.lookup import find_segment
from store.db import session_scope


def authorise_refresh(
    engine: Engine, *, user: str, segment: str | None, admins: Collection[str]
) -> None:
    """Raise NotAuthorised unless ``user`` may refresh ``segment`` (None: every segment)."""
    if user in admins:
        return
    if segment is None:
        raise NotAuthorised(
            "refreshing every segment is for refresh admins (SEGOPS_REFRESH_ADMINS); "
            "refresh a segment you own or approve with `/segment refresh NAME`"
        )
    with session_scope(engine) as session:
        row = find_segment(session, segment)
        people = [row.owner, *(row.approvers or [])]
        if user in people:
            return
        who = f"the owner {person(row.owner)}"
        if row.approvers:
            who += " or approvers " + ", ".join(person(a) for a in row.approvers)
        raise NotAuthorised(
            f"only {who} (or a refresh admin) can refresh segment '{row.name}'", users=people
        )
