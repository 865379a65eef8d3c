"""What the command groups in their own modules share: settings from the environment, the
migrated engine, the acting person, one-line failures and JSON output."""

from __future__ import annotations

import json
import re
import sys
from typing import Annotated, Any

import typer
from rich.markup import escape
from sqlalchemy import Engine

from cli.output import err
from commands.settings import Settings
from segments.errors import SegopsError

JsonOpt = Annotated[bool, typer.Option("--json", help="Print one JSON document.")]
AsOpt = Annotated[
    str | None,
    typer.Option("--as", help="Your Slack user id (or SEGOPS_CLI_USER), checked like in Slack."),
]

_USER = re.compile(r"[UW][A-Z0-9]+")


def fail(message: str) -> None:
    """One line on stderr, exit 1."""
    err.print(f"[bold red]error:[/] {escape(message)}", soft_wrap=True)
    raise typer.Exit(1)


def print_json(data: Any) -> None:
    sys.stdout.write(json.dumps(data, indent=2, default=str) + "\n")


def settings() -> Settings:
    """Settings from the environment (a configuration error is one line)."""
    from pydantic import ValidationError

    try:
        return Settings()
    except ValidationError as exc:
        first = exc.errors()[0]
        raise SegopsError(f"configuration: {first['loc'][0]}: {first['msg']}") from None


def engine(current: Settings | None = None) -> Engine:
    """The database engine, migrated to the latest revision."""
    from store.db import make_engine, upgrade

    made = make_engine((current or settings()).database_url)
    upgrade(made)
    return made


def acting_user(given: str | None, current: Settings, *, what: str) -> str:
    """The Slack user id the command acts as: ``--as``, else ``SEGOPS_CLI_USER``.

    The command line trusts the id it is given, as it trusts whoever holds the database
    URL; the id is checked against owners and approvers and recorded.
    """
    user = (given or current.cli_user or "").strip()
    if not user:
        raise SegopsError(
            f"who is {what}? pass --as U123 (your Slack user id) or set SEGOPS_CLI_USER"
        )
    if not _USER.fullmatch(user):
        raise SegopsError(f"--as {user!r} is not a Slack user id (like U0123ABCD)")
    return user
