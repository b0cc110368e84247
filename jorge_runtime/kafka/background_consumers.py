"""Starting a worker's extra consumers without holding up its start, and stopping them in bounded time."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Protocol

from faststream.kafka import KafkaBroker

log = logging.getLogger(__name__)


class Startable(Protocol):
    """Anything with an async start and stop (e.g. a raw aiokafka consumer loop)."""

    async def start(self) -> None: ...

    async def stop(self) -> None: ...


@dataclass(frozen=True, slots=True)
class ConsumersState:
    """Where a BackgroundConsumers stands, for readiness (jorge_runtime/observability/health.py)."""

    started: bool  # every subscriber and companion started, at least once
    stopped: bool  # stop() was called
    seconds_since_start: float  # since start() was called (0 if it never was)
    loops: int  # consume loops expected: one per subscriber and companion
    loops_alive: int  # of those, still running
    last_error: str | None  # why the last start attempt failed, if one did


class BackgroundConsumers:
    """A broker's subscribers (and companions) started together in a background task.

    A broker's own start joins consumer groups one after another, about 5 s each on the
    embedded broker; starting every subscriber at once joins them in parallel. Until Kafka
    answers the start is retried with backoff, so the worker's HTTP side and other consumers
    come up regardless. Stopping is bounded: a consumer stopped while still joining its group
    can wait on the coordinator for long, and since handled offsets are committed before the
    consumers stop (the worker's shutdown closes its OffsetCommits first), giving up on a clean
    leave loses nothing.
    """

    def __init__(
        self,
        broker: KafkaBroker,
        *,
        name: str,
        companions: Sequence[Startable] = (),
        stop_timeout_seconds: float = 3.0,
    ) -> None:
        self.broker = broker
        self._name = name
        self._companions = tuple(companions)
        self._stop_timeout = stop_timeout_seconds
        self._starting: asyncio.Task[None] | None = None
        self._requested_at: float | None = None
        self._started = False
        self._stopped = False
        self._last_error: str | None = None

    def start(self) -> None:
        """Begin starting in the background; returns at once."""
        self._requested_at = time.monotonic()
        self._starting = asyncio.create_task(self._start(), name=self._name)

    def state(self) -> ConsumersState:
        """Started, stopped, and how many consume loops still run (a crashed loop is not)."""
        subscribers = list(self.broker.subscribers)
        alive = sum(
            1
            for s in subscribers
            if getattr(s, "running", False) and not any(t.done() for t in getattr(s, "tasks", ()))
        )
        alive += sum(1 for c in self._companions if getattr(c, "running", True))
        since = 0.0 if self._requested_at is None else time.monotonic() - self._requested_at
        return ConsumersState(
            started=self._started,
            stopped=self._stopped,
            seconds_since_start=since,
            loops=len(subscribers) + len(self._companions),
            loops_alive=alive if self._started else 0,
            last_error=self._last_error,
        )

    async def _start(self) -> None:
        delay = 0.5
        while True:
            try:
                await self.broker.connect()
                await asyncio.gather(
                    *(subscriber.start() for subscriber in self.broker.subscribers),
                    *(companion.start() for companion in self._companions),
                )
                for publisher in self.broker.publishers:
                    await publisher.start()
                self.broker.running = True
                self._started = True
                return
            except asyncio.CancelledError:
                raise
            except Exception as error:
                self._last_error = type(error).__name__
                log.exception("%s could not start; retrying", self._name)
                await self._stop_all()
                await asyncio.sleep(delay)
                delay = min(delay * 2, 30.0)

    async def stop(self) -> None:
        """Cancel a start in progress, then stop companions and the broker within the bound."""
        self._stopped = True
        if self._starting is not None and not self._starting.done():
            self._starting.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._starting
        await self._stop_all()

    async def _stop_all(self) -> None:
        for companion in self._companions:
            with contextlib.suppress(Exception):
                async with asyncio.timeout(self._stop_timeout):
                    await companion.stop()
        with contextlib.suppress(Exception):
            async with asyncio.timeout(self._stop_timeout):
                await self.broker.stop()
