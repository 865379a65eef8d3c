"""Shared Slack test harness: a fake Web API server, request signing and payload posters.

``FakeSlack`` is a real ``ThreadingHTTPServer`` on ``127.0.0.1`` port 0. Point a
``WebClient`` (or the app, through ``slack_api_url``) at ``fake.url``; every call is
recorded as a :class:`Call` and answered with ``{"ok": true}`` plus a canned reply
for the methods segops uses. Faults are programmable per call::

    fake.fail_next("chat.postMessage", Reply.rate_limited(3), Reply.server_error())
    fake.faults = lambda api, body: Reply.error("channel_not_found") if ... else None

Posted messages are kept per channel, so ``conversations.history`` and
``conversations.replies`` answer with what was really posted (metadata included
when ``include_all_metadata`` is set).

Files are as strict as Slack's too: an id is ``F`` and ten characters; a file is
processed :attr:`FakeSlack.processing_delay` seconds after ``files.completeUploadExternal``
(until then ``files.info`` gives no ``mimetype``), and an image block naming a file
(``slack_file``) that is unknown, not completed or not processed yet is refused as
``invalid_blocks`` with Slack's ``invalid slack file [json-pointer:...]``, as is an
image block without ``alt_text`` or with both or neither of ``image_url`` and
``slack_file``.

Response URLs are as strict as Slack's: a JSON body with ``text`` or ``blocks``
(else 400 ``no_text``), at most :data:`RESPONSE_URL_USES` posts each (then 404
``used_url``), and none once expired (:meth:`FakeSlack.expire`, 404 ``expired_url``;
Slack's own limit is 30 minutes).

The ``post_*`` helpers build the payload shapes Slack sends (form-encoded slash
commands, ``payload=`` for interactivity, JSON for events), sign them with
``SignatureVerifier`` and POST them; they never raise on an HTTP error status.
"""

from __future__ import annotations

import itertools
import json
import re
import threading
import time
import urllib.error
import urllib.request
from collections import Counter, defaultdict, deque
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import TYPE_CHECKING, Any
from urllib.parse import parse_qsl, urlencode, urlsplit

import pytest
from slack_bolt import App
from slack_sdk.signature import SignatureVerifier
from sqlalchemy import Engine, func, select

from commands.settings import Settings

if TYPE_CHECKING:
    from bot.server import BackgroundServer

BOT_TOKEN = "xoxb-111-222-test"
SIGNING_SECRET = "test-signing-secret"
TEAM_ID = "T111"
BOT_USER_ID = "U0BOT"
RESPONSE_URL_USES = 5


# --------------------------------------------------------------------------- fake Web API


@dataclass(frozen=True)
class Reply:
    """What the fake answers to one call: HTTP status, JSON body and headers."""

    status: int = 200
    body: dict[str, Any] = field(default_factory=lambda: {"ok": True})
    headers: dict[str, str] = field(default_factory=dict)
    commit: bool = False  # do the call's effect (post the message) before answering this

    @classmethod
    def lost(cls, status: int = 500) -> Reply:
        """The call takes effect but its answer is a 5xx: the client cannot tell it worked."""
        return cls(status, {"ok": False, "error": "internal_error"}, commit=True)

    @classmethod
    def rate_limited(cls, retry_after: int = 1) -> Reply:
        """HTTP 429 with ``Retry-After`` in seconds, as Slack sends it."""
        return cls(429, {"ok": False, "error": "ratelimited"}, {"Retry-After": str(retry_after)})

    @classmethod
    def server_error(cls, status: int = 500) -> Reply:
        """A 5xx answer."""
        return cls(status, {"ok": False, "error": "internal_error"})

    @classmethod
    def error(cls, error: str) -> Reply:
        """HTTP 200 with ``ok: false`` and the given Slack error code."""
        return cls(200, {"ok": False, "error": error})

    @property
    def ok(self) -> bool:
        return self.status == 200 and bool(self.body.get("ok")) and not self.commit


@dataclass
class Call:
    """One recorded request to the fake server."""

    http_method: str
    path: str
    api: str  # "chat.postMessage", "upload", "response_url"
    headers: dict[str, str]
    body: dict[str, Any]
    raw: bytes
    reply: Reply | None = None

    @property
    def ok(self) -> bool:
        return self.reply is not None and self.reply.ok


FaultHook = Callable[[str, dict[str, Any]], Reply | None]


