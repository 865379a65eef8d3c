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
        engine_name=worker.settings.engine,
        engine_options=worker.settings.engine_options(),
        privacy_floor=worker.settings.privacy_floor,
    )
    logger.info("scheduled_refresh %s", result.to_dict())
    worker.after_refresh(result)
    if result.status == "ok":
        run_syncs()  # destinations hear of the new membership at once, not at the next pass


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


def run_syncs() -> None:
    """``sync``: plan and send what destinations lack (see :mod:`sync`).

    A failing sync is logged and retried by the next pass; it never fails the refresh
    that triggered it.
    """
    from sync import run_syncs as sync_pass

    worker = _worker()
    try:
        ws = worker.load_workspace()
        if not ws.destinations:
            return
        stats = sync_pass(worker.engine, ws, worker.settings)
    except Exception:  # noqa: BLE001 - the next pass retries; the refresh stands
        logger.exception("sync_pass_failed")
        return
    if stats.planned or stats.sent or stats.retried or stats.dead or stats.errors:
        logger.info("sync_pass %s", stats.to_dict())


def run_experiments_close() -> None:
    """Read out and close experiments whose window has closed; record their learnings."""
    from commands.experiments import close_due

    worker = _worker()
    if worker.settings.workspace is None:
        logger.info("experiments_close skipped: no SEGOPS_WORKSPACE")
        return
    done = close_due(worker.engine, worker.load_workspace())
    logger.info("experiments_closed count=%d", len(done))


def run_clinic_agenda() -> None:
    """Queue the weekly segmentation clinic agenda for ``SEGOPS_CLINIC_CHANNEL``."""
    from commands.agenda import queue_agenda

    worker = _worker()
    settings = worker.settings
    if not settings.clinic_channel:
        logger.info("clinic_agenda skipped: no SEGOPS_CLINIC_CHANNEL")
        return
    queued = queue_agenda(
        worker.engine,
        channel=settings.clinic_channel,
        ws=worker.load_workspace() if settings.workspace else None,
        privacy_floor=settings.privacy_floor,
        templates_dir=settings.templates_dir,
    )
    logger.info("clinic_agenda queued=%d", queued)


def run_live_reconcile() -> None:
    """Compare live segments with today's batch results (each result once); alert owners."""
    from commands.live import reconcile

    worker = _worker()
    found = reconcile(
        worker.engine, today=datetime.now(UTC).date(), templates_dir=worker.settings.templates_dir
    )
    for item in found:
        logger.info("live_reconciled %s", item.to_dict())


def run_prune_jobs() -> None:
    """Forget queued jobs finished and answered more than a week ago."""
    from commands.queue import prune

    removed = prune(_worker().engine)
    logger.info("jobs_pruned rows=%d", removed)
