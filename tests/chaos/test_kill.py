"""kill -9 of every worker and then of the gateway, mid-stream, then restart."""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest

from jorge_runtime.settings import Settings
from schemas.topics import TopicNames
from tests.chaos.books import run_scenario
from tests.chaos.platform import WORKERS, Platform, running_platform

pytestmark = [pytest.mark.chaos, pytest.mark.timeout(600)]


async def kill_each_in_turn(platform: Platform) -> None:
    """Every worker killed at once (their restarts overlap, which keeps the scenario short),
    then the gateway."""
    for group in (WORKERS, ("gateway",)):
        for name in group:
            platform.services[name].kill()  # SIGKILL: no shutdown, no commit
        await asyncio.sleep(1.0)
        await asyncio.gather(*(platform.services[name].start(timeout=240) for name in group))


async def test_kill_9_of_each_worker_and_the_gateway(
    settings: Settings, topics: TopicNames, log_dir: Path
) -> None:
    async with running_platform(settings, log_dir) as platform:
        await run_scenario("kill_9_each_process", platform, kill_each_in_turn)