def _truthy(value: Any) -> bool:
    return value in (True, 1, "1", "true", "True")


class FakeSlack:
    """A fake Slack Web API on localhost; see the module docstring."""

    def __init__(self, *, token: str | None = BOT_TOKEN) -> None:
        self.token = token
        self.calls: list[Call] = []
        self.faults: FaultHook | None = None
        self.missing_channels: set[str] = set()
        self.archived_channels: set[str] = set()
        self.channel_names: dict[str, str] = {"general": "C111", "growth": "C777"}
        self.shared_channels: set[str] = set()
        """Channel ids shared with another organisation (Slack Connect)."""
        self.channels: dict[str, list[dict[str, Any]]] = defaultdict(list)
        self.uploads: dict[str, bytes] = {}
        self.files: dict[str, dict[str, Any]] = {}
        """Files by id: ``filename``, ``title``, ``channel_id``, ``completed`` (monotonic)."""
        self.processing_delay = 0.2
        """Seconds from ``files.completeUploadExternal`` until a file is processed."""
        self.expired_response_urls: set[str] = set()
        self._response_url_uses: Counter[str] = Counter()
        self._queued: dict[str, deque[Reply]] = defaultdict(deque)
        self._overrides: dict[str, dict[str, Any]] = {}
        self._lock = threading.Lock()
        self._last_ts = 0.0
        self._ids = itertools.count(1)
        self._server: ThreadingHTTPServer | None = None
        self._thread: threading.Thread | None = None

    # lifecycle ---------------------------------------------------------------------------

    def start(self) -> FakeSlack:
        """Bind port 0 on 127.0.0.1 and serve in a daemon thread."""
        fake = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def do_GET(self) -> None:
                fake._handle(self)

            def do_POST(self) -> None:
                fake._handle(self)

            def log_message(self, format: str, *args: Any) -> None:
                return

        self._server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self._server.daemon_threads = True
        self._thread = threading.Thread(
            target=self._server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True
        )
        self._thread.start()
        return self

    def stop(self) -> None:
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
            self._server = None

    def __enter__(self) -> FakeSlack:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    @property
    def base(self) -> str:
        assert self._server is not None, "FakeSlack is not started"
        host, port = self._server.server_address[:2]
        return f"http://{host}:{port}"

    @property
    def url(self) -> str:
        """The Web API base URL (``slack_api_url``)."""
        return self.base + "/api/"

    def response_url(self, key: str = "1") -> str:
        """A ``response_url`` served (and recorded as api ``response_url``) by this fake."""
        return f"{self.base}/response_url/{key}"

    # programming -------------------------------------------------------------------------

    def fail_next(self, api: str, *replies: Reply) -> None:
        """Answer the next calls to ``api`` with ``replies``, in order, then normally again."""
        with self._lock:
            self._queued[api].extend(replies)

    def expire(self, response_url: str) -> None:
        """Make Slack refuse ``response_url`` from now on, as it does after 30 minutes."""
        with self._lock:
            self.expired_response_urls.add(response_url.rsplit("/", 1)[-1])

    def reply_with(self, api: str, body: dict[str, Any]) -> None:
        """Merge ``body`` into every successful answer to ``api``."""
        with self._lock:
            self._overrides[api] = body

    # inspection --------------------------------------------------------------------------

    def calls_to(self, api: str, *, ok: bool | None = None) -> list[Call]:
        """Recorded calls to one API method (only successful ones with ``ok=True``)."""
        with self._lock:
            calls = [c for c in self.calls if c.api == api]
        return calls if ok is None else [c for c in calls if c.ok == ok]

    def api_calls(self) -> list[Call]:
        """Every recorded Web API call (``auth.test`` made at start-up excluded)."""
        with self._lock:
            return [c for c in self.calls if c.api != "auth.test"]

    def wait_for(
        self,
        api: str,
        count: int = 1,
        *,
        timeout: float = 5.0,
        where: Callable[[Call], bool] | None = None,
    ) -> list[Call]:
        """Poll until ``count`` calls to ``api`` (matching ``where``) arrived; fail on timeout."""
        deadline = time.monotonic() + timeout
        while True:
            calls = [c for c in self.calls_to(api) if c.reply is not None]
            if where is not None:
                calls = [c for c in calls if where(c)]
            if len(calls) >= count:
                return calls
            if time.monotonic() > deadline:
                raise AssertionError(f"expected {count} call(s) to {api}, got {len(calls)}")
            time.sleep(0.01)

    def posted(self, channel: str | None = None) -> list[dict[str, Any]]:
        """Messages really posted (``chat.postMessage`` that took effect), oldest first."""
        with self._lock:
            if channel is not None:
                return list(self.channels.get(channel, []))
            return [m for messages in self.channels.values() for m in messages]

    def posted_keys(self) -> Counter[str]:
        """How many posted messages carry each outbox idempotency key in their metadata."""
        keys: Counter[str] = Counter()
        for message in self.posted():
            payload = (message.get("metadata") or {}).get("event_payload") or {}
            if "key" in payload:
                keys[f"{payload['key']}#{payload.get('part', 0)}"] += 1
        return keys

    def reset(self) -> None:
        """Forget recorded calls, queued faults and posted messages."""
        with self._lock:
            self.calls.clear()
            self._queued.clear()
            self._response_url_uses.clear()
            self.expired_response_urls.clear()
            self.channels.clear()

    # request handling --------------------------------------------------------------------

    def _handle(self, handler: BaseHTTPRequestHandler) -> None:
        split = urlsplit(handler.path)
        length = int(handler.headers.get("Content-Length") or 0)
        raw = handler.rfile.read(length) if length else b""
        headers = {k.lower(): v for k, v in handler.headers.items()}
        body: dict[str, Any] = dict(parse_qsl(split.query))
        content_type = headers.get("content-type", "")
        path = split.path
        if path.startswith("/upload/"):
            pass  # raw file bytes, kept in ``Call.raw``
        elif raw and content_type.startswith("application/json"):
            body.update(json.loads(raw))
        elif raw and content_type.startswith("application/x-www-form-urlencoded"):
            body.update(parse_qsl(raw.decode("utf-8"), keep_blank_values=True))
        if path.startswith("/api/"):
            api = path[len("/api/") :]
        elif path.startswith("/upload/"):
            api = "upload"
        elif path.startswith("/response_url/"):
            api = "response_url"
        else:
            api = path
        call = Call(handler.command, path, api, headers, body, raw)
        with self._lock:
            self.calls.append(call)
            queued = self._queued[api].popleft() if self._queued.get(api) else None
        reply = queued or (self.faults(api, body) if self.faults else None)
        if reply is None:
            reply = self._answer(call)
        elif reply.commit:
            self._answer(call)
        call.reply = reply
        payload = json.dumps(reply.body).encode()
        handler.send_response(reply.status)
        handler.send_header("Content-Type", "application/json; charset=utf-8")
        handler.send_header("Content-Length", str(len(payload)))
        for name, value in reply.headers.items():
            handler.send_header(name, value)
        handler.end_headers()
        handler.wfile.write(payload)

    def _next_ts(self) -> str:
        """A unique, increasing message ts close to the wall clock, like Slack's."""
        with self._lock:
            self._last_ts = max(self._last_ts + 0.000001, time.time())
            return f"{self._last_ts:.6f}"

    def _answer(self, call: Call) -> Reply:
        api, body = call.api, call.body
        if api.startswith("/") or not api:
            return Reply(404, {"ok": False, "error": "unknown_method"})
        if api == "upload":
            self.uploads[call.path.rsplit("/", 1)[-1]] = call.raw
            return Reply(200, {"ok": True})
        if api == "response_url":
            return self._response_url(call)
        if self.token is not None:
            auth = call.headers.get("authorization", "")
            if auth != f"Bearer {self.token}" and body.get("token") != self.token:
                return Reply.error("invalid_auth")
        answer = getattr(self, "_api_" + api.replace(".", "_"), None)
        reply = answer(body) if answer else Reply()
        if reply.ok and api in self._overrides:
            reply = Reply(reply.status, {**reply.body, **self._overrides[api]}, reply.headers)
        return reply

    def _response_url(self, call: Call) -> Reply:
        key = call.path.rsplit("/", 1)[-1]
        with self._lock:
            if key in self.expired_response_urls:
                return Reply(404, {"ok": False, "error": "expired_url"})
            self._response_url_uses[key] += 1
            if self._response_url_uses[key] > RESPONSE_URL_USES:
                return Reply(404, {"ok": False, "error": "used_url"})
        if not call.headers.get("content-type", "").startswith("application/json"):
            return Reply(400, {"ok": False, "error": "invalid_payload"})
        if not call.body.get("text") and not call.body.get("blocks"):
            return Reply(400, {"ok": False, "error": "no_text"})
        return Reply(200, {"ok": True})

    def _channel_error(self, channel: str | None) -> Reply | None:
        if not channel or channel in self.missing_channels:
            return Reply.error("channel_not_found")
        if channel in self.archived_channels:
            return Reply.error("is_archived")
        return None

    # canned answers ----------------------------------------------------------------------

    def _api_auth_test(self, body: dict[str, Any]) -> Reply:
        return Reply(
            body={
                "ok": True,
                "url": "https://t111.slack.com/",
                "team": "Test Team",
                "user": "segops",
                "team_id": TEAM_ID,
                "user_id": BOT_USER_ID,
                "bot_id": "B111",
                "is_enterprise_install": False,
            }
        )

    def _processed(self, file_id: str) -> bool:
        with self._lock:
            entry = self.files.get(file_id)
        completed = entry and entry.get("completed")
        return bool(completed) and time.monotonic() >= completed + self.processing_delay

    def _block_errors(self, blocks: Any) -> Reply | None:
        """``invalid_blocks`` for an image block Slack would refuse, else None."""
        if isinstance(blocks, str):
            blocks = json.loads(blocks)
        errors = []
        for index, block in enumerate(blocks or []):
            if block.get("type") != "image":
                continue
            where = f"[json-pointer:/blocks/{index}"
            if not block.get("alt_text"):
                errors.append(f"missing required field: alt_text {where}]")
            if ("image_url" in block) == ("slack_file" in block):
                errors.append(f"must provide exactly one of image_url or slack_file {where}]")
            file_id = str((block.get("slack_file") or {}).get("id") or "")
            if "slack_file" in block and not re.fullmatch(r"F[A-Z0-9]{8,}", file_id):
                errors.append(
                    f"input must match regex pattern: ^[F][A-Z0-9]{{8,}}$ {where}/slack_file/id]"
                )
            elif "slack_file" in block and not self._processed(file_id):
                errors.append(f"invalid slack file {where}/slack_file]")
        if not errors:
            return None
        messages = [f"[ERROR] {e}" for e in errors]
        return Reply(
            body={
                "ok": False,
                "error": "invalid_blocks",
                "errors": errors,
                "response_metadata": {"messages": messages},
            }
        )

    def _api_chat_postMessage(self, body: dict[str, Any]) -> Reply:
        if refused := self._block_errors(body.get("blocks")):
            return refused
        channel = body.get("channel")
        if isinstance(channel, str) and channel.startswith(("U", "W")):
            channel = "D" + channel
        elif isinstance(channel, str) and not channel[:1].isupper():
            channel = self.channel_names.get(channel.lstrip("#"), "")
        if error := self._channel_error(channel):
            return error
        ts = self._next_ts()
        message: dict[str, Any] = {
            "type": "message",
            "user": BOT_USER_ID,
            "bot_id": "B111",
            "text": body.get("text", ""),
            "ts": ts,
        }
        if body.get("blocks"):
            blocks = body["blocks"]
            message["blocks"] = json.loads(blocks) if isinstance(blocks, str) else blocks
        if body.get("thread_ts"):
            message["thread_ts"] = body["thread_ts"]
        if body.get("metadata"):
            meta = body["metadata"]
            message["metadata"] = json.loads(meta) if isinstance(meta, str) else meta
        with self._lock:
            self.channels[channel].append(message)
        return Reply(body={"ok": True, "channel": channel, "ts": ts, "message": message})

    def _api_chat_update(self, body: dict[str, Any]) -> Reply:
        if error := self._channel_error(body.get("channel")):
            return error
        if refused := self._block_errors(body.get("blocks")):
            return refused
        return Reply(
            body={"ok": True, "channel": body["channel"], "ts": body.get("ts"), "text": ""}
        )

    def _api_chat_postEphemeral(self, body: dict[str, Any]) -> Reply:
        if error := self._channel_error(body.get("channel")):
            return error
        return Reply(body={"ok": True, "message_ts": self._next_ts()})

    def _api_chat_getPermalink(self, body: dict[str, Any]) -> Reply:
        ts = str(body.get("message_ts", "")).replace(".", "")
        link = f"https://t111.slack.com/archives/{body.get('channel')}/p{ts}"
        return Reply(body={"ok": True, "channel": body.get("channel"), "permalink": link})

    def _view(self, body: dict[str, Any]) -> Reply:
        view = body.get("view") or {}
        if isinstance(view, str):
            view = json.loads(view)
        return Reply(body={"ok": True, "view": {"id": f"V{next(self._ids):04d}", **view}})

    _api_views_open = _view
    _api_views_publish = _view
    _api_views_update = _view
    _api_views_push = _view

    def _api_conversations_open(self, body: dict[str, Any]) -> Reply:
        users = str(body.get("users", "")).split(",")[0]
        if not users:
            return Reply.error("users_list_not_supplied")
        return Reply(body={"ok": True, "channel": {"id": "D" + users}})

    def _api_conversations_list(self, body: dict[str, Any]) -> Reply:
        channels = [{"id": cid, "name": name} for name, cid in self.channel_names.items()]
        return self._page(channels, body, key="channels")

    def _api_conversations_info(self, body: dict[str, Any]) -> Reply:
        channel = body.get("channel")
        if error := self._channel_error(channel):
            return error
        if str(channel)[:1] not in ("C", "G", "D"):
            return Reply.error("channel_not_found")  # like Slack: an id, never a #name
        names = {cid: name for name, cid in self.channel_names.items()}
        shared = channel in self.shared_channels
        return Reply(
            body={
                "ok": True,
                "channel": {
                    "id": channel,
                    "name": names.get(channel, channel.lower()),
                    "is_shared": shared,
                    "is_ext_shared": shared,
                    "is_pending_ext_shared": False,
                },
            }
        )

    def _api_conversations_history(self, body: dict[str, Any]) -> Reply:
        channel = body.get("channel")
        if error := self._channel_error(channel):
            return error
        with self._lock:
            posted = [m for m in self.channels.get(channel, []) if "thread_ts" not in m]
        oldest = float(body.get("oldest") or 0)
        newest_first = [m for m in reversed(posted) if float(m["ts"]) > oldest]
        return self._page(newest_first, body)

    def _api_conversations_replies(self, body: dict[str, Any]) -> Reply:
        channel, ts = body.get("channel"), body.get("ts")
        if error := self._channel_error(channel):
            return error
        with self._lock:
            posted = list(self.channels.get(channel, []))
        thread = [m for m in posted if m["ts"] == ts or m.get("thread_ts") == ts]
        if not thread:
            return Reply.error("thread_not_found")
        return self._page(thread, body)

    def _page(
        self, messages: list[dict[str, Any]], body: dict[str, Any], *, key: str = "messages"
    ) -> Reply:
        limit = int(body.get("limit") or 100)
        start = int(body.get("cursor") or 0)
        page = messages[start : start + limit]
        if not _truthy(body.get("include_all_metadata")):
            page = [{k: v for k, v in m.items() if k != "metadata"} for m in page]
        more = start + limit < len(messages)
        return Reply(
            body={
                "ok": True,
                key: page,
                "has_more": more,
                "response_metadata": {"next_cursor": str(start + limit) if more else ""},
            }
        )

    def _api_files_getUploadURLExternal(self, body: dict[str, Any]) -> Reply:
        if not body.get("filename") or not str(body.get("length") or "").isdigit():
            return Reply.error("invalid_arguments")
        file_id = f"F{next(self._ids):010d}"
        with self._lock:
            self.files[file_id] = {"filename": body["filename"], "completed": None}
        return Reply(
            body={"ok": True, "upload_url": f"{self.base}/upload/{file_id}", "file_id": file_id}
        )

    def _api_files_completeUploadExternal(self, body: dict[str, Any]) -> Reply:
        channel = body.get("channel_id")
        if channel and str(channel)[:1] not in ("C", "G", "D"):
            return Reply.error("channel_not_found")  # like Slack: an id, never a #name
        if channel and (error := self._channel_error(channel)):
            return error
        files = body.get("files") or "[]"
        files = json.loads(files) if isinstance(files, str) else files
        with self._lock:
            if any(f["id"] not in self.files or f["id"] not in self.uploads for f in files):
                return Reply.error("file_not_found")  # never asked for, or no bytes sent
            for f in files:
                self.files[f["id"]].update(
                    title=f.get("title"), channel_id=channel, completed=time.monotonic()
                )
        return Reply(
            body={"ok": True, "files": [{"id": f["id"], "title": f.get("title")} for f in files]}
        )

    def _api_files_info(self, body: dict[str, Any]) -> Reply:
        file_id = str(body.get("file") or "")
        with self._lock:
            entry = dict(self.files.get(file_id) or {})
        if not entry.get("completed"):
            return Reply.error("file_not_found")
        ready = self._processed(file_id)
        name = str(entry["filename"])
        kind = name.rsplit(".", 1)[-1].lower() if "." in name else ""
        return Reply(
            body={
                "ok": True,
                "file": {
                    "id": file_id,
                    "name": name,
                    "title": entry.get("title") or name,
                    "mimetype": f"image/{kind}" if ready and kind == "png" else "",
                    "filetype": kind if ready else "",
                },
            }
        )

    def _api_files_delete(self, body: dict[str, Any]) -> Reply:
        with self._lock:
            if self.files.pop(str(body.get("file") or ""), None) is None:
                return Reply.error("file_not_found")
        return Reply()

    def _api_reactions_get(self, body: dict[str, Any]) -> Reply:
        return Reply(body={"ok": True, "type": "message", "message": {"reactions": []}})

    def _api_users_info(self, body: dict[str, Any]) -> Reply:
        user = body.get("user", "U111")
        return Reply(body={"ok": True, "user": {"id": user, "name": user.lower(), "tz": "UTC"}})


