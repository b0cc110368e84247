"""Fixtures: one real stack per session (embedded unless URLs are given), isolated per test.

Set KAFKA_BOOTSTRAP_SERVERS, DATABASE_URL and/or REDIS_URL to run against external services;
whatever is not set is started from the embedded wheels. Each session gets its own database;
each test gets its own topic prefix, consumer groups and organisation.
"""

from __future__ import annotations

import asyncio
import os
import shutil
import tempfile
import uuid
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import asyncpg
import pytest
import redis.asyncio as aioredis
from pydantic import SecretStr

from jorge_cli.stack import EmbeddedStack, StackUrls
from jorge_runtime.db import create_pool, migrate
from jorge_runtime.kafka.admin import ensure_topics
from jorge_runtime.redis import create_redis
from jorge_runtime.settings import Settings
from schemas.topics import TopicNames
from services.gateway.tenancy import TenancyStore
from tests.support.credentials import CREDENTIALS_KEY
from tests.support.ghl import Sandbox
from tests.support.services import create_database, drop_database, with_database

SERVICE_VARIABLES = ("KAFKA_BOOTSTRAP_SERVERS", "DATABASE_URL", "REDIS_URL")
# Embedded PostgreSQL data lives outside pytest's temporary tree: every new pytest session resets
# /tmp/pytest-of-USER to 0700, which locks the database's own system user (used under root) out
# of a session still running.
STACK_DIR_PREFIX = "jorge-test-stack-"


@pytest.fixture
def stack_dir() -> Iterator[Path]:
    """A directory for a test's own embedded services (see STACK_DIR_PREFIX)."""
    path = Path(tempfile.mkdtemp(prefix=STACK_DIR_PREFIX))
    yield path
    shutil.rmtree(path, ignore_errors=True)


@pytest.fixture(scope="session")
def stack() -> Iterator[StackUrls]:
    """The three services: given by URL, or started from the embedded wheels."""
    given = {name: os.environ.get(name) or None for name in SERVICE_VARIABLES}
    data_dir = Path(tempfile.mkdtemp(prefix=STACK_DIR_PREFIX))
    embedded = EmbeddedStack(data_dir)
    started = embedded.start(
        kafka=given["KAFKA_BOOTSTRAP_SERVERS"] is None,
        postgres=given["DATABASE_URL"] is None,
        redis=given["REDIS_URL"] is None,
    )
    admin_url = given["DATABASE_URL"] or started.database_url
    assert admin_url
    database = f"jorge_test_{uuid.uuid4().hex[:10]}"
    asyncio.run(create_database(admin_url, database))
    database_url = with_database(admin_url, database)
    asyncio.run(migrate(database_url))
    try:
        yield StackUrls(
            kafka_bootstrap_servers=given["KAFKA_BOOTSTRAP_SERVERS"] or started.kafka_bootstrap_servers,
            database_url=database_url,
            redis_url=given["REDIS_URL"] or started.redis_url,
        )
    finally:
        asyncio.run(drop_database(admin_url, database))
        embedded.stop()
        shutil.rmtree(data_dir, ignore_errors=True)


@pytest.fixture
def kafka_is_embedded() -> bool:
    return not os.environ.get("KAFKA_BOOTSTRAP_SERVERS")


@pytest.fixture
def settings(stack: StackUrls, kafka_is_embedded: bool) -> Settings:
    """Settings of one test: its own topics and consumer groups on the shared stack."""
    test_id = uuid.uuid4().hex[:8]
    return Settings(
        environment="test",
        kafka_bootstrap_servers=stack.kafka_bootstrap_servers,
        database_url=stack.database_url,
        redis_url=stack.redis_url,
        kafka_topic_prefix=f"t{test_id}.",
        kafka_consumer_group_prefix=f"t{test_id}.",
        kafka_enable_idempotence=not kafka_is_embedded,
        consumer_retry_backoff_seconds=0.05,
        jwt_secret=f"test-secret-{test_id}-0123456789abcdefghijklmnop",
        anthropic_api_key=None,  # the rules engine, whatever the developer's environment holds
        crm_credentials_key=SecretStr(CREDENTIALS_KEY),
    )


@pytest.fixture
async def topics(settings: Settings) -> TopicNames:
    """The test's topics, created with their partition counts."""
    names = TopicNames(settings.kafka_topic_prefix)
    assert settings.kafka_bootstrap_servers
    await ensure_topics(settings.kafka_bootstrap_servers, names.all())
    return names


@pytest.fixture
async def pool(settings: Settings) -> AsyncIterator[asyncpg.Pool]:
    assert settings.database_url
    pool = await create_pool(settings.database_url, min_size=1, max_size=4)
    yield pool
    await pool.close()


@pytest.fixture
async def redis(settings: Settings) -> AsyncIterator[aioredis.Redis]:
    """A Redis client on the stack's Redis (the one every worker creates)."""
    assert settings.redis_url
    client = create_redis(settings.redis_url)
    yield client
    await client.aclose()


@pytest.fixture
async def organization(pool: asyncpg.Pool) -> str:
    """A fresh organisation's id."""
    organization_id = f"org-{uuid.uuid4().hex[:10]}"
    await TenancyStore(pool).create_organization(organization_id, "Test Realty")
    return organization_id


@pytest.fixture
async def api_key(pool: asyncpg.Pool, organization: str) -> str:
    """A live API key of the test's organisation."""
    return (await TenancyStore(pool).issue_key(organization, "test")).secret


@pytest.fixture
def log_dir(tmp_path: Path) -> Path:
    return tmp_path


@pytest.fixture
async def own_broker(settings: Settings, tmp_path: Path) -> AsyncIterator[tuple[EmbeddedStack, Settings]]:
    """A broker of this test's own (stopping it disturbs no other test) and settings using it,
    with a short publish timeout so a stopped broker is noticed quickly."""
    stack = EmbeddedStack(tmp_path / "broker")
    bootstrap = stack.start(kafka=True, postgres=False, redis=False).kafka_bootstrap_servers
    assert bootstrap
    own = settings.model_copy(
        update={"kafka_bootstrap_servers": bootstrap, "kafka_enable_idempotence": False,
                "kafka_publish_timeout_seconds": 2.0}
    )  # fmt: skip
    await ensure_topics(bootstrap, TopicNames(own.kafka_topic_prefix).all())
    yield stack, own
    stack.stop()


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    for item in items:
        if "stack" in getattr(item, "fixturenames", ()):
            item.add_marker(pytest.mark.services)


@pytest.fixture
async def sandbox(log_dir: Path) -> AsyncIterator[Sandbox]:
    """The GHL sandbox with limits high enough never to throttle a test (tests of the budget
    override it with GHL's real figures)."""
    # Every request crm_sync sent fit GHL's spec, every answer the sandbox gave too.
    async with Sandbox.running(log_dir / "ghl.log", burst=1000, interval_ms=1000) as sandbox:
        yield sandbox


def pytest_configure(config: pytest.Config) -> None:
    from tests.chaos.summary import forget_last_run

    forget_last_run(config)


def pytest_terminal_summary(terminalreporter: pytest.TerminalReporter) -> None:
    """The chaos suite's counts per scenario (tests/chaos/), when it ran."""
    from tests.chaos.summary import write_summary

    write_summary(terminalreporter)
