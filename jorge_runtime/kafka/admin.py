"""Topic creation with the partition counts named in schemas.topics."""

from __future__ import annotations

from typing import Any

from aiokafka.admin import AIOKafkaAdminClient, NewTopic


async def ensure_topics(
    bootstrap_servers: str,
    topics: dict[str, int],
    *,
    replication_factor: int = 1,
    connection: dict[str, Any] | None = None,
) -> list[str]:
    """Create the topics that do not exist yet; return the names created.

    ``connection`` (jorge_runtime.kafka.security.kafka_client_options) adds TLS/SASL options.
    """
    options = {**(connection or {}), "bootstrap_servers": bootstrap_servers.split(",")}
    admin = AIOKafkaAdminClient(**options, client_id="jorge-admin")
    await admin.start()
    try:
        existing = set(await admin.list_topics())
        missing = [
            NewTopic(name=name, num_partitions=partitions, replication_factor=replication_factor)
            for name, partitions in topics.items()
            if name not in existing
        ]
        if missing:
            await admin.create_topics(missing)
        return [t.name for t in missing]
    finally:
        await admin.close()