# --------------------------------------------------------------------------- signing


def sign(body: bytes | str, secret: str, timestamp: int | str) -> str:
    """The ``X-Slack-Signature`` Slack would send for ``body`` at ``timestamp``."""
    signature = SignatureVerifier(secret).generate_signature(timestamp=str(timestamp), body=body)
    assert signature is not None
    return signature


@dataclass
class Response:
    """An HTTP answer from the app under test."""

    status: int
    body: bytes
    headers: dict[str, str]
    elapsed_ms: float

    def json(self) -> Any:
        return json.loads(self.body)

    @property
    def text(self) -> str:
        return self.body.decode("utf-8")


_UNSET: Any = object()


def post(
    url: str,
    body: bytes | str,
    *,
    content_type: str,
    secret: str | None = SIGNING_SECRET,
    timestamp: int | str | None = _UNSET,
    signature: str | None = _UNSET,
    headers: dict[str, str] | None = None,
    timeout: float = 10.0,
) -> Response:
    """POST ``body`` signed like Slack does; never raises on an HTTP error status.

    ``secret=None`` sends no signature; ``timestamp=None`` sends no timestamp header;
    any other ``timestamp``/``signature`` is sent as given (to forge requests).
    """
    data = body.encode("utf-8") if isinstance(body, str) else body
    sent: dict[str, str] = {"Content-Type": content_type}
    ts = str(int(time.time())) if timestamp is _UNSET else timestamp
    if ts is not None:
        sent["X-Slack-Request-Timestamp"] = str(ts)
    if signature is not _UNSET:
        if signature is not None:
            sent["X-Slack-Signature"] = signature
    elif secret is not None:
        sent["X-Slack-Signature"] = sign(data, secret, ts if ts is not None else "")
    sent.update(headers or {})
    request = urllib.request.Request(url, data=data, headers=sent, method="POST")
    started = time.perf_counter()
    try:
        with urllib.request.urlopen(request, timeout=timeout) as answer:
            status, payload, answer_headers = answer.status, answer.read(), answer.headers
    except urllib.error.HTTPError as error:
        status, payload, answer_headers = error.code, error.read(), error.headers
    elapsed = (time.perf_counter() - started) * 1000
    return Response(status, payload, {k.lower(): v for k, v in answer_headers.items()}, elapsed)


