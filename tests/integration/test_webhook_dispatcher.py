"""The delivery engine against real PostgreSQL, Kafka and HTTP receivers on this machine.

The dispatcher runs in the test's event loop (as it does inside crm_sync) with a short retry
schedule; receivers are real HTTP servers on free ports.
"""

from __future__ import annotations

import asyncio
import json
import re
import time
import uuid
from collections.abc import AsyncIterator, Callable
from typing import Any

import asyncpg
import pytest
from pydantic import SecretStr
from standardwebhooks import Webhook

from jorge_runtime.credential_cipher import CredentialCipher
from jorge_runtime.kafka.broker import KafkaPublisher, OutgoingMessage, create_broker
from jorge_runtime.settings import Settings
from jorge_runtime.webhook_secrets import seal, webhook_secret_cipher
from jorge_runtime.worker import WorkerResources
from schemas.buyers import BuyerMatched, BuyerMatchedPayload, MatchResults
from schemas.envelope import utc_now
from schemas.topics import WEBHOOK_ENDPOINT_DISABLED, TopicNames
from schemas.webhooks import generate_secret, new_endpoint_id, new_message_id
from services.crm_sync.webhook_delivery.dispatcher import Dispatcher
from services.crm_sync.webhook_delivery.fanout import FanOut
from services.crm_sync.webhook_delivery.install import build_dispatcher
from services.crm_sync.webhook_delivery.repository import AttemptRecord, DeliveryRepository, Succeeded
from services.crm_sync.webhook_delivery.success_records import SuccessRecords
from tests.support.credentials import CREDENTIALS_KEY
from tests.support.services import read_topic
from tests.support.waiting import eventually
from tests.support.webhook_receiver import Answer, Receiver

_cipher = webhook_secret_cipher(SecretStr(CREDENTIALS_KEY))
assert _cipher is not None
CIPHER: CredentialCipher = _cipher


class Published:
    """Stands in for the Kafka publisher where a test does not look at Kafka."""

    def __init__(self) -> None:
        self.messages: list[OutgoingMessage] = []

    async def publish(self, message: OutgoingMessage) -> None:
        self.messages.append(message)


@pytest.fixture
def fast(settings: Settings) -> Settings:
    """Retries in a fraction of a second, loopback allowed (the receivers are local)."""
    return settings.model_copy(
        update={
            "webhook_allowed_subnets": "127.0.0.0/8",
            "webhook_retry_schedule_seconds": "0.1,0.1,0.1",
            "webhook_retry_jitter": 0.0,
            "webhook_throttled_min_delay_seconds": 0.0,
            "webhook_dispatch_poll_seconds": 0.05,
            "webhook_attempt_timeout_seconds": 1.0,
            "webhook_lease_grace_seconds": 0.5,
        }
    )


@pytest.fixture
async def resources(fast: Settings) -> AsyncIterator[WorkerResources]:
    res = WorkerResources(fast)
    await res.open()
    yield res
    await res.close()


@pytest.fixture
async def start_dispatcher(fast: Settings, resources: WorkerResources) -> AsyncIterator[Callable[..., Any]]:
    started: list[Dispatcher] = []

    async def start(publisher: Any = None, **overrides: Any) -> Dispatcher:
        dispatcher = build_dispatcher(fast.model_copy(update=overrides), resources, publisher or Published())
        await dispatcher.start()
        started.append(dispatcher)
        return dispatcher

    yield start
    for dispatcher in started:
        await dispatcher.stop(grace_seconds=0.5)


async def add_endpoint(
    pool: asyncpg.Pool,
    organization: str,
    url: str,
    *,
    max_concurrency: int = 10,
    events: tuple[str, ...] = ("lead.qualified",),
    status: str = "active",
) -> tuple[str, str]:
    endpoint_id, secret = new_endpoint_id(), generate_secret()
    sealed = seal(CIPHER, endpoint_id, secret)
    await pool.execute(
        """INSERT INTO webhook_endpoints
                  (id, organization_id, url, events, secret_encrypted, max_concurrency, status)
           VALUES ($1, $2, $3, $4, $5, $6, $7)""",
        endpoint_id, organization, url, list(events), sealed, max_concurrency, status,
    )  # fmt: skip
    return endpoint_id, secret


