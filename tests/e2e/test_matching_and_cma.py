"""Matching and pricing through the gateway on the real stack: HTTP in, workers, results out."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator
from pathlib import Path

import asyncpg
import httpx
import pytest

from jorge_cli.demo_catalog import load_demo_catalog
from jorge_runtime.settings import Settings
from schemas.topics import TopicNames
from tests.support.services import ServiceProcess

# The gateway may hold a ?wait=20 request for 20 s (a worker still joining its group under load):
# the client must outwait it, or a slow run reads as a timeout rather than a 202.
WAIT_CLIENT_TIMEOUT = 30


@pytest.fixture
async def workers(
    settings: Settings, topics: TopicNames, log_dir: Path, pool: asyncpg.Pool, organization: str
) -> AsyncIterator[None]:
    await load_demo_catalog(pool, organization)
    services = [ServiceProcess.worker(name, settings, log_dir) for name in ("matcher", "seller_analyzer")]
    await asyncio.gather(*(service.start() for service in services))
    yield
    for service in services:
        service.stop()


async def test_a_buyer_gets_ranked_explained_homes_and_a_seller_a_cma(
    client: httpx.AsyncClient, workers: None
) -> None:
    body = {
        "buyer_id": "buyer-001", "budget_min": 600000, "budget_max": 800000, "bedrooms": [3, 4],
        "neighborhoods": ["Victoria", "Haven"], "must_haves": ["garage"], "sort_by": "relevance",
    }  # fmt: skip
    response = await client.post(
        "/v1/buyers/match-properties?wait=20", json=body, timeout=WAIT_CLIENT_TIMEOUT
    )
    assert response.status_code == 200, response.text
    session = response.json()
    assert session["status"] == "completed" and session["total_matches"] >= len(session["matches"]) > 0
    scores = [m["match_score"] for m in session["matches"]]
    assert scores == sorted(scores, reverse=True) and all(s >= 0.4 for s in scores)
    top = session["matches"][0]
    assert top["property"]["neighborhood"] in ("Victoria", "Haven")
    assert 600000 * 0.85 <= top["property"]["price"] <= 800000 * 1.05 and top["property"]["bedrooms"] >= 3
    assert top["explanation"].split(":")[0] in ("Perfect match", "Strong match", "Partial match")
    assert "has garage" in top["fits"]
    assert session["next_actions"] == ["Schedule showing", "Request CMA"]
    again = await client.get(f"/v1/buyers/match-sessions/{session['match_session_id']}")
    assert again.json()["matches"] == session["matches"]

    near = {**body, "latitude": 34.128, "longitude": -117.535, "sort_by": "distance", "neighborhoods": []}
    by_distance = (
        await client.post("/v1/buyers/match-properties?wait=20", json=near, timeout=WAIT_CLIENT_TIMEOUT)
    ).json()
    distances = [m["property"]["distance_km"] for m in by_distance["matches"]]
    assert distances and distances == sorted(distances)

    # The same stack prices a seller's home (one test: the workers start once).
    home = {
        "seller_id": "seller-001", "property_address": "456 Oak Ave, Rancho Cucamonga, CA", "bedrooms": 4,
        "bathrooms": 2.5, "square_feet": 2500, "condition": "good", "list_price": 850000,
        "neighborhood": "Victoria", "latitude": 34.128, "longitude": -117.535, "year_built": 1998,
        "postal_code": "91739", "lot_size_sqft": 7000,
    }  # fmt: skip
    response = await client.post("/v1/sellers/analyze?wait=20", json=home, timeout=WAIT_CLIENT_TIMEOUT)
    assert response.status_code == 200, response.text
    analysis = response.json()
    assert analysis["status"] == "completed", analysis["failure_reason"]
    price = analysis["cma"]["price_recommendation"]
    assert price["low"] < price["mid"] < price["high"] and 0 < price["confidence"] <= 1
    market = analysis["cma"]["market_analysis"]
    assert {"median_price", "price_per_sqft", "days_on_market", "months_of_supply"} <= set(market)
    comps = analysis["cma"]["comparable_properties"]
    assert len(comps) >= 4 and all(c["distance_km"] <= 5 for c in comps)
    assert sum(c["weight"] for c in comps) == pytest.approx(1.0, abs=0.01)
    assert analysis["market_conditions"] and analysis["recommendations"][0].startswith("Price at $")

    absurd = await client.post(
        "/v1/sellers/analyze?wait=20", json={**home, "bedrooms": 40}, timeout=WAIT_CLIENT_TIMEOUT
    )
    failed = absurd.json()
    assert absurd.status_code == 200 and failed["status"] == "failed" and failed["cma"] is None
    assert failed["failure_reason"].startswith("implausible_home: Cannot price this home: 40 bedrooms")
    negative = await client.post("/v1/sellers/analyze", json={**home, "square_feet": -10})
    assert negative.status_code == 422  # refused at the door, never reaches the analyzer


async def test_a_qualified_buyer_lead_gets_recommended_properties(
    client: httpx.AsyncClient, qualifier: ServiceProcess, workers: None
) -> None:
    lead = {
        "lead_id": "lead-001", "name": "Maria Lopez", "phone": "+1 909 555 0143",
        "message": "Pre-approved for $750k, looking for a 3 bed in Victoria, moving in 2 months",
    }  # fmt: skip
    assert (await client.post("/v1/leads/qualify", json=lead)).status_code == 201
    deadline = time.monotonic() + 40
    view: dict = {}
    while time.monotonic() < deadline:
        view = (await client.get("/v1/leads/lead-001/qualification")).json()
        if view.get("recommended_properties"):
            break
        await asyncio.sleep(0.2)
    assert view["status"] == "completed" and view["result"]["intent"] == "buyer_intent"
    recommended = view["recommended_properties"]
    assert 0 < len(recommended) <= 5
    assert set(recommended[0]) == {"id", "address", "price", "beds", "match_score"}
    assert all(r["beds"] >= 3 and r["price"] <= 750000 * 1.05 for r in recommended)
