"""Serving the bolt app: waitress over HTTP, or Socket Mode.

HTTP requests reach bolt through ``slack_bolt.adapter.wsgi.SlackRequestHandler`` on
``/slack/events``, behind :class:`VerifySlackRequest`, a thin WSGI middleware that
answers 401 to any request with a missing, non-numeric or stale (> 5 minutes)
``X-Slack-Request-Timestamp`` or a missing or wrong ``X-Slack-Signature`` before
bolt sees it (bolt alone turns a non-numeric timestamp into a 500). Bolt's own
verification stays on behind it. ``GET /healthz`` answers 200 for load balancers.
Other surfaces (the events endpoint) are mounted on their own paths by the composition
root through ``routes`` (:func:`mount`); they do their own authentication.
"""

from __future__ import annotations

import io
import json
import logging
import re
import threading
from collections.abc import Iterable, Mapping
from typing import TYPE_CHECKING, Any

from slack_bolt import App
from slack_bolt.adapter.socket_mode import SocketModeHandler
from slack_bolt.adapter.wsgi import SlackRequestHandler
from slack_sdk.signature import Clock, SignatureVerifier

from bot.app import acks_of, signing_secret_of

if TYPE_CHECKING:
    from wsgiref.types import StartResponse, WSGIApplication, WSGIEnvironment

    from waitress.server import BaseWSGIServer, MultiSocketServer

logger = logging.getLogger(__name__)

EVENTS_PATH = "/slack/events"
HEALTH_PATH = "/healthz"
MAX_AGE_SECONDS = 5 * 60
MAX_BODY_BYTES = 1 << 20
_TIMESTAMP = re.compile(r"^[0-9]{1,12}$")


def _plain(
    start_response: StartResponse, status: str, body: dict[str, Any] | str
) -> Iterable[bytes]:
    if isinstance(body, dict):
        payload, content_type = json.dumps(body).encode(), "application/json"
    else:
        payload, content_type = body.encode(), "text/plain; charset=utf-8"
    start_response(status, [("Content-Type", content_type), ("Content-Length", str(len(payload)))])
    return [payload]


class VerifySlackRequest:
    """WSGI middleware: reject unsigned, forged and stale requests to ``path`` with 401.

    The body is read once, checked with ``SignatureVerifier`` and handed on to the
    wrapped application unchanged.
    """

    def __init__(
        self,
        app: WSGIApplication,
        signing_secret: str,
        *,
        path: str = EVENTS_PATH,
        clock: Clock | None = None,
        max_body: int = MAX_BODY_BYTES,
    ) -> None:
        self.app = app
        self.path = path
        self.max_body = max_body
        self.clock = clock or Clock()
        self.verifier = SignatureVerifier(signing_secret, clock=self.clock)

    def reason_to_reject(self, body: bytes, timestamp: str | None, signature: str | None) -> str:
        """Why the request is not from Slack, or ``""`` when it is."""
        if not timestamp:
            return "missing timestamp"
        if not _TIMESTAMP.match(timestamp):
            return "non-numeric timestamp"
        if abs(self.clock.now() - int(timestamp)) > MAX_AGE_SECONDS:
            return "stale timestamp"
        if not signature:
            return "missing signature"
        if not self.verifier.is_valid(body, timestamp, signature):
            return "bad signature"
        return ""

    def __call__(self, environ: WSGIEnvironment, start_response: StartResponse) -> Iterable[bytes]:
        if environ.get("PATH_INFO") != self.path or environ.get("REQUEST_METHOD") != "POST":
            return self.app(environ, start_response)
        try:
            length = int(environ.get("CONTENT_LENGTH") or 0)
        except ValueError:
            return _plain(start_response, "400 Bad Request", {"error": "bad content-length"})
        if length > self.max_body:
            return _plain(start_response, "413 Payload Too Large", {"error": "body too large"})
        body = environ["wsgi.input"].read(length) if length > 0 else b""
        reason = self.reason_to_reject(
            body,
            environ.get("HTTP_X_SLACK_REQUEST_TIMESTAMP"),
            environ.get("HTTP_X_SLACK_SIGNATURE"),
        )
        if reason:
            logger.warning("slack_request_rejected reason=%s", reason)
            return _plain(start_response, "401 Unauthorized", {"error": "invalid request"})
        environ["wsgi.input"] = io.BytesIO(body)
        environ["CONTENT_LENGTH"] = str(len(body))
        return self.app(environ, start_response)


def health(app: WSGIApplication, path: str = HEALTH_PATH) -> WSGIApplication:
    """Answer ``GET path`` with 200 ``ok``; everything else goes to ``app``."""

    def wrapped(environ: WSGIEnvironment, start_response: StartResponse) -> Iterable[bytes]:
        if environ.get("PATH_INFO") == path and environ.get("REQUEST_METHOD") in ("GET", "HEAD"):
            return _plain(start_response, "200 OK", "ok")
        return app(environ, start_response)

    return wrapped


