"""PostgreSQL (a server of this test's own) restarted mid-stream."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from jorge_cli.stack import EmbeddedStack
from jorge_runtime.db import migrate
from jorge_runtime.settings import Settings
from tests.chaos.books import run_scenario
from tests.chaos.platform import Platform, running_platform

pytestmark = [pytest.mark.chaos, pytest.mark.timeout(600)]
DOWN_SECONDS = 5.0


@pytest.fixture
async def own_postgres(settings: Settings, stack_dir: Path) -> AsyncIterator[tuple[EmbeddedStack, Settings]]:
    own = EmbeddedStack(stack_dir)
    urls = await asyncio.to_thread(own.start, kafka=False, postgres=True, redis=False)
    assert urls.database_url
    await migrate(urls.database_url)
    yield own, settings.model_copy(update={"database_url": urls.database_url})
    await asyncio.to_thread(own.stop)


async def test_postgres_restarted(own_postgres: tuple[EmbeddedStack, Settings], log_dir: Path) -> None:
    stack, settings = own_postgres

    async def restart(platform: Platform) -> None:
        await asyncio.to_thread(stack.restart, "postgres", DOWN_SECONDS)

    async with running_platform(settings, log_dir) as platform:
        await run_scenario("postgres_restarted", platform, restart)
