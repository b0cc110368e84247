"""What every process does for Prometheus: sample its pool gauges and serve /metrics.

With several uvicorn workers behind one port (``jorge gateway --workers N``) each worker is a
process of its own; prometheus_client's multiprocess mode, on when ``PROMETHEUS_MULTIPROC_DIR``
is in the environment before prometheus_client is imported, makes every worker write its
values to files in that directory and /metrics (whichever worker answers) adds them up.
Gauges declare how they combine (``multiprocess_mode`` in jorge_runtime.observability.metrics).
"""

from __future__ import annotations

import asyncio
import contextlib
import os
from collections.abc import Awaitable, Callable
from typing import Any

import asyncpg
from prometheus_client import REGISTRY, CollectorRegistry, make_asgi_app

from jorge_runtime.observability.db_telemetry import QUERY_METRICS_SERVICE
from jorge_runtime.observability.metrics import DB_POOL_ACTIVE, DB_POOL_MAX
from jorge_runtime.observability.multiproc import multiprocess_dir

_pools: dict[str, asyncpg.Pool] = {}


def track_pool(service: str, pool: asyncpg.Pool) -> None:
    """Report this pool as ``service``'s in jorge_db_pool_* (and its queries) from now on."""
    _pools[service] = pool
    QUERY_METRICS_SERVICE["name"] = service
    refresh_pool_metrics()


def untrack_pool(service: str) -> None:
    """Stop reporting ``service``'s pool (it is closing): its gauges drop to zero."""
    _pools.pop(service, None)
    DB_POOL_ACTIVE.labels(service).set(0)
    DB_POOL_MAX.labels(service).set(0)


def refresh_pool_metrics() -> None:
    """Sample checked-out and maximum connections of every tracked pool."""
    for service, pool in list(_pools.items()):
        DB_POOL_ACTIVE.labels(service).set(pool.get_size() - pool.get_idle_size())
        DB_POOL_MAX.labels(service).set(pool.get_max_size())


async def sample_periodically(interval_seconds: float) -> None:
    """Refresh the pool gauges forever (cancel to stop).

    A scrape refreshes them too, but in multiprocess mode it reaches one worker only: the
    others' values are what they last wrote, so each samples on its own as well.
    """
    while True:
        refresh_pool_metrics()
        await asyncio.sleep(interval_seconds)


class Sampler:
    """Starts and stops sample_periodically as a background task of the running loop."""

    def __init__(self, interval_seconds: float) -> None:
        self._interval = interval_seconds
        self._task: asyncio.Task[None] | None = None

    async def start(self) -> None:
        self._task = asyncio.get_running_loop().create_task(sample_periodically(self._interval))

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
            self._task = None


def mark_process_dead() -> None:
    """Drop this process's live gauges from the shared directory (at clean shutdown)."""
    if multiprocess_dir():
        from prometheus_client import multiprocess

        multiprocess.mark_process_dead(os.getpid())


def metrics_registry() -> CollectorRegistry:
    """The registry /metrics serves: this process's, or every worker's in multiprocess mode."""
    from prometheus_client import multiprocess, values

    # The mode prometheus_client chose at import, not the environment now: they differ when
    # the directory was only set after the import (one process: its own registry is right).
    if values.ValueClass is values.MutexValue or not multiprocess_dir():
        return REGISTRY

    registry = CollectorRegistry()
    multiprocess.MultiProcessCollector(registry)
    return registry


ASGIApp = Callable[[Any, Any, Any], Awaitable[None]]


def metrics_asgi_app() -> ASGIApp:
    """An ASGI endpoint for /metrics that samples the pool gauges before answering."""
    inner = make_asgi_app(metrics_registry())

    async def app(scope: Any, receive: Any, send: Any) -> None:
        refresh_pool_metrics()
        await inner(scope, receive, send)

    return app