async def publish_messages(pool: asyncpg.Pool, organization: str, count: int = 1) -> list[str]:
    """Fan out ``count`` lead.qualified messages to the organisation's endpoints."""
    ids = []
    async with pool.acquire() as conn:
        for n in range(count):
            message_id = new_message_id()
            payload = {"event": "lead.qualified", "timestamp": "2026-11-23T12:00:00Z", "data": {"n": n}}
            await DeliveryRepository().fan_out(
                conn, organization_id=organization, event_type="lead.qualified",
                source_event_id=uuid.uuid4(), message_id=message_id, payload=payload,
            )  # fmt: skip
            ids.append(message_id)
    return ids


async def delivery(pool: asyncpg.Pool, endpoint_id: str) -> dict[str, Any]:
    row = await pool.fetchrow("SELECT * FROM webhook_deliveries WHERE endpoint_id = $1", endpoint_id)
    assert row is not None
    return dict(row)


async def attempts(pool: asyncpg.Pool, endpoint_id: str) -> list[dict[str, Any]]:
    rows = await pool.fetch(
        """SELECT a.* FROM webhook_attempts a JOIN webhook_deliveries d ON d.id = a.delivery_id
            WHERE d.endpoint_id = $1 ORDER BY a.attempt_number""",
        endpoint_id,
    )
    return [dict(r) for r in rows]


async def succeeded(pool: asyncpg.Pool, endpoint_id: str) -> int:
    return int(
        await pool.fetchval(
            "SELECT count(*) FROM webhook_deliveries WHERE endpoint_id = $1 AND status = 'succeeded'",
            endpoint_id,
        )
    )


async def settled(pool: asyncpg.Pool, endpoint_id: str, timeout: float = 15) -> dict[str, Any]:
    """The endpoint's single delivery once it is no longer pending."""

    async def not_pending() -> dict[str, Any] | None:
        row = await delivery(pool, endpoint_id)
        return row if row["status"] != "pending" else None

    return await eventually(not_pending, timeout, f"delivery to {endpoint_id} settled", interval=0.05)


async def test_fails_then_succeeds_with_the_same_id_and_verified_signatures(
    pool: asyncpg.Pool, organization: str, start_dispatcher: Callable[..., Any]
) -> None:
    async with Receiver(lambda n, r: Answer(500 if n < 2 else 204, body=b"busy" if n < 2 else b"")) as rx:
        endpoint_id, secret = await add_endpoint(pool, organization, rx.url())
        [message_id] = await publish_messages(pool, organization)
        await start_dispatcher()
        row = await settled(pool, endpoint_id)
    assert (row["status"], row["attempts"], row["last_response_code"]) == ("succeeded", 3, 204)
    assert [r.headers["webhook-id"] for r in rx.requests] == [message_id] * 3
    for request in rx.requests:
        assert Webhook(secret).verify(request.body, request.headers)["data"] == {"n": 0}
    history = await attempts(pool, endpoint_id)
    assert [(a["attempt_number"], a["status"], a["response_status"], a["trigger"]) for a in history] == [
        (1, "failed", 500, "scheduled"), (2, "failed", 500, "scheduled"), (3, "succeeded", 204, "scheduled"),
    ]  # fmt: skip
    assert history[0]["response_body"] == "busy" and history[0]["duration_ms"] >= 0
    endpoint = await pool.fetchrow(
        "SELECT status, failing_since FROM webhook_endpoints WHERE id = $1", endpoint_id
    )
    assert endpoint is not None
    assert endpoint["status"] == "active" and endpoint["failing_since"] is None  # a success forgives


async def test_a_timeout_is_a_failed_attempt_then_retried(
    pool: asyncpg.Pool, organization: str, start_dispatcher: Callable[..., Any]
) -> None:
    async with Receiver(lambda n, r: Answer(wait=(lambda: asyncio.sleep(3)) if n == 0 else None)) as rx:
        endpoint_id, _ = await add_endpoint(pool, organization, rx.url())
        await publish_messages(pool, organization)
        await start_dispatcher()
        row = await settled(pool, endpoint_id)
    history = await attempts(pool, endpoint_id)
    assert row["status"] == "succeeded"
    assert history[0]["status"] == "failed" and history[0]["error"].startswith("timeout")
    assert history[0]["response_status"] is None and history[1]["status"] == "succeeded"


