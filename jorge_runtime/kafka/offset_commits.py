"""Offsets of handled messages, committed together every few hundred milliseconds.

FastStream's ``NACK_ON_ERROR`` commits after every message: one OffsetCommit request per
message and consumer group, which on the pipeline benchmark was about half of the broker's CPU
and a quarter of each worker's. Here a handled message only records its partition's next offset;
a background task commits what was recorded every ``interval`` seconds, in one request per
consumer. Delivery stays at least once: only offsets of messages whose handler returned are ever
committed, so a crash redelivers at most an interval's worth of handled messages, which every
consumer already absorbs (its ledger or its own idempotent writes).

Recorded offsets of a consumer's partitions are committed before a rebalance takes them away
(the consumer's rebalance listener), on ``flush`` (a consumer about to stop) and on ``close``;
after ``close`` each handled message is committed at once, as before, until the consumers stop.
An interval of 0 commits every message at once.
"""

from __future__ import annotations

import asyncio
import logging
import weakref
from collections.abc import Awaitable, Callable, Iterable
from typing import Any

from aiokafka import AIOKafkaConsumer, ConsumerRebalanceListener, ConsumerRecord, TopicPartition
from faststream.message import StreamMessage

from jorge_runtime.tasks import cancel_and_wait

log = logging.getLogger(__name__)

#: Times a commit that failed for a passing reason is tried again before its offsets are dropped.
RETRIES = 5
OriginalParser = Callable[[ConsumerRecord[Any, Any]], Awaitable[StreamMessage[Any]]]


class OffsetCommits:
    """One process's handled-but-uncommitted offsets, per consumer and partition."""

    def __init__(self, interval_seconds: float) -> None:
        self._interval = interval_seconds
        self._pending: dict[AIOKafkaConsumer, dict[TopicPartition, int]] = {}
        self._failures: dict[AIOKafkaConsumer, int] = {}
        self._locks: weakref.WeakKeyDictionary[AIOKafkaConsumer, asyncio.Lock] = weakref.WeakKeyDictionary()
        self._recorded = asyncio.Event()
        self._task: asyncio.Task[None] | None = None
        self._closed = False

    async def handled(self, consumer: AIOKafkaConsumer, partition: TopicPartition, offset: int) -> None:
        """The message at ``offset`` was handled: its partition may be committed past it."""
        if self._interval <= 0 or self._closed:
            await consumer.commit({partition: offset + 1})
            return
        pending = self._pending.setdefault(consumer, {})
        pending[partition] = max(pending.get(partition, 0), offset + 1)
        self._recorded.set()
        if self._task is None or self._task.done():
            self._task = asyncio.create_task(self._commit_periodically(), name="kafka-offset-commits")

    async def flush(
        self, consumer: AIOKafkaConsumer | None = None, partitions: Iterable[TopicPartition] | None = None
    ) -> None:
        """Commit what is recorded now: of one consumer or all, of some partitions or all.

        A commit that fails for a passing reason (a broker that does not answer) is tried again
        at the next interval, up to ``RETRIES`` times; any other failure (the consumer stopped, or
        lost the partitions to a rebalance) drops the offsets: those messages are delivered
        again, to whichever consumer owns them next."""
        wanted = None if partitions is None else set(partitions)
        for owner in [consumer] if consumer is not None else list(self._pending):
            # One commit at a time per consumer, so an older offset never lands after a newer one.
            async with self._locks.setdefault(owner, asyncio.Lock()):
                pending = self._pending.get(owner, {})
                offsets = {tp: o for tp, o in pending.items() if wanted is None or tp in wanted}
                if not offsets:
                    continue
                try:
                    await owner.commit(offsets)
                except Exception as error:
                    self._failures[owner] = self._failures.get(owner, 0) + 1
                    again = getattr(error, "retriable", False) and self._failures[owner] <= RETRIES
                    log.warning(
                        "offsets not committed; trying again"
                        if again
                        else "offsets not committed; handled messages will be redelivered",
                        extra={"error": type(error).__name__, "partitions": len(offsets)},
                    )
                    if again:
                        self._recorded.set()
                        continue
                self._failures.pop(owner, None)
                for tp, offset in offsets.items():
                    if pending.get(tp) == offset:
                        del pending[tp]
                if not pending:
                    self._pending.pop(owner, None)

    async def close(self) -> None:
        """Commit everything recorded and commit each later message at once (shutdown)."""
        self._closed = True
        await cancel_and_wait(self._task)
        await self.flush()

    async def _commit_periodically(self) -> None:
        while True:
            await self._recorded.wait()
            await asyncio.sleep(self._interval)
            self._recorded.clear()
            await self.flush()

    async def parse(self, record: ConsumerRecord[Any, Any], original: OriginalParser) -> StreamMessage[Any]:
        """FastStream parser: the message acknowledges through this object, not by a commit."""
        message = await original(record)
        consumer = getattr(message, "consumer", None)
        if isinstance(consumer, AIOKafkaConsumer):
            setattr(message, "consumer", _DeferredAck(self, consumer, record))  # noqa: B010
        return message

    def listener(self) -> ConsumerRebalanceListener:
        """A rebalance listener that commits recorded offsets of partitions being revoked."""
        return _CommitOnRevoke(self)


class _DeferredAck:
    """What FastStream's Kafka message calls ``consumer``: ``commit`` records, ``seek`` seeks."""

    def __init__(self, commits: OffsetCommits, consumer: AIOKafkaConsumer, record: ConsumerRecord[Any, Any]):
        self._commits = commits
        self._consumer = consumer
        self._record = record

    async def commit(self) -> None:
        record = self._record
        partition = TopicPartition(record.topic, record.partition)
        await self._commits.handled(self._consumer, partition, record.offset)

    def seek(self, partition: TopicPartition, offset: int) -> None:
        self._consumer.seek(partition, offset)


class _CommitOnRevoke(ConsumerRebalanceListener):
    def __init__(self, commits: OffsetCommits) -> None:
        self._commits = commits

    async def on_partitions_revoked(self, revoked: Iterable[TopicPartition]) -> None:
        await self._commits.flush(partitions=list(revoked))

    async def on_partitions_assigned(self, assigned: Iterable[TopicPartition]) -> None:
        return None
