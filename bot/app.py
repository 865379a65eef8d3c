"""The bolt ``App`` factory: one place that builds the Slack app from settings.

``segops serve`` (HTTP) and ``segops serve --socket`` both call :func:`build_app`;
nothing here runs at import time.

    app = build_app(settings, engine=engine)
    bot.server.serve(app, host="0.0.0.0", port=3000, threads=16)

Listeners ack at once and do slow work in lazy functions (``process_before_response``
stays off: the HTTP answer goes back as soon as ``ack()`` is called). Bolt runs ack
functions and lazy functions on one executor by default, so a burst of slow work
(a refresh, briefs answered through ``response_url``) would queue the next acks
behind it; here acks get their own ``ThreadPoolExecutor`` and lazy work another.
"""

from __future__ import annotations

import logging
from concurrent.futures import ThreadPoolExecutor
from weakref import WeakKeyDictionary

from slack_bolt import App
from slack_bolt.lazy_listener import ThreadLazyListenerRunner
from slack_sdk import WebClient
from sqlalchemy import Engine

from bot.dedupe import EventDedupe
from bot.listeners import register_listeners
from commands.settings import Settings

logger = logging.getLogger(__name__)

LISTENER_WORKERS = 16
# Follow-up work (rendering, posting) shares the GIL with the threads that ack. Measured
# with `segops bench` on 2 cores, 50 simultaneous /persona requests: 16 lazy workers gave
# an ack p99 of ~500 ms, 4 gave ~210 ms, 1 gave ~110 ms. Four keeps a few slow Web API
# calls from queueing everyone else's follow-up while holding acks near 200 ms; scale out
# with more web processes rather than more threads.
LAZY_WORKERS = 4
_signing_secrets: WeakKeyDictionary[App, str] = WeakKeyDictionary()


def build_client(settings: Settings, *, sdk_retries: bool = True) -> WebClient:
    """A Web API client for the bot token, pointed at ``settings.slack_api_url``.

    ``sdk_retries=False`` turns off the SDK's own retry after a connection error: the
    outbox delivery retries itself and first checks whether a lost post did land, which
    a blind SDK retry would skip (and could post twice).
    """
    return WebClient(
        token=settings.slack_bot_token,
        base_url=settings.slack_api_url,
        retry_handlers=None if sdk_retries else [],
    )


def build_app(
    settings: Settings,
    *,
    engine: Engine,
    client: WebClient | None = None,
    workers: int = LISTENER_WORKERS,
    lazy_workers: int = LAZY_WORKERS,
) -> App:
    """A bolt app with every listener wired and event de-duplication in front of them.

    ``client`` replaces the default ``WebClient`` (tests pass one bound to a fake
    server). The bot token is checked once with ``auth.test`` at start-up.
    """
    if not settings.slack_bot_token and client is None:
        raise ValueError("missing environment: SLACK_BOT_TOKEN")
    app = App(
        name="segops",
        client=client or build_client(settings),
        signing_secret=settings.slack_signing_secret or "",
        process_before_response=False,
        listener_executor=ThreadPoolExecutor(max_workers=workers, thread_name_prefix="segops-ack"),
        logger=logging.getLogger("segops.bolt"),
    )
    app.listener_runner.lazy_listener_runner = ThreadLazyListenerRunner(
        logger=app.logger,
        executor=ThreadPoolExecutor(max_workers=lazy_workers, thread_name_prefix="segops-lazy"),
    )
    if settings.slack_signing_secret:
        _signing_secrets[app] = settings.slack_signing_secret
    app.use(EventDedupe(engine))
    register_listeners(app, engine=engine, settings=settings)
    return app


def shutdown(app: App, *, wait: bool = True) -> None:
    """Stop the app's ack and lazy-work threads (``wait``: let running work finish)."""
    runner = app.listener_runner
    runner.listener_executor.shutdown(wait=wait)
    lazy = runner.lazy_listener_runner
    if isinstance(lazy, ThreadLazyListenerRunner):
        lazy.executor.shutdown(wait=wait)


def signing_secret_of(app: App) -> str | None:
    """The signing secret ``app`` was built with (used by the HTTP server's gate)."""
    return _signing_secrets.get(app)