async def test_429_with_retry_after_is_honoured(
    pool: asyncpg.Pool, organization: str, start_dispatcher: Callable[..., Any]
) -> None:
    async with Receiver(lambda n, r: Answer(429, {"retry-after": "1"}) if n == 0 else Answer()) as rx:
        endpoint_id, _ = await add_endpoint(pool, organization, rx.url())
        await publish_messages(pool, organization)
        await start_dispatcher()
        await settled(pool, endpoint_id)
    first, second = rx.requests
    assert second.at - first.at >= 1.0  # not the 0.1 s of the schedule
    assert [a["response_status"] for a in await attempts(pool, endpoint_id)] == [429, 200]


async def test_a_redirect_is_a_failure_and_is_not_followed(
    pool: asyncpg.Pool, organization: str, start_dispatcher: Callable[..., Any]
) -> None:
    redirect = Receiver(lambda n, r: Answer(302, {"location": target.url()}))
    async with Receiver() as target, redirect as rx:
        endpoint_id, _ = await add_endpoint(pool, organization, rx.url())
        await publish_messages(pool, organization)
        await start_dispatcher()
        row = await settled(pool, endpoint_id)
    assert (row["status"], row["attempts"], row["last_response_code"]) == ("failed", 4, 302)
    assert target.requests == []


async def test_410_disables_the_endpoint_and_tells_the_organisation(
    pool: asyncpg.Pool,
    organization: str,
    fast: Settings,
    topics: TopicNames,
    start_dispatcher: Callable[..., Any],
) -> None:
    broker = create_broker(fast, client_id="test-webhooks")
    await broker.start()
    try:
        async with Receiver(lambda n, r: Answer(410)) as rx:
            endpoint_id, _ = await add_endpoint(pool, organization, rx.url())
            await publish_messages(pool, organization)
            await start_dispatcher(KafkaPublisher(broker, 5.0))
            row = await settled(pool, endpoint_id)
        assert fast.kafka_bootstrap_servers
        records = await read_topic(
            fast.kafka_bootstrap_servers, topics(WEBHOOK_ENDPOINT_DISABLED), until=lambda got: len(got) >= 1
        )
    finally:
        await broker.stop()
    assert (row["status"], row["attempts"]) == ("failed", 1)
    endpoint = await pool.fetchrow(
        "SELECT status, disabled_reason FROM webhook_endpoints WHERE id = $1", endpoint_id
    )
    assert endpoint is not None
    assert (endpoint["status"], endpoint["disabled_reason"]) == ("disabled", "endpoint_gone")
    [event] = [r.json() for r in records]
    assert event["event_type"] == "webhook.endpoint_disabled" and event["organization_id"] == organization
    assert event["payload"]["endpoint_id"] == endpoint_id and event["payload"]["reason"] == "endpoint_gone"
    assert await pool.fetchval(
        "SELECT count(*) FROM outbox WHERE consumer = 'crm_sync.webhooks' AND published_at IS NULL"
    ) == 0  # fmt: skip


async def test_a_dead_receiver_does_not_delay_a_healthy_one(
    pool: asyncpg.Pool, organization: str, start_dispatcher: Callable[..., Any]
) -> None:
    release = asyncio.Event()
    async with Receiver(lambda n, r: Answer(wait=release.wait)) as dead, Receiver() as healthy:
        await add_endpoint(pool, organization, dead.url(), max_concurrency=5)
        await publish_messages(pool, organization, 10)  # the dead endpoint's messages come first
        healthy_id, _ = await add_endpoint(pool, organization, healthy.url())
        await publish_messages(pool, organization, 10)
        await start_dispatcher(webhook_attempt_timeout_seconds=30.0)
        await healthy.wait_for(10)
        # Every healthy delivery went through while the dead receiver still holds its requests.
        deadline = time.monotonic() + 10
        while await succeeded(pool, healthy_id) < 10:
            assert time.monotonic() < deadline
            await asyncio.sleep(0.05)
        assert dead.in_flight == 5 and dead.max_in_flight == 5
        release.set()


