"""`jorge mcp`: the platform's read tools as an MCP server (ENABLE_MCP_INTEGRATION, experimental).

One server serves one organisation (``--organization``) over stdio, so an external agent
(Claude Desktop, an IDE, another bot) can read what the platform knows: a lead's latest
qualification, active listings and recent closed sales of the catalog, and a seller's
stored CMA. It only reads: nothing is written, no event is published. Phones and emails are
never returned.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from dataclasses import asdict
from datetime import date, timedelta
from typing import TYPE_CHECKING, Annotated, Any

import typer
from pydantic import Field

from jorge_runtime.settings import ConfigError

if TYPE_CHECKING:  # imported when the server is built: `jorge --help` must stay light
    import asyncpg
    from mcp.server.mcpserver import MCPServer

PoolFactory = Callable[[], Awaitable["asyncpg.Pool"]]
MAX_RESULTS = 50

mcp_tools = typer.Typer(no_args_is_help=False)


class _LazyPool:
    """Connects on the first tool call, so listing the tools needs no database."""

    def __init__(self, factory: PoolFactory) -> None:
        self._factory = factory
        self._pool: asyncpg.Pool | None = None
        self._lock = asyncio.Lock()

    async def get(self) -> asyncpg.Pool:
        async with self._lock:
            if self._pool is None:
                self._pool = await self._factory()
            return self._pool


def _jsonable(value: Any) -> Any:
    return json.loads(json.dumps(value, default=str))


def build_server(organization_id: str, pool_factory: PoolFactory, *, close_pool: bool = True) -> MCPServer:
    """An MCP server whose tools read ``organization_id``'s data through the pool."""
    from mcp.server.mcpserver import MCPServer

    from jorge_runtime.catalog.reader import CatalogReader
    from jorge_runtime.tables.leads import latest_qualification_with_lead
    from jorge_runtime.tables.seller_analyses import latest_of_seller

    pools = _LazyPool(pool_factory)
    catalog = CatalogReader(candidate_limit=MAX_RESULTS)

    @asynccontextmanager
    async def lifespan(_: MCPServer) -> AsyncIterator[None]:
        yield
        if close_pool and pools._pool is not None:
            await pools._pool.close()

    server: MCPServer = MCPServer(
        name="jorge-platform",
        instructions=f"Read-only tools over the Jorge real-estate data of organisation {organization_id}.",
        lifespan=lifespan,
    )

    @server.tool()
    async def lead_status(
        lead_id: Annotated[str, Field(description="The organisation's id of the lead.")],
    ) -> dict[str, Any]:
        """The lead's latest qualification: status, engine, intent, temperature and why, next action."""
        pool = await pools.get()
        row = await latest_qualification_with_lead(pool, organization_id, lead_id)
        if row is None:
            return {"lead_id": lead_id, "found": False}
        return _jsonable({"lead_id": lead_id, "found": True, **dict(row)})

    @server.tool()
    async def property_search(
        max_price: Annotated[int, Field(gt=0, description="Highest list price in dollars.")],
        min_price: Annotated[int, Field(ge=0, description="Lowest list price in dollars.")] = 0,
        areas: Annotated[list[str] | None, Field(description="Cities or neighbourhoods.")] = None,
        min_bedrooms: Annotated[int | None, Field(ge=0, le=20)] = None,
        limit: Annotated[int, Field(ge=1, le=MAX_RESULTS)] = 10,
    ) -> dict[str, Any]:
        """Active listings in a price window (closest to its middle first), optionally by area and beds."""
        pool = await pools.get()
        found = await catalog.active_listings(
            pool, organization_id, price_min=min_price, price_max=max_price,
            min_bedrooms=min_bedrooms, areas=areas,
        )  # fmt: skip
        return _jsonable({"count": len(found[:limit]), "listings": [asdict(p) for p in found[:limit]]})

    @server.tool()
    async def cma(
        seller_id: Annotated[str, Field(description="The organisation's id of the seller.")],
    ) -> dict[str, Any]:
        """The seller's latest comparative market analysis (estimate, range, comparables), if any."""
        pool = await pools.get()
        row = await latest_of_seller(pool, organization_id, seller_id)
        if row is None:
            return {"seller_id": seller_id, "found": False}
        return _jsonable({"seller_id": seller_id, "found": True, **dict(row)})

    @server.tool()
    async def recent_sales(
        city: Annotated[str, Field(description="The market area's city.")],
        months: Annotated[int, Field(ge=1, le=24)] = 12,
        limit: Annotated[int, Field(ge=1, le=MAX_RESULTS)] = 20,
    ) -> dict[str, Any]:
        """Closed sales of a city in the last months, newest first: the raw material of a CMA."""
        pool = await pools.get()
        sales = await catalog.closed_sales(
            pool, organization_id, since=date.today() - timedelta(days=31 * months), city=city
        )
        return _jsonable({"count": len(sales[:limit]), "sales": [asdict(s) for s in sales[:limit]]})

    return server


@mcp_tools.command("mcp")
def run_mcp(
    organization: Annotated[str, typer.Option(help="The organisation whose data the tools read.")],
) -> None:
    """Serve the read tools (lead status, property search, CMA) as an MCP server over stdio."""
    from jorge_cli.state import settings_for_command
    from jorge_runtime.db import create_pool

    settings = settings_for_command()
    if not settings.enable_mcp_integration:
        raise ConfigError("ENABLE_MCP_INTEGRATION is off: set it to true to serve the MCP tools")
    settings.require("database_url")
    url = settings.database_url or ""
    server = build_server(organization, lambda: create_pool(url, min_size=1, max_size=2))
    server.run("stdio")
