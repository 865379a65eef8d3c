"""Posting one outbox row: its Slack-sized parts with metadata, the DM it may need, its files.

Every part carries message metadata ``{"event_type": "segops_outbox",
"event_payload": {"key": <idempotency key>, "part": n}}`` so a later lookup
(:mod:`bot.delivery.lookup`) can find what already landed.

A file marked ``inline`` (the drift alert's chart) is shown inside the message: it is
uploaded first without a channel (files upload v2: ``files.getUploadURLExternal``, the
bytes, ``files.completeUploadExternal``), :func:`processed` waits for Slack to finish
processing it (``files.info`` names its image type; until then an image block naming
it is refused as an invalid Slack file), and the first part is posted with an image
block naming the file (``slack_file``). When it is not processed within
``INLINE_WAIT`` seconds, or Slack refuses the image block all the same, the part is
posted without it and the chart goes first in the message's thread, like every other
file.
"""

from __future__ import annotations

import base64
import re
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any

from slack_sdk import WebClient
from slack_sdk.errors import SlackApiError

from bot.delivery.errors import Dead, call
from briefs.blocks import chart_block, split_messages, split_text, with_image
from store.models import OutboxMessage

METADATA_EVENT_TYPE = "segops_outbox"
TEXT_PART_MAX = 3000
INLINE_WAIT = 4.0
"""Seconds delivery waits for an inline chart to be processed before threading it."""
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


def _upload(entry: dict[str, Any]) -> dict[str, Any]:
    """One file entry as a ``files_upload_v2`` upload: content, filename, title."""
    filename = entry.get("filename") or Path(str(entry.get("path") or "file")).name
    if entry.get("path"):
        try:
            content = Path(entry["path"]).read_bytes()
        except OSError as error:
            raise Dead(f"file {entry['path']}: {error.strerror or error}") from error
    elif entry.get("chart"):
        # commands.notify stores a chart's data; it is drawn now, as it is posted
        from briefs.chart import render

        try:
            content = render(entry["chart"])
        except (KeyError, TypeError, ValueError) as error:
            raise Dead(f"file {filename}: chart cannot be drawn: {error}") from error
    elif entry.get("bytes_b64") or entry.get("content_b64"):
        content = base64.b64decode(entry.get("bytes_b64") or entry["content_b64"])
    else:
        raise Dead(f"file {filename}: no path, chart, bytes_b64 or content_b64")
    return {"content": content, "filename": filename, "title": entry.get("title") or filename}


def upload_files(
    client: WebClient,
    files: list[dict[str, Any]],
    channel: str,
    thread_ts: str | None,
) -> None:
    """Upload ``files`` (outbox file entries) with ``files_upload_v2`` into the thread."""
    if not files:
        return
    call(
        client.files_upload_v2,
        {"file_uploads": [_upload(e) for e in files], "channel": channel, "thread_ts": thread_ts},
        transient_client_errors=True,
    )


def inline_file(row: Row) -> dict[str, Any] | None:
    """The row's file to show inside its message (``inline``), if any."""
    return next((entry for entry in row.files if entry.get("inline")), None)


def upload_unshared(client: WebClient, entry: dict[str, Any]) -> str:
    """Upload one file without a channel (only the bot sees it until a message shows
    it); its file id."""
    answer = call(
        client.files_upload_v2, {"file_uploads": [_upload(entry)]}, transient_client_errors=True
    )
    return str(answer["files"][0]["id"])


def processed(
    client: WebClient,
    file_id: str,
    *,
    wait: float = INLINE_WAIT,
    sleep: Callable[[float], None] = time.sleep,
) -> bool:
    """Whether Slack finished processing the image ``file_id`` within ``wait`` seconds
    (``files.info`` gives its image type), polling with growing pauses."""
    deadline = time.monotonic() + wait
    pause = 0.1
    while True:
        try:
            info = client.files_info(file=file_id)
        except SlackApiError:
            return False  # no files:read, or the file is gone: thread it instead
        if str((info.get("file") or {}).get("mimetype") or "").startswith("image/"):
            return True
        if time.monotonic() + pause > deadline:
            return False
        sleep(pause)
        pause = min(pause * 2, 1.0)


def delete_file(client: WebClient, file_id: str) -> None:
    """Remove an unshared upload that will not be shown (best effort: it is the bot's
    own file, seen by no one)."""
    try:
        client.files_delete(file=file_id)
    except SlackApiError:
        pass


def post_with_chart(
    client: WebClient,
    *,
    channel: str,
    text: str,
    blocks: list[dict[str, Any]],
    thread_ts: str | None,
    key: str,
    file_id: str,
    title: str,
) -> Any | None:
    """Post the first part with the chart ``file_id`` inside it; None when it does not
    fit or Slack refuses the image (then nothing was posted)."""
    shown = with_image(blocks, chart_block(file_id, title=title))
    if shown is None:
        return None
    try:
        return call(
            client.chat_postMessage,
            {
                "channel": channel,
                "text": text,
                "blocks": shown,
                "thread_ts": thread_ts,
                "metadata": metadata(key, 0),
                "unfurl_links": False,
                "unfurl_media": False,
            },
            maybe_posted=True,
        )
    except Dead as dead:
        cause = dead.__cause__
        data = cause.response.data if isinstance(cause, SlackApiError) else None
        errors = str(data.get("errors")) if isinstance(data, dict) else ""
        if str(dead) == "invalid_blocks" and "slack_file" in errors:
            return None
        raise
