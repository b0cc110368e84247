"""Real services for tests: the stack (embedded or by URL), service processes and Kafka readers."""

from __future__ import annotations

import json
import subprocess
import sys
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from aiokafka import AIOKafkaConsumer, AIOKafkaProducer

# Moved to jorge_runtime.db and jorge_cli.service_process (benchmarks use them too); the names
# stay importable from here.
from jorge_cli.service_process import REPO as REPO
from jorge_cli.service_process import ServiceProcess as ServiceProcess
from jorge_cli.service_process import settings_env as settings_env
from jorge_runtime.db import create_database as create_database
from jorge_runtime.db import drop_database as drop_database
from jorge_runtime.db import with_database as with_database
from jorge_runtime.settings import Settings


@dataclass
class KafkaRecord:
    topic: str
    key: str | None
    value: bytes
    headers: dict[str, str]

    def json(self) -> Any:
        return json.loads(self.value)


async def read_topic(
    bootstrap: str, topic: str, *, until: Callable[[list[KafkaRecord]], bool], timeout: float = 30.0
) -> list[KafkaRecord]:
    """Read a topic from the beginning in a fresh group until ``until(records)`` or timeout."""
    consumer = AIOKafkaConsumer(
        topic,
        bootstrap_servers=bootstrap,
        group_id=f"test-{uuid.uuid4().hex}",
        auto_offset_reset="earliest",
        enable_auto_commit=False,
    )
    await consumer.start()
    records: list[KafkaRecord] = []
    try:
        deadline = time.monotonic() + timeout
        while not until(records) and time.monotonic() < deadline:
            batch = await consumer.getmany(timeout_ms=200)
            for messages in batch.values():
                records.extend(
                    KafkaRecord(
                        m.topic,
                        m.key.decode() if m.key else None,
                        m.value or b"",
                        {k: v.decode() for k, v in m.headers},
                    )
                    for m in messages
                )
    finally:
        await consumer.stop()
    return records


async def produce(
    bootstrap: str, topic: str, value: bytes, *, key: str | None = None, headers: dict[str, str] | None = None
) -> None:
    producer = AIOKafkaProducer(bootstrap_servers=bootstrap, acks="all")
    await producer.start()
    try:
        await producer.send_and_wait(
            topic,
            value,
            key=key.encode() if key else None,
            headers=[(k, v.encode()) for k, v in (headers or {}).items()],
        )
    finally:
        await producer.stop()


def run_jorge(
    settings: Settings, home: Path, *args: str, stdin: str | None = None
) -> subprocess.CompletedProcess[str]:
    """Run the `jorge` CLI as a user would, seeing exactly ``settings``, with its state in ``home``."""
    return subprocess.run(
        [sys.executable, "-m", "jorge_cli", *args],
        cwd=REPO,
        env=settings_env(settings) | {"JORGE_HOME": str(home)},
        input=stdin,
        capture_output=True,
        text=True,
        timeout=60,
    )


def jorge(settings: Settings, home: Path, *args: str) -> str:
    """Run the `jorge` CLI (see run_jorge) and return its output; fail the test if it fails."""
    done = run_jorge(settings, home, *args)
    assert done.returncode == 0, done.stderr
    return done.stdout
