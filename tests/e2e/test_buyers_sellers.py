"""Buyers and sellers over HTTP: stored, published on their topics, scoped to the organisation,
and answered with the worker's result when the caller waits (a fake worker stands in here)."""

from __future__ import annotations

import asyncio
import time
from datetime import UTC, datetime, timedelta
from typing import Any

import asyncpg
import httpx

from jorge_runtime.results import MATCH_SESSION, SELLER_ANALYSIS, notify_result
from jorge_runtime.settings import Settings
from schemas.topics import (
    BUYER_MATCH_REQUESTED,
    SELLER_ANALYSIS_REQUESTED,
    SELLER_CONSULTATION_REQUESTED,
    TopicNames,
)
from tests.support.services import read_topic

BUYER = {
    "buyer_id": "buyer-001",
    "budget_min": 600000,
    "budget_max": 800000,
    "bedrooms": [4, 3, 4],
    "neighborhoods": ["Victoria", "Haven"],
    "sort_by": "relevance",
}
HOME = {
    "seller_id": "seller-001",
    "property_address": "456 Oak Ave, Rancho Cucamonga, CA",
    "bedrooms": 4,
    "bathrooms": 2.5,
    "square_feet": 2500,
    "condition": "good",
    "list_price": 850000,
}
MATCH_RESULT = {
    "total_matches": 12,
    "matches": [
        {
            "rank": 1,
            "property": {"id": "prop-001", "address": "123 Main St, RC, CA", "price": 725000, "bedrooms": 3},
            "match_score": 0.95,
            "explanation": "Perfect match: 3BR, $725k, Victoria",
        }
    ],
    "next_actions": ["Schedule showing", "Request CMA"],
}
CMA_RESULT = {
    "cma": {
        "market_analysis": {"median_price": 840000, "days_on_market": 21},
        "comparable_properties": [{"address": "12 Elm St, RC, CA", "price": 845000, "status": "sold"}],
        "price_recommendation": {"low": 820000, "mid": 850000, "high": 880000, "confidence": 0.92},
    },
    "market_conditions": "Strong buyer market",
    "recommendations": ["Stage the living room"],
}


def in_days(days: float) -> str:
    return (datetime.now(UTC) + timedelta(days=days)).isoformat()


async def fake_worker(
    pool: asyncpg.Pool, organization: str, table: str, kind: str, result: dict[str, Any]
) -> str:
    """Does what the matcher / seller analyzer will: wait for the gateway's next pending row,
    then store the result and notify in one transaction. Returns the id it completed."""
    since = await pool.fetchval("SELECT clock_timestamp()")
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        row_id = await pool.fetchval(
            f"""SELECT id FROM {table}
                 WHERE organization_id = $1 AND status = 'pending' AND created_at >= $2""",
            organization,
            since,
        )
        if row_id is not None:
            async with pool.acquire() as conn, conn.transaction():
                await conn.execute(
                    f"""UPDATE {table} SET status = 'completed', result = $2, completed_at = now()
                         WHERE id = $1""",
                    row_id,
                    result,
                )
                await notify_result(conn, kind, row_id)
            return str(row_id)
        await asyncio.sleep(0.05)
    raise AssertionError(f"no pending row in {table}")


async def test_a_match_request_is_stored_published_and_readable(
    client: httpx.AsyncClient, settings: Settings, topics: TopicNames
) -> None:
    response = await client.post("/v1/buyers/match-properties", json=BUYER)
    assert response.status_code == 202, response.text
    accepted = response.json()
    session_id = accepted["match_session_id"]
    assert accepted == {
        "match_session_id": session_id,
        "buyer_id": "buyer-001",
        "status": "pending",
        "result_url": f"/v1/buyers/match-sessions/{session_id}",
    }

    session = (await client.get(accepted["result_url"])).json()
    assert session["status"] == "pending" and session["matches"] == [] and session["total_matches"] is None

    preferences = await client.get("/v1/buyers/buyer-001/preferences")
    assert preferences.status_code == 200
    assert preferences.json()["bedrooms"] == [3, 4]
    assert preferences.json()["neighborhoods"] == ["Victoria", "Haven"]

    assert settings.kafka_bootstrap_servers
    records = await read_topic(
        settings.kafka_bootstrap_servers, topics(BUYER_MATCH_REQUESTED), until=lambda got: len(got) >= 1
    )
    assert len(records) == 1 and records[0].key == "buyer-001"
    assert records[0].headers["event-type"] == "buyer.match_requested"
    event = records[0].json()
    assert event["correlation_id"] == response.headers["x-request-id"]
    assert event["payload"]["match_session_id"] == session_id
    assert event["payload"]["preferences"]["bedrooms"] == [3, 4]
    assert event["payload"]["preferences"]["budget_max"] == 800000
    assert event["payload"]["sort_by"] == "relevance" and event["payload"]["max_results"] == 10


