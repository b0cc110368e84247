"""Fixtures of the end-to-end tests: a gateway and workers as real processes, and a client."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator
from pathlib import Path

import asyncpg
import httpx
import pytest

from jorge_runtime.settings import Settings
from schemas.topics import TopicNames
from services.gateway.tenancy import TenancyStore
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


@pytest.fixture
async def other_client(gateway: ServiceProcess, pool: asyncpg.Pool) -> AsyncIterator[httpx.AsyncClient]:
    """A client of another organisation, on the same gateway."""
    tenancy = TenancyStore(pool)
    organization = f"org-other-{uuid.uuid4().hex[:10]}"
    await tenancy.create_organization(organization, "Other Realty")
    key = (await tenancy.issue_key(organization, "test")).secret
    async with httpx.AsyncClient(
        base_url=gateway.base_url, timeout=10, headers={"Authorization": f"Bearer {key}"}
    ) as http:
        yield http