FORM = "application/x-www-form-urlencoded"
JSON = "application/json"
_trigger_ids = itertools.count(1)


def _trigger_id() -> str:
    return f"{next(_trigger_ids)}.111.abcdef"


def command_body(
    command: str,
    text: str = "",
    *,
    user_id: str = "U111",
    channel_id: str = "C111",
    team_id: str = TEAM_ID,
    response_url: str = "https://hooks.slack.com/commands/T111/1/x",
    trigger_id: str | None = None,
) -> str:
    """The form body Slack sends for a slash command."""
    return urlencode(
        {
            "token": "legacy-verification-token",
            "team_id": team_id,
            "team_domain": "t111",
            "channel_id": channel_id,
            "channel_name": "general",
            "user_id": user_id,
            "user_name": user_id.lower(),
            "command": command,
            "text": text,
            "api_app_id": "A111",
            "is_enterprise_install": "false",
            "response_url": response_url,
            "trigger_id": trigger_id or _trigger_id(),
        }
    )


def post_command(url: str, command: str, text: str = "", **kwargs: Any) -> Response:
    """POST a signed slash command; ``kwargs`` go to :func:`command_body` or :func:`post`."""
    body_keys = {"user_id", "channel_id", "team_id", "response_url", "trigger_id"}
    body = command_body(command, text, **{k: v for k, v in kwargs.items() if k in body_keys})
    return post(
        url, body, content_type=FORM, **{k: v for k, v in kwargs.items() if k not in body_keys}
    )