async def test_a_private_address_is_refused_after_resolution(
    pool: asyncpg.Pool, organization: str, start_dispatcher: Callable[..., Any]
) -> None:
    async with Receiver() as rx:
        literal_id, _ = await add_endpoint(pool, organization, rx.url())
        named_id, _ = await add_endpoint(pool, organization, f"http://localhost:{rx.port}/hook")
        await publish_messages(pool, organization)
        await start_dispatcher(webhook_allowed_subnets="")  # production: nothing private allowed
        for endpoint_id in (literal_id, named_id):
            row = await settled(pool, endpoint_id)
            assert row["status"] == "failed"
            history = await attempts(pool, endpoint_id)
            assert all(a["error"].startswith("address not allowed") for a in history), history
        assert rx.requests == []


async def test_an_endpoint_never_gets_more_than_its_concurrency_even_from_two_replicas(
    pool: asyncpg.Pool, organization: str, start_dispatcher: Callable[..., Any]
) -> None:
    async with Receiver(lambda n, r: Answer(wait=lambda: asyncio.sleep(0.15))) as rx:
        await add_endpoint(pool, organization, rx.url(), max_concurrency=3)
        await publish_messages(pool, organization, 15)
        await start_dispatcher()
        await start_dispatcher()  # a second crm_sync replica on the same database
        await rx.wait_for(15)
    assert rx.max_in_flight == 3
    assert len({r.headers["webhook-id"] for r in rx.requests}) == 15


async def test_a_manual_redelivery_is_recorded_as_manual(
    pool: asyncpg.Pool, organization: str, start_dispatcher: Callable[..., Any]
) -> None:
    async with Receiver() as rx:
        endpoint_id, _ = await add_endpoint(pool, organization, rx.url())
        await publish_messages(pool, organization)
        dispatcher = await start_dispatcher()
        await settled(pool, endpoint_id)
        await pool.execute(  # what the gateway's redeliver action writes
            """UPDATE webhook_deliveries SET status = 'pending', next_attempt_at = now(),
                      next_trigger = 'manual' WHERE endpoint_id = $1""",
            endpoint_id,
        )
        dispatcher.wake()
        await rx.wait_for(2)
        await settled(pool, endpoint_id)
    assert [a["trigger"] for a in await attempts(pool, endpoint_id)] == ["scheduled", "manual"]
    assert rx.requests[0].headers["webhook-id"] == rx.requests[1].headers["webhook-id"]
    assert json.loads(rx.requests[1].body)["event"] == "lead.qualified"


async def test_fan_out_is_once_per_event_and_only_to_subscribers(
    pool: asyncpg.Pool, organization: str, resources: WorkerResources
) -> None:
    subscribed, _ = await add_endpoint(
        pool, organization, "https://hooks.example.com/a", events=("buyer.matched",)
    )
    await add_endpoint(pool, organization, "https://hooks.example.com/b")  # lead.qualified only
    await add_endpoint(
        pool, organization, "https://hooks.example.com/c", events=("buyer.matched",), status="disabled"
    )
    woken: list[bool] = []
    fan_out = FanOut(
        resources=resources, repository=DeliveryRepository(), wake=lambda: woken.append(True),
        max_payload_bytes=20_480,
    )  # fmt: skip

    def matched(status: str) -> BuyerMatched:
        return BuyerMatched(
            organization_id=organization,
            correlation_id="req-1",
            payload=BuyerMatchedPayload(
                match_session_id=f"match-{status}", buyer_id="buyer-1", status=status,
                result=MatchResults(total_matches=0, matches=[], next_actions=["Widen the search"]),
                completed_at=utc_now(),
            ),
        )  # fmt: skip

    event = matched("completed")
    await fan_out.buyer_matched(event)
    await fan_out.buyer_matched(event)  # Kafka redelivers: nothing more is stored
    await fan_out.buyer_matched(matched("failed"))  # not announced
    rows = await pool.fetch(
        """SELECT d.id, d.endpoint_id, m.event_type, m.payload FROM webhook_deliveries d
             JOIN webhook_messages m ON m.id = d.message_id WHERE m.organization_id = $1""",
        organization,
    )
    assert [(r["endpoint_id"], r["event_type"]) for r in rows] == [(subscribed, "buyer.matched")]
    assert re.fullmatch(r"wd_[0-9a-f]{24}", rows[0]["id"])  # as new_delivery_id makes them
    body = rows[0]["payload"]
    assert body["event"] == "buyer.matched" and body["data"]["match_session_id"] == "match-completed"
    assert body["data"]["result"]["next_actions"] == ["Widen the search"]
    assert woken == [True]


