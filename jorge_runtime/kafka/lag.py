"""Consumer lag and topic depth, measured from outside the consumers.

A stuck or dead worker cannot report its own lag, so the gateway (always running, and in
front of every flow) measures it for all the platform's consumer groups: every
``KAFKA_LAG_INTERVAL_SECONDS`` it lists the groups under ``KAFKA_CONSUMER_GROUP_PREFIX``, reads
their committed offsets and the end offsets of the partitions they consume, and sets

- ``jorge_kafka_consumer_lag{group, topic, partition}``: end offset minus committed offset
  (minus the earliest offset where the group has not committed on that partition yet);
- ``jorge_kafka_topic_messages{topic}``: messages held by each platform topic (end minus
  earliest offset), i.e. the depth of the dead-letter topic and of crm_sync's retry topics;
- ``jorge_kafka_lag_exporter_up``: 1 when the measurement succeeded.

Several gateway replicas (and uvicorn workers) measure the same figures: queries use max().
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Iterable
from typing import Any

from aiokafka import AIOKafkaConsumer, TopicPartition
from aiokafka.admin import AIOKafkaAdminClient

from jorge_runtime.kafka.security import kafka_client_options
from jorge_runtime.observability.metrics import KAFKA_CONSUMER_LAG, KAFKA_LAG_UP, KAFKA_TOPIC_MESSAGES
from jorge_runtime.settings import Settings
from schemas.topics import TopicNames

log = logging.getLogger(__name__)


def partition_lag(end: int, committed: int | None, earliest: int) -> int:
    """Messages the group still has to consume on one partition (never negative)."""
    position = committed if committed is not None and committed >= 0 else earliest
    return max(end - max(position, earliest), 0)


class LagMonitor:
    """Measures lag and depth periodically with one admin client and one group-less consumer."""

    def __init__(
        self, connection: dict[str, Any], group_prefix: str, topics: dict[str, int], interval: float
    ):
        self._connection = connection
        self._group_prefix = group_prefix
        self._topics = topics
        self._interval = interval
        self._admin: AIOKafkaAdminClient | None = None
        self._consumer: AIOKafkaConsumer | None = None

    @classmethod
    def for_settings(cls, settings: Settings) -> LagMonitor | None:
        """The monitor of these settings' groups and topics; None when turned off."""
        if settings.kafka_lag_interval_seconds <= 0 or not settings.kafka_bootstrap_servers:
            return None
        return cls(
            kafka_client_options(settings),
            settings.kafka_consumer_group_prefix,
            TopicNames(settings.kafka_topic_prefix).all(),
            settings.kafka_lag_interval_seconds,
        )

    async def run(self) -> None:
        """Measure every interval until cancelled; a failed measurement is logged and retried."""
        try:
            while True:
                try:
                    await self.measure()
                    KAFKA_LAG_UP.set(1)
                except asyncio.CancelledError:
                    raise
                except Exception as exc:
                    KAFKA_LAG_UP.set(0)
                    log.warning("consumer lag not measured", extra={"error": f"{type(exc).__name__}: {exc}"})
                    await self._close()
                await asyncio.sleep(self._interval)
        finally:
            await self._close()

    async def measure(self) -> None:
        """One measurement: set the lag of every group and the depth of every platform topic."""
        admin, consumer = await self._clients()
        groups = [
            group_id
            for group_id, *_ in await admin.list_consumer_groups()
            if group_id.startswith(self._group_prefix)
        ] if self._group_prefix else []  # fmt: skip
        partitions = [TopicPartition(t, p) for t, count in self._topics.items() for p in range(count)]
        # Partitions named explicitly: the embedded broker (Tansu) drops "all partitions" queries.
        committed_by_group = {}
        for group in groups:
            offsets = await admin.list_consumer_group_offsets(group, partitions=partitions)
            committed_by_group[group] = {tp: meta for tp, meta in offsets.items() if meta.offset >= 0}
        end = await consumer.end_offsets(partitions)
        earliest = await consumer.beginning_offsets(partitions)

        for topic, count in self._topics.items():
            tps = [TopicPartition(topic, p) for p in range(count)]
            KAFKA_TOPIC_MESSAGES.labels(topic).set(sum(end[tp] - earliest[tp] for tp in tps))
        for group, offsets in committed_by_group.items():
            for tp in _all_partitions(offsets, end):
                meta = offsets.get(tp)
                lag = partition_lag(end[tp], meta.offset if meta is not None else None, earliest[tp])
                KAFKA_CONSUMER_LAG.labels(group, tp.topic, str(tp.partition)).set(lag)

    async def _clients(self) -> tuple[AIOKafkaAdminClient, AIOKafkaConsumer]:
        if self._admin is None or self._consumer is None:
            admin = AIOKafkaAdminClient(**self._connection, client_id="jorge-lag")
            consumer = AIOKafkaConsumer(**self._connection, client_id="jorge-lag", enable_auto_commit=False)
            await admin.start()
            await consumer.start()
            self._admin, self._consumer = admin, consumer
        return self._admin, self._consumer

    async def _close(self) -> None:
        admin, consumer = self._admin, self._consumer
        self._admin = self._consumer = None
        for client in (consumer, admin):
            if client is not None:
                try:
                    await (client.stop() if isinstance(client, AIOKafkaConsumer) else client.close())
                except Exception:  # closing a broken client must not mask why it broke
                    log.debug("closing a Kafka client failed", exc_info=True)


def _all_partitions(
    offsets: dict[TopicPartition, object], known: Iterable[TopicPartition]
) -> list[TopicPartition]:
    """Every partition of each topic the group committed on (partitions not committed yet too)."""
    topics = {tp.topic for tp in offsets}
    return sorted(tp for tp in known if tp.topic in topics)
