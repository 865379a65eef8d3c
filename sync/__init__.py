"""Membership syncs: sending each destination what it lacks, reliably.

``run_syncs(engine, ws, settings)`` is one pass: plan runs for destinations whose
acknowledged membership differs from the current one (:func:`commands.syncs.plan_runs`),
then, per destination (in parallel threads), send its due batches in order:

1. claim the batch (compare-and-set to ``sending`` with a claim lease);
2. wait for the destination's rate limiter (:mod:`sync.limiter`, one per destination,
   shared by the threads of the process);
3. send it through the destination's sender (:mod:`sync.senders`), with the batch's
   idempotency key, after the destination's reset when the run rebuilds it;
4. confirm it: mark it ``sent`` and move the acknowledged bitmap, in one transaction.

Failures (:mod:`sync.errors`): a 429 reschedules the batch after ``Retry-After`` and
stops sending to that destination for this pass; 5xx, timeouts and connection errors
reschedule it after an exponential backoff with jitter, and after ``max_attempts`` the
batch is dead (its ids are part of the next run's diff) and the owner is told once; an
endpoint that is gone (410, an unknown HubSpot list, a refused token) disables the
destination and tells the owner; a destination that cannot be set up (a missing secret,
a bad URL) fails each due batch with that message, so ``segops sync status`` shows it
and the owner hears of it once it gives up. A sync never blocks a refresh: it only reads
published results.
"""

from sync.runner import SyncStats, run_syncs

__all__ = ["SyncStats", "run_syncs"]
