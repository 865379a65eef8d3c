"""Configuration from the environment (pydantic-settings), created at entry points."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Literal

from pydantic import Field, SecretStr, field_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

from segments.engine import EngineOptions
from segments.errors import SegopsError

DEFAULT_DATABASE_URL = "sqlite:///segops.db"


class Settings(BaseSettings):
    """Every knob segops reads from the environment. Secrets are never logged."""

    model_config = SettingsConfigDict(env_prefix="", extra="ignore", case_sensitive=False)

    database_url: str = Field(default=DEFAULT_DATABASE_URL, alias="DATABASE_URL")
    workspace: Path | None = Field(default=None, alias="SEGOPS_WORKSPACE")
    templates_dir: Path | None = Field(default=None, alias="SEGOPS_TEMPLATES")
    privacy_floor: int = Field(default=10, alias="SEGOPS_PRIVACY_FLOOR", ge=1)
    write_budget: float = Field(default=20.0, alias="SEGOPS_WRITE_BUDGET", gt=0, le=600)
    """Seconds a person's write (feedback, a decision, an alert click, queueing a refresh)
    keeps retrying against a busy database."""

    slack_bot_token: str | None = Field(default=None, alias="SLACK_BOT_TOKEN", repr=False)
    slack_signing_secret: str | None = Field(default=None, alias="SLACK_SIGNING_SECRET", repr=False)
    slack_app_token: str | None = Field(default=None, alias="SLACK_APP_TOKEN", repr=False)
    slack_api_url: str = Field(default="https://slack.com/api/", alias="SLACK_API_URL")
    approve_emoji: str = Field(default="white_check_mark", alias="SEGOPS_APPROVE_EMOJI")
    reject_emoji: str = Field(default="x", alias="SEGOPS_REJECT_EMOJI")
    destination_secrets: dict[str, SecretStr] = Field(
        default_factory=dict, alias="SEGOPS_DESTINATION_SECRETS", repr=False
    )
    """Secrets of the workspace's destinations by name, as a JSON object (never logged)."""
    sync_change_limit: float = Field(default=0.30, alias="SEGOPS_SYNC_CHANGE_LIMIT", gt=0)
    """A sync changing more than this share of what a destination holds waits for approval."""
    sync_hold_on_alerts: bool = Field(default=True, alias="SEGOPS_SYNC_HOLD_ON_ALERTS")
    """A sync of a refresh that raised drift alerts waits for approval."""
    sync_claim_lease: float = Field(default=120.0, alias="SEGOPS_SYNC_CLAIM_LEASE", gt=0)
    """Seconds a worker holds a batch it sends; a dead worker's batch is taken after that."""
    clinic_channel: str | None = Field(default=None, alias="SEGOPS_CLINIC_CHANNEL")
    """Where the weekly segmentation clinic agenda is posted, Mondays 09:30 UTC (none: not
    posted)."""
    redis_url: str = Field(default="redis://127.0.0.1:6379/0", alias="SEGOPS_REDIS_URL")
    """The event log of live segments (Redis Streams)."""
    stream_name: str = Field(default="segops:events", alias="SEGOPS_STREAM", min_length=1)
    events_token: str | None = Field(default=None, alias="SEGOPS_EVENTS_TOKEN", repr=False)
    """Bearer token of ``POST /events``; without it the endpoint is not served."""
    stream_lateness: float = Field(default=3600.0, alias="SEGOPS_STREAM_LATENESS", gt=0)
    """Seconds an event may arrive after its time and still be applied live."""
    cli_user: str | None = Field(default=None, alias="SEGOPS_CLI_USER")
    """The Slack user id the command line acts as (``--as`` overrides it)."""
    apply_direct_tiers: str = Field(default="", alias="SEGOPS_APPLY_DIRECT_TIERS")
    """Tiers whose changes ``segops apply`` writes at once (comma-separated: ``tactical``,
    ``strategic``); every other change to an existing segment becomes a proposal."""
    refresh_admins: str = Field(default="", alias="SEGOPS_REFRESH_ADMINS")
    """Slack user ids (comma-separated) who may ``/segment refresh`` any or every segment;
    anyone else only a segment they own or approve."""
    data_roots: str = Field(default="", alias="SEGOPS_DATA_ROOTS")
    """Absolute folders, separated by ``os.pathsep``, that file sources may read besides
    the workspace file's own folder (never set by the workspace file itself)."""

    @field_validator("data_roots")
    @classmethod
    def _absolute_roots(cls, value: str) -> str:
        for part in _split_roots(value):
            if not Path(part).expanduser().is_absolute():
                raise ValueError(f"{part!r} is not an absolute path")
        return value

    @property
    def data_root_paths(self) -> list[Path]:
        """``SEGOPS_DATA_ROOTS`` as paths, for ``load_workspace(..., data_roots=)``."""
        return [Path(part).expanduser() for part in _split_roots(self.data_roots)]

    @field_validator("database_url")
    @classmethod
    def _normalise_url(cls, value: str) -> str:
        """Accept Heroku-style ``postgres://`` URLs and pick the psycopg 3 driver."""
        value = value.strip()
        if value.startswith("postgres://"):
            value = "postgresql://" + value[len("postgres://") :]
        if value.startswith("postgresql://"):
            value = "postgresql+psycopg://" + value[len("postgresql://") :]
        return value

    @field_validator("apply_direct_tiers")
    @classmethod
    def _direct_tiers(cls, value: str) -> str:
        tiers = [t.strip().lower() for t in value.split(",") if t.strip()]
        if "core" in tiers:
            raise ValueError("core segments always need an approval; list strategic or tactical")
        unknown = sorted(set(tiers) - {"strategic", "tactical"})
        if unknown:
            raise ValueError(f"unknown tier {unknown[0]!r} (strategic or tactical)")
        return ",".join(dict.fromkeys(tiers))

    @property
    def direct_tiers(self) -> frozenset[str]:
        """The tiers of :attr:`apply_direct_tiers` as a set."""
        return frozenset(t for t in self.apply_direct_tiers.split(",") if t)

    @property
    def refresh_admin_ids(self) -> frozenset[str]:
        """The user ids of :attr:`refresh_admins`."""
        return frozenset(u.strip() for u in self.refresh_admins.split(",") if u.strip())

    @field_validator("slack_api_url")
    @classmethod
    def _trailing_slash(cls, value: str) -> str:
        return value if value.endswith("/") else value + "/"

    def require_slack(self, *, socket: bool = False) -> None:
        """Fail fast with one clear line when a Slack mode lacks its credentials."""
        missing = []
        if not self.slack_bot_token:
            missing.append("SLACK_BOT_TOKEN")
        if socket and not self.slack_app_token:
            missing.append("SLACK_APP_TOKEN")
        if not socket and not self.slack_signing_secret:
            missing.append("SLACK_SIGNING_SECRET")
        if missing:
            raise SegopsError("missing environment: " + ", ".join(missing))

    engine: Literal["pandas", "duckdb", "sql"] | None = Field(default=None, alias="SEGOPS_ENGINE")
    """Overrides the workspace's ``engine`` (None: the workspace's, or chosen from its sources)."""
    duckdb_memory_limit: str = Field(default="2GB", alias="SEGOPS_DUCKDB_MEMORY_LIMIT")
    duckdb_temp_dir: Path | None = Field(default=None, alias="SEGOPS_DUCKDB_TEMP_DIR")
    """Where DuckDB spills what does not fit in its memory limit (None: DuckDB's default)."""
    duckdb_threads: int | None = Field(default=None, alias="SEGOPS_DUCKDB_THREADS", ge=1)

    def engine_options(self) -> EngineOptions:
        """The DuckDB knobs as the engine takes them."""
        return EngineOptions(
            memory_limit=self.duckdb_memory_limit,
            temp_dir=self.duckdb_temp_dir,
            threads=self.duckdb_threads,
        )


def _split_roots(value: str) -> list[str]:
    return [part.strip() for part in (value or "").split(os.pathsep) if part.strip()]
