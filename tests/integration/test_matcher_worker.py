"""The matcher against the real broker and PostgreSQL: requests, qualified leads, redelivery, poison."""

from __future__ import annotations

from collections.abc import AsyncIterator
from datetime import UTC, datetime
from pathlib import Path

import asyncpg
import pytest

from jorge_cli.demo_catalog import load_demo_catalog
from jorge_runtime.settings import Settings
from schemas.buyers import BuyerMatchRequested, BuyerMatchRequestedPayload, BuyerPreferences
from schemas.leads import LeadQualified, LeadQualifiedPayload, LeadToQualify
from schemas.qualification import FinancialReadiness, Intent, PropertyPreferences, Qualification, Temperature
from schemas.topics import BUYER_MATCH_REQUESTED, BUYER_MATCHED, DEAD_LETTER, LEAD_QUALIFIED, TopicNames
from services.gateway.tenancy import TenancyStore
from services.matcher.leads import lead_session_id
from tests.support.services import ServiceProcess, produce, read_topic
from tests.support.waiting import eventually


@pytest.fixture
async def matcher(settings: Settings, topics: TopicNames, log_dir: Path) -> AsyncIterator[ServiceProcess]:
    service = await ServiceProcess.worker("matcher", settings, log_dir).start()
    yield service
    service.stop()


def match_request(organization: str, session: str, **preferences: object) -> BuyerMatchRequested:
    wanted = {"budget_min": 600_000, "budget_max": 800_000, "bedrooms": [3, 4], **preferences}
    return BuyerMatchRequested(
        organization_id=organization,
        correlation_id=f"req-{session}",
        payload=BuyerMatchRequestedPayload(
            match_session_id=session,
            buyer_id="buyer-001",
            preferences=BuyerPreferences.model_validate(wanted),
            sort_by="price",
            max_results=5,
        ),
    )


def qualified(organization: str, lead_id: str, intent: Intent) -> LeadQualified:
    return LeadQualified(
        organization_id=organization,
        correlation_id=f"req-{lead_id}",
        payload=LeadQualifiedPayload(
            qualification_id=f"qual-{organization}-{lead_id}",
            lead=LeadToQualify(lead_id=lead_id, phone="+19095550143", message="3 bed in Victoria, 750k"),
            qualification=Qualification(
                intent=intent,
                temperature=Temperature.HOT,
                financial_readiness=FinancialReadiness(budget_max=750_000, pre_approved=True),
                property_preferences=PropertyPreferences(bedrooms=3, areas=["Victoria"]),
                next_action="Schedule showing",
                confidence=0.8,
                engine="rules-v1",
            ),
            completed_at=datetime.now(UTC),
        ),
    )


async def wait_for_row(pool: asyncpg.Pool, session_id: str, timeout: float = 30) -> asyncpg.Record:
    query = "SELECT * FROM match_sessions WHERE id = $1 AND status = 'completed'"
    row: asyncpg.Record = await eventually(
        lambda: pool.fetchrow(query, session_id), timeout, f"session {session_id} completed"
    )
    return row


async def test_requests_and_buyer_leads_are_matched_once_and_published(
    settings: Settings, topics: TopicNames, pool: asyncpg.Pool, organization: str, matcher: ServiceProcess
) -> None:
    await load_demo_catalog(pool, organization)
    assert settings.kafka_bootstrap_servers
    bootstrap = settings.kafka_bootstrap_servers
    request = match_request(organization, "match-00000000000000000000a1", neighborhoods=["Victoria"])
    body = request.model_dump_json().encode()
    await produce(bootstrap, topics(BUYER_MATCH_REQUESTED), body, key="buyer-001")
    await produce(bootstrap, topics(BUYER_MATCH_REQUESTED), body, key="buyer-001")  # redelivered
    buyer = qualified(organization, "lead-buyer", Intent.BUYER)
    seller = qualified(organization, "lead-seller", Intent.SELLER)
    for event in (seller, buyer):
        await produce(bootstrap, topics(LEAD_QUALIFIED), event.model_dump_json().encode(), key="lead")
    await produce(bootstrap, topics(BUYER_MATCH_REQUESTED), b"{not json", key="buyer-x")
    # An organisation without a catalog gets a completed session with no matches.
    await TenancyStore(pool).create_organization(f"{organization}-empty", "Empty Realty")
    empty = match_request(f"{organization}-empty", "match-00000000000000000000b2")
    await produce(bootstrap, topics(BUYER_MATCH_REQUESTED), empty.model_dump_json().encode(), key="b")

    row = await wait_for_row(pool, request.payload.match_session_id)
    result = row["result"]
    assert 0 < len(result["matches"]) <= 5 and result["total_matches"] >= len(result["matches"])
    prices = [m["property"]["price"] for m in result["matches"]]
    assert prices == sorted(prices)  # sort_by=price
    top = result["matches"][0]
    assert top["property"]["neighborhood"] == "Victoria" and top["property"]["bedrooms"] >= 3
    assert top["explanation"] and top["fits"] and set(top["score_breakdown"]) >= {"price", "location"}

    lead_row = await wait_for_row(pool, lead_session_id(buyer.payload.qualification_id))
    assert lead_row["qualification_id"] == buyer.payload.qualification_id
    assert lead_row["buyer_id"] == "lead-buyer" and lead_row["organization_id"] == organization
    assert lead_row["result"]["matches"] and len(lead_row["result"]["matches"]) <= 5

    records = await read_topic(bootstrap, topics(BUYER_MATCHED), until=lambda got: len(got) >= 3, timeout=20)
    by_session = {r.json()["payload"]["match_session_id"]: r for r in records}
    assert set(by_session) == {
        request.payload.match_session_id,
        lead_session_id(buyer.payload.qualification_id),
        empty.payload.match_session_id,
    }
    assert len(records) == 3  # the redelivered request published nothing more; the seller lead nothing
    event = by_session[request.payload.match_session_id].json()
    assert event["event_type"] == "buyer.matched" and event["causation_id"] == str(request.event_id)
    assert event["payload"]["status"] == "completed" and event["payload"]["result"]["matches"]
    assert by_session[request.payload.match_session_id].key == "buyer-001"
    sessions = await pool.fetchval(
        "SELECT count(*) FROM match_sessions WHERE organization_id = $1", organization
    )
    assert sessions == 2

    empty_row = await wait_for_row(pool, empty.payload.match_session_id)
    assert empty_row["result"]["total_matches"] == 0 and empty_row["result"]["matches"] == []
    assert empty_row["result"]["next_actions"][0].startswith("Widen")

    dead = await read_topic(bootstrap, topics(DEAD_LETTER), until=lambda got: len(got) >= 1, timeout=20)
    assert dead and dead[0].headers["dlq-consumer"] == "matcher"
