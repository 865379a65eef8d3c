"""The senders, one per destination kind, built from the workspace's settings and the
secrets in ``SEGOPS_DESTINATION_SECRETS``. Each has ``send(work) -> missing keys``,
``reset(work)`` (before the first batch of a rebuild) and ``close()``."""

from __future__ import annotations

from pathlib import Path
from typing import Protocol

from commands.settings import Settings
from commands.syncs import Work
from segments.destinations import DestinationConfig
from sync.errors import ConfigError


class Sender(Protocol):
    def send(self, work: Work) -> list[str]: ...

    def reset(self, work: Work) -> None: ...

    def close(self) -> None: ...


def secret(settings: Settings, name: str, key: str | None) -> str:
    """The secret ``key`` of destination ``name``; ConfigError naming it when unset."""
    value = settings.destination_secrets.get(key or "")
    if value is None or not value.get_secret_value():
        raise ConfigError(
            f"destination '{name}': secret '{key}' is not set in SEGOPS_DESTINATION_SECRETS"
        )
    return value.get_secret_value()


def build_sender(
    name: str, config: DestinationConfig, settings: Settings, *, base_dir: Path
) -> Sender:
    """The sender of one destination; ConfigError when it cannot be set up."""
    if config.kind == "webhook":
        from sync.senders.webhook import WebhookSender

        return WebhookSender(name, config, secret(settings, name, config.secret))
    if config.kind == "hubspot":
        from sync.senders.hubspot import HubSpotSender

        return HubSpotSender(name, config, secret(settings, name, config.secret))
    if config.kind == "sql_table":
        from sync.senders.sqltable import SqlTableSender

        url = config.url or secret(settings, name, config.url_secret)
        return SqlTableSender(name, config, url)
    if config.kind == "files":
        from sync.senders.files import FilesSender

        return FilesSender(name, config, base_dir)
    raise ConfigError(f"destination '{name}': unknown kind {config.kind!r}")  # pragma: no cover
