"""Two replicas of a worker with rebalances mid-stream: a second replica joins, the first leaves."""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest

from jorge_runtime.settings import Settings
from schemas.topics import TopicNames
from tests.chaos.books import run_scenario
from tests.chaos.platform import Platform, running_platform

pytestmark = [pytest.mark.chaos, pytest.mark.timeout(600)]


@pytest.mark.parametrize("worker", ["qualifier"])
async def test_a_replica_joins_then_one_leaves(
    settings: Settings, topics: TopicNames, log_dir: Path, worker: str
) -> None:
    async def rebalance(platform: Platform) -> None:
        second = await platform.process(worker, replica="second").start()  # joins: a rebalance
        platform.services[f"{worker}-second"] = second  # stopped with the others
        await asyncio.sleep(3.0)
        platform.services[worker].stop()  # the first leaves: another rebalance
        await asyncio.sleep(2.0)

    async with running_platform(settings, log_dir) as platform:
        await run_scenario(f"rebalance_{worker}", platform, rebalance)
