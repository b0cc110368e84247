"""Fixtures of the end-to-end tests: a gateway and workers as real processes, and a client."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import httpx
import pytest

from jorge_runtime.settings import Settings
from schemas.topics import TopicNames
from tests.support.services import ServiceProcess


@pytest.fixture
async def gateway(settings: Settings, topics: TopicNames, log_dir: Path) -> AsyncIterator[ServiceProcess]:
    service = await ServiceProcess.gateway(settings, log_dir).start()
    yield service
    service.stop()


@pytest.fixture
async def qualifier(settings: Settings, topics: TopicNames, log_dir: Path) -> AsyncIterator[ServiceProcess]:
    service = await ServiceProcess.worker("qualifier", settings, log_dir).start()
    yield service
    service.stop()


@pytest.fixture
async def client(gateway: ServiceProcess, api_key: str) -> AsyncIterator[httpx.AsyncClient]:
    async with httpx.AsyncClient(
        base_url=gateway.base_url, timeout=10, headers={"Authorization": f"Bearer {api_key}"}
    ) as http:
        yield http
