"""What OffsetCommits does when a commit fails: a passing failure is tried again, anything else
(or a failure that lasts) drops the offsets, whose messages are then delivered again."""

from __future__ import annotations

from typing import cast

from aiokafka import AIOKafkaConsumer, TopicPartition
from aiokafka.errors import CommitFailedError, KafkaConnectionError

from jorge_runtime.kafka.offset_commits import RETRIES, OffsetCommits

TP = TopicPartition("t", 0)


class FakeConsumer:
    """Records commits; fails the next ``failures`` of them with ``error``."""

    def __init__(self, failures: int = 0, error: Exception | None = None) -> None:
        self.committed: list[dict[TopicPartition, int]] = []
        self.failures = failures
        self.error = error

    async def commit(self, offsets: dict[TopicPartition, int]) -> None:
        if self.failures:
            self.failures -= 1
            assert self.error is not None
            raise self.error
        self.committed.append(dict(offsets))


def as_consumer(fake: FakeConsumer) -> AIOKafkaConsumer:
    return cast(AIOKafkaConsumer, fake)


async def test_an_interval_of_zero_commits_each_message_at_once() -> None:
    fake = FakeConsumer()
    await OffsetCommits(0).handled(as_consumer(fake), TP, 7)
    assert fake.committed == [{TP: 8}]


async def test_offsets_wait_for_a_flush_and_only_the_highest_is_committed() -> None:
    fake, commits = FakeConsumer(), OffsetCommits(600)
    for offset in (3, 4, 5):
        await commits.handled(as_consumer(fake), TP, offset)
    assert fake.committed == []
    await commits.flush()
    await commits.flush()  # nothing new: nothing sent
    assert fake.committed == [{TP: 6}]
    await commits.close()


async def test_a_passing_failure_is_tried_again() -> None:
    fake, commits = FakeConsumer(failures=2, error=KafkaConnectionError()), OffsetCommits(600)
    await commits.handled(as_consumer(fake), TP, 0)
    await commits.flush()
    await commits.flush()
    assert fake.committed == []
    await commits.flush()
    assert fake.committed == [{TP: 1}]
    await commits.close()


async def test_a_lost_partition_or_a_failure_that_lasts_drops_the_offsets() -> None:
    lost, commits = FakeConsumer(failures=1, error=CommitFailedError()), OffsetCommits(600)
    await commits.handled(as_consumer(lost), TP, 0)
    await commits.flush()
    await commits.flush()
    assert lost.committed == []

    down = FakeConsumer(failures=RETRIES + 1, error=KafkaConnectionError())
    await commits.handled(as_consumer(down), TP, 0)
    for _ in range(RETRIES + 2):
        await commits.flush()
    assert down.committed == []
    await commits.close()