def mount(app: WSGIApplication, routes: Mapping[str, WSGIApplication] | None) -> WSGIApplication:
    """Send requests for each path of ``routes`` to its application, the rest to ``app``
    (the seam through which the composition root adds other HTTP surfaces)."""
    if not routes:
        return app
    table = dict(routes)

    def wrapped(environ: WSGIEnvironment, start_response: StartResponse) -> Iterable[bytes]:
        target = table.get(environ.get("PATH_INFO") or "", app)
        return target(environ, start_response)

    return wrapped


def wsgi_app(
    app: App,
    *,
    signing_secret: str | None = None,
    routes: Mapping[str, WSGIApplication] | None = None,
) -> WSGIApplication:
    """The whole HTTP surface: health check, ``routes``, signature gate, then bolt."""
    secret = signing_secret or signing_secret_of(app)
    if not secret:
        raise ValueError("missing environment: SLACK_SIGNING_SECRET")
    slack = counting_acks(
        VerifySlackRequest(SlackRequestHandler(app, path=EVENTS_PATH), secret), app
    )
    return health(mount(slack, routes))


def counting_acks(inner: WSGIApplication, app: App) -> WSGIApplication:
    """Tell the app's lazy runner which requests are still waiting for their ack."""
    acks = acks_of(app)
    if acks is None:
        return inner

    def wrapped(environ: WSGIEnvironment, start_response: StartResponse) -> Iterable[bytes]:
        acks.begin()
        try:
            return inner(environ, start_response)
        finally:
            acks.end()

    return wrapped


def make_server(
    app: App,
    *,
    host: str = "0.0.0.0",
    port: int = 3000,
    threads: int = 16,
    signing_secret: str | None = None,
    routes: Mapping[str, WSGIApplication] | None = None,
    **adjustments: Any,
) -> BaseWSGIServer | MultiSocketServer:
    """A bound (not yet running) waitress server; ``port=0`` picks a free port.

    ``routes`` mounts other WSGI applications on exact paths (see :func:`mount`);
    ``adjustments`` are passed to waitress (for example ``channel_timeout``).
    """
    from waitress import create_server

    return create_server(
        wsgi_app(app, signing_secret=signing_secret, routes=routes),
        host=host,
        port=port,
        threads=threads,
        ident="segops",
        clear_untrusted_proxy_headers=True,
        **adjustments,
    )


def serve(
    app: App,
    *,
    host: str = "0.0.0.0",
    port: int = 3000,
    threads: int = 16,
    signing_secret: str | None = None,
    routes: Mapping[str, WSGIApplication] | None = None,
) -> None:
    """Serve the app over HTTP until interrupted (``routes``: see :func:`mount`)."""
    server = make_server(
        app,
        host=host,
        port=port,
        threads=threads,
        signing_secret=signing_secret,
        routes=routes,
    )
    logger.info("serving host=%s port=%s threads=%s path=%s", host, port, threads, EVENTS_PATH)
    server.run()


class BackgroundServer:
    """A waitress server running in a daemon thread (tests, benchmarks)."""

    def __init__(
        self,
        app: App,
        *,
        host: str = "127.0.0.1",
        port: int = 0,
        threads: int = 16,
        routes: Mapping[str, WSGIApplication] | None = None,
    ):
        # A short loop timeout lets close() stop the server thread at once.
        self.server = make_server(
            app, host=host, port=port, threads=threads, routes=routes, asyncore_loop_timeout=0.05
        )
        self.thread = threading.Thread(target=self.server.run, name="segops-http", daemon=True)

    @property
    def url(self) -> str:
        """Base URL, e.g. ``http://127.0.0.1:54321``."""
        return f"http://{self.server.effective_host}:{self.server.effective_port}"

    @property
    def events_url(self) -> str:
        return self.url + EVENTS_PATH

    def __enter__(self) -> BackgroundServer:
        self.thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def close(self) -> None:
        """Stop accepting, let open connections finish, stop the worker threads."""
        if self.thread.is_alive():
            try:
                # Closed from the server's own loop thread, never while it is in select().
                self.server.trigger.pull_trigger(self.server.close)
            except OSError:
                logger.warning("server_trigger_closed: the loop is already shutting down")
            self.thread.join(timeout=5)
        self.server.task_dispatcher.shutdown()


def socket_handler(app: App, app_token: str) -> SocketModeHandler:
    """A Socket Mode handler for ``app`` (not yet connected)."""
    if not app_token:
        raise ValueError("missing environment: SLACK_APP_TOKEN")
    return SocketModeHandler(app, app_token=app_token)


def serve_socket(app: App, app_token: str | None) -> None:
    """Connect over Socket Mode and block until interrupted."""
    socket_handler(app, app_token or "").start()
