"""Configuration from the environment (pydantic-settings), created at entry points."""

from __future__ import annotations

from pathlib import Path

from pydantic import Field, field_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

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
    """Seconds a person's write (feedback) keeps retrying against a busy database."""

    slack_bot_token: str | None = Field(default=None, alias="SLACK_BOT_TOKEN", repr=False)
    slack_signing_secret: str | None = Field(default=None, alias="SLACK_SIGNING_SECRET", repr=False)
    slack_app_token: str | None = Field(default=None, alias="SLACK_APP_TOKEN", repr=False)
    slack_api_url: str = Field(default="https://slack.com/api/", alias="SLACK_API_URL")
    approve_emoji: str = Field(default="white_check_mark", alias="SEGOPS_APPROVE_EMOJI")
    reject_emoji: str = Field(default="x", alias="SEGOPS_REJECT_EMOJI")
    redis_url: str = Field(default="redis://127.0.0.1:6379/0", alias="SEGOPS_REDIS_URL")
    """The event log of live segments (Redis Streams)."""
    stream_name: str = Field(default="segops:events", alias="SEGOPS_STREAM", min_length=1)
    events_token: str | None = Field(default=None, alias="SEGOPS_EVENTS_TOKEN", repr=False)
    """Bearer token of ``POST /events``; without it the endpoint is not served."""
    stream_lateness: float = Field(default=3600.0, alias="SEGOPS_STREAM_LATENESS", gt=0)
    """Seconds an event may arrive after its time and still be applied live."""

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
