"""``/segment learnings [segment | search words]`` and ``/segment learnings note ID TEXT``.

Called by the ``/segment`` listener after its ack; renders ``segment-learnings.j2``.
"""

from __future__ import annotations

from sqlalchemy import Engine

from briefs.render import render_reply
from commands import learnings
from commands.settings import Settings
from segments.errors import SegopsError

NOTE_USAGE = "usage: `/segment learnings note ID WHAT-YOU-WANT-TO-ADD`"


def learnings_reply(engine: Engine, settings: Settings, text: str, *, user: str) -> str:
    """The reply to ``/segment learnings`` with ``text`` after the subcommand."""
    words = (text or "").split()
    if words[:1] == ["note"]:
        if len(words) < 3 or not words[1].lstrip("#").isdigit():
            raise SegopsError(NOTE_USAGE)
        note = text.split(None, 2)[2]
        view = learnings.add_note(engine, int(words[1].lstrip("#")), author=user, text=note)
        rows = [view]
        query = f"#{view.id}"
    else:
        rows = learnings.search(engine, text, limit=10)
        query = text.strip()
    return render_reply(
        "segment-learnings",
        {"query": query, "learnings": [r.to_dict() for r in rows]},
        templates_dir=settings.templates_dir,
    )
