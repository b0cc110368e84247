"""`jorge mcp`: the read tools over the real PostgreSQL, through an in-process MCP client."""

from __future__ import annotations

import json
from datetime import date, timedelta
from typing import Any

import asyncpg
import pytest
from mcp import Client
from typer.testing import CliRunner

from jorge_cli.main import app
from jorge_cli.mcp_server import build_server
from schemas.leads import LeadToQualify
from tests.support.leads import store_qualified


async def call(client: Client, tool: str, arguments: dict[str, Any]) -> dict[str, Any]:
    result = await client.call_tool(tool, arguments)
    assert not result.is_error, result
    if result.structured_content is not None:
        return dict(result.structured_content)
    return dict(json.loads(result.content[0].text))  # type: ignore[union-attr]


async def seed(pool: asyncpg.Pool, organization: str) -> None:
    lead = LeadToQualify(
        lead_id="lead-mcp",
        name="Ana",
        phone="+19095550143",
        message="Pre-approved, 3 bed in Upland in 2 months",
    )
    await store_qualified(pool, organization, lead, f"qual-{organization}-mcp", "req-mcp")
    recent = date.today() - timedelta(days=40)
    await pool.executemany(
        """INSERT INTO catalog_properties (organization_id, listing_id, standard_status, city,
                                          list_price, close_price, close_date, bedrooms_total, living_area)
           VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9)""",
        [
            (organization, "L-1", "Active", "Upland", 690_000, None, None, 3, 1700),
            (organization, "L-2", "Active", "Upland", 1_900_000, None, None, 5, 4000),
            (organization, "L-3", "Active", "Fontana", 650_000, None, None, 4, 1900),
            (organization, "S-1", "Closed", "Upland", 700_000, 705_000, recent, 3, 1750),
        ],
    )
    await pool.execute(
        """INSERT INTO seller_analyses (id, organization_id, seller_id, status, request, result, completed_at)
           VALUES ('cma-mcp1', $1, 'seller-1', 'completed', '{}'::jsonb, $2, now())""",
        organization,
        {"estimated_value": 712_000, "confidence": "medium"},
    )


async def test_read_tools_answer_from_the_organisations_data(pool: asyncpg.Pool, organization: str) -> None:
    await seed(pool, organization)

    async def shared_pool() -> asyncpg.Pool:
        return pool

    server = build_server(organization, shared_pool, close_pool=False)
    async with Client(server) as client:
        tools = {tool.name for tool in (await client.list_tools()).tools}
        assert tools == {"lead_status", "property_search", "cma", "recent_sales"}

        status = await call(client, "lead_status", {"lead_id": "lead-mcp"})
        assert status["found"] and status["status"] == "completed" and status["engine"] == "rules-v1"
        assert status["result"]["temperature"] == "hot"
        assert "+19095550143" not in json.dumps(status)  # contacts never leave through MCP
        assert not (await call(client, "lead_status", {"lead_id": "nobody"}))["found"]

        listings = await call(client, "property_search", {"max_price": 800_000, "areas": ["Upland"]})
        assert [item["listing_id"] for item in listings["listings"]] == ["L-1"]

        assert (await call(client, "cma", {"seller_id": "seller-1"}))["result"]["estimated_value"] == 712_000
        sales = await call(client, "recent_sales", {"city": "Upland"})
        assert [sale["listing_id"] for sale in sales["sales"]] == ["S-1"]

    other = build_server("org-someone-else", shared_pool, close_pool=False)
    async with Client(other) as client:
        assert not (await call(client, "lead_status", {"lead_id": "lead-mcp"}))["found"]


def test_jorge_mcp_refuses_to_start_with_the_flag_off(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr("jorge_cli.state.read_running_state", lambda: None)
    result = CliRunner().invoke(
        app, ["mcp", "--organization", "acme"], env={"ENABLE_MCP_INTEGRATION": "false"}
    )
    assert result.exit_code != 0
    assert "ENABLE_MCP_INTEGRATION" in str(result.exception) + result.output
