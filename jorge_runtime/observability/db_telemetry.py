"""Every statement timed into jorge_db_query_duration_seconds, and traced when its caller is.

``create_pool`` gives its connections this class. Pool shortcuts (``pool.fetchval`` ...) and
transactions (BEGIN/COMMIT go through ``execute``) are covered. A span is made only inside a
recording span (a sampled request or message with tracing on): otherwise the cost is one
check. One wrapper instead of opentelemetry-instrumentation-asyncpg, which measured several
times as costly per request on the gateway even for requests not sampled.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import asyncpg
from opentelemetry import trace

#: The service label of the histogram in this process (set by process_metrics.track_pool).
QUERY_METRICS_SERVICE = {"name": "unknown"}
#: The tracer statements use; None while tracing is off (set by telemetry.setup_tracing).
QUERY_TRACER: dict[str, trace.Tracer | None] = {"tracer": None}
# Transaction control: timed, but a span each would add a third of a request's spans for
# nothing a reader of the trace needs (the statements between them are spans).
_UNTRACED = frozenset({"BEGIN", "COMMIT", "ROLLBACK", "SAVEPOINT", "RELEASE"})


@contextmanager
def _measured(operation: str, query: str) -> Iterator[None]:
    started = time.perf_counter()
    tracer = QUERY_TRACER["tracer"]
    span = None
    if tracer is not None and trace.get_current_span().is_recording():
        words = query.split(None, 1)
        verb = words[0].rstrip(";").upper() if words else operation
        if verb not in _UNTRACED:
            span = tracer.start_span(
                verb,
                kind=trace.SpanKind.CLIENT,
                attributes={
                    "db.system": "postgresql",
                    "db.operation.name": operation,
                    "db.query.text": query,
                },
            )
    try:
        yield
    except BaseException as exc:
        if span is not None:
            span.set_status(trace.StatusCode.ERROR, type(exc).__name__)
        raise
    finally:
        # Imported here: `jorge gateway` must set PROMETHEUS_MULTIPROC_DIR before prometheus_client loads.
        from jorge_runtime.observability.metrics import DB_QUERY_DURATION

        DB_QUERY_DURATION.labels(QUERY_METRICS_SERVICE["name"], operation).observe(
            time.perf_counter() - started
        )
        if span is not None:
            span.end()


class TimedConnection(asyncpg.Connection):
    """An asyncpg connection whose statements are timed (label: the asyncpg method, never SQL)."""

    async def execute(self, query: str, *args: Any, timeout: float | None = None) -> str:
        with _measured("execute", query):
            return await super().execute(query, *args, timeout=timeout)

    async def executemany(self, command: str, args: Any, *, timeout: float | None = None) -> None:
        with _measured("executemany", command):
            await super().executemany(command, args, timeout=timeout)

    async def fetch(
        self, query: str, *args: Any, timeout: float | None = None, record_class: Any = None
    ) -> Any:
        with _measured("fetch", query):
            return await super().fetch(query, *args, timeout=timeout, record_class=record_class)

    async def fetchval(self, query: str, *args: Any, column: int = 0, timeout: float | None = None) -> Any:
        with _measured("fetchval", query):
            return await super().fetchval(query, *args, column=column, timeout=timeout)

    async def fetchrow(
        self, query: str, *args: Any, timeout: float | None = None, record_class: Any = None
    ) -> Any:
        with _measured("fetchrow", query):
            return await super().fetchrow(query, *args, timeout=timeout, record_class=record_class)
