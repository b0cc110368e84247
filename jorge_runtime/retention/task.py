"""The periodic purge: one run per interval across every replica of the worker that hosts it.

Each replica wakes every interval; a PostgreSQL advisory lock lets one of them in at a time,
and the last run's end (table retention_runs) tells it whether another replica already ran
within the interval. A run that fails is logged and tried again at the next wake-up.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Callable

import asyncpg

from jorge_runtime.retention.policy import RetentionPolicy, run_is_due
from jorge_runtime.retention.purge import log_counts, purge

log = logging.getLogger(__name__)

# Any fixed number works; it must differ from the migration lock (jorge_runtime/db.py).
PURGE_LOCK_ID = 4_711_2027
RUN_NAME = "purge"
# The first run waits a little after start, so it never competes with the start itself.
FIRST_RUN_DELAY_SECONDS = 60.0


class PeriodicPurge:
    """A background task running the purge every ``interval_seconds`` (0: never)."""

    def __init__(
        self,
        pool: Callable[[], asyncpg.Pool],
        policy: RetentionPolicy,
        interval_seconds: float,
    ) -> None:
        self._pool = pool
        self._policy = policy
        self._interval = interval_seconds
        self._task: asyncio.Task[None] | None = None

    async def start(self) -> None:
        """Begin the periodic runs in the background (nothing if the interval is 0)."""
        if self._interval > 0:
            self._task = asyncio.create_task(self._loop(), name="retention-purge")

    async def stop(self) -> None:
        """Cancel the task; a run cut short keeps what it deleted and loses nothing else."""
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task

    async def _loop(self) -> None:
        await asyncio.sleep(min(self._interval, FIRST_RUN_DELAY_SECONDS))
        while True:
            try:
                await self.run_once()
            except asyncio.CancelledError:
                raise
            except Exception:
                log.exception("retention purge failed; trying again at the next interval")
            await asyncio.sleep(self._interval)

    async def run_once(self) -> dict[str, int] | None:
        """Purge if this replica holds the lock and no run finished within the interval;
        the counts per table, or None when it did not run."""
        async with self._pool().acquire() as conn:
            if not await conn.fetchval("SELECT pg_try_advisory_lock($1)", PURGE_LOCK_ID):
                return None
            try:
                row = await conn.fetchrow(
                    "SELECT (SELECT finished_at FROM retention_runs WHERE name = $1) AS last, now() AS now",
                    RUN_NAME,
                )
                assert row is not None
                if not run_is_due(row["last"], row["now"], self._interval):
                    return None
                counts = await purge(conn, self._policy)
                await conn.execute(
                    """INSERT INTO retention_runs (name, finished_at, deleted) VALUES ($1, now(), $2)
                       ON CONFLICT (name) DO UPDATE SET finished_at = excluded.finished_at,
                                                        deleted = excluded.deleted""",
                    RUN_NAME,
                    counts,
                )
                log_counts(counts)
                return counts
            finally:
                await conn.execute("SELECT pg_advisory_unlock($1)", PURGE_LOCK_ID)
