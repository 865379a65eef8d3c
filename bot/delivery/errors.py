"""Classifying Slack's answers: retry later (with which delay) or give the message up.

:func:`call` runs one Web API call and turns its failures into :class:`Retry` or
:class:`Dead` (see :func:`classify`); :func:`backoff` is the delay between retries,
and :func:`fallback_text` the DM that tells a user a message could not be delivered.
"""

from __future__ import annotations

import re
import urllib.error
from collections.abc import Callable
from datetime import timedelta
from typing import Any

from slack_sdk.errors import SlackApiError, SlackClientError

from briefs.blocks import escape_mrkdwn
from commands.retrying import (  # noqa: F401 - re-exported for the delivery loop
    BACKOFF_BASE_SECONDS,
    BACKOFF_CAP,
    backoff,
)

AUTH_BACKOFF_CAP = timedelta(hours=1)
FALLBACK_QUOTE_CHARS = 2500
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


class Retry(Exception):
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


class Dead(Exception):
    """Slack refused the message for good."""


def call(
    method: Callable[..., Any],
    kwargs: dict[str, Any],
    *,
    maybe_posted: bool = False,
    transient_client_errors: bool = False,
) -> Any:
    """Run one Web API call, turning its failures into ``Retry`` or ``Dead``."""
    try:
        return method(**kwargs)
    except SlackApiError as error:
        raise classify(error, maybe_posted=maybe_posted) from error
    except SlackClientError as error:
        if transient_client_errors:
            raise Retry(f"{type(error).__name__}: {error}") from error
        raise Dead(f"{type(error).__name__}: {error}") from error
    except (urllib.error.URLError, TimeoutError, ConnectionError, OSError) as error:
        raise Retry(f"{type(error).__name__}: {error}", maybe_posted=maybe_posted) from error


def classify(error: SlackApiError, *, maybe_posted: bool) -> Exception:
    """Map a Web API error answer to ``Retry`` (with its delay rules) or ``Dead``."""
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
        return Retry(
            f"ratelimited (Retry-After {seconds}s)", retry_after=timedelta(seconds=seconds)
        )
    if status >= 500:
        return Retry(f"HTTP {status} {code}", maybe_posted=maybe_posted)
    if code in AUTH_ERRORS:
        return Retry(code, auth=True)
    if code in TRANSIENT_ERRORS:
        return Retry(code)
    return Dead(code)


_CHANNEL_ID = re.compile(r"[CG][A-Z0-9]{2,}")


def fallback_text(*, kind: str, channel: str, text: str, reason: str) -> str:
    """The DM to a message's fallback user: where it was going, why not, and its text."""
    where = f"<#{channel}>" if _CHANNEL_ID.fullmatch(channel) else escape_mrkdwn(channel)
    quoted = text if len(text) <= FALLBACK_QUOTE_CHARS else text[:FALLBACK_QUOTE_CHARS] + "…"
    quoted = "\n".join("> " + line for line in quoted.splitlines()) or "> (no text)"
    return (
        f"I could not post a {kind} message to {where}: {reason}. "
        f"Invite me to the channel or update its channel setting. The message was:\n{quoted}"
    )
