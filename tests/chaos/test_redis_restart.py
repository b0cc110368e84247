"""Redis (a server of this test's own) restarted mid-stream: down 5 s, back empty (memory only)."""

from __future__ import annotations

from pathlib import Path

import pytest

from jorge_runtime.settings import Settings
from tests.chaos.books import restart_scenario

pytestmark = [pytest.mark.chaos, pytest.mark.timeout(600)]


async def test_redis_restarted_and_emptied(settings: Settings, stack_dir: Path, log_dir: Path) -> None:
    await restart_scenario("redis_restarted_emptied", "redis", settings, stack_dir, log_dir, down_seconds=5)
