"""``sync_approve``: the owner or an approver releases a sync that waits for approval.

The person who clicked is told privately what happens next, or why not.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from slack_bolt import Respond
from slack_sdk import WebClient

from bot.listeners.actions.payload import note, number
from bot.listeners.handler import Handler
from bot.listeners.messages import problem
from commands import syncs
from segments.errors import SegopsError


class SyncApprove(Handler):
    """The Approve sync button listener, bound to one engine and settings."""

    use_case: Callable[..., str] = staticmethod(syncs.approve_run)

    def run(
        self, body: dict[str, Any], action: dict[str, Any], respond: Respond, client: WebClient
    ) -> None:
        run_id = number(action)
        if run_id is None:
            note(body, respond, client, ":warning: this button does not name a sync")
            return
        try:
            said = self.use_case(self.engine, run_id=run_id, user=body["user"]["id"])
        except SegopsError as error:
            note(body, respond, client, problem(error))
            return
        note(body, respond, client, ":white_check_mark: " + said)
