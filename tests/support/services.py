"""Real services for tests: the stack (embedded or by URL), service processes and Kafka readers."""

from __future__ import annotations

import asyncio
import json
import os
import signal
import subprocess
import sys
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit, urlunsplit

import asyncpg
import httpx
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer
from pydantic import SecretStr

from jorge_cli.stack import free_port
from jorge_runtime.settings import Settings

REPO = Path(__file__).resolve().parents[2]


def with_database(url: str, name: str) -> str:
    """The same server URL pointing at another database (works for host:port and socket URLs)."""
    parts = urlsplit(url)
    return urlunsplit(parts._replace(path=f"/{name}"))


async def create_database(admin_url: str, name: str) -> None:
    conn = await asyncpg.connect(admin_url)
    try:
        await conn.execute(f'CREATE DATABASE "{name}"')
    finally:
        await conn.close()


async def drop_database(admin_url: str, name: str) -> None:
    conn = await asyncpg.connect(admin_url)
    try:
        await conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
    finally:
        await conn.close()


def settings_env(settings: Settings) -> dict[str, str]:
    """The environment that makes a child process see exactly these settings."""
    # A developer's own ANTHROPIC_API_KEY or GHL_TOKEN must never reach a test's children.
    own = ("KAFKA_", "DATABASE_", "REDIS_", "ANTHROPIC_", "CLAUDE_", "GHL_", "CRM_")
    env = {k: v for k, v in os.environ.items() if not k.startswith(own)}
    for name, value in settings.model_dump().items():
        if isinstance(value, SecretStr):
            value = value.get_secret_value()
        if value is not None:
            env[name.upper()] = str(value).lower() if isinstance(value, bool) else str(value)
    return env


@dataclass
class ServiceProcess:
    """A `jorge gateway` or `jorge worker NAME` child, killable like a crashed container."""

    argv: list[str]
    env: dict[str, str]
    health_url: str
    base_url: str
    log_path: Path
    process: subprocess.Popen[bytes] | None = None

    @classmethod
    def gateway(cls, settings: Settings, log_dir: Path) -> ServiceProcess:
        port = free_port()
        env = settings_env(settings) | {"API_PORT": str(port), "API_HOST": "127.0.0.1"}
        return cls(
            [sys.executable, "-m", "jorge_cli", "gateway"],
            env,
            f"http://127.0.0.1:{port}/health",
            f"http://127.0.0.1:{port}",
            log_dir / "gateway.log",
        )

    @classmethod
    def worker(cls, name: str, settings: Settings, log_dir: Path) -> ServiceProcess:
        port = free_port()
        env = settings_env(settings) | {"HEALTH_PORT": str(port), "HEALTH_HOST": "127.0.0.1"}
        return cls(
            [sys.executable, "-m", "jorge_cli", "worker", name],
            env,
            f"http://127.0.0.1:{port}/health/detailed",
            f"http://127.0.0.1:{port}",
            log_dir / f"{name}.log",
        )

    async def start(self, timeout: float = 30.0) -> ServiceProcess:
        with self.log_path.open("ab") as out:
            self.process = subprocess.Popen(  # noqa: ASYNC220 - Popen returns at once
                self.argv, env=self.env, cwd=REPO, stdout=out, stderr=subprocess.STDOUT
            )
        deadline = time.monotonic() + timeout
        async with httpx.AsyncClient(timeout=1.0) as client:
            while time.monotonic() < deadline:
                if self.process.poll() is not None:
                    raise RuntimeError(f"{self.argv[3:]} exited: {self.log_path.read_text()[-3000:]}")
                try:
                    if (await client.get(self.health_url)).status_code == 200:
                        return self
                except httpx.HTTPError:
                    pass
                await asyncio.sleep(0.1)
        raise RuntimeError(f"{self.argv[3:]} not healthy in {timeout}s: {self.log_path.read_text()[-3000:]}")

    def kill(self) -> None:
        """SIGKILL: no shutdown, no commit, like a crash."""
        if self.process and self.process.poll() is None:
            self.process.send_signal(signal.SIGKILL)
            self.process.wait()

    def stop(self) -> None:
        if self.process and self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()


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
