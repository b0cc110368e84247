"""Successful attempts recorded many per statement: under load, the attempts that finish while
one statement runs (and for ``linger_seconds`` after) share the next, so a delivery's success
costs a share of one commit instead of one of its own. Each attempt waits for its record, so
its slot stays taken until the delivery is finished in the database, as before.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable

from jorge_runtime.tasks import cancel_and_wait
from services.crm_sync.webhook_delivery.repository import Succeeded

Write = Callable[[list[Succeeded]], Awaitable[None]]


class SuccessRecords:
    """Shares one statement among the successful attempts that finish together."""

    def __init__(self, write: Write, linger_seconds: float = 0.01) -> None:
        self._write = write
        self._linger = linger_seconds
        self._pending: list[tuple[Succeeded, asyncio.Future[None]]] = []
        self._added = asyncio.Event()
        self._task: asyncio.Task[None] | None = None

    async def record(self, success: Succeeded) -> None:
        """Record the attempt with the next statement; raises what the statement raised."""
        future = asyncio.get_running_loop().create_future()
        self._pending.append((success, future))
        self._added.set()
        if self._task is None or self._task.done():
            self._task = asyncio.create_task(self._write_continually(), name="webhook-success-records")
        await future

    async def close(self) -> None:
        """Stop writing in the background; write what is left (its attempts were abandoned)."""
        await cancel_and_wait(self._task)
        await self._write_pending()

    async def _write_continually(self) -> None:
        while True:
            await self._added.wait()
            self._added.clear()
            await self._write_pending()
            await asyncio.sleep(self._linger)

    async def _write_pending(self) -> None:
        batch, self._pending = self._pending, []
        if not batch:
            return
        try:
            await self._write([success for success, _ in batch])
        except asyncio.CancelledError:
            self._pending[:0] = batch  # closing: close() writes them
            raise
        except Exception as error:  # each attempt's task reports it; the leases expire and retry
            for _, future in batch:
                if not future.done():
                    future.set_exception(error)
        else:
            for _, future in batch:
                if not future.done():
                    future.set_result(None)
