"""What several listeners look up besides messages: the workspace file, the open segments."""

from __future__ import annotations

from sqlalchemy import Engine

from commands import catalog
from commands.settings import Settings
from segments.workspace import Workspace, load_workspace


def load_workspace_of(settings: Settings) -> Workspace | None:
    """The workspace file named by ``SEGOPS_WORKSPACE``, or None when none is set."""
    if not settings.workspace:
        return None
    return load_workspace(settings.workspace, data_roots=settings.data_root_paths)


def active_segment_names(engine: Engine) -> list[str]:
    """The names of the active segments, in catalog order (for a segment picker)."""
    return catalog.active_names(engine)
