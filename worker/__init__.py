"""The worker process (``segops worker``): leader election through a database lease
(:mod:`worker.leader`), the APScheduler wiring and catalog sync (:mod:`worker.scheduler`)
and the scheduled job functions (:mod:`worker.jobs`). Not Slack: it delivers the outbox
through :mod:`bot.delivery` when a token is configured.
"""

from worker.leader import Worker, run_worker

__all__ = ["Worker", "run_worker"]
