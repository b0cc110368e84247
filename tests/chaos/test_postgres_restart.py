"""PostgreSQL (a server of this test's own) restarted mid-stream: down 5 s, back with its data."""

from __future__ import annotations

from pathlib import Path

import pytest

from jorge_runtime.settings import Settings
from tests.chaos.books import restart_scenario

pytestmark = [pytest.mark.chaos, pytest.mark.timeout(600)]


async def test_postgres_restarted(settings: Settings, stack_dir: Path, log_dir: Path) -> None:
    await restart_scenario("postgres_restarted", "postgres", settings, stack_dir, log_dir, down_seconds=5)
