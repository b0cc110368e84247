"""The whole platform for one chaos scenario: an organisation with a demo catalog, a GHL
location in the sandbox, a webhook subscriber, and the gateway and every worker as processes."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from pathlib import Path

import httpx
from pydantic import SecretStr

from jorge_cli.demo_catalog import load_demo_catalog
from jorge_cli.stack import EmbeddedStack
from jorge_runtime.credential_cipher import CredentialCipher, generate_key
from jorge_runtime.db import create_pool, migrate
from jorge_runtime.settings import Settings
from schemas.limits import GENERAL
from schemas.webhooks import WEBHOOK_EVENTS
from services.crm_sync.ghl.credential_store import CredentialStore
from services.gateway.tenancy import TenancyStore
from tests.support.ghl import Sandbox
from tests.support.services import ServiceProcess
from tests.support.webhook_receiver import Receiver

WORKERS = ("qualifier", "matcher", "seller_analyzer", "crm_sync")


@dataclass
class Platform:
    settings: Settings
    organization: str
    api_key: str
    location_id: str
    sandbox: Sandbox
    receiver: Receiver
    services: dict[str, ServiceProcess]
    log_dir: Path

    @property
    def gateway_url(self) -> str:
        return self.services["gateway"].base_url

    def process(self, name: str, replica: str = "") -> ServiceProcess:
        """A new (not started) process of the gateway or a worker, logging next to the others."""
        log_dir = self.log_dir / replica if replica else self.log_dir
        log_dir.mkdir(exist_ok=True)
        if name == "gateway":
            return ServiceProcess.gateway(self.settings, log_dir)
        return ServiceProcess.worker(name, self.settings, log_dir)


def chaos_settings(settings: Settings, sandbox: Sandbox) -> Settings:
    """Short retries everywhere (webhooks, GHL), loopback subscribers, a GHL sandbox."""
    return settings.model_copy(
        update={
            "ghl_base_url": sandbox.url,
            "crm_credentials_key": SecretStr(generate_key()),
            "crm_retry_delays_seconds": "0.5,1,2,4,8",
            "webhook_allowed_subnets": "127.0.0.0/8",
            "webhook_retry_schedule_seconds": "0.5,1,2,4,8",
            "webhook_throttled_min_delay_seconds": 0.0,
            "webhook_attempt_timeout_seconds": 4.0,
            "webhook_lease_grace_seconds": 0.5,
            "webhook_dispatch_poll_seconds": 0.2,
        }
    )


async def _tenant(settings: Settings, location_id: str) -> tuple[str, str]:
    """A new organisation (limits out of the way, the demo catalog, GHL credentials) and its key."""
    assert settings.database_url and settings.crm_credentials_key
    pool = await create_pool(settings.database_url, min_size=1, max_size=2)
    try:
        tenancy = TenancyStore(pool)
        organization = f"org-{uuid.uuid4().hex[:10]}"
        await tenancy.create_organization(organization, "Chaos Realty")
        for name in GENERAL:
            await tenancy.set_rate_limit(organization, name, 100_000)
        await load_demo_catalog(pool, organization)
        store = CredentialStore(pool, CredentialCipher(settings.crm_credentials_key))
        await store.save(organization, location_id, SecretStr(f"token-{uuid.uuid4().hex}"))
        return organization, (await tenancy.issue_key(organization, "chaos")).secret
    finally:
        await pool.close()


@asynccontextmanager
async def own_service(
    settings: Settings, directory: Path, what: str
) -> AsyncIterator[tuple[EmbeddedStack, Settings]]:
    """A PostgreSQL (migrated) or a Redis of the scenario's own, and settings using it: restarting
    it disturbs no other test."""
    own = EmbeddedStack(directory)
    urls = await asyncio.to_thread(own.start, kafka=False, postgres=what == "postgres", redis=what == "redis")
    try:
        if what == "postgres":
            assert urls.database_url
            await migrate(urls.database_url)
            yield own, settings.model_copy(update={"database_url": urls.database_url})
        else:
            yield own, settings.model_copy(update={"redis_url": urls.redis_url})
    finally:
        await asyncio.to_thread(own.stop)


@asynccontextmanager
async def running_platform(settings: Settings, log_dir: Path) -> AsyncIterator[Platform]:
    """Everything up and healthy; everything stopped afterwards."""
    async with Sandbox.running(log_dir / "ghl.log", burst=1000, interval_ms=1000) as sandbox:
        own = chaos_settings(settings, sandbox)
        location_id = f"loc-{uuid.uuid4().hex[:8]}"
        services: dict[str, ServiceProcess] = {}
        try:
            organization, api_key = await _tenant(own, location_id)
            async with Receiver() as receiver:
                platform = Platform(
                    own, organization, api_key, location_id, sandbox, receiver, services, log_dir
                )
                for name in ("gateway", *WORKERS):
                    services[name] = platform.process(name)
                # Generous: five interpreters importing at once on a loaded two-core machine.
                await asyncio.gather(*(service.start(timeout=240) for service in services.values()))
                async with httpx.AsyncClient(base_url=platform.gateway_url, timeout=10) as client:
                    response = await client.post(
                        "/v1/webhooks/register",
                        json={"url": receiver.url(), "events": list(WEBHOOK_EVENTS)},
                        headers={"Authorization": f"Bearer {api_key}"},
                    )
                    assert response.status_code == 201, response.text
                yield platform
        finally:
            for service in services.values():
                service.stop()