async def test_semantic_errors_are_400_and_store_nothing(
    client: httpx.AsyncClient, pool: asyncpg.Pool, organization: str
) -> None:
    cases = {
        "invalid_budget": {**BUYER, "budget_min": 900000},
        "location_required": {**BUYER, "sort_by": "distance"},
        "invalid_location": {**BUYER, "latitude": 34.1},
    }
    for error, body in cases.items():
        response = await client.post("/v1/buyers/match-properties", json=body)
        assert response.status_code == 400, response.text
        assert response.json()["error"] == error
    stored = "SELECT count(*) FROM match_sessions WHERE organization_id = $1"
    assert await pool.fetchval(stored, organization) == 0
    schema = await client.post("/v1/buyers/match-properties", json={**BUYER, "max_results": 51})
    assert schema.status_code == 422 and schema.json()["details"][0]["field"] == "max_results"
    for wait in ("0", "31"):
        response = await client.post(f"/v1/buyers/match-properties?wait={wait}", json=BUYER)
        assert response.status_code == 422


async def test_wait_answers_200_as_soon_as_the_matcher_stores_the_result(
    client: httpx.AsyncClient, pool: asyncpg.Pool, organization: str
) -> None:
    worker = asyncio.create_task(
        fake_worker(pool, organization, "match_sessions", MATCH_SESSION, MATCH_RESULT)
    )
    await asyncio.sleep(0.05)  # its start time is before the request's
    started = time.monotonic()
    response = await client.post("/v1/buyers/match-properties?wait=5", json=BUYER)
    elapsed = time.monotonic() - started
    assert response.status_code == 200, response.text
    assert elapsed < 3
    body = response.json()
    assert body["match_session_id"] == await worker
    assert body["buyer_id"] == "buyer-001" and body["status"] == "completed"
    assert body["total_matches"] == 12
    [match] = body["matches"]
    assert (match["rank"], match["match_score"], match["explanation"]) == (
        1,
        0.95,
        "Perfect match: 3BR, $725k, Victoria",
    )
    assert match["property"]["id"] == "prop-001" and match["property"]["price"] == 725000
    assert body["next_actions"] == ["Schedule showing", "Request CMA"]
    session = (await client.get(f"/v1/buyers/match-sessions/{body['match_session_id']}")).json()
    assert session["status"] == "completed" and session["completed_at"] is not None
    assert session["total_matches"] == 12


async def test_wait_answers_202_when_no_worker_answers_in_time(client: httpx.AsyncClient) -> None:
    started = time.monotonic()
    response = await client.post("/v1/buyers/match-properties?wait=1", json=BUYER)
    assert response.status_code == 202 and response.json()["status"] == "pending"
    assert 1.0 <= time.monotonic() - started < 3


async def test_preferences_are_replaced_and_read_back(client: httpx.AsyncClient) -> None:
    missing = await client.get("/v1/buyers/buyer-002/preferences")
    assert missing.status_code == 404 and missing.json()["error"] == "buyer_not_found"

    wanted = {"budget_min": 500000, "budget_max": 650000, "bedrooms": 3, "must_haves": ["garage"]}
    put = await client.put("/v1/buyers/buyer-002/preferences", json=wanted)
    assert put.status_code == 200, put.text
    stored = put.json()
    assert stored["buyer_id"] == "buyer-002" and stored["bedrooms"] == [3] and stored["updated_at"]
    assert (await client.get("/v1/buyers/buyer-002/preferences")).json() == stored

    replaced = await client.put("/v1/buyers/buyer-002/preferences", json={"budget_min": 0, "budget_max": 1})
    assert replaced.json()["must_haves"] == [] and replaced.json()["bedrooms"] is None
    assert replaced.json()["updated_at"] > stored["updated_at"]

    bad = await client.put("/v1/buyers/buyer-002/preferences", json={"budget_min": 2, "budget_max": 1})
    assert bad.status_code == 400 and bad.json()["error"] == "invalid_budget"
    unknown = await client.put("/v1/buyers/buyer-002/preferences", json={**wanted, "colour": "red"})
    assert unknown.status_code == 422


