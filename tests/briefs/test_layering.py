"""briefs imports nothing of ours but the pure parts of segments it words (errors, rules,
drift limits), and nothing of Slack or the store."""

from __future__ import annotations

import ast
from pathlib import Path

import briefs

OURS = ("cli", "worker", "bot", "commands", "segments", "store", "briefs")
FORBIDDEN = ("slack_sdk", "slack_bolt", "sqlmodel", "sqlalchemy")


def imported_modules(path: Path) -> set[str]:
    names: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            names.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and not node.level:
            names.add(node.module)
    return names


ALLOWED = (
    "segments.errors",
    "segments.drift",
    "segments.rules.parser",
    "segments.rules.tree",
    "briefs",
    "briefs.blocks",
    "briefs.wording",
)


def test_briefs_imports_only_pure_segments_modules_of_ours() -> None:
    for path in Path(briefs.__file__).parent.glob("*.py"):
        for name in imported_modules(path):
            root = name.split(".")[0]
            assert root not in FORBIDDEN, f"{path.name} imports {name}"
            if root in OURS:
                assert name in ALLOWED, (path.name, name)
