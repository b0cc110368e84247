"""A consumer team's starting point: read lead.qualified in your own group, at least once, deduplicated.

Needs only aiokafka (``pip install aiokafka``). Configure with the environment:

    KAFKA_BOOTSTRAP_SERVERS   the cluster (required)
    KAFKA_TOPIC_PREFIX        the platform's topic prefix, if it uses one
    CONSUMER_GROUP            your team's own consumer group (default: example.lead-scoring)

    python examples/consumer.py [--max-events N]

Each handled event is printed as one JSON line (ids and the qualification only: no contact data).
What it shows, explained in docs/EVENTS.md: a group of your own that starts at the oldest retained
event the first time; offsets committed only after an event is handled (at least once);
duplicates skipped by ``event_id``; schema versions you do not know yet set aside, not guessed at.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
from collections import OrderedDict
from typing import Any

from aiokafka import AIOKafkaConsumer

TOPIC = "lead.qualified"
KNOWN_SCHEMA_VERSIONS = {1}


class SeenEvents:
    """The last event ids handled. In production keep them in your database, in the same
    transaction as the event's effects, for longer than the topic's retention (7 days)."""

    def __init__(self, capacity: int = 100_000) -> None:
        self._ids: OrderedDict[str, None] = OrderedDict()
        self._capacity = capacity

    def first_time(self, event_id: str) -> bool:
        if event_id in self._ids:
            return False
        self._ids[event_id] = None
        if len(self._ids) > self._capacity:
            self._ids.popitem(last=False)
        return True


def handle(event: dict[str, Any]) -> dict[str, Any]:
    """Your logic goes here; this one only extracts what it would act on."""
    qualification = event["payload"]["qualification"]
    return {
        "event_id": event["event_id"],
        "event_type": event["event_type"],
        "organization_id": event["organization_id"],
        "lead_id": event["payload"]["lead"]["lead_id"],
        "intent": qualification["intent"],
        "temperature": qualification["temperature"],
    }


async def consume(max_events: int | None) -> None:
    consumer = AIOKafkaConsumer(
        os.environ.get("KAFKA_TOPIC_PREFIX", "") + TOPIC,
        bootstrap_servers=os.environ["KAFKA_BOOTSTRAP_SERVERS"].split(","),
        group_id=os.environ.get("CONSUMER_GROUP", "example.lead-scoring"),
        auto_offset_reset="earliest",  # a new group starts at the oldest retained event
        enable_auto_commit=False,  # commit after handling: at least once
    )
    seen = SeenEvents()
    handled = 0
    await consumer.start()
    try:
        async for record in consumer:
            headers = {key: value.decode() for key, value in record.headers}
            version = int(headers.get("schema-version", "0"))
            if version not in KNOWN_SCHEMA_VERSIONS:
                # A newer version than this code knows: upgrade the consumer; do not guess.
                print(json.dumps({"skipped": headers.get("event-id"), "schema_version": version}), flush=True)
            elif seen.first_time(headers["event-id"]):
                print(json.dumps(handle(json.loads(record.value or b"{}"))), flush=True)
                handled += 1
            await consumer.commit()
            if max_events is not None and handled >= max_events:
                return
    finally:
        await consumer.stop()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--max-events", type=int, default=None, help="Stop after handling this many.")
    asyncio.run(consume(parser.parse_args().max_events))


if __name__ == "__main__":
    main()
