"""The broker frozen (SIGSTOP) for 30 s mid-stream, then resumed."""

from __future__ import annotations

import asyncio
import signal
from pathlib import Path

import pytest

from jorge_cli.stack import EmbeddedStack
from jorge_runtime.settings import Settings
from tests.chaos.books import run_scenario
from tests.chaos.platform import Platform, running_platform

pytestmark = [pytest.mark.chaos, pytest.mark.timeout(600)]
FREEZE_SECONDS = 30.0


async def test_broker_frozen_30_s(own_broker: tuple[EmbeddedStack, Settings], log_dir: Path) -> None:
    stack, settings = own_broker

    async def freeze(platform: Platform) -> None:
        stack.signal("kafka", signal.SIGSTOP)
        try:
            await asyncio.sleep(FREEZE_SECONDS)
        finally:
            stack.signal("kafka", signal.SIGCONT)

    async with running_platform(settings, log_dir) as platform:
        await run_scenario("broker_frozen_30s", platform, freeze)
