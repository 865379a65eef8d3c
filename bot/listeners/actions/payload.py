"""Reading a block-action payload, and answering whoever clicked."""

from __future__ import annotations

from typing import Any

from slack_bolt import Ack, Respond
from slack_sdk import WebClient

from bot.listeners.messages import tell


def ack_now(ack: Ack) -> None:
    """Every button is acked at once; its work runs in a lazy function."""
    ack()


def message_location(body: dict[str, Any]) -> tuple[str | None, str | None]:
    """(channel, message ts) of the message the button is in."""
    container = body.get("container") or {}
    channel = container.get("channel_id") or (body.get("channel") or {}).get("id")
    return channel, container.get("message_ts") or (body.get("message") or {}).get("ts")


def number(action: dict[str, Any]) -> int | None:
    """The id a button's value names, or None when it names none."""
    value = str(action.get("value") or "").strip()
    return int(value) if value.isdigit() else None


def from_home(body: dict[str, Any]) -> bool:
    """Whether the click came from the App Home tab."""
    return (body.get("view") or {}).get("type") == "home"


def note(body: dict[str, Any], respond: Respond, client: WebClient, text: str) -> None:
    """A private note to whoever clicked: through ``response_url``, else (App Home) a DM."""
    if body.get("response_url"):
        respond(text=text, replace_original=False)
    else:
        tell(client, body["user"]["id"], None, text)
