"""Handled offsets committed together, on the real broker: nothing unhandled is ever committed,
an idle tail is committed within the interval, a rebalance and a shutdown commit what was
handled first (so nothing handled is delivered twice), and a worker's subscriber acknowledges
through them."""

from __future__ import annotations

import asyncio
import contextlib
import uuid
from collections.abc import AsyncIterator

import pytest
from aiokafka import AIOKafkaConsumer, TopicPartition
from aiokafka.admin import AIOKafkaAdminClient
from faststream.kafka import KafkaMessage

from jorge_runtime.kafka.broker import create_broker
from jorge_runtime.kafka.offset_commits import OffsetCommits
from jorge_runtime.kafka.security import kafka_client_options
from jorge_runtime.settings import Settings
from jorge_runtime.worker import WorkerResources, consumer_options
from schemas.topics import LEAD_QUALIFIED, TopicNames
from tests.support.services import produce
from tests.support.waiting import eventually

PARTITIONS = LEAD_QUALIFIED.partitions


async def committed(settings: Settings, group: str, topic: str) -> int:
    """The group's committed offsets on the topic, summed over its partitions."""
    admin = AIOKafkaAdminClient(**kafka_client_options(settings))
    await admin.start()
    try:
        partitions = [TopicPartition(topic, p) for p in range(PARTITIONS)]
        offsets = await admin.list_consumer_group_offsets(group, partitions=partitions)
        return sum(max(meta.offset, 0) for meta in offsets.values())
    finally:
        await admin.close()


async def produce_numbers(settings: Settings, topic: str, count: int, start: int = 0) -> None:
    assert settings.kafka_bootstrap_servers
    for n in range(start, start + count):
        await produce(settings.kafka_bootstrap_servers, topic, str(n).encode(), key=f"k{n}")


class Member:
    """A consumer in the test's group that records every message it handles through ``commits``."""

    def __init__(self, settings: Settings, group: str, topic: str, commits: OffsetCommits) -> None:
        self.commits = commits
        self.handled: list[bytes] = []
        self.consumer = AIOKafkaConsumer(
            **kafka_client_options(settings),
            group_id=group,
            enable_auto_commit=False,
            auto_offset_reset="earliest",
            fetch_max_wait_ms=50,
        )
        self.consumer.subscribe([topic], listener=commits.listener())
        self._task: asyncio.Task[None] | None = None

    async def start(self) -> None:
        await self.consumer.start()
        self._task = asyncio.create_task(self._run())

    async def _run(self) -> None:
        while True:
            batch = await self.consumer.getmany(timeout_ms=100)
            for tp, records in batch.items():
                for record in records:
                    self.handled.append(record.value)
                    await self.commits.handled(self.consumer, tp, record.offset)

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with pytest.raises(asyncio.CancelledError):
                await self._task
        await self.commits.flush(self.consumer)
        await self.consumer.stop()


@pytest.fixture
async def group(settings: Settings) -> str:
    return f"{settings.kafka_consumer_group_prefix}commits-{uuid.uuid4().hex[:6]}"


@contextlib.asynccontextmanager
async def running_member(
    settings: Settings, group: str, topic: str, interval: float
) -> AsyncIterator[Member]:
    member = Member(settings, group, topic, OffsetCommits(interval))
    await member.start()
    try:
        yield member
    finally:
        await member.stop()


async def test_handled_offsets_are_committed_within_the_interval_even_when_the_topic_goes_quiet(
    settings: Settings, topics: TopicNames, group: str
) -> None:
    topic = topics(LEAD_QUALIFIED)
    await produce_numbers(settings, topic, 12)
    async with running_member(settings, group, topic, interval=0.2) as member:
        await eventually(lambda: handled(member, 12), what="12 messages handled")
        await eventually(
            lambda: committed_is(settings, group, topic, 12), timeout=10, what="the tail committed"
        )


async def test_a_rebalance_commits_what_was_handled_before_the_partitions_move(
    settings: Settings, topics: TopicNames, group: str
) -> None:
    topic = topics(LEAD_QUALIFIED)
    await produce_numbers(settings, topic, 12)
    async with running_member(settings, group, topic, interval=600) as first:
        await eventually(lambda: handled(first, 12), what="12 messages handled")
        assert await committed(settings, group, topic) == 0  # recorded, not committed yet
        async with running_member(settings, group, topic, interval=600) as second:
            await eventually(lambda: committed_is(settings, group, topic, 12), what="the revoke's commit")
            await produce_numbers(settings, topic, 12, start=12)
            await eventually(lambda: handled_together(first, second, 24), what="24 messages handled")
            assert sorted(first.handled + second.handled, key=int) == [str(n).encode() for n in range(24)]


async def test_close_commits_everything_and_later_messages_at_once(
    settings: Settings, topics: TopicNames, group: str
) -> None:
    topic = topics(LEAD_QUALIFIED)
    await produce_numbers(settings, topic, 6)
    async with running_member(settings, group, topic, interval=600) as member:
        await eventually(lambda: handled(member, 6), what="6 messages handled")
        await member.commits.close()
        assert await committed(settings, group, topic) == 6
        await produce_numbers(settings, topic, 3, start=6)
        await eventually(lambda: committed_is(settings, group, topic, 9), timeout=10, what="each committed")


async def test_a_worker_subscriber_never_commits_past_a_message_that_fails(
    settings: Settings, topics: TopicNames, group: str
) -> None:
    topic = topics(LEAD_QUALIFIED)
    assert settings.kafka_bootstrap_servers
    for n in range(6):  # one key: one partition, in order
        await produce(settings.kafka_bootstrap_servers, topic, str(n).encode(), key="one")
    resources = WorkerResources(settings.model_copy(update={"kafka_commit_interval_ms": 100}))
    broker = create_broker(settings, client_id="jorge-commits-test")
    seen: list[bytes] = []
    service = group.removeprefix(settings.kafka_consumer_group_prefix)

    @broker.subscriber(topic, **consumer_options(resources, service))
    async def on_message(msg: KafkaMessage) -> None:
        seen.append(msg.body)
        if msg.body == b"3":
            await asyncio.sleep(0.05)
            raise RuntimeError("this one always fails")

    await broker.start()
    try:
        await eventually(lambda: asyncio.sleep(0, seen.count(b"3") >= 5), what="the failing message retried")
        await eventually(lambda: committed_is(settings, group, topic, 3), timeout=10, what="0-2 committed")
        await asyncio.sleep(0.5)  # several intervals later: still not past the failing message
        assert await committed(settings, group, topic) == 3
        assert b"4" not in seen
    finally:
        await broker.stop()
        await resources.offset_commits.close()


async def handled(member: Member, count: int) -> bool:
    return len(member.handled) >= count


async def handled_together(first: Member, second: Member, count: int) -> bool:
    return len(first.handled) + len(second.handled) >= count


async def committed_is(settings: Settings, group: str, topic: str, expected: int) -> bool:
    return await committed(settings, group, topic) == expected
