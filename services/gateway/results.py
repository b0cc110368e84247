"""Waiting for a worker's result without polling, and what the asynchronous routes share.

One dedicated connection per gateway process LISTENs on ``jorge_results``; workers call
``jorge_runtime.results.notify_result`` in the transaction that stores a result, so a
notification always finds the result committed. A request that asks to wait registers a future
under (kind, id) and sleeps until the notification resolves it or its time runs out.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Awaitable, Callable
from typing import Any

import asyncpg
from fastapi import Query
from fastapi.responses import JSONResponse
from pydantic import BaseModel

from jorge_runtime.failures import INFRASTRUCTURE_ERRORS
from jorge_runtime.results import MATCH_SESSION, QUALIFICATION, RESULTS_CHANNEL, SELLER_ANALYSIS
from jorge_runtime.tables import leads, match_sessions, seller_analyses

log = logging.getLogger(__name__)

MAX_WAIT_SECONDS = 30.0

#: The status of a result by id; any status other than pending (or in_progress) is final.
_STATUS_QUERIES: dict[str, str] = {
    QUALIFICATION: leads.STATUS_BY_ID,
    MATCH_SESSION: match_sessions.STATUS_BY_ID,
    SELLER_ANALYSIS: seller_analyses.STATUS_BY_ID,
}

WAIT_QUERY = Query(
    default=None,
    gt=0,
    le=MAX_WAIT_SECONDS,
    description="Seconds to wait for the worker's result (at most 30). Answers 200 with the result "
    "as soon as it is stored, or 202 when the time runs out.",
    examples=[5],
)


class ResultWaiter:
    """Futures keyed by (kind, id), resolved by NOTIFYs on one LISTENing connection.

    The connection is re-opened whenever it drops; every waiting request then re-checks the
    database once, since notifications sent while it was down are lost. A wait never fails
    because of the listener: without it, the wait ends with one database check at its deadline.
    """

    def __init__(
        self,
        dsn: str,
        pool: asyncpg.Pool,
        *,
        reconnect_delay: float = 0.2,
        max_reconnect_delay: float = 5.0,
        keepalive_seconds: float = 15.0,
        application_name: str = "jorge-gateway-results",
    ) -> None:
        self._dsn = dsn
        self.application_name = application_name
        self._pool = pool
        self._reconnect_delay = reconnect_delay
        self._max_reconnect_delay = max_reconnect_delay
        self._keepalive = keepalive_seconds
        self._waiters: dict[tuple[str, str], set[asyncio.Future[None]]] = {}
        self._conn: asyncpg.Connection | None = None
        self._lost = asyncio.Event()
        self._listening = asyncio.Event()
        self._task: asyncio.Task[None] | None = None
        self._closed = False

    @property
    def listening(self) -> bool:
        """Whether the LISTEN connection is up (notifications are being received)."""
        return self._listening.is_set()

    async def start(self, timeout: float = 5.0) -> None:
        """Start listening; waits up to ``timeout`` for the first connection, then goes on trying
        in the background (waits work meanwhile, by their final check)."""
        self._task = asyncio.create_task(self._supervise(), name="result-waiter")
        await self.until_listening(timeout)

    async def until_listening(self, timeout: float) -> bool:
        """Wait up to ``timeout`` seconds for the LISTEN connection; whether it is up."""
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(timeout):
                await self._listening.wait()
        return self.listening

    async def stop(self) -> None:
        """Stop listening and release every waiting request to its final check."""
        self._closed = True
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
        await self._disconnect()
        self._wake_all()

    async def wait(self, kind: str, result_id: str, timeout: float) -> str | None:
        """The final status (completed or failed) of the result once stored, or None if it is
        still pending after ``timeout`` seconds."""
        query = _STATUS_QUERIES[kind]
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout
        key = (kind, result_id)
        while True:
            # Registered before the check: a result stored between the two is not missed.
            future: asyncio.Future[None] = loop.create_future()
            self._waiters.setdefault(key, set()).add(future)
            try:
                status = await self._status(query, result_id)
                remaining = deadline - loop.time()
                if status is not None or remaining <= 0 or self._closed:
                    return status
                try:
                    async with asyncio.timeout(remaining):
                        await future
                except TimeoutError:
                    return await self._status(query, result_id)
            finally:
                self._forget(key, future)

    async def _status(self, query: str, result_id: str) -> str | None:
        try:
            status = await self._pool.fetchval(query, result_id)
        except INFRASTRUCTURE_ERRORS:
            # The request was already accepted: a database hiccup makes it "still pending", not a 503.
            log.warning("result check failed", exc_info=True)
            return None
        return None if status in (None, "pending", "in_progress") else str(status)

    def _forget(self, key: tuple[str, str], future: asyncio.Future[None]) -> None:
        futures = self._waiters.get(key)
        if futures is not None:
            futures.discard(future)
            if not futures:
                del self._waiters[key]

    def _resolve(self, futures: set[asyncio.Future[None]]) -> None:
        for future in futures:
            if not future.done():
                future.set_result(None)

    def _wake_all(self) -> None:
        for futures in list(self._waiters.values()):
            self._resolve(futures)

    def _on_notification(self, _conn: Any, _pid: int, _channel: str, payload: object) -> None:
        kind, _, result_id = str(payload).partition(":")
        futures = self._waiters.get((kind, result_id))
        if futures:
            self._resolve(futures)

    def _on_termination(self, conn: Any) -> None:
        if conn is self._conn:  # not a late callback of a connection already replaced
            self._listening.clear()
            self._lost.set()

    async def _supervise(self) -> None:
        delay = self._reconnect_delay
        while not self._closed:
            try:
                await self._connect()
            except Exception as exc:  # whatever the cause, waits go on working by their final check
                log.warning("result listener cannot connect", extra={"error": type(exc).__name__})
                await asyncio.sleep(delay)
                delay = min(delay * 2, self._max_reconnect_delay)
                continue
            delay = self._reconnect_delay
            # Results stored while no connection listened were announced to nobody.
            self._wake_all()
            await self._watch()
            await self._disconnect()
            log.warning("result listener connection lost; reconnecting")

    async def _connect(self) -> None:
        self._lost.clear()
        conn = await asyncpg.connect(
            self._dsn, timeout=10, server_settings={"application_name": self.application_name}
        )
        self._conn = conn
        try:
            conn.add_termination_listener(self._on_termination)
            await conn.add_listener(RESULTS_CHANNEL, self._on_notification)
        except BaseException:
            await self._disconnect()
            raise
        self._listening.set()

    async def _watch(self) -> None:
        """Return once the connection is lost; a periodic ping catches silent network deaths."""
        assert self._conn is not None
        while True:
            with contextlib.suppress(TimeoutError):  # not wait_for: see the dispatcher's loop
                async with asyncio.timeout(self._keepalive):
                    await self._lost.wait()
            if self._lost.is_set() or self._conn.is_closed():
                return
            try:
                async with asyncio.timeout(5):
                    await self._conn.fetchval("SELECT 1")
            except Exception:  # any failure of a bare SELECT 1 means the connection is unusable
                return

    async def _disconnect(self) -> None:
        self._listening.clear()
        conn, self._conn = self._conn, None
        if conn is not None and not conn.is_closed():
            with contextlib.suppress(Exception):
                await conn.close(timeout=2)


async def accepted_or_result(
    waiter: ResultWaiter,
    kind: str,
    result_id: str,
    wait: float | None,
    accepted: BaseModel,
    load: Callable[[], Awaitable[BaseModel | None]],
) -> BaseModel | JSONResponse:
    """The 202 body ``accepted``, unless the caller waits (``?wait=N``) and the worker stores
    the result in time: then 200 with the stored result as ``load`` reads it."""
    if wait is None or await waiter.wait(kind, result_id, wait) is None:
        return accepted
    view = await load()
    assert view is not None  # notified only after the worker's transaction committed
    return JSONResponse(view.model_dump(mode="json"), status_code=200)
