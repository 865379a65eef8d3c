"""The use cases behind the worker's scheduled jobs.

- :func:`scheduled_refresh` refreshes one segment on its cadence and remembers failures;
- :func:`catalog_health` sends the weekly catalog health report;
- :func:`proposal_reminders` nudges owners about proposals left pending;
- :func:`feedback_digest` sends owners the day's new field feedback.

Every message is rendered from a ``briefs`` template and goes through the outbox
(``store.outbox.add_message``) with an idempotency key, so running a job twice never
posts twice. One module per job; this package re-exports them for the worker.
"""

from commands.jobs.digest import DIGEST_LOOKBACK, feedback_digest
from commands.jobs.health import HealthReport, SegmentHealth, catalog_health
from commands.jobs.refresh_failures import (
    ALERT_AFTER_FAILURES,
    REFRESH_FAILED,
    RETRY_BASE,
    RETRY_CAP,
    RefreshJobResult,
    open_failures,
    retry_delay,
    scheduled_refresh,
)
from commands.jobs.reminders import REMIND_AFTER, proposal_reminders

__all__ = [
    "ALERT_AFTER_FAILURES",
    "DIGEST_LOOKBACK",
    "REFRESH_FAILED",
    "REMIND_AFTER",
    "RETRY_BASE",
    "RETRY_CAP",
    "HealthReport",
    "RefreshJobResult",
    "SegmentHealth",
    "catalog_health",
    "feedback_digest",
    "open_failures",
    "proposal_reminders",
    "retry_delay",
    "scheduled_refresh",
]