def _common(user_id: str, team_id: str) -> dict[str, Any]:
    return {
        "team": {"id": team_id, "domain": "t111"},
        "user": {"id": user_id, "username": user_id.lower(), "team_id": team_id},
        "api_app_id": "A111",
        "token": "legacy-verification-token",
        "is_enterprise_install": False,
    }


def post_interactive(url: str, payload: dict[str, Any], **kwargs: Any) -> Response:
    """POST an interactivity payload form-encoded as ``payload=<json>``."""
    body = urlencode({"payload": json.dumps(payload)})
    return post(url, body, content_type=FORM, **kwargs)


def post_action(
    url: str,
    action_id: str,
    value: str = "",
    *,
    block_id: str = "actions",
    user_id: str = "U111",
    team_id: str = TEAM_ID,
    channel_id: str = "C111",
    message_ts: str = "1700000001.000100",
    response_url: str = "https://hooks.slack.com/actions/T111/1/x",
    message_blocks: list[dict[str, Any]] | None = None,
    **kwargs: Any,
) -> Response:
    """A ``block_actions`` payload for one button click on a channel message (whose
    blocks, as Slack sends them back, are ``message_blocks``)."""
    payload = {
        "type": "block_actions",
        **_common(user_id, team_id),
        "container": {
            "type": "message",
            "message_ts": message_ts,
            "channel_id": channel_id,
            "is_ephemeral": False,
        },
        "trigger_id": _trigger_id(),
        "channel": {"id": channel_id, "name": "general"},
        "message": {
            "type": "message",
            "ts": message_ts,
            "text": "",
            "blocks": message_blocks or [],
        },
        "response_url": response_url,
        "actions": [
            {
                "type": "button",
                "action_id": action_id,
                "block_id": block_id,
                "value": value,
                "text": {"type": "plain_text", "text": action_id},
                "action_ts": f"{int(time.time())}.000200",
            }
        ],
    }
    return post_interactive(url, payload, **kwargs)