async def test_an_analysis_is_stored_published_and_answered_when_waited_for(
    client: httpx.AsyncClient,
    pool: asyncpg.Pool,
    organization: str,
    settings: Settings,
    topics: TopicNames,
) -> None:
    response = await client.post("/v1/sellers/analyze", json=HOME)
    assert response.status_code == 202, response.text
    accepted = response.json()
    assert accepted["seller_id"] == "seller-001" and accepted["status"] == "pending"
    assert accepted["result_url"] == f"/v1/sellers/analyses/{accepted['analysis_id']}"
    pending = (await client.get(accepted["result_url"])).json()
    assert pending["status"] == "pending" and pending["cma"] is None

    assert settings.kafka_bootstrap_servers
    records = await read_topic(
        settings.kafka_bootstrap_servers, topics(SELLER_ANALYSIS_REQUESTED), until=lambda got: len(got) >= 1
    )
    assert len(records) == 1 and records[0].key == "seller-001"
    event = records[0].json()
    assert event["event_type"] == "seller.analysis_requested"
    assert event["payload"]["analysis_id"] == accepted["analysis_id"]
    assert event["payload"]["property"]["square_feet"] == 2500
    assert event["payload"]["property"]["condition"] == "good"

    worker = asyncio.create_task(
        fake_worker(pool, organization, "seller_analyses", SELLER_ANALYSIS, CMA_RESULT)
    )
    await asyncio.sleep(0.05)  # its start time is before the request's
    started = time.monotonic()
    waited = await client.post("/v1/sellers/analyze?wait=5", json={**HOME, "year_built": 1998})
    assert waited.status_code == 200, waited.text
    assert time.monotonic() - started < 3
    body = waited.json()
    assert body["analysis_id"] == await worker
    assert body["cma"]["price_recommendation"] == {
        "low": 820000,
        "mid": 850000,
        "high": 880000,
        "confidence": 0.92,
    }
    assert body["market_conditions"] == "Strong buyer market"
    assert body["recommendations"] == ["Stage the living room"]

    timed_out = await client.post("/v1/sellers/analyze?wait=0.5", json=HOME)
    assert timed_out.status_code == 202


async def test_analysis_semantic_errors_are_400(client: httpx.AsyncClient) -> None:
    location = await client.post("/v1/sellers/analyze", json={**HOME, "longitude": -117.5})
    assert location.status_code == 400 and location.json()["error"] == "invalid_location"
    future = await client.post("/v1/sellers/analyze", json={**HOME, "year_built": 2090})
    assert future.status_code == 400 and future.json()["error"] == "invalid_year_built"
    condition = await client.post("/v1/sellers/analyze", json={**HOME, "condition": "haunted"})
    assert condition.status_code == 422


async def test_a_consultation_request_is_stored_and_published(
    client: httpx.AsyncClient, pool: asyncpg.Pool, settings: Settings, topics: TopicNames
) -> None:
    times = [in_days(3), in_days(4)]
    body = {"preferred_times": times, "phone": "(909) 555-0143", "notes": "Mornings are best"}
    response = await client.post("/v1/sellers/seller-001/schedule-consultation", json=body)
    assert response.status_code == 201, response.text
    created = response.json()
    assert created["consultation_id"].startswith("consult-")
    assert created["status"] == "requested" and created["seller_id"] == "seller-001"
    assert [datetime.fromisoformat(t) for t in created["preferred_times"]] == [
        datetime.fromisoformat(t) for t in times
    ]
    stored = await pool.fetchrow(
        "SELECT status, request FROM seller_consultations WHERE id = $1", created["consultation_id"]
    )
    assert stored is not None
    assert stored["status"] == "requested" and stored["request"]["phone"] == "+19095550143"

    assert settings.kafka_bootstrap_servers
    records = await read_topic(
        settings.kafka_bootstrap_servers,
        topics(SELLER_CONSULTATION_REQUESTED),
        until=lambda got: len(got) >= 1,
    )
    assert len(records) == 1 and records[0].key == "seller-001"
    event = records[0].json()
    assert event["event_type"] == "seller.consultation_requested"
    assert event["payload"]["consultation_id"] == created["consultation_id"]
    assert event["payload"]["request"]["phone"] == "+19095550143"


async def test_consultation_times_must_be_future_and_zoned(client: httpx.AsyncClient) -> None:
    url = "/v1/sellers/seller-001/schedule-consultation"
    past = await client.post(url, json={"preferred_times": [in_days(3), in_days(-1)]})
    assert past.status_code == 400 and past.json()["error"] == "invalid_preferred_time"
    naive = await client.post(url, json={"preferred_times": ["2030-01-15T10:00:00"]})
    assert naive.status_code == 422
    empty = await client.post(url, json={"preferred_times": []})
    assert empty.status_code == 422
    phone = await client.post(url, json={"preferred_times": [in_days(1)], "phone": "12"})
    assert phone.status_code == 400 and phone.json()["error"] == "invalid_phone"


async def test_another_organisation_gets_404_never_data(
    client: httpx.AsyncClient, other_client: httpx.AsyncClient
) -> None:
    session = (await client.post("/v1/buyers/match-properties", json=BUYER)).json()
    analysis = (await client.post("/v1/sellers/analyze", json=HOME)).json()
    for url, error in (
        (session["result_url"], "match_session_not_found"),
        (analysis["result_url"], "analysis_not_found"),
        ("/v1/buyers/buyer-001/preferences", "buyer_not_found"),
    ):
        response = await other_client.get(url)
        assert response.status_code == 404, url
        assert response.json()["error"] == error
    # Their own preferences for the same buyer id do not touch ours.
    await other_client.put("/v1/buyers/buyer-001/preferences", json={"budget_min": 1, "budget_max": 2})
    ours = (await client.get("/v1/buyers/buyer-001/preferences")).json()
    assert ours["budget_max"] == 800000
