"""crm_sync's two halves are separate processes: webhooks go out while the GHL sync is backlogged
on GHL's rate limit, and each half works with the other not running at all."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import httpx
import pytest
from pydantic import SecretStr
from standardwebhooks import Webhook

from jorge_runtime.settings import Settings
from schemas.topics import TopicNames
from tests.integration.test_crm_sync_worker import eventually
from tests.support.ghl import Sandbox, publish_qualified, qualified_event
from tests.support.services import ServiceProcess
from tests.support.webhook_receiver import Receiver

LEADS = 12


@pytest.fixture
def settings(settings: Settings) -> Settings:
    """Loopback webhook receivers allowed (as in the embedded demo), for the gateway too."""
    return settings.model_copy(
        update={"webhook_allowed_subnets": "127.0.0.0/8", "webhook_dispatch_poll_seconds": 0.2}
    )


@pytest.fixture
def halves_settings(settings: Settings, sandbox: Sandbox, organization: str) -> Settings:
    """crm_sync's: GHL through the sandbox for the organisation."""
    return settings.model_copy(
        update={
            "ghl_base_url": sandbox.url,
            "ghl_token": SecretStr(f"token-{organization}"),
            "ghl_organization": organization,
            "ghl_location_id": f"loc-{organization}",
            "ghl_pipeline_id": "pipeline-buyers",
            "ghl_pipeline_stage_id": "stage-new",
        }
    )


@pytest.fixture
async def receiver() -> AsyncIterator[Receiver]:
    async with Receiver() as rx:
        yield rx


async def subscribe(client: httpx.AsyncClient, rx: Receiver) -> str:
    """Register the receiver for lead.qualified; return its signing secret."""
    response = await client.post(
        "/v1/webhooks/register", json={"url": rx.url(), "events": ["lead.qualified"]}
    )
    assert response.status_code == 201, response.text
    return str(response.json()["secret"])


def verified_leads(rx: Receiver, secret: str) -> set[str]:
    """Lead ids of the webhooks received, each signature checked."""
    return {Webhook(secret).verify(r.body, r.headers)["data"]["lead_id"] for r in rx.requests}


async def test_webhooks_go_out_while_ghl_sync_waits_on_the_rate_limit(
    halves_settings: Settings,
    topics: TopicNames,
    organization: str,
    sandbox: Sandbox,
    client: httpx.AsyncClient,
    receiver: Receiver,
    log_dir: Path,
) -> None:
    assert halves_settings.kafka_bootstrap_servers
    # GHL lets two calls through per hour: every lead after the first waits on the limit.
    await sandbox.limits(burst=2, interval_ms=3_600_000)
    secret = await subscribe(client, receiver)
    crm_sync = await ServiceProcess.worker("crm_sync", halves_settings, log_dir).start()
    try:
        events = [qualified_event(organization, n, hot=n % 2 == 0) for n in range(LEADS)]
        await publish_qualified(halves_settings.kafka_bootstrap_servers, topics, events)

        await receiver.wait_for(LEADS, timeout=90)
        assert verified_leads(receiver, secret) == {e.payload.lead.lead_id for e in events}
        # Meanwhile GHL has had at most its two calls: the GHL backlog is all still waiting.
        contacts = await sandbox.contacts(f"loc-{organization}")
        assert sum(1 for contact in contacts if contact["notes"]) < LEADS
        assert len((await sandbox.accepted()).get(f"token-{organization}", [])) <= 2
        # The GHL half waits without failing: both processes stay healthy.
        async with httpx.AsyncClient(timeout=10) as http:
            for process in (crm_sync, *crm_sync.companions):
                assert (await http.get(process.health_url)).status_code == 200
    finally:
        crm_sync.stop()


async def test_each_half_runs_alone_on_its_own_consumer_groups(
    halves_settings: Settings,
    topics: TopicNames,
    organization: str,
    sandbox: Sandbox,
    client: httpx.AsyncClient,
    receiver: Receiver,
    log_dir: Path,
) -> None:
    assert halves_settings.kafka_bootstrap_servers
    secret = await subscribe(client, receiver)
    events = [qualified_event(organization, n, hot=False) for n in range(LEADS)]
    lead_ids = {e.payload.lead.lead_id for e in events}

    webhooks = await ServiceProcess.worker_role("webhooks", halves_settings, log_dir).start()
    try:
        await publish_qualified(halves_settings.kafka_bootstrap_servers, topics, events)
        await receiver.wait_for(LEADS, timeout=90)
        assert verified_leads(receiver, secret) == lead_ids
        assert (await sandbox.accepted()).get(f"token-{organization}", []) == [], "no GHL call"
    finally:
        webhooks.stop()

    # The GHL half, started later, reads the same events in its own groups: every lead reaches
    # GHL, and no webhook is sent twice.
    ghl = await ServiceProcess.worker_role("ghl", halves_settings, log_dir).start()
    try:

        async def all_noted() -> bool:
            contacts = await sandbox.contacts(f"loc-{organization}")
            return sum(1 for contact in contacts if contact["notes"]) == LEADS

        await eventually(all_noted, timeout=90, what="every lead written to GHL by the GHL half")
    finally:
        ghl.stop()
    assert len(receiver.requests) == LEADS
