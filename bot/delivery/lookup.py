"""Recovering posts that landed: find a row's parts in the channel by their metadata.

Reads ``conversations.history`` (or ``conversations.replies`` for thread replies,
with ``include_all_metadata``) from the row's creation minus ``LOOKUP_MARGIN``, at most
``LOOKUP_PAGES`` pages of 200. A channel configured by name is first resolved to its
id with ``conversations.list``.
"""

from __future__ import annotations

from datetime import timedelta
from typing import Any

from slack_sdk import WebClient

from bot.delivery.errors import Dead, call
from bot.delivery.posting import METADATA_EVENT_TYPE, Row, is_name

LOOKUP_PAGES = 5
LOOKUP_MARGIN = timedelta(minutes=1)


def channel_id(client: WebClient, name: str, known: dict[str, str]) -> str:
    """The id of a channel given by name (``conversations.list``; rare: recovery only).

    ``known`` caches name -> id for the run.
    """
    wanted = name.lstrip("#")
    if wanted in known:
        return known[wanted]
    cursor: str | None = None
    while True:
        answer = call(
            client.conversations_list,
            {
                "types": "public_channel,private_channel",
                "exclude_archived": True,
                "limit": 1000,
                "cursor": cursor,
            },
        )
        for channel in answer.get("channels") or []:
            known[channel.get("name", "")] = channel["id"]
        if wanted in known:
            return known[wanted]
        cursor = (answer.get("response_metadata") or {}).get("next_cursor") or None
        if not cursor:
            raise Dead("channel_not_found")


def posted_parts(
    client: WebClient, channel: str, row: Row, thread_ts: str | None, known: dict[str, str]
) -> dict[int, str]:
    """Parts of this row already in Slack, found by their metadata: part -> ts."""
    if is_name(channel):
        channel = channel_id(client, channel, known)
    oldest = f"{(row.created_at - LOOKUP_MARGIN).timestamp():.6f}"
    found: dict[int, str] = {}
    cursor: str | None = None
    for _ in range(LOOKUP_PAGES):
        args: dict[str, Any] = {
            "channel": channel,
            "oldest": oldest,
            "include_all_metadata": True,
            "limit": 200,
            "cursor": cursor,
        }
        if thread_ts:
            try:
                answer = call(client.conversations_replies, {**args, "ts": thread_ts})
            except Dead as gone:
                if str(gone) == "thread_not_found":  # parent deleted: nothing of ours there
                    return found
                raise
        else:
            answer = call(client.conversations_history, args)
        for message in answer.get("messages") or []:
            meta = message.get("metadata") or {}
            payload = meta.get("event_payload") or {}
            if meta.get("event_type") == METADATA_EVENT_TYPE and payload.get("key") == row.key:
                found.setdefault(int(payload.get("part", 0)), message["ts"])
        cursor = (answer.get("response_metadata") or {}).get("next_cursor") or None
        if not cursor:
            break
    return found
