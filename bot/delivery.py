"""The outbox delivery loop: post due ``OutboxMessage`` rows to Slack, each exactly once.

``deliver_due(engine, client)`` takes up to ``batch`` due rows (``pending``, or
``sending`` rows whose claim expired) in id order and for each:

1. resolves ``thread_key`` (another message's idempotency key) to that message's
   thread root ``ts``; a reply whose parent is not posted yet waits a few seconds;
2. claims the row with a compare-and-set to ``status='sending'`` (``attempts`` + 1,
   ``next_attempt_at`` = now + a claim lease), so two workers never post it together;
3. posts it with ``chat.postMessage`` (text + blocks, packed into as many messages as
   Slack's limits need by ``briefs.blocks.split_messages``), every part carrying message
   metadata ``{"event_type": "segops_outbox", "event_payload": {"key": <key>, "part": n}}``;
   the first part's ``ts`` is stored as soon as it is known;
4. uploads ``files`` with ``files_upload_v2`` into the message's thread;
5. marks the row ``sent`` with its ``ts``.

Failures:

- **429**: ``next_attempt_at = now + Retry-After``; other rows of that channel wait
  for the next run.
- **5xx, timeouts, connection errors, auth errors** (``invalid_auth`` and friends are
  a configuration problem, not an undeliverable message): exponential backoff with
  jitter. After ``MAX_ATTEMPTS`` transient failures the row is dead; auth errors
  retry (capped at an hour) until the token is fixed.
- **Anything else** Slack refuses (``channel_not_found``, ``not_in_channel``,
  ``is_archived``, ``invalid_blocks`` ...): the row is marked ``dead`` and a DM to
  its ``fallback_user`` is queued in the outbox (``conversations.open`` +
  ``chat.postMessage``) with the reason and the original text.

Idempotency across crashes: a row found in ``sending`` (the process died between
posting and marking, or the post's answer was lost to a 5xx or a timeout), or with
a ``ts`` but not ``sent``, is first looked up in the channel (``conversations.history``,
or ``conversations.replies`` for thread replies, with ``include_all_metadata``); parts
already there are not posted again. Limits: the lookup reads messages newer than
the row's creation (minus a minute) and at most ``LOOKUP_PAGES`` pages of 200; it
needs the ``*:history`` scopes for the channel (and ``channels:read``/``groups:read``
to find the id of a channel configured by name); a message deleted in Slack meanwhile
is posted again; file uploads carry no metadata, so a crash after uploading files
but before marking the row uploads them again.
"""

from __future__ import annotations

import base64
import logging
import random
import re
import urllib.error
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

from slack_sdk import WebClient
from slack_sdk.errors import SlackApiError, SlackClientError
from sqlalchemy import Engine, select, update
from sqlmodel import Session

from briefs.blocks import split_messages, split_text
from store.db import session_scope
from store.models import OutboxMessage, utcnow

logger = logging.getLogger(__name__)

METADATA_EVENT_TYPE = "segops_outbox"
CLAIM_LEASE = timedelta(minutes=2)
THREAD_WAIT = timedelta(seconds=5)
BACKOFF_BASE_SECONDS = 5.0
BACKOFF_CAP = timedelta(minutes=30)
AUTH_BACKOFF_CAP = timedelta(hours=1)
MAX_ATTEMPTS = 12
LOOKUP_PAGES = 5
LOOKUP_MARGIN = timedelta(minutes=1)
FALLBACK_SUFFIX = ":undeliverable"
FALLBACK_QUOTE_CHARS = 2500
TEXT_PART_MAX = 3000

DUE_STATUSES = ("pending", "sending")
_ID = re.compile(r"^[CGDUW][A-Z0-9]+$")  # ids; channel names are lower-case
AUTH_ERRORS = frozenset(
    {
        "invalid_auth",
        "not_authed",
        "account_inactive",
        "token_revoked",
        "token_expired",
        "no_permission",
        "missing_scope",
        "org_login_required",
        "ekm_access_denied",
        "team_access_not_granted",
    }
)
TRANSIENT_ERRORS = frozenset(
    {"ratelimited", "internal_error", "fatal_error", "service_unavailable", "request_timeout"}
)


