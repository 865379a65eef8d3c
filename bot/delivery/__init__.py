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
4. uploads ``files`` with ``files_upload_v2`` into the message's thread; a file marked
   ``inline`` (the drift alert's chart) is uploaded before the first part and shown in
   it as an image block once Slack has processed it, else it joins the others in the
   thread (:mod:`.posting`);
5. marks the row ``sent`` with its ``ts``.

A row with ``edits`` replaces a message instead (``chat.update``): the ``ts`` it names,
or the message another outbox row posted, once that row is sent (until then it waits,
as a thread reply waits for its parent; when that row is dead it is dead too). An edit
is idempotent, so a retried one is simply sent again.

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
but before marking the row uploads them again (an inline chart of a first part that
had landed goes to the thread then).

Inside: :mod:`.posting` (parts, metadata, the post and the files), :mod:`.lookup`
(finding landed parts), :mod:`.errors` (retry or dead, backoff, the fallback text);
the queries are in :mod:`store.outbox`. This module runs the steps above.
"""

from __future__ import annotations

import logging
import random
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from slack_sdk import WebClient
from sqlalchemy import Engine

from bot.delivery import lookup, posting
from bot.delivery.errors import (
    AUTH_BACKOFF_CAP,
    BACKOFF_CAP,
    Dead,
    Retry,
    backoff,
    fallback_text,
)
from bot.delivery.posting import METADATA_EVENT_TYPE, Row
from store import outbox
from store.db import session_scope
from store.models import utcnow

__all__ = [
    "CLAIM_LEASE",
    "MAX_ATTEMPTS",
    "METADATA_EVENT_TYPE",
    "DeliveryStats",
    "backoff",
    "deliver_due",
]

logger = logging.getLogger(__name__)

CLAIM_LEASE = timedelta(minutes=2)
THREAD_WAIT = timedelta(seconds=5)
MAX_ATTEMPTS = 12
FALLBACK_SUFFIX = ":undeliverable"


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


def deliver_due(
    engine: Engine,
    client: WebClient,
    *,
    now: datetime | None = None,
    batch: int = 50,
    rng: random.Random | None = None,
    inline_wait: float = posting.INLINE_WAIT,
) -> DeliveryStats:
    """Post up to ``batch`` due outbox rows; see the module docstring. ``inline_wait``:
    seconds to wait for Slack to process a chart shown inside its message."""
    run = _Run(engine, client, now or utcnow(), rng or random.Random(), inline_wait)
    seen: set[int] = set()
    while len(seen) < batch:
        ids = run.due_ids(limit=batch - len(seen), exclude=seen)
        if not ids:
            break
        for row_id in ids:
            seen.add(row_id)
            run.deliver(row_id)
    return run.stats


class _Run:
    """State of one delivery run: the clock, the client and the rate-limited channels."""

    def __init__(
        self,
        engine: Engine,
        client: WebClient,
        now: datetime,
        rng: random.Random,
        inline_wait: float = posting.INLINE_WAIT,
    ):
        self.engine, self.client, self.now, self.rng = engine, client, now, rng
        self.inline_wait = inline_wait
        self.stats = DeliveryStats()
        self.limited: set[str] = set()
        self.channel_ids: dict[str, str] = {}

    # database ----------------------------------------------------------------------------

    def due_ids(self, *, limit: int, exclude: set[int]) -> list[int]:
        with session_scope(self.engine) as session:
            return outbox.due_ids(session, now=self.now, limit=limit, exclude=exclude)

    def _cas(self, row: Row, expect: tuple[str, int], **values: Any) -> bool:
        """Set ``values`` if the row is still at ``expect`` = (status, attempts).

        False when another worker moved it on: that worker owns it now.
        """
        with session_scope(self.engine) as session:
            return outbox.compare_and_set(
                session, row_id=row.id, status=expect[0], attempts=expect[1], values=values
            )

    def _claim(self, row: Row, claimed: int) -> bool:
        """Take the row for this attempt (``sending``, attempts + 1, claim lease)."""
        return self._cas(
            row,
            (row.status, row.attempts),
            status="sending",
            attempts=claimed,
            next_attempt_at=self.now + CLAIM_LEASE,
        )

    def _mark(self, row: Row, claimed: int, **values: Any) -> bool:
        """Update the row this run claimed (still ``sending`` at ``claimed`` attempts)."""
        return self._cas(row, ("sending", claimed), **values)

    # one row -----------------------------------------------------------------------------

    def deliver(self, row_id: int) -> None:
        with session_scope(self.engine) as session:
            found = outbox.find_due(session, row_id=row_id, now=self.now)
            if found is None:
                return
            row = Row.of(found)
            thread_ts, parent_due = None, None
            if row.edits:
                target, parent_due = outbox.edit_target(
                    session, edits=row.edits, channel=row.channel
                )
            elif row.thread_key:
                thread_ts, parent_due = outbox.thread_root(session, thread_key=row.thread_key)
        if row.edits and parent_due is None:
            self._edit(row, target)
            return
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
        except Retry as retry:
            # A row that may already be in Slack stays uncertain until a lookup settles it.
            self._reschedule(row, claimed, retry, uncertain=retry.maybe_posted or check_slack)
            return
        except Dead as dead:
            self._kill(row, claimed, str(dead))
            return
        self._mark(row, claimed, status="sent", ts=ts, sent_at=self.now, last_error=None)
        if recovered:
            self.stats.recovered += 1
            logger.info("outbox_recovered key=%s ts=%s", row.key, ts)
        else:
            self.stats.sent += 1

    def _edit(self, row: Row, target: tuple[str, str] | None) -> None:
        """Replace the posted message ``target`` (channel, ts) with the row's text and
        blocks; with no target (the message was never posted) the row is dead."""
        claimed = row.attempts + 1
        if not self._claim(row, claimed):
            return
        if target is None:
            self._kill(row, claimed, "the message it edits was never posted")
            return
        channel, ts = target
        try:
            channel = posting.open_conversation(self.client, channel)
            if posting.is_name(channel):
                channel = lookup.channel_id(self.client, channel, self.channel_ids)
            posting.edit(self.client, channel=channel, ts=ts, text=row.text, blocks=row.blocks)
        except Retry as retry:
            self._reschedule(row, claimed, retry, uncertain=False)
            return
        except Dead as dead:
            self._kill(row, claimed, str(dead))
            return
        self._mark(row, claimed, status="sent", ts=ts, sent_at=self.now, last_error=None)
        self.stats.sent += 1

    def _post(
        self, row: Row, claimed: int, thread_ts: str | None, *, check_slack: bool
    ) -> tuple[str, bool]:
        """Post the missing parts and the files; (first part's ts, whether all were there)."""
        channel = posting.open_conversation(self.client, row.channel)
        if posting.is_name(channel):
            # Resolved once per run (conversations.list) and kept on the row when posted:
            # uploads and lookups need an id, never a name.
            channel = lookup.channel_id(self.client, channel, self.channel_ids)
        parts = posting.split(row.text, row.blocks)
        posted = (
            lookup.posted_parts(self.client, channel, row, thread_ts, self.channel_ids)
            if check_slack
            else {}
        )
        first_ts = posted.get(0)
        threaded = list(row.files)
        for index, (text, blocks) in enumerate(parts):
            if index in posted:
                continue
            answer = None
            inline = posting.inline_file(row) if index == 0 else None
            if inline is not None:
                file_id = posting.upload_unshared(self.client, inline)
                if posting.processed(self.client, file_id, wait=self.inline_wait):
                    answer = posting.post_with_chart(
                        self.client,
                        channel=channel,
                        text=text,
                        blocks=blocks,
                        thread_ts=thread_ts,
                        key=row.key,
                        file_id=file_id,
                        title=str(inline.get("title") or inline.get("filename") or "chart"),
                    )
                if answer is not None:
                    threaded.remove(inline)
                else:  # not ready in time, or refused: the chart goes in the thread
                    posting.delete_file(self.client, file_id)
            if answer is None:
                answer = posting.post_part(
                    self.client,
                    channel=channel,
                    text=text,
                    blocks=blocks,
                    thread_ts=thread_ts,
                    key=row.key,
                    index=index,
                )
            if index == 0:
                first_ts = answer["ts"]
                # Keep the channel id Slack answered with: lookups need an id, not a name.
                named = {"channel": answer["channel"]} if posting.is_name(row.channel) else {}
                self._mark(row, claimed, ts=first_ts, **named)
        posting.upload_files(self.client, threaded, channel, thread_ts or first_ts)
        assert first_ts is not None
        return first_ts, len(posted) >= len(parts)

    # outcomes ----------------------------------------------------------------------------

    def _reschedule(self, row: Row, claimed: int, retry: Retry, *, uncertain: bool) -> None:
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

    def _kill(self, row: Row, claimed: int, reason: str) -> None:
        with session_scope(self.engine) as session:
            if not outbox.kill(session, row_id=row.id, attempts=claimed, reason=reason):
                return
            self.stats.dead += 1
            logger.warning("outbox_dead key=%s channel=%s reason=%s", row.key, row.channel, reason)
            if not row.fallback_user or row.fallback_user == row.channel:
                return
            text = fallback_text(kind=row.kind, channel=row.channel, text=row.text, reason=reason)
            if outbox.add_fallback(
                session,
                key=row.key + FALLBACK_SUFFIX,
                channel=row.fallback_user,
                text=text,
                now=self.now,
            ):
                self.stats.fallbacks += 1
