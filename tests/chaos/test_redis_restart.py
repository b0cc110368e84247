"""Redis (a server of this test's own) restarted and emptied mid-stream."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from jorge_cli.stack import EmbeddedStack
from jorge_runtime.settings import Settings
from tests.chaos.books import run_scenario
from tests.chaos.platform import Platform, running_platform

pytestmark = [pytest.mark.chaos, pytest.mark.timeout(600)]
DOWN_SECONDS = 5.0


@pytest.fixture
async def own_redis(settings: Settings, stack_dir: Path) -> AsyncIterator[tuple[EmbeddedStack, Settings]]:
    own = EmbeddedStack(stack_dir)
    urls = await asyncio.to_thread(own.start, kafka=False, postgres=False, redis=True)
    yield own, settings.model_copy(update={"redis_url": urls.redis_url})
    await asyncio.to_thread(own.stop)


async def test_redis_restarted_and_emptied(own_redis: tuple[EmbeddedStack, Settings], log_dir: Path) -> None:
    stack, settings = own_redis

    async def restart(platform: Platform) -> None:
        await asyncio.to_thread(stack.restart, "redis", DOWN_SECONDS)  # memory only: comes back empty

    async with running_platform(settings, log_dir) as platform:
        await run_scenario("redis_restarted_emptied", platform, restart)