@dataclass
class DeliveryStats:
    """What one :func:`deliver_due` run did."""

    sent: int = 0
    recovered: int = 0  # already in Slack (found by metadata), marked sent without posting
    retried: int = 0  # rescheduled after a transient failure
    deferred: int = 0  # waiting for the thread parent, or its channel is rate-limited
    dead: int = 0  # undeliverable; a fallback DM was queued when the row names a user
    fallbacks: int = 0  # fallback DMs queued

    def __add__(self, other: DeliveryStats) -> DeliveryStats:
        return DeliveryStats(**{k: getattr(self, k) + getattr(other, k) for k in self.__dict__})


class _Retry(Exception):
    """A transient failure; ``maybe_posted`` when a post may have landed despite it."""

    def __init__(
        self,
        reason: str,
        *,
        maybe_posted: bool = False,
        retry_after: timedelta | None = None,
        auth: bool = False,
    ) -> None:
        super().__init__(reason)
        self.reason = reason
        self.maybe_posted = maybe_posted
        self.retry_after = retry_after
        self.auth = auth


class _Dead(Exception):
    """Slack refused the message for good."""


@dataclass
class _Row:
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

    @classmethod
    def of(cls, row: OutboxMessage) -> _Row:
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
        )


def deliver_due(
    engine: Engine,
    client: WebClient,
    *,
    now: datetime | None = None,
    batch: int = 50,
    rng: random.Random | None = None,
) -> DeliveryStats:
    """Post up to ``batch`` due outbox rows; see the module docstring."""
    run = _Run(engine, client, now or utcnow(), rng or random.Random())
    seen: set[int] = set()
    while len(seen) < batch:
        ids = run.due_ids(limit=batch - len(seen), exclude=seen)
        if not ids:
            break
        for row_id in ids:
            seen.add(row_id)
            run.deliver(row_id)
    return run.stats


def backoff(attempts: int, rng: random.Random, *, cap: timedelta = BACKOFF_CAP) -> timedelta:
    """Exponential backoff with equal jitter: half the step fixed, half random."""
    step = min(cap.total_seconds(), BACKOFF_BASE_SECONDS * 2 ** max(attempts - 1, 0))
    return timedelta(seconds=step / 2 + rng.uniform(0, step / 2))


def _split(text: str, blocks: list[dict[str, Any]]) -> list[tuple[str, list[dict[str, Any]]]]:
    """Slack-sized parts of one message: blocks packed by ``split_messages``, or text pieces."""
    if blocks:
        return [(m["text"], list(m["blocks"])) for m in split_messages(blocks, text=text)]
    return [(piece, []) for piece in split_text(text, TEXT_PART_MAX)] or [(text, [])]


def _metadata(key: str, part: int) -> dict[str, Any]:
    return {"event_type": METADATA_EVENT_TYPE, "event_payload": {"key": key, "part": part}}


def _is_user(channel: str) -> bool:
    return bool(_ID.match(channel)) and channel[:1] in ("U", "W")


def _is_name(channel: str) -> bool:
    """``#growth`` or ``growth`` rather than an id such as ``C0123ABC``."""
    return not _ID.match(channel)