async def test_during_a_rotation_both_secrets_verify_the_same_delivery(
    pool: asyncpg.Pool, organization: str, start_dispatcher: Callable[..., Any]
) -> None:
    async with Receiver() as rx:
        endpoint_id, old = await add_endpoint(pool, organization, rx.url())
        new = generate_secret()
        await pool.execute(  # what the gateway's rotate-secret action writes
            """UPDATE webhook_endpoints SET previous_secret_encrypted = secret_encrypted,
                      secret_encrypted = $2, previous_secret_expires_at = now() + interval '1 hour'
                WHERE id = $1""",
            endpoint_id,
            seal(CIPHER, endpoint_id, new),
        )
        await publish_messages(pool, organization)
        await start_dispatcher()
        [request] = await rx.wait_for(1)
    assert len(request.headers["webhook-signature"].split(" ")) == 2
    for secret in (old, new):  # receivers on either secret accept it
        assert Webhook(secret).verify(request.body, request.headers)["event"] == "lead.qualified"


async def test_an_endpoint_failing_for_the_whole_period_is_disabled(
    pool: asyncpg.Pool, organization: str, start_dispatcher: Callable[..., Any]
) -> None:
    published = Published()
    async with Receiver(lambda n, r: Answer(500)) as rx:
        endpoint_id, _ = await add_endpoint(pool, organization, rx.url())
        await pool.execute(
            "UPDATE webhook_endpoints SET failing_since = now() - interval '6 days' WHERE id = $1",
            endpoint_id,
        )
        await publish_messages(pool, organization)
        await start_dispatcher(published)
        await rx.wait_for(1)
        deadline = time.monotonic() + 10
        while not published.messages:
            assert time.monotonic() < deadline
            await asyncio.sleep(0.05)
        await asyncio.sleep(0.3)  # three retry delays: none is attempted
    endpoint = await pool.fetchrow(
        "SELECT status, disabled_reason FROM webhook_endpoints WHERE id = $1", endpoint_id
    )
    assert endpoint is not None
    assert (endpoint["status"], endpoint["disabled_reason"]) == ("disabled", "failing_too_long")
    [message] = published.messages
    assert json.loads(message.body)["payload"]["reason"] == "failing_too_long"
    assert len(rx.requests) == 1  # a disabled endpoint gets no more attempts


async def test_successes_finishing_together_share_one_statement_and_a_lost_lease_is_left_alone(
    pool: asyncpg.Pool, organization: str
) -> None:
    endpoint_id, _ = await add_endpoint(pool, organization, "http://127.0.0.1:9/hook")
    await publish_messages(pool, organization, 3)
    repository = DeliveryRepository()
    token, claims = await repository.claim(pool, max_endpoints=10, limit=10, lease_seconds=30)
    assert len(claims) == 3
    taken_over = claims[2].delivery_id  # its lease expired and another replica claimed it
    await pool.execute(
        "UPDATE webhook_deliveries SET lease_token = $2 WHERE id = $1", taken_over, uuid.uuid4()
    )
    statements: list[int] = []

    async def write(batch: list[Succeeded]) -> None:
        statements.append(len(batch))
        await repository.record_successes(pool, batch)

    records = SuccessRecords(write)
    attempt = AttemptRecord(1, "scheduled", True, "http://127.0.0.1:9/hook", utc_now(), 12, 204, None, None)
    await asyncio.gather(*(records.record(Succeeded(claim, token, attempt)) for claim in claims))
    await records.close()
    assert statements == [3]
    rows = await pool.fetch(
        "SELECT id, status, lease_token FROM webhook_deliveries WHERE endpoint_id = $1", endpoint_id
    )
    finished = {r["id"]: (r["status"], r["lease_token"]) for r in rows}
    assert finished[claims[0].delivery_id] == ("succeeded", None)
    assert finished[claims[1].delivery_id] == ("succeeded", None)
    assert finished[taken_over][0] == "pending" and finished[taken_over][1] is not None