def post_view_submission(
    url: str,
    callback_id: str,
    values: dict[str, dict[str, dict[str, Any]]],
    *,
    private_metadata: str = "",
    user_id: str = "U111",
    team_id: str = TEAM_ID,
    **kwargs: Any,
) -> Response:
    """A ``view_submission`` payload; ``values`` is ``state.values`` (block -> action -> value)."""
    payload = {
        "type": "view_submission",
        **_common(user_id, team_id),
        "trigger_id": _trigger_id(),
        "view": {
            "id": "V111",
            "team_id": team_id,
            "type": "modal",
            "callback_id": callback_id,
            "private_metadata": private_metadata,
            "state": {"values": values},
            "hash": "1.abc",
            "title": {"type": "plain_text", "text": "segops"},
            "blocks": [],
        },
        "response_urls": [],
    }
    return post_interactive(url, payload, **kwargs)


def post_shortcut(
    url: str,
    callback_id: str,
    *,
    message: dict[str, Any] | None = None,
    channel_id: str = "C111",
    user_id: str = "U111",
    team_id: str = TEAM_ID,
    **kwargs: Any,
) -> Response:
    """A global shortcut, or a message shortcut when ``message`` is given."""
    payload: dict[str, Any] = {
        "type": "shortcut",
        **_common(user_id, team_id),
        "callback_id": callback_id,
        "trigger_id": _trigger_id(),
        "action_ts": f"{int(time.time())}.000300",
    }
    if message is not None:
        payload.update(
            type="message_action",
            channel={"id": channel_id, "name": "general"},
            message={"type": "message", "user": "U222", **message},
            message_ts=message.get("ts", "1700000001.000100"),
            response_url="https://hooks.slack.com/app/T111/1/x",
        )
    return post_interactive(url, payload, **kwargs)


