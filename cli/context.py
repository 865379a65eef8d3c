"""What the command groups in their own modules share: settings, the migrated engine, the
workspace named by ``--workspace`` or ``SEGOPS_WORKSPACE``, and JSON output. (The root
callback in :mod:`cli.app` has validated the settings before any command runs.)"""

from __future__ import annotations

import json
import sys
from typing import Any

import typer

from commands.settings import Settings
from segments.errors import SegopsError


def settings() -> Settings:
    return Settings()


def engine(current: Settings | None = None) -> Any:
    from store.db import make_engine, upgrade

    made = make_engine((current or settings()).database_url)
    upgrade(made)
    return made


def workspace(ctx: typer.Context, current: Settings | None = None) -> Any:
    from segments.workspace import load_workspace

    path = ctx.find_root().params.get("workspace") or (current or settings()).workspace
    if path is None:
        raise SegopsError("no workspace file: pass --workspace FILE or set SEGOPS_WORKSPACE")
    return load_workspace(path)


def print_json(data: Any) -> None:
    sys.stdout.write(json.dumps(data, indent=2, default=str) + "\n")
