"""The workers' one-statement writes against a real PostgreSQL: the event's claim, its staged
messages, the result and the gateway's wake-up happen together on the first delivery, and a
second delivery of the same event writes and announces nothing."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable

import asyncpg
import pytest

from jorge_runtime.idempotency import EventLedger
from jorge_runtime.kafka.broker import OutgoingMessage
from jorge_runtime.results import RESULTS_CHANNEL
from jorge_runtime.settings import Settings
from schemas.buyers import BuyerMatchRequestedPayload, BuyerPreferences, MatchResults
from schemas.envelope import utc_now
from schemas.leads import LeadToQualify
from schemas.sellers import SellerAnalysisRequestedPayload, SellerProperty
from services.matcher.repository import MatchSessionRepository
from services.qualifier.repository import QualificationRepository
from services.qualifier.rules import qualify_lead
from services.seller_analyzer.repository import SellerAnalysisRepository

Save = Callable[[EventLedger, uuid.UUID, list[OutgoingMessage]], Awaitable[bool]]


@pytest.fixture
async def announced(settings: Settings) -> AsyncIterator[list[str]]:
    """The payloads of the result notifications sent while the test runs."""
    assert settings.database_url
    payloads: list[str] = []
    listener = await asyncpg.connect(settings.database_url)
    await listener.add_listener(RESULTS_CHANNEL, lambda *args: payloads.append(args[3]))
    yield payloads
    await listener.close()


def staged(number: int) -> OutgoingMessage:
    return OutgoingMessage(str(uuid.uuid4()), "t.results", f"key-{number}", b"body-%d" % number, {"n": "1"})


async def twice(pool: asyncpg.Pool, announced: list[str], save: Save, expected_notification: str) -> None:
    ledger = EventLedger(pool, f"test-{uuid.uuid4().hex[:8]}")
    event_id = uuid.uuid4()
    messages = [staged(1)]
    assert await save(ledger, event_id, messages)
    assert not await save(ledger, event_id, [staged(2)])  # a redelivery: claimed already
    assert await ledger.outstanding(event_id) == messages
    await asyncio.sleep(0.2)  # notifications arrive asynchronously
    assert announced.count(expected_notification) == 1


async def test_a_qualification_is_stored_claimed_and_announced_once(
    pool: asyncpg.Pool, organization: str, announced: list[str]
) -> None:
    lead = LeadToQualify(lead_id="lead-once", phone="+19095550143", message="Pre-approved, 3 bed asap")
    qualification_id = f"qual-{uuid.uuid4().hex[:12]}"
    repository = QualificationRepository(expires_after_days=7)

    async def save(ledger: EventLedger, event_id: uuid.UUID, messages: list[OutgoingMessage]) -> bool:
        return await repository.save_completed_once(
            ledger, event_id, messages, organization_id=organization, qualification_id=qualification_id,
            lead=lead, qualification=qualify_lead(lead), correlation_id="req-once", completed_at=utc_now(),
        )  # fmt: skip

    await twice(pool, announced, save, f"qualification:{qualification_id}")
    row = await pool.fetchrow(
        """SELECT q.status, q.engine, q.result, l.phone FROM qualifications q
             JOIN leads l USING (organization_id, lead_id) WHERE q.qualification_id = $1""",
        qualification_id,
    )
    assert row is not None  # the lead was missing: created with its qualification
    assert (row["status"], row["engine"], row["phone"]) == ("completed", "rules-v1", "+19095550143")
    assert row["result"]["temperature"] == qualify_lead(lead).temperature.value


async def test_a_match_session_is_stored_claimed_and_announced_once(
    pool: asyncpg.Pool, organization: str, announced: list[str]
) -> None:
    request = BuyerMatchRequestedPayload(
        match_session_id=f"match-{uuid.uuid4().hex[:12]}",
        buyer_id="buyer-once",
        preferences=BuyerPreferences(budget_min=400_000, budget_max=600_000),
        sort_by="relevance",
        max_results=5,
    )
    result = MatchResults(total_matches=0, matches=[], next_actions=["Widen the budget"])

    async def save(ledger: EventLedger, event_id: uuid.UUID, messages: list[OutgoingMessage]) -> bool:
        return await MatchSessionRepository().save_completed_once(
            ledger, event_id, messages, organization_id=organization, request=request, result=result,
            correlation_id="req-once", completed_at=utc_now(), qualification_id="qual-from-lead",
        )  # fmt: skip

    await twice(pool, announced, save, f"match_session:{request.match_session_id}")
    row = await pool.fetchrow(
        "SELECT status, result, qualification_id FROM match_sessions WHERE id = $1", request.match_session_id
    )
    assert row is not None
    assert (row["status"], row["result"]["next_actions"], row["qualification_id"]) == (
        "completed",
        ["Widen the budget"],
        "qual-from-lead",
    )


async def test_a_failed_seller_analysis_is_stored_claimed_and_announced_once(
    pool: asyncpg.Pool, organization: str, announced: list[str]
) -> None:
    request = SellerAnalysisRequestedPayload(
        analysis_id=f"cma-{uuid.uuid4().hex[:12]}",
        seller_id="seller-once",
        property=SellerProperty(
            property_address="1 Nowhere Lane", bedrooms=3, bathrooms=2, square_feet=1500, condition="good"
        ),
    )

    async def save(ledger: EventLedger, event_id: uuid.UUID, messages: list[OutgoingMessage]) -> bool:
        return await SellerAnalysisRepository().save_once(
            ledger, event_id, messages, organization_id=organization, request=request, result=None,
            failure_reason="no_comparables: none nearby", correlation_id="req-once", completed_at=utc_now(),
        )  # fmt: skip

    await twice(pool, announced, save, f"seller_analysis:{request.analysis_id}")
    row = await pool.fetchrow(
        "SELECT status, result, failure_reason FROM seller_analyses WHERE id = $1", request.analysis_id
    )
    assert row is not None
    assert (row["status"], row["result"], row["failure_reason"]) == (
        "failed",
        None,
        "no_comparables: none nearby",
    )
