"""The consumer error policy on the real stack: poison is retried then dead-lettered (stored for
`jorge dlq` and published), whatever its exception, with tries counted across restarts; a real
outage is waited out."""

from __future__ import annotations

import asyncio
import signal
import time
from collections.abc import AsyncIterator
from pathlib import Path

import asyncpg
import pytest
from faststream.asgi import AsgiFastStream

from jorge_cli.stack import EmbeddedStack
from jorge_runtime.settings import Settings
from schemas.topics import DEAD_LETTER, LEAD_QUALIFICATION_REQUESTED, TopicNames
from services.qualifier.app import create_app
from services.qualifier.engine import QualificationEngine
from tests.support.leads import FlakyEngine, send_lead, wait_completed
from tests.support.services import read_topic


@pytest.fixture
def strict_settings(settings: Settings) -> Settings:
    return settings.model_copy(update={"consumer_max_attempts": 3, "consumer_retry_backoff_seconds": 0.01})


async def run_qualifier(settings: Settings, engine: QualificationEngine) -> AsyncIterator[AsgiFastStream]:
    app = create_app(settings, engine=engine)
    await app.start()
    try:
        yield app
    finally:
        await app.stop()


async def test_a_failing_handler_is_retried_then_dead_lettered_and_the_stream_goes_on(
    strict_settings: Settings, topics: TopicNames, pool: asyncpg.Pool, organization: str
) -> None:
    engine = FlakyEngine("lead-bug", failures=1_000, error=lambda: RuntimeError("engine bug"))
    await send_lead(strict_settings, organization, "lead-bug")
    await send_lead(strict_settings, organization, "lead-after")
    assert strict_settings.kafka_bootstrap_servers
    async for _ in run_qualifier(strict_settings, engine):
        dead = await read_topic(
            strict_settings.kafka_bootstrap_servers, topics(DEAD_LETTER), until=lambda got: len(got) >= 1
        )
        await wait_completed(pool, organization, "lead-after")
    assert engine.calls == 3
    assert len(dead) == 1
    assert dead[0].key == "lead-bug"
    assert dead[0].headers["dlq-attempts"] == "3"
    assert dead[0].headers["dlq-error-type"] == "RuntimeError"
    assert dead[0].headers["dlq-reason"] == "RuntimeError: engine bug"


async def dead_letter_rows(pool: asyncpg.Pool, organization: str) -> list[asyncpg.Record]:
    return await pool.fetch(
        "SELECT * FROM crm_dead_letters WHERE organization_id = $1 ORDER BY id", organization
    )


async def test_a_connection_error_while_every_dependency_is_up_is_poison(
    strict_settings: Settings, topics: TopicNames, pool: asyncpg.Pool, organization: str
) -> None:
    engine = FlakyEngine("lead-poison", failures=1_000, error=lambda: ConnectionRefusedError("bad host"))
    await send_lead(strict_settings, organization, "lead-poison")
    assert strict_settings.kafka_bootstrap_servers
    async for _ in run_qualifier(strict_settings, engine):
        dead = await read_topic(
            strict_settings.kafka_bootstrap_servers, topics(DEAD_LETTER), until=lambda got: len(got) >= 1
        )
    assert engine.calls == 3
    assert dead[0].headers["dlq-error-type"] == "ConnectionRefusedError"
    [row] = await dead_letter_rows(pool, organization)
    assert (row["consumer"], row["reason"], row["attempts"]) == ("qualifier", "attempts_exhausted", 3)
    assert row["origin_topic"] == topics(LEAD_QUALIFICATION_REQUESTED)
    assert row["message_key"] == "lead-poison"
    assert row["lane"] is None


async def test_tries_are_counted_across_a_restart(
    strict_settings: Settings, topics: TopicNames, pool: asyncpg.Pool, organization: str
) -> None:
    # A long pause after each failure: the first worker stops while it waits.
    slow = strict_settings.model_copy(update={"consumer_retry_backoff_seconds": 3})
    engine = FlakyEngine("lead-restart", failures=1_000, error=lambda: RuntimeError("engine bug"))
    await send_lead(slow, organization, "lead-restart")
    async for _ in run_qualifier(slow, engine):
        deadline = time.monotonic() + 30
        while engine.calls < 1:
            assert time.monotonic() < deadline, "the lead never reached the engine"
            await asyncio.sleep(0.05)
    assert await pool.fetchval("SELECT attempts FROM consumer_attempts WHERE consumer = 'qualifier' "
                               "AND topic = $1", topics(LEAD_QUALIFICATION_REQUESTED)) == 1  # fmt: skip
    async for _ in run_qualifier(strict_settings, engine):
        deadline = time.monotonic() + 30
        while not await dead_letter_rows(pool, organization):
            assert time.monotonic() < deadline, "never dead-lettered"
            await asyncio.sleep(0.05)
    assert engine.calls == 3  # 1 before the restart, 2 after: not 1 + 3
    [row] = await dead_letter_rows(pool, organization)
    assert row["attempts"] == 3
    assert (
        await pool.fetchval(
            "SELECT count(*) FROM consumer_attempts WHERE topic = $1", topics(LEAD_QUALIFICATION_REQUESTED)
        )
        == 0
    )


async def test_an_outage_is_waited_out_not_dead_lettered(
    strict_settings: Settings, topics: TopicNames, pool: asyncpg.Pool, organization: str, tmp_path: Path
) -> None:
    own = EmbeddedStack(tmp_path / "redis")
    redis_url = own.start(kafka=False, postgres=False, redis=True).redis_url
    settings = strict_settings.model_copy(update={"redis_url": redis_url})

    def redis_gone() -> Exception:
        own.signal("redis", signal.SIGSTOP)  # a real outage: the policy's probe finds Redis down
        return ConnectionRefusedError("redis restarting")

    engine = FlakyEngine("lead-outage", failures=4, error=redis_gone)
    await send_lead(settings, organization, "lead-outage")
    try:
        async for _ in run_qualifier(settings, engine):
            deadline = time.monotonic() + 60
            while engine.calls < 4:
                assert time.monotonic() < deadline, "the lead was not retried through the outage"
                await asyncio.sleep(0.1)
            own.signal("redis", signal.SIGCONT)
            await wait_completed(pool, organization, "lead-outage")
    finally:
        own.signal("redis", signal.SIGCONT)
        own.stop()
    assert engine.calls == 5  # more than the 3 tries poison gets
    assert settings.kafka_bootstrap_servers
    dead = await read_topic(
        settings.kafka_bootstrap_servers, topics(DEAD_LETTER), until=lambda got: False, timeout=2
    )
    assert dead == []
    assert await dead_letter_rows(pool, organization) == []