_event_ids = itertools.count(1)


def event_body(
    event: dict[str, Any], *, event_id: str | None = None, team_id: str = TEAM_ID
) -> str:
    """The JSON envelope of an Events API ``event_callback``."""
    return json.dumps(
        {
            "token": "legacy-verification-token",
            "team_id": team_id,
            "api_app_id": "A111",
            "event": {"event_ts": f"{int(time.time())}.000400", **event},
            "type": "event_callback",
            "event_id": event_id or f"Ev{next(_event_ids):08d}",
            "event_time": int(time.time()),
            "authorizations": [
                {
                    "team_id": team_id,
                    "user_id": BOT_USER_ID,
                    "is_bot": True,
                    "is_enterprise_install": False,
                }
            ],
            "is_ext_shared_channel": False,
        }
    )


def post_event(
    url: str,
    event: dict[str, Any],
    *,
    event_id: str | None = None,
    retry_num: int | None = None,
    retry_reason: str = "http_timeout",
    team_id: str = TEAM_ID,
    headers: dict[str, str] | None = None,
    **kwargs: Any,
) -> Response:
    """POST a signed Events API delivery; ``retry_num`` adds Slack's retry headers."""
    sent = dict(headers or {})
    if retry_num is not None:
        sent["X-Slack-Retry-Num"] = str(retry_num)
        sent["X-Slack-Retry-Reason"] = retry_reason
    body = event_body(event, event_id=event_id, team_id=team_id)
    return post(url, body, content_type=JSON, headers=sent, **kwargs)


