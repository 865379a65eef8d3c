"""The worker's job functions, named by import path in the persistent job store.

Each runs one ``commands`` use case against the leading :class:`worker.leader.Worker`
of this process (its engine, settings and workspace) and logs what it did.
"""

from __future__ import annotations

import logging
from datetime import UTC, datetime
from typing import Any

logger = logging.getLogger(__name__)

_active: Any = None  # the leading worker.leader.Worker of this process


def set_active(worker: Any) -> None:
    """Make ``worker`` the one the job functions run against."""
    global _active
    _active = worker


def clear_active(worker: Any) -> None:
    """Forget ``worker`` if it is the active one."""
    global _active
    if _active is worker:
        _active = None


def _worker() -> Any:
    if _active is None:
        raise RuntimeError("no worker is leading in this process")
    return _active


def run_refresh(segment: str) -> None:
    """``refresh:<segment>`` and ``retry:<segment>:<n>``."""
    from commands.jobs import scheduled_refresh

    worker = _worker()
    result = scheduled_refresh(
        worker.engine,
        worker.load_workspace,
        segment,
        now=datetime.now(UTC),
        templates_dir=worker.settings.templates_dir,
        privacy_floor=worker.settings.privacy_floor,
    )
    logger.info("scheduled_refresh %s", result.to_dict())
    worker.after_refresh(result)


def run_feedback_digest() -> None:
    from commands.jobs import feedback_digest

    worker = _worker()
    sent = feedback_digest(worker.engine, templates_dir=worker.settings.templates_dir)
    logger.info("feedback_digest owners=%d", sent)


def run_proposal_reminders() -> None:
    from commands.jobs import proposal_reminders

    worker = _worker()
    reminded = proposal_reminders(worker.engine, templates_dir=worker.settings.templates_dir)
    logger.info("proposal_reminders proposals=%s", reminded)


def run_catalog_health() -> None:
    from commands.jobs import catalog_health

    worker = _worker()
    report = catalog_health(worker.engine, templates_dir=worker.settings.templates_dir)
    logger.info(
        "catalog_health segments=%d attention=%d queued=%d",
        len(report.segments),
        len(report.attention),
        report.queued,
    )


def run_prune_events() -> None:
    """Forget Slack event ids older than Slack's retry window (the de-dup table)."""
    from bot.dedupe import prune

    removed = prune(_worker().engine)
    logger.info("slack_events_pruned rows=%d", removed)
