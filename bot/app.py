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
import threading
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from weakref import WeakKeyDictionary

from slack_bolt import App
from slack_bolt.lazy_listener import ThreadLazyListenerRunner
from slack_bolt.lazy_listener.internals import build_runnable_function
from slack_bolt.request import BoltRequest
from slack_sdk import WebClient
from sqlalchemy import Engine

from bot.dedupe import EventDedupe
from bot.listeners import register_listeners
from commands.settings import Settings

logger = logging.getLogger(__name__)

LISTENER_WORKERS = 16
# Follow-up work (rendering, posting) shares the GIL with the threads that ack. Measured
# with `segops bench` on 2 cores, 50 simultaneous /persona requests, before follow-up
# work waited for the acks (see AckFirstLazyRunner): 16 lazy workers gave an ack p99 of
# ~500 ms, 4 gave ~210 ms, 1 gave ~110 ms. With the wait, 4 workers give ~65-105 ms once
# warm. Four keep a slow Web API call from queueing everyone else's follow-up; scale out
# with more web processes rather than more threads.
LAZY_WORKERS = 4
_signing_secrets: WeakKeyDictionary[App, str] = WeakKeyDictionary()


class Acks:
    """Counts requests whose ack is still being produced, so follow-up work can wait.

    On a small machine the follow-up work (rendering a brief, posting it) shares the
    GIL with the threads that ack; in a burst it would slow every ack behind it. The
    HTTP layer calls :meth:`begin`/:meth:`end` around each request, and lazy work
    first waits (at most ``patience`` seconds) until no ack is in flight.
    """

    def __init__(self, patience: float = 0.5) -> None:
        self.patience = patience
        self._count = 0
        self._idle = threading.Condition()

    def begin(self) -> None:
        with self._idle:
            self._count += 1

    def end(self) -> None:
        with self._idle:
            self._count -= 1
            if self._count == 0:
                self._idle.notify_all()

    def wait_idle(self) -> None:
        with self._idle:
            self._idle.wait_for(lambda: self._count == 0, timeout=self.patience)


class AckFirstLazyRunner(ThreadLazyListenerRunner):
    """Bolt's thread runner, but lazy work starts once the acks in flight are answered."""

    def __init__(self, logger: logging.Logger, executor: ThreadPoolExecutor, acks: Acks):
        super().__init__(logger=logger, executor=executor)
        self.acks = acks

    def start(self, function: Callable[..., None], request: BoltRequest) -> None:
        run = build_runnable_function(func=function, logger=self.logger, request=request)

        def after_acks() -> None:
            self.acks.wait_idle()
            run()

        self.executor.submit(after_acks)


def acks_of(app: App) -> Acks | None:
    """The in-flight ack counter of an app built by :func:`build_app`."""
    runner = app.listener_runner.lazy_listener_runner
    return runner.acks if isinstance(runner, AckFirstLazyRunner) else None


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
    app.listener_runner.lazy_listener_runner = AckFirstLazyRunner(
        app.logger,
        ThreadPoolExecutor(max_workers=lazy_workers, thread_name_prefix="segops-lazy"),
        Acks(),
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