class _Run:
    """State of one delivery run: the clock, the client and the rate-limited channels."""

    def __init__(self, engine: Engine, client: WebClient, now: datetime, rng: random.Random):
        self.engine, self.client, self.now, self.rng = engine, client, now, rng
        self.stats = DeliveryStats()
        self.limited: set[str] = set()
        self.channel_ids: dict[str, str] = {}

    # database ----------------------------------------------------------------------------

    def due_ids(self, *, limit: int, exclude: set[int]) -> list[int]:
        with session_scope(self.engine) as session:
            query = (
                select(OutboxMessage.id)
                .where(
                    OutboxMessage.status.in_(DUE_STATUSES),  # type: ignore[attr-defined]
                    OutboxMessage.next_attempt_at <= self.now,
                )
                .order_by(OutboxMessage.id)  # type: ignore[arg-type]
                .limit(limit + len(exclude))
            )
            ids = [i for i in session.execute(query).scalars() if i not in exclude]
        return ids[:limit]

    def _cas(self, row: _Row, expect: tuple[str, int], **values: Any) -> bool:
        """Set ``values`` if the row is still at ``expect`` = (status, attempts).

        False when another worker moved it on: that worker owns it now.
        """
        with session_scope(self.engine) as session:
            result = session.execute(
                update(OutboxMessage)
                .where(
                    OutboxMessage.id == row.id,
                    OutboxMessage.status == expect[0],
                    OutboxMessage.attempts == expect[1],
                )
                .values(**values)
            )
            return result.rowcount == 1

    def _claim(self, row: _Row, claimed: int) -> bool:
        """Take the row for this attempt (``sending``, attempts + 1, claim lease)."""
        return self._cas(
            row,
            (row.status, row.attempts),
            status="sending",
            attempts=claimed,
            next_attempt_at=self.now + CLAIM_LEASE,
        )

    def _mark(self, row: _Row, claimed: int, **values: Any) -> bool:
        """Update the row this run claimed (still ``sending`` at ``claimed`` attempts)."""
        return self._cas(row, ("sending", claimed), **values)

    @staticmethod
    def _thread_ts(session: Session, thread_key: str) -> tuple[str | None, datetime | None]:
        """(thread root ``ts`` of the referenced message, when to look again if unsent).

        A missing or dead parent yields no thread: the reply is posted on its own.
        """
        key: str | None = thread_key
        ts: str | None = None
        for _ in range(10):
            if key is None:
                break
            parent = session.execute(
                select(OutboxMessage).where(OutboxMessage.idempotency_key == key)
            ).scalar_one_or_none()
            if parent is None or parent.status == "dead":
                break
            if parent.status != "sent" or not parent.ts:
                return None, parent.next_attempt_at
            ts, key = parent.ts, parent.thread_key
        return ts, None

    # one row -----------------------------------------------------------------------------

    def deliver(self, row_id: int) -> None:
        with session_scope(self.engine) as session:
            found = session.get(OutboxMessage, row_id)
            if (
                found is None
                or found.status not in DUE_STATUSES
                or found.next_attempt_at > self.now
            ):
                return
            row = _Row.of(found)
            thread_ts, parent_due = None, None
            if row.thread_key:
                thread_ts, parent_due = self._thread_ts(session, row.thread_key)
        if row.channel in self.limited:
            self.stats.deferred += 1
            return
        if parent_due is not None:
            later = max(self.now + THREAD_WAIT, parent_due)
            if self._cas(row, (row.status, row.attempts), next_attempt_at=later):
                self.stats.deferred += 1
            return
        check_slack = row.status == "sending" or row.ts is not None
        claimed = row.attempts + 1
        if not self._claim(row, claimed):
            return
        try:
            ts, recovered = self._post(row, claimed, thread_ts, check_slack=check_slack)
        except _Retry as retry:
            # A row that may already be in Slack stays uncertain until a lookup settles it.
            self._reschedule(row, claimed, retry, uncertain=retry.maybe_posted or check_slack)
            return
        except _Dead as dead:
            self._kill(row, claimed, str(dead))
            return
        self._mark(row, claimed, status="sent", ts=ts, sent_at=self.now, last_error=None)
        if recovered:
            self.stats.recovered += 1
            logger.info("outbox_recovered key=%s ts=%s", row.key, ts)
        else:
            self.stats.sent += 1

    def _post(
        self, row: _Row, claimed: int, thread_ts: str | None, *, check_slack: bool
    ) -> tuple[str, bool]:
        """Post the missing parts and the files; (first part's ts, whether all were there)."""
        channel = self._open(row.channel)
        parts = _split(row.text, row.blocks)
        posted = self._lookup(channel, row, thread_ts) if check_slack else {}
        first_ts = posted.get(0)
        for index, (text, blocks) in enumerate(parts):
            if index in posted:
                continue
            answer = self._call(
                self.client.chat_postMessage,
                {
                    "channel": channel,
                    "text": text,
                    "blocks": blocks or None,
                    "thread_ts": thread_ts,
                    "metadata": _metadata(row.key, index),
                    "unfurl_links": False,
                    "unfurl_media": False,
                },
                maybe_posted=True,
            )
            if index == 0:
                first_ts = answer["ts"]
                # Keep the channel id Slack answered with: lookups need an id, not a name.
                named = {"channel": answer["channel"]} if _is_name(row.channel) else {}
                self._mark(row, claimed, ts=first_ts, **named)
        if row.files:
            self._upload(row, channel, thread_ts or first_ts)
        assert first_ts is not None
        return first_ts, len(posted) >= len(parts)

    def _open(self, channel: str) -> str:
        """The conversation to post to: a user id opens (or finds) the DM with that user."""
        if not _is_user(channel):
            return channel
        answer = self._call(self.client.conversations_open, {"users": channel})
        return answer["channel"]["id"]

    def _channel_id(self, name: str) -> str:
        """The id of a channel given by name (``conversations.list``; rare: recovery only)."""
        wanted = name.lstrip("#")
        if wanted in self.channel_ids:
            return self.channel_ids[wanted]
        cursor: str | None = None
        while True:
            answer = self._call(
                self.client.conversations_list,
                {
                    "types": "public_channel,private_channel",
                    "exclude_archived": True,
                    "limit": 1000,
                    "cursor": cursor,
                },
            )
            for channel in answer.get("channels") or []:
                self.channel_ids[channel.get("name", "")] = channel["id"]
            if wanted in self.channel_ids:
                return self.channel_ids[wanted]
            cursor = (answer.get("response_metadata") or {}).get("next_cursor") or None
            if not cursor:
                raise _Dead("channel_not_found")

    def _lookup(self, channel: str, row: _Row, thread_ts: str | None) -> dict[int, str]:
        """Parts of this row already in Slack, found by their metadata: part -> ts."""
        if _is_name(channel):
            channel = self._channel_id(channel)
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
                    answer = self._call(
                        self.client.conversations_replies, {**args, "ts": thread_ts}
                    )
                except _Dead as gone:
                    if str(gone) == "thread_not_found":  # parent deleted: nothing of ours there
                        return found
                    raise
            else:
                answer = self._call(self.client.conversations_history, args)
            for message in answer.get("messages") or []:
                meta = message.get("metadata") or {}
                payload = meta.get("event_payload") or {}
                if meta.get("event_type") == METADATA_EVENT_TYPE and payload.get("key") == row.key:
                    found.setdefault(int(payload.get("part", 0)), message["ts"])
            cursor = (answer.get("response_metadata") or {}).get("next_cursor") or None
            if not cursor:
                break
        return found

    def _upload(self, row: _Row, channel: str, thread_ts: str | None) -> None:
        uploads = []
        for entry in row.files:
            filename = entry.get("filename") or Path(str(entry.get("path") or "file")).name
            if entry.get("path"):
                try:
                    content = Path(entry["path"]).read_bytes()
                except OSError as error:
                    raise _Dead(f"file {entry['path']}: {error.strerror or error}") from error
            elif entry.get("bytes_b64") or entry.get("content_b64"):
                # commands.notify writes charts as ``content_b64``; both names mean the same.
                content = base64.b64decode(entry.get("bytes_b64") or entry["content_b64"])
            else:
                raise _Dead(f"file {filename}: no path, bytes_b64 or content_b64")
            uploads.append(
                {"content": content, "filename": filename, "title": entry.get("title") or filename}
            )
        self._call(
            self.client.files_upload_v2,
            {"file_uploads": uploads, "channel": channel, "thread_ts": thread_ts},
            transient_client_errors=True,
        )

    @staticmethod
    def _call(
        method: Callable[..., Any],
        kwargs: dict[str, Any],
        *,
        maybe_posted: bool = False,
        transient_client_errors: bool = False,
    ) -> Any:
        """Run one Web API call, turning its failures into ``_Retry`` or ``_Dead``."""
        try:
            return method(**kwargs)
        except SlackApiError as error:
            raise _classify(error, maybe_posted=maybe_posted) from error
        except SlackClientError as error:
            if transient_client_errors:
                raise _Retry(f"{type(error).__name__}: {error}") from error
            raise _Dead(f"{type(error).__name__}: {error}") from error
        except (urllib.error.URLError, TimeoutError, ConnectionError, OSError) as error:
            raise _Retry(f"{type(error).__name__}: {error}", maybe_posted=maybe_posted) from error

    # outcomes ----------------------------------------------------------------------------

    def _reschedule(self, row: _Row, claimed: int, retry: _Retry, *, uncertain: bool) -> None:
        if retry.retry_after is not None:
            self.limited.add(row.channel)
            delay = retry.retry_after
        elif not retry.auth and claimed >= MAX_ATTEMPTS:
            self._kill(row, claimed, f"gave up after {claimed} attempts: {retry.reason}")
            return
        else:
            delay = backoff(claimed, self.rng, cap=AUTH_BACKOFF_CAP if retry.auth else BACKOFF_CAP)
        status = "sending" if uncertain else "pending"
        if self._mark(
            row, claimed, status=status, next_attempt_at=self.now + delay, last_error=retry.reason
        ):
            self.stats.retried += 1
            logger.info(
                "outbox_retry key=%s in=%.1fs reason=%s",
                row.key,
                delay.total_seconds(),
                retry.reason,
            )

    def _kill(self, row: _Row, claimed: int, reason: str) -> None:
        with session_scope(self.engine) as session:
            result = session.execute(
                update(OutboxMessage)
                .where(
                    OutboxMessage.id == row.id,
                    OutboxMessage.status == "sending",
                    OutboxMessage.attempts == claimed,
                )
                .values(status="dead", last_error=reason)
            )
            if result.rowcount != 1:
                return
            self.stats.dead += 1
            logger.warning("outbox_dead key=%s channel=%s reason=%s", row.key, row.channel, reason)
            if not row.fallback_user or row.fallback_user == row.channel:
                return
            key = row.key + FALLBACK_SUFFIX
            exists = session.execute(
                select(OutboxMessage.id).where(OutboxMessage.idempotency_key == key)
            ).first()
            if exists is None:
                session.add(
                    OutboxMessage(
                        idempotency_key=key,
                        kind="undeliverable",
                        channel=row.fallback_user,
                        text=_fallback_text(row, reason),
                        blocks=[],
                        files=[],
                        fallback_user=None,
                        next_attempt_at=self.now,
                    )
                )
                self.stats.fallbacks += 1


