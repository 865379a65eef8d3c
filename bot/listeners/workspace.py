"""What several listeners look up besides messages: the workspace file, the open segments."""

from __future__ import annotations

import logging

from sqlalchemy import Engine

from commands import catalog
from commands.settings import Settings
from segments.errors import SegopsError
from segments.workspace import Workspace, load_workspace

logger = logging.getLogger(__name__)


def load_workspace_of(settings: Settings) -> Workspace | None:
    """The workspace file named by ``SEGOPS_WORKSPACE``, or None when none is set."""
    if not settings.workspace:
        return None
    return load_workspace(settings.workspace, data_roots=settings.data_root_paths)


def classifying_workspace(settings: Settings) -> Workspace | None:
    """The workspace an approval re-classifies live or batch with (its sources and
    features): None when none is set or the file does not load, which is logged and
    does not stop the decision (the version is then classified at the next apply)."""
    try:
        return load_workspace_of(settings)
    except SegopsError as error:
        logger.warning("workspace_not_loaded error=%s", error)
        return None


def active_segment_names(engine: Engine) -> list[str]:
    """The names of the active segments, in catalog order (for a segment picker)."""
    return catalog.active_names(engine)
