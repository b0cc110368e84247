"""Starting a worker's extra consumers without holding up its start, and stopping them in bounded time."""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Sequence
from typing import Protocol

from faststream.kafka import KafkaBroker

log = logging.getLogger(__name__)


class Startable(Protocol):
    """Anything with an async start and stop (e.g. a raw aiokafka consumer loop)."""

    async def start(self) -> None: ...

    async def stop(self) -> None: ...


class BackgroundConsumers:
    """A broker's subscribers (and companions) started together in a background task.

    A broker's own start joins consumer groups one after another, about 5 s each on the
    embedded broker; starting every subscriber at once joins them in parallel. Until Kafka
    answers the start is retried with backoff, so the worker's HTTP side and other consumers
    come up regardless. Stopping is bounded: a consumer stopped while still joining its group
    can wait on the coordinator for long, and since offsets are committed per message, giving
    up on a clean leave loses nothing.
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

    def start(self) -> None:
        """Begin starting in the background; returns at once."""
        self._starting = asyncio.create_task(self._start(), name=self._name)

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
                return
            except asyncio.CancelledError:
                raise
            except Exception:
                log.exception("%s could not start; retrying", self._name)
                await self._stop_all()
                await asyncio.sleep(delay)
                delay = min(delay * 2, 30.0)

    async def stop(self) -> None:
        """Cancel a start in progress, then stop companions and the broker within the bound."""
        if self._starting is not None and not self._starting.done():
            self._starting.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._starting
        await self._stop_all()

    async def _stop_all(self) -> None:
        for companion in self._companions:
            with contextlib.suppress(Exception):
                await asyncio.wait_for(companion.stop(), self._stop_timeout)
        with contextlib.suppress(Exception):
            await asyncio.wait_for(self.broker.stop(), self._stop_timeout)