def _classify(error: SlackApiError, *, maybe_posted: bool) -> Exception:
    """Map a Web API error answer to ``_Retry`` (with its delay rules) or ``_Dead``."""
    response = error.response
    status = response.status_code
    data = response.data if isinstance(response.data, dict) else {}
    code = str(data.get("error") or f"http_{status}")
    if status == 429:
        headers = {k.lower(): v for k, v in (response.headers or {}).items()}
        raw = headers.get("retry-after")
        value = raw[0] if isinstance(raw, list) else raw
        try:
            seconds = max(int(float(value)), 1)
        except (TypeError, ValueError):
            seconds = 1
        return _Retry(
            f"ratelimited (Retry-After {seconds}s)", retry_after=timedelta(seconds=seconds)
        )
    if status >= 500:
        return _Retry(f"HTTP {status} {code}", maybe_posted=maybe_posted)
    if code in AUTH_ERRORS:
        return _Retry(code, auth=True)
    if code in TRANSIENT_ERRORS:
        return _Retry(code)
    return _Dead(code)


def _fallback_text(row: _Row, reason: str) -> str:
    where = f"<#{row.channel}>" if row.channel[:1] in ("C", "G") else row.channel
    quoted = (
        row.text if len(row.text) <= FALLBACK_QUOTE_CHARS else row.text[:FALLBACK_QUOTE_CHARS] + "…"
    )
    quoted = "\n".join("> " + line for line in quoted.splitlines()) or "> (no text)"
    return (
        f"I could not post a {row.kind} message to {where}: {reason}. "
        f"Invite me to the channel or update its channel setting. The message was:\n{quoted}"
    )
