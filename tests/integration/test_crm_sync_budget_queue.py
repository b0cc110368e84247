"""Events parked on a spent GHL budget, against real Redis and PostgreSQL: each waits about as long
as the calls parked before it take, comes back early only to be parked again at no cost, and
leaves its location's queue when its turn comes."""

from __future__ import annotations

import time
import uuid

import asyncpg
import redis.asyncio as aioredis

from jorge_runtime.kafka.broker import KafkaPublisher, OutgoingMessage
from jorge_runtime.settings import Settings
from schemas.topics import CRM_RETRY_TOPICS, TopicNames
from services.crm_sync.ghl.budget import BudgetDefaults, GhlBudget
from services.crm_sync.ghl.client import GhlClient
from services.crm_sync.ghl.credential_resolver import CredentialResolver
from services.crm_sync.ghl.credential_store import CredentialStore
from services.crm_sync.ghl.failure_router import FailureRouter
from services.crm_sync.ghl.handlers import SyncHandler
from services.crm_sync.ghl.lane_message import LaneMessage
from services.crm_sync.ghl.repository import CrmRepository
from services.crm_sync.ghl.retry_schedule import NOT_BEFORE_HEADER, QUEUED_HEADER
from services.crm_sync.ghl.waiting_room import WaitingRoom
from services.crm_sync.ghl.writer import CrmWriter
from services.crm_sync.ghl.written_fields import WrittenFields
from tests.support.ghl import qualified_event

DELAYS = (10.0, 60.0, 600.0, 3600.0, 21600.0)


def budget_of(redis: aioredis.Redis) -> GhlBudget:
    """GHL's default limit, 100 calls per 10 s: 100 ms per queued call."""
    defaults = BudgetDefaults(burst=100, interval_ms=10_000)
    return GhlBudget(redis, defaults, key_prefix=f"t{uuid.uuid4().hex[:8]}:")


async def test_a_parked_event_waits_for_the_calls_queued_before_it(redis: aioredis.Redis) -> None:
    budget = budget_of(redis)
    assert await budget.join_queue("loc-a", "standard", 4, 3_000) == 3_000  # nothing ahead: the budget's wait
    assert await budget.join_queue("loc-a", "standard", 4, 300) == 400  # 4 calls ahead at 100 ms each
    waits = [await budget.join_queue("loc-a", "standard", 4, 300) for _ in range(100)]
    assert waits == [(8 + 4 * n) * 100 for n in range(100)]  # the 102nd event: 40.8 s, not 0.3 s
    assert await budget.join_queue("loc-b", "standard", 4, 300) == 300  # locations queue apart
    # A hot lead waits only for the hot calls ahead; every standard event after it waits for it.
    assert await budget.join_queue("loc-a", "hot", 6, 300) == 300
    assert await budget.join_queue("loc-a", "hot", 6, 300) == 600
    assert await budget.join_queue("loc-a", "standard", 0, 0) == (408 + 12) * 100

    await budget.leave_queue("loc-a", "standard", 4 * 100)
    await budget.leave_queue("loc-a", "hot", 12)
    assert await budget.join_queue("loc-a", "standard", 0, 0) == 800  # two events' calls still parked
    await budget.leave_queue("loc-a", "standard", 1_000)  # more than parked (a redelivery): empty
    assert await budget.join_queue("loc-a", "standard", 4, 0) == 0

    # The rate is the location's own, as GHL's headers say (a trial token: 25 per 10 s).
    trial = {"x-ratelimit-max": "25", "x-ratelimit-interval-milliseconds": "10000"}
    await budget.observe("loc-c", trial, 200)
    await budget.join_queue("loc-c", "standard", 4, 0)
    assert await budget.join_queue("loc-c", "standard", 4, 0) == 1_600


class CapturingPublisher(KafkaPublisher):
    """Keeps what would be published."""

    def __init__(self) -> None:
        self.sent: list[OutgoingMessage] = []

    async def publish(self, message: OutgoingMessage) -> None:
        self.sent.append(message)


async def test_an_event_back_before_its_turn_is_parked_again_and_leaves_the_queue_on_its_turn(
    settings: Settings, pool: asyncpg.Pool, redis: aioredis.Redis, organization: str, topics: TopicNames
) -> None:
    budget = budget_of(redis)
    publisher = CapturingPublisher()
    repository = CrmRepository(pool)
    client = GhlClient("http://127.0.0.1:9", budget)  # never opened: nothing here may call GHL
    resolver = CredentialResolver(settings, pool, CredentialStore(pool, None), client)
    failures = FailureRouter(
        pool=pool, repository=repository, publisher=publisher, topics=topics, delays=DELAYS, max_attempts=12
    )
    handler = SyncHandler(
        pool=pool,
        publisher=publisher,
        resolver=resolver,
        writer=CrmWriter(client, repository, WrittenFields(redis)),
        budget=budget,
        repository=repository,
        failures=failures,
        waiting=WaitingRoom(pool, publisher, topics, resolver.has_credentials),
        custom_fields={},
    )
    event = qualified_event(organization, 1, hot=False)
    await budget.join_queue("loc-q", "standard", 4, 0)
    now_ms = int(time.time() * 1000)
    turn = str(now_ms + 120_000)
    headers = {NOT_BEFORE_HEADER: turn, QUEUED_HEADER: "4 standard loc-q", "crm-attempt": "1"}
    early = LaneMessage(event.model_dump_json().encode(), headers, "lead-1", "standard", 1)

    await handler.handle(early)

    [parked] = publisher.sent
    assert parked.topic == topics(CRM_RETRY_TOPICS[1])  # 60 s: the longest delay not past its turn
    assert parked.headers[NOT_BEFORE_HEADER] == headers[NOT_BEFORE_HEADER]  # its turn is kept
    assert parked.headers[QUEUED_HEADER] == "4 standard loc-q"
    assert await budget.join_queue("loc-q", "standard", 0, 0) == 400  # still counted
    waiting = "SELECT count(*) FROM crm_waiting_events WHERE event_id = $1"
    assert await pool.fetchval(waiting, str(event.event_id)) == 0  # nothing else was read or written

    due = LaneMessage(early.body, {**headers, NOT_BEFORE_HEADER: str(now_ms - 1)}, "lead-1", "standard", 1)
    await handler.handle(due)  # its turn: it leaves the queue, then takes the normal path

    assert await budget.join_queue("loc-q", "standard", 0, 0) == 0
    # The organisation has no GHL credentials: the event waits for them (the normal path).
    assert await pool.fetchval(waiting, str(event.event_id)) == 1
