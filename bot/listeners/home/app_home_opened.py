"""``app_home_opened``: the Home tab, a user's segments with their health, proposals awaiting them.

An owner sees each of their segments with its status, last refresh, size trend, open
alerts and how much field feedback came in lately, then the proposals they may decide
with Approve / Reject buttons. A user who owns nothing sees the catalog (and any
proposal waiting for them as an approver). Destinations whose sync of those segments
(every segment, for a user who owns nothing) failed, keeps failing, is disabled or waits
for approval are listed with the command that deals with them; nothing when all is fine.
Everyone sees how to use ``/persona`` and ``/feedback``. Sizes under the privacy floor
are not shown.
"""

from __future__ import annotations

import logging
from datetime import UTC, datetime, timedelta
from typing import Any

from slack_bolt import Ack
from slack_sdk import WebClient

from bot.dedupe import mark_processed
from bot.listeners.handler import Handler
from briefs.render import render_blocks
from commands import catalog, proposals, syncs
from commands.feedback import list_feedback

logger = logging.getLogger(__name__)

HOME_BLOCKS_MAX = 100
SEGMENTS_SHOWN = 20
PROPOSALS_SHOWN = 8
SYNCS_SHOWN = 10
FEEDBACK_DAYS = 30
FEEDBACK_COUNTED = 500


class Home(Handler):
    """The App Home listener, bound to one engine and settings."""

    def ack_now(self, ack: Ack) -> None:
        ack()

    def home_opened(self, body: dict[str, Any], event: dict[str, Any], client: WebClient) -> None:
        if event.get("tab", "home") == "home":
            user = event["user"]
            client.views_publish(user_id=user, view=self.home_view(user))
        mark_processed(self.engine, body["event_id"])

    def home_view(self, user: str) -> dict[str, Any]:
        """The Home tab of ``user``."""
        blocks = render_blocks(
            "home", self.home_context(user), templates_dir=self.settings.templates_dir
        )
        return {"type": "home", "blocks": blocks[:HOME_BLOCKS_MAX]}

    def home_context(self, user: str) -> dict[str, Any]:
        """The ``home`` brief context of ``user`` (see ``briefs.render``)."""
        summaries = catalog.list_segments(self.engine, privacy_floor=self.settings.privacy_floor)
        owned = [s for s in summaries if s.owner == user]
        pending = proposals.pending_for(self.engine, user)
        failing = syncs.failing(self.engine, owner=user if owned else None)
        return {
            "segments": [self._segment(s.name) for s in owned[:SEGMENTS_SHOWN]],
            "more_segments": max(len(owned) - SEGMENTS_SHOWN, 0),
            "pending": [
                {
                    "id": p.id,
                    "kind": p.kind,
                    "segment": p.segment,
                    "proposer": p.proposer,
                    "reason": p.reason,
                    "created_at": p.created_at,
                    "changes": p.changes,
                }
                for p in pending[:PROPOSALS_SHOWN]
            ],
            "more_pending": max(len(pending) - PROPOSALS_SHOWN, 0),
            "failing_syncs": [f.to_dict() for f in failing[:SYNCS_SHOWN]],
            "more_failing_syncs": max(len(failing) - SYNCS_SHOWN, 0),
            "catalog": [] if owned else [self._catalog_row(s.to_dict()) for s in summaries],
            "feedback_days": FEEDBACK_DAYS,
            "privacy_floor": self.settings.privacy_floor,
        }

    def _catalog_row(self, row: dict[str, Any]) -> dict[str, Any]:
        return {"channel": None, "open_alerts": 0, **row}

    def _segment(self, name: str) -> dict[str, Any]:
        shown = catalog.show_segment(self.engine, name, privacy_floor=self.settings.privacy_floor)
        definition, stats = shown["definition"], shown["stats"] or {}
        since = datetime.now(UTC) - timedelta(days=FEEDBACK_DAYS)
        notes = list_feedback(self.engine, segment=name, limit=FEEDBACK_COUNTED)
        return {
            "name": shown["name"],
            "title": definition.get("title") or shown["name"],
            "tier": definition.get("tier") or "tactical",
            "status": shown["status"],
            "version": shown["version"],
            "size": stats.get("size"),
            "as_of": stats.get("as_of"),
            "trend": stats.get("trend") or [],
            "open_alerts": stats.get("open_alerts") or 0,
            "stats": {
                key: stats.get(key)
                for key in ("version", "current_version", "definition_changed", "expected_size")
            },
            "feedback": sum(datetime.fromisoformat(n.created_at) >= since for n in notes),
        }
