"""The feedback digest: each owner gets the field feedback not digested yet."""

from __future__ import annotations

import hashlib
from datetime import datetime, timedelta
from pathlib import Path

from sqlalchemy import Engine

from briefs.render import renderer
from commands.jobs.clock import utc
from store.db import session_scope
from store.outbox import add_message

DIGEST_LOOKBACK = timedelta(days=7)


def feedback_digest(
    engine: Engine,
    *,
    now: datetime | None = None,
    lookback: timedelta = DIGEST_LOOKBACK,
    templates_dir: Path | None = None,
) -> int:
    """Send each owner the feedback not digested yet (from the last ``lookback``).

    The items are marked digested and the messages queued in ONE transaction, so a
    crash in between neither loses a digest nor sends one twice. Returns the number
    of owners.
    """
    from commands.feedback import collect_digest

    now = utc(now)
    sent = 0
    with session_scope(engine) as session:
        for item in collect_digest(session, since=now - lookback, now=now):
            ids = item.feedback_ids
            tag = hashlib.sha256(",".join(map(str, ids)).encode()).hexdigest()[:16]
            rows = add_message(
                session,
                key=f"feedback-digest:{item.owner}:{tag}",
                kind="feedback_digest",
                channel=item.owner,
                messages=renderer(templates_dir).render_messages("feedback-digest", item.context),
                fallback_user=item.owner,
            )
            sent += bool(rows)
    return sent
