"""HTTP in, webhooks out: gateway, qualifier and crm_sync as real processes, real receivers.

A lead posted to the gateway reaches a subscriber as a signed lead.qualified webhook that the
reference verifier accepts; crm_sync killed -9 mid-delivery still delivers every message, with
the same webhook-id, once it is back.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator
from pathlib import Path

import asyncpg
import httpx
import pytest
from aiokafka import AIOKafkaProducer
from standardwebhooks import Webhook

from jorge_runtime.settings import Settings
from schemas.envelope import utc_now
from schemas.leads import LeadQualified, LeadQualifiedPayload, LeadToQualify
from schemas.limits import GENERAL
from schemas.qualification import Intent, Qualification, Temperature
from schemas.topics import LEAD_QUALIFIED, TopicNames
from services.gateway.tenancy import TenancyStore
from tests.support.services import ServiceProcess
from tests.support.webhook_receiver import Answer, Receiver

HOT_BUYER = {
    "lead_id": "lead-wh-001",
    "name": "Maria Lopez",
    "phone": "(909) 555-0143",
    "email": "maria@example.com",
    "message": "We're pre-approved for $750k and want a 3 bed in Victoria, moving in 2 months.",
}


@pytest.fixture
def settings(settings: Settings) -> Settings:
    """Loopback receivers allowed (as in the embedded demo), short timeouts and leases."""
    return settings.model_copy(
        update={
            "webhook_allowed_subnets": "127.0.0.0/8",
            "webhook_retry_schedule_seconds": "0.2,0.2,0.2,0.2,0.2",
            "webhook_throttled_min_delay_seconds": 0.0,
            "webhook_attempt_timeout_seconds": 4.0,
            "webhook_lease_grace_seconds": 0.5,
            "webhook_dispatch_poll_seconds": 0.1,
        }
    )


@pytest.fixture(autouse=True)
async def generous_limits(pool: asyncpg.Pool, organization: str) -> None:
    for name in GENERAL:
        await TenancyStore(pool).set_rate_limit(organization, name, 100_000)


@pytest.fixture
async def crm_sync(settings: Settings, topics: TopicNames, log_dir: Path) -> AsyncIterator[ServiceProcess]:
    service = await ServiceProcess.worker("crm_sync", settings, log_dir).start()
    yield service
    service.stop()


async def register(client: httpx.AsyncClient, url: str) -> dict[str, str]:
    response = await client.post("/v1/webhooks/register", json={"url": url, "events": ["lead.qualified"]})
    assert response.status_code == 201, response.text
    return response.json()


async def test_a_posted_lead_reaches_the_subscriber_signed_and_recorded(
    client: httpx.AsyncClient, qualifier: ServiceProcess, crm_sync: ServiceProcess
) -> None:
    async with Receiver() as rx:
        endpoint = await register(client, rx.url())
        posted = await client.post("/v1/leads/qualify", json=HOT_BUYER)
        assert posted.status_code == 201, posted.text
        [request] = await rx.wait_for(1, timeout=30)
        body = Webhook(endpoint["secret"]).verify(request.body, request.headers)
        assert body["event"] == "lead.qualified" and body["timestamp"].endswith("Z")
        data = body["data"]
        assert data["lead_id"] == "lead-wh-001"
        assert data["qualification_id"] == posted.json()["qualification_id"]
        assert (data["intent"], data["temperature"]) == ("buyer_intent", "hot")

        # The test action reaches the same receiver, signed the same way.
        test = await client.post(f"/v1/webhooks/{endpoint['id']}/test")
        assert test.status_code == 202, test.text
        await rx.wait_for(2, timeout=30)
        assert Webhook(endpoint["secret"]).verify(rx.requests[1].body, rx.requests[1].headers)["event"] == (
            "webhook.test"
        )

    # The gateway shows both deliveries and their attempts.
    deadline = time.monotonic() + 10
    while True:
        listed = (await client.get(f"/v1/webhooks/{endpoint['id']}/deliveries")).json()["data"]
        if len(listed) == 2 and all(d["status"] == "succeeded" for d in listed):
            break
        assert time.monotonic() < deadline, listed
        await asyncio.sleep(0.1)
    by_event = {d["event_type"]: d for d in listed}
    assert by_event["lead.qualified"]["message_id"] == request.headers["webhook-id"]
    detail = (
        await client.get(f"/v1/webhooks/{endpoint['id']}/deliveries/{by_event['webhook.test']['id']}")
    ).json()
    [attempt] = detail["attempts"]
    assert (attempt["status"], attempt["response_status"], attempt["trigger"]) == ("succeeded", 200, "manual")


def qualified_event(organization: str, n: int) -> LeadQualified:
    return LeadQualified(
        organization_id=organization,
        correlation_id=f"req-{n}",
        payload=LeadQualifiedPayload(
            qualification_id=f"qual-crash-{n:03d}",
            lead=LeadToQualify(lead_id=f"lead-crash-{n:03d}", phone="+19095550143"),
            qualification=Qualification(
                intent=Intent.BUYER,
                temperature=Temperature.WARM,
                next_action="Call",
                confidence=0.5,
                engine="rules-v1",
            ),
            completed_at=utc_now(),
        ),
    )


async def test_crm_sync_killed_mid_delivery_still_delivers_every_message(
    client: httpx.AsyncClient,
    settings: Settings,
    topics: TopicNames,
    pool: asyncpg.Pool,
    organization: str,
    log_dir: Path,
) -> None:
    hold = asyncio.Event()
    answering = False

    def answer(n: int, request: object) -> Answer:
        return Answer() if answering else Answer(wait=hold.wait)

    count = 12
    async with Receiver(answer) as rx:
        endpoint = await register(client, rx.url())
        assert settings.kafka_bootstrap_servers
        producer = AIOKafkaProducer(bootstrap_servers=settings.kafka_bootstrap_servers, acks="all")
        await producer.start()
        try:
            for n in range(count):
                event = qualified_event(organization, n)
                await producer.send_and_wait(
                    topics(LEAD_QUALIFIED),
                    event.model_dump_json().encode(),
                    key=event.payload.lead.lead_id.encode(),
                    headers=[(k, v.encode()) for k, v in event.kafka_headers().items()],
                )
        finally:
            await producer.stop()
        first = await ServiceProcess.worker("crm_sync", settings, log_dir).start()
        try:
            # Every message stored; ten requests in flight (the endpoint's limit), none answered.
            await rx.wait_for(10, timeout=30)
            deadline = time.monotonic() + 20
            while await pool.fetchval(
                "SELECT count(*) FROM webhook_messages WHERE organization_id = $1", organization
            ) < count:  # fmt: skip
                assert time.monotonic() < deadline
                await asyncio.sleep(0.05)
        finally:
            first.kill()
        assert rx.max_in_flight == 10
        answering = True
        hold.set()
        second = await ServiceProcess.worker("crm_sync", settings, log_dir).start()
        try:
            deadline = time.monotonic() + 40
            while (
                done := await pool.fetchval(
                    """SELECT count(*) FROM webhook_deliveries
                        WHERE endpoint_id = $1 AND status = 'succeeded'""",
                    endpoint["id"],
                )
            ) < count:
                assert time.monotonic() < deadline, f"only {done} of {count} delivered"
                await asyncio.sleep(0.1)
        finally:
            second.kill()  # its graceful stop is not what this test is about

    messages = {
        r["id"]
        for r in await pool.fetch("SELECT id FROM webhook_messages WHERE organization_id = $1", organization)
    }
    assert len(messages) == count  # one message per event, despite the crash
    seen = {r.headers["webhook-id"] for r in rx.requests}
    assert seen == messages
    held_before_crash = {r.headers["webhook-id"] for r in rx.requests[:10]}
    answered_after = {r.headers["webhook-id"] for r in rx.requests[10:]}
    assert held_before_crash <= answered_after  # retried with the same webhook-id
    interrupted = await pool.fetchval(
        """SELECT count(*) FROM webhook_attempts a JOIN webhook_deliveries d ON d.id = a.delivery_id
            WHERE d.endpoint_id = $1 AND a.error LIKE 'interrupted%'""",
        endpoint["id"],
    )
    assert interrupted == 10  # the attempts the crash cut short are in the history
