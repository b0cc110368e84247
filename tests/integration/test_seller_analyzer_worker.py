"""The seller analyzer against the real broker and PostgreSQL: CMAs, clear failures, redelivery."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import asyncpg
import pytest

from jorge_cli.demo_catalog import load_demo_catalog
from jorge_runtime.settings import Settings
from schemas.sellers import SellerAnalysisRequested, SellerAnalysisRequestedPayload, SellerProperty
from schemas.topics import SELLER_ANALYSIS_REQUESTED, SELLER_ANALYZED, TopicNames
from tests.support.services import ServiceProcess, produce, read_topic
from tests.support.waiting import eventually


@pytest.fixture
async def analyzer(settings: Settings, topics: TopicNames, log_dir: Path) -> AsyncIterator[ServiceProcess]:
    service = await ServiceProcess.worker("seller_analyzer", settings, log_dir).start()
    yield service
    service.stop()


def analysis(organization: str, n: int, **home: Any) -> SellerAnalysisRequested:
    described = {
        "property_address": "456 Oak Ave, Rancho Cucamonga, CA",
        "bedrooms": 4,
        "bathrooms": 2.5,
        "square_feet": 2_400,
        "condition": "good",
        **home,
    }
    return SellerAnalysisRequested(
        organization_id=organization,
        correlation_id=f"req-{n}",
        payload=SellerAnalysisRequestedPayload(
            analysis_id=f"cma-{n:022x}",
            seller_id=f"seller-{n}",
            property=SellerProperty.model_validate(described),
        ),
    )


async def wait_for_done(pool: asyncpg.Pool, ids: list[str], timeout: float = 40) -> dict[str, asyncpg.Record]:
    query = "SELECT * FROM seller_analyses WHERE id = ANY($1::text[]) AND status <> 'pending'"

    async def finished() -> dict[str, asyncpg.Record] | None:
        rows = await pool.fetch(query, ids)
        return {r["id"]: r for r in rows} if len(rows) == len(ids) else None

    return await eventually(finished, timeout, "analyses finished")


async def test_homes_are_priced_and_impossible_ones_fail_with_a_reason(
    settings: Settings, topics: TopicNames, pool: asyncpg.Pool, organization: str, analyzer: ServiceProcess
) -> None:
    await load_demo_catalog(pool, organization)
    known = await pool.fetchrow(
        """SELECT unparsed_address, living_area, bedrooms_total, bathrooms_total, close_price
             FROM catalog_properties WHERE organization_id = $1 AND standard_status = 'Closed'
              AND city = 'Upland' ORDER BY close_date DESC LIMIT 1""",
        organization,
    )
    assert known is not None
    street = known["unparsed_address"].split(",")[0]
    events = [
        analysis(organization, 1, latitude=34.128, longitude=-117.535, year_built=1998, list_price=1_200_000),
        # In the catalog by its street: placed in Upland without city or coordinates.
        analysis(organization, 2, property_address=f"{street}, somewhere", square_feet=known["living_area"],
                 bedrooms=known["bedrooms_total"], bathrooms=known["bathrooms_total"]),
        analysis(organization, 3, bedrooms=40),  # 40 bedrooms in 2,400 sq ft
        analysis(organization, 4, property_address="1 Nowhere Road"),  # no city, not in the catalog
        analysis(organization, 5, property_address="1 Main St, Barstow, CA"),  # no sales there
    ]  # fmt: skip
    assert settings.kafka_bootstrap_servers
    bootstrap = settings.kafka_bootstrap_servers
    for event in [*events, events[0]]:  # the first one is delivered twice
        await produce(bootstrap, topics(SELLER_ANALYSIS_REQUESTED), event.model_dump_json().encode(), key="s")
    ids = [e.payload.analysis_id for e in events]
    rows = await wait_for_done(pool, ids)

    first = rows[ids[0]]
    assert first["status"] == "completed" and first["failure_reason"] is None
    cma = first["result"]["cma"]
    price = cma["price_recommendation"]
    assert 700_000 < price["mid"] < 1_300_000 and price["low"] < price["mid"] < price["high"]
    assert 0 < price["confidence"] <= 1
    assert cma["market_analysis"]["market_area"] == "Rancho Cucamonga"
    assert cma["market_analysis"]["months_of_supply"] > 0
    assert cma["market_analysis"]["unit_values"]["source"].startswith("regression of")
    comps = cma["comparable_properties"]
    assert len(comps) >= 4 and all(c["status"] == "sold" and c["adjustments"] for c in comps)
    assert all(c["distance_km"] is not None for c in comps)
    assert first["result"]["market_conditions"]
    assert any("above the estimate" in r for r in first["result"]["recommendations"])

    second = rows[ids[1]]
    assert second["status"] == "completed", second["failure_reason"]
    assert second["result"]["cma"]["market_analysis"]["market_area"] == "Upland"
    assert second["result"]["cma"]["market_analysis"]["subject"] == "found in the catalog"
    # Its own sale is not its comparable, and the estimate is near what it sold for.
    assert all(
        c["address"] != known["unparsed_address"] for c in second["result"]["cma"]["comparable_properties"]
    )
    assert abs(second["result"]["cma"]["price_recommendation"]["mid"] / known["close_price"] - 1) < 0.2

    failures = {i: rows[i]["failure_reason"] for i in ids[2:]}
    assert all(rows[i]["status"] == "failed" and rows[i]["result"] is None for i in ids[2:])
    assert failures[ids[2]].startswith(
        "implausible_home: Cannot price this home: 40 bedrooms is not a single home"
    )
    assert failures[ids[3]].startswith("unknown_market: Cannot place the home in a market")
    assert failures[ids[4]].startswith("no_sales: No closed sales in the catalog for Barstow")

    records = await read_topic(
        bootstrap, topics(SELLER_ANALYZED), until=lambda got: len(got) >= len(events), timeout=20
    )
    published = {r.json()["payload"]["analysis_id"]: r.json() for r in records}
    assert set(published) == set(ids) and len(records) == len(events)
    assert published[ids[0]]["payload"]["status"] == "completed"
    assert published[ids[0]]["payload"]["result"]["cma"]["price_recommendation"] == price
    assert published[ids[2]]["payload"]["status"] == "failed"
    assert published[ids[2]]["payload"]["failure_reason"] == failures[ids[2]]
