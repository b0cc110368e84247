"""The set-up every benchmark shares: services, a fresh database, run-unique topics, teardown.

Services: the embedded stack (Tansu, PostgreSQL, Redis in a temporary directory) unless
KAFKA_BOOTSTRAP_SERVERS, DATABASE_URL or REDIS_URL is set; each one missing is embedded.
A fresh database is created and migrated, and dropped at the end; topics and consumer groups
get a prefix of their own, so runs never see each other's messages.
"""

from __future__ import annotations

import asyncio
import os
import secrets
import sys
import tempfile
import uuid
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import asyncpg

from jorge_cli.stack import EmbeddedStack, StackUrls
from jorge_runtime.credential_cipher import generate_key
from jorge_runtime.db import create_database, create_pool, drop_database, migrate, with_database
from jorge_runtime.kafka.admin import ensure_topics
from jorge_runtime.settings import Settings
from schemas.limits import LIMITS
from schemas.topics import TopicNames
from services.gateway.tenancy import TenancyStore

SERVICE_VARIABLES = ("KAFKA_BOOTSTRAP_SERVERS", "DATABASE_URL", "REDIS_URL")


@dataclass
class BenchEnvironment:
    """What a benchmark runs against; every field is ready when ``bench_environment`` yields."""

    #: The services: given by environment variable or started embedded (the server's admin URL).
    urls: StackUrls
    #: Which of SERVICE_VARIABLES were set (None: that service is embedded).
    given: dict[str, str | None]
    #: Unique to this run: the suffix of the database, topic and group prefixes.
    run_id: str
    #: The run's fresh, migrated database.
    database_url: str
    #: Settings for the services under test: this database, the run's prefixes.
    settings: Settings
    #: A small pool on the run's database (closed at the end).
    pool: asyncpg.Pool
    #: A temporary directory for logs and data, removed at the end.
    work_dir: Path

    @property
    def kafka_embedded(self) -> bool:
        """True when the broker is the embedded Tansu (which has no idempotent producer)."""
        return self.given["KAFKA_BOOTSTRAP_SERVERS"] is None

    @property
    def topics(self) -> TopicNames:
        """The run's topic names."""
        return TopicNames(self.settings.kafka_topic_prefix)

    async def create_organization(
        self, organization: str | None = None, name: str = "Benchmark Realty"
    ) -> str:
        """Create an organisation (a unique id unless given) and return its id."""
        organization = organization or f"org-bench-{uuid.uuid4().hex[:8]}"
        await TenancyStore(self.pool).create_organization(organization, name)
        return organization

    async def issue_api_key(self, organization: str | None = None) -> str:
        """A new organisation's API key, with every rate limit raised out of the way.

        Every request still runs the full rate-limit check; only the maxima are raised so a
        benchmark measures the cost of limiting, not 429s.
        """
        organization = await self.create_organization(organization)
        tenancy = TenancyStore(self.pool)
        for limit in LIMITS:
            await tenancy.set_rate_limit(organization, limit, 10_000_000)
        return (await tenancy.issue_key(organization, "bench")).secret


def log(message: str) -> None:
    """Progress on stderr, so that stdout holds only a benchmark's result."""
    print(message, file=sys.stderr, flush=True)


def run_main(main: Callable[[], None]) -> None:
    """Run a benchmark's main; on Ctrl-C (the services are stopped by then) exit 130 quietly."""
    try:
        main()
    except KeyboardInterrupt:
        log("interrupted; the services were stopped")
        sys.exit(130)


@asynccontextmanager
async def bench_environment(
    *,
    kafka: bool = True,
    redis: bool = True,
    extra_topics: dict[str, int] | None = None,
    pool_size: int = 4,
    **setting_overrides: Any,
) -> AsyncIterator[BenchEnvironment]:
    """Services, a fresh migrated database, the run's topics and settings; all torn down after.

    ``kafka=False`` / ``redis=False``: the benchmark does not use that service (it is neither
    started nor ensured). ``extra_topics`` (name: partitions, names without the run's prefix)
    are created with the run's topics. ``setting_overrides`` are Settings fields set on top of the run's.
    """
    given = {name: os.environ.get(name) or None for name in SERVICE_VARIABLES}
    wanted = {"KAFKA_BOOTSTRAP_SERVERS": kafka, "DATABASE_URL": True, "REDIS_URL": redis}
    missing = [name for name, value in given.items() if value is None and wanted[name]]
    with tempfile.TemporaryDirectory(prefix="jorge-bench-") as tmp:
        work_dir = Path(tmp)
        stack = EmbeddedStack(work_dir / "stack")
        try:
            if missing:
                log(f"starting the embedded stack for {missing}")
            started = await asyncio.to_thread(
                stack.start,
                kafka="KAFKA_BOOTSTRAP_SERVERS" in missing,
                postgres="DATABASE_URL" in missing,
                redis="REDIS_URL" in missing,
            )
            urls = StackUrls(
                kafka_bootstrap_servers=(given["KAFKA_BOOTSTRAP_SERVERS"] or started.kafka_bootstrap_servers)
                if kafka
                else None,
                database_url=given["DATABASE_URL"] or started.database_url,
                redis_url=(given["REDIS_URL"] or started.redis_url) if redis else None,
            )
            assert urls.database_url
            async with _fresh_database(urls.database_url) as (run_id, database_url):
                settings = Settings(
                    **{
                        "kafka_bootstrap_servers": urls.kafka_bootstrap_servers,
                        "database_url": database_url,
                        "redis_url": urls.redis_url,
                        "kafka_topic_prefix": f"bench{run_id}.",
                        "kafka_consumer_group_prefix": f"bench{run_id}.",
                        "kafka_enable_idempotence": given["KAFKA_BOOTSTRAP_SERVERS"] is not None,
                        "jwt_secret": secrets.token_urlsafe(48),
                        "crm_credentials_key": generate_key(),  # webhook secrets are stored encrypted
                        **setting_overrides,
                    }
                )
                if urls.kafka_bootstrap_servers:
                    prefix = settings.kafka_topic_prefix
                    extra = {prefix + name: n for name, n in (extra_topics or {}).items()}
                    await ensure_topics(urls.kafka_bootstrap_servers, TopicNames(prefix).all() | extra)
                pool = await create_pool(database_url, min_size=1, max_size=pool_size)
                try:
                    yield BenchEnvironment(urls, given, run_id, database_url, settings, pool, work_dir)
                finally:
                    await pool.close()
        finally:
            stack.stop()


@asynccontextmanager
async def _fresh_database(admin_url: str) -> AsyncIterator[tuple[str, str]]:
    run_id = uuid.uuid4().hex[:8]
    database = f"jorge_bench_{run_id}"
    await create_database(admin_url, database)
    try:
        database_url = with_database(admin_url, database)
        await migrate(database_url)
        yield run_id, database_url
    finally:
        await drop_database(admin_url, database)
