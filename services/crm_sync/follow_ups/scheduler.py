"""The follow-up clock without a cron: every crm_sync replica polls PostgreSQL for due steps,
claims a few (SKIP LOCKED, leased) and carries them out; it also republishes follow-up events
Kafka never acknowledged and refreshes the overdue gauge."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time

from jorge_runtime.kafka.broker import KafkaPublisher, PublishFailed
from jorge_runtime.observability.metrics import FOLLOW_UP_OVERDUE
from services.crm_sync.follow_ups.handlers import StepRunner
from services.crm_sync.follow_ups.repository import FollowUpRepository

log = logging.getLogger(__name__)

CLAIM_BATCH = 20
#: Part of the lease a step may still start in; past it, the step goes back to the pool (started
#: near its lease's end it could outlive it, and a second holder would write a second task).
LEASE_START_SHARE = 0.5
#: A staged event older than this was not published by the process that committed it.
RELAY_AFTER_SECONDS = 30.0


class FollowUpScheduler:
    """Runs the claim loop in the background between start() and stop()."""

    def __init__(
        self,
        repository: FollowUpRepository,
        runner: StepRunner,
        publisher: KafkaPublisher,
        *,
        poll_seconds: float,
        lease_seconds: float,
    ) -> None:
        self._repository = repository
        self._runner = runner
        self._publisher = publisher
        self._poll = poll_seconds
        self._lease = lease_seconds
        self._task: asyncio.Task[None] | None = None

    def start(self) -> None:
        self._task = asyncio.get_running_loop().create_task(self._forever(), name="follow-up-scheduler")

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
            self._task = None

    async def tick(self) -> int:
        """One round: claim due steps and carry them out; the number claimed."""
        claimed_at = time.monotonic()
        steps = await self._repository.claim(CLAIM_BATCH, self._lease)
        for step in steps:
            held = time.monotonic() - claimed_at
            if held > self._lease * LEASE_START_SHARE:
                if held < self._lease:  # still ours: back to the pool now (past it, maybe another's)
                    await self._repository.later(step.id, 0, None, counts=False)
                continue
            outcome = await self._runner.run(step)
            log.debug("follow-up step", extra={"outcome": outcome, "step": step.step_number})
        for message in await self._repository.unpublished(RELAY_AFTER_SECONDS):
            try:
                await self._publisher.publish(message)
            except PublishFailed:
                break  # Kafka still away: the next round tries again
            await self._repository.mark_published(message.message_id)
        FOLLOW_UP_OVERDUE.set(await self._repository.overdue(self._poll + self._lease))
        return len(steps)

    async def _forever(self) -> None:
        while True:
            try:
                claimed = await self.tick()
            except Exception:  # PostgreSQL or Redis away: leases expire, the next round retries
                log.exception("follow-up round failed; trying again")
                claimed = 0
            if claimed < CLAIM_BATCH:
                await asyncio.sleep(self._poll)
