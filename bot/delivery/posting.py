"""Posting one outbox row: its Slack-sized parts with metadata, the DM it may need, its files.

Every part carries message metadata ``{"event_type": "segops_outbox",
"event_payload": {"key": <idempotency key>, "part": n}}`` so a later lookup
(:mod:`bot.delivery.lookup`) can find what already landed.
"""

from __future__ import annotations

import base64
import re
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any

from slack_sdk import WebClient

from bot.delivery.errors import Dead, call
from briefs.blocks import split_messages, split_text
from store.models import OutboxMessage

METADATA_EVENT_TYPE = "segops_outbox"
TEXT_PART_MAX = 3000
_ID = re.compile(r"^[CGDUW][A-Z0-9]+$")  # ids; channel names are lower-case


@dataclass
class Row:
    """A detached snapshot of the row being delivered."""

    id: int
    key: str
    kind: str
    channel: str
    thread_key: str | None
    text: str
    blocks: list[dict[str, Any]]
    files: list[dict[str, Any]]
    fallback_user: str | None
    status: str
    attempts: int
    ts: str | None
    created_at: datetime
    edits: str | None = None

    @classmethod
    def of(cls, row: OutboxMessage) -> Row:
        assert row.id is not None
        return cls(
            row.id,
            row.idempotency_key,
            row.kind,
            row.channel,
            row.thread_key,
            row.text,
            list(row.blocks or []),
            list(row.files or []),
            row.fallback_user,
            row.status,
            row.attempts,
            row.ts,
            row.created_at,
            row.edits,
        )


def split(text: str, blocks: list[dict[str, Any]]) -> list[tuple[str, list[dict[str, Any]]]]:
    """Slack-sized parts of one message: blocks packed by ``split_messages``, or text pieces."""
    if blocks:
        return [(m["text"], list(m["blocks"])) for m in split_messages(blocks, text=text)]
    return [(piece, []) for piece in split_text(text, TEXT_PART_MAX)] or [(text, [])]


def metadata(key: str, part: int) -> dict[str, Any]:
    """The message metadata that marks part ``part`` of the row ``key``."""
    return {"event_type": METADATA_EVENT_TYPE, "event_payload": {"key": key, "part": part}}


def is_user(channel: str) -> bool:
    """A user id (``U…``/``W…``): the message goes to the DM with that user."""
    return bool(_ID.match(channel)) and channel[:1] in ("U", "W")


def is_name(channel: str) -> bool:
    """``#growth`` or ``growth`` rather than an id such as ``C0123ABC``."""
    return not _ID.match(channel)


def open_conversation(client: WebClient, channel: str) -> str:
    """The conversation to post to: a user id opens (or finds) the DM with that user."""
    if not is_user(channel):
        return channel
    answer = call(client.conversations_open, {"users": channel})
    return answer["channel"]["id"]


def post_part(
    client: WebClient,
    *,
    channel: str,
    text: str,
    blocks: list[dict[str, Any]],
    thread_ts: str | None,
    key: str,
    index: int,
) -> Any:
    """``chat.postMessage`` of one part; a failure may still have landed (``maybe_posted``)."""
    return call(
        client.chat_postMessage,
        {
            "channel": channel,
            "text": text,
            "blocks": blocks or None,
            "thread_ts": thread_ts,
            "metadata": metadata(key, index),
            "unfurl_links": False,
            "unfurl_media": False,
        },
        maybe_posted=True,
    )


def edit(client: WebClient, *, channel: str, ts: str, text: str, blocks: list[dict[str, Any]]):
    """``chat.update`` of the message ``ts`` in ``channel``: replaying it is harmless."""
    return call(
        client.chat_update, {"channel": channel, "ts": ts, "text": text, "blocks": blocks or None}
    )


def upload_files(client: WebClient, row: Row, channel: str, thread_ts: str | None) -> None:
    """Upload the row's ``files`` with ``files_upload_v2`` into the message's thread."""
    uploads = []
    for entry in row.files:
        filename = entry.get("filename") or Path(str(entry.get("path") or "file")).name
        if entry.get("path"):
            try:
                content = Path(entry["path"]).read_bytes()
            except OSError as error:
                raise Dead(f"file {entry['path']}: {error.strerror or error}") from error
        elif entry.get("bytes_b64") or entry.get("content_b64"):
            # commands.notify writes charts as ``content_b64``; both names mean the same.
            content = base64.b64decode(entry.get("bytes_b64") or entry["content_b64"])
        else:
            raise Dead(f"file {filename}: no path, bytes_b64 or content_b64")
        uploads.append(
            {"content": content, "filename": filename, "title": entry.get("title") or filename}
        )
    call(
        client.files_upload_v2,
        {"file_uploads": uploads, "channel": channel, "thread_ts": thread_ts},
        transient_client_errors=True,
    )