def post_url_verification(url: str, challenge: str, **kwargs: Any) -> Response:
    """The handshake Slack sends when the Request URL is saved."""
    body = json.dumps(
        {"token": "legacy-verification-token", "challenge": challenge, "type": "url_verification"}
    )
    return post(url, body, content_type=JSON, **kwargs)


# --------------------------------------------------------------------------- fixtures


def wait_until(
    predicate: Callable[[], Any], *, timeout: float = 5.0, message: str = "condition"
) -> Any:
    """Poll ``predicate`` until it returns something truthy; fail after ``timeout`` s."""
    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout}s waiting for {message}")
        time.sleep(0.01)


def row_counts(engine: Engine) -> dict[str, int]:
    """Rows per table: compare before and after to prove nothing was written."""
    from store.models import metadata

    with engine.connect() as connection:
        return {
            table.name: connection.execute(select(func.count()).select_from(table)).scalar_one()
            for table in metadata.sorted_tables
        }


@pytest.fixture
def fake_slack() -> Iterator[FakeSlack]:
    """A started :class:`FakeSlack` that expects ``BOT_TOKEN``."""
    with FakeSlack() as fake:
        yield fake


@pytest.fixture
def slack_settings(fake_slack: FakeSlack, engine: Engine) -> Settings:
    """Settings for a bot that talks to ``fake_slack`` and signs with ``SIGNING_SECRET``."""
    return bot_settings(fake_slack, engine)


def bot_settings(fake_slack: FakeSlack, engine: Engine, **extra: Any) -> Settings:
    """The settings of :func:`slack_settings` with ``extra`` settings (by their variable
    names, ``SEGOPS_WORKSPACE=...``), for a test module's own ``slack_settings``."""
    return Settings(
        DATABASE_URL=engine.url.render_as_string(hide_password=False),
        SLACK_BOT_TOKEN=BOT_TOKEN,
        SLACK_SIGNING_SECRET=SIGNING_SECRET,
        SLACK_API_URL=fake_slack.url,
        **extra,
    )


@pytest.fixture
def slack_app(slack_settings: Settings, engine: Engine) -> Iterator[App]:
    """The real bolt app (``bot.app.build_app``) on the test database and ``fake_slack``."""
    from bot.app import build_app, shutdown

    app = build_app(slack_settings, engine=engine)
    yield app
    shutdown(app)


@pytest.fixture
def slack_server(slack_app: App) -> Iterator[BackgroundServer]:
    """``slack_app`` served by waitress on a free port; ``.events_url`` takes signed posts."""
    from bot.server import BackgroundServer

    with BackgroundServer(slack_app, threads=8) as server:
        yield server
