"""Catalog queries over 100,000 active listings, with the indexes and without (sequential scans).

What it measures, on a fresh database: the time to import the rows (validation, COPY, upsert;
then a re-import, which must change nothing), and the latency of the queries the workers run:
the matcher's candidate search (budget window, bedrooms, optionally areas, as buyers ask),
the whole match (search plus scoring in Python), and the seller analyzer's reads (a market's
closed sales over 18 months, the subject by street, active listings counted). Each query set
runs twice on one connection: with the planner free to use migration 0005's indexes, and with
index and bitmap scans disabled (the baseline). Ratios are baseline / indexed.

Rows: copies of the demo catalog under other seeds (jorge_cli/demo_catalog.py), half of the
closed sales turned into active listings, until ``--listings`` active listings exist.

Services: the embedded PostgreSQL in a temporary directory unless DATABASE_URL is set; a fresh
database is created and dropped. Run from the repository root:
    .venv/bin/python -m bench.catalog_search [--listings 100000] [--queries 200] [--json]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import random
import statistics
import time
from collections.abc import Awaitable, Callable
from datetime import date, timedelta
from functools import partial
from typing import Any

import asyncpg

from bench.environment import BenchEnvironment, bench_environment
from jorge_cli.demo_catalog import AREAS, demo_rows
from jorge_runtime.catalog.importer import load_rows
from jorge_runtime.catalog.reader import CatalogReader
from jorge_runtime.db import DbConnection
from schemas.buyers import BuyerPreferences
from schemas.catalog import CatalogRow
from services.matcher.scoring import match, min_bedrooms, price_window

AS_OF = date(2026, 11, 23)
ORGANIZATION = "bench"


def rows_with(listings: int) -> list[CatalogRow]:
    """Demo rows under successive seeds until ``listings`` of them are active."""
    rows: list[CatalogRow] = []
    active = 0
    seed = 0
    while active < listings:
        for record in demo_rows(AS_OF, seed=1000 + seed):
            record["ListingId"] = f"S{seed}-{record['ListingId']}"
            if record["StandardStatus"] == "Closed" and random.Random(record["ListingId"]).random() < 0.5:
                record["StandardStatus"] = "Active"
                for field in ("ClosePrice", "CloseDate"):
                    record.pop(field)
            if record["StandardStatus"] == "Active":
                if active >= listings:
                    continue
                active += 1
            rows.append(CatalogRow.model_validate(record))
        seed += 1
    return rows


def searches(n: int) -> list[BuyerPreferences]:
    """Buyer searches as people make them: a budget band, bedrooms, sometimes areas."""
    rng = random.Random(7)
    names = [a.name for a in AREAS] + sorted({a.city for a in AREAS})
    found = []
    for _ in range(n):
        top = rng.choice([450_000, 550_000, 650_000, 750_000, 850_000, 1_000_000, 1_300_000])
        areas = rng.sample(names, rng.choice([0, 0, 1, 2]))
        found.append(
            BuyerPreferences(
                budget_min=int(top * 0.8), budget_max=top, bedrooms=[rng.choice([2, 3, 3, 4, 5])],
                neighborhoods=areas,
            )
        )  # fmt: skip
    return found


async def _timed(work: Callable[[], Awaitable[Any]]) -> float:
    started = time.perf_counter()
    await work()
    return (time.perf_counter() - started) * 1000


def _stats(ms: list[float]) -> dict[str, float]:
    ordered = sorted(ms)
    return {
        "p50_ms": round(statistics.median(ordered), 2),
        "p95_ms": round(ordered[int(0.95 * (len(ordered) - 1))], 2),
        "max_ms": round(ordered[-1], 2),
    }


async def measure(conn: DbConnection, queries: int) -> dict[str, dict[str, float]]:
    """Latencies of every query kind on ``conn`` (whatever planner settings it has)."""
    reader = CatalogReader()
    results: dict[str, list[float]] = {"matcher search": [], "match (search + scoring)": [],
                                       "closed sales of a city, 18 months": [], "subject by street": [],
                                       "active listings counted": []}  # fmt: skip
    streets = [r["s"] for r in await conn.fetch(
        "SELECT split_part(unparsed_address, ',', 1) AS s FROM catalog_properties ORDER BY listing_id LIMIT $1",  # noqa: E501
        queries,
    )]  # fmt: skip
    cities = sorted({a.city for a in AREAS})
    since = AS_OF - timedelta(days=548)
    for i, prefs in enumerate(searches(queries)):
        low, high = price_window(prefs)

        async def search(prefs: BuyerPreferences = prefs, low: int = low, high: int = high) -> Any:
            return await reader.active_listings(
                conn, ORGANIZATION, price_min=low, price_max=high, min_bedrooms=min_bedrooms(prefs),
                areas=list(prefs.neighborhoods),
            )  # fmt: skip

        async def full(
            prefs: BuyerPreferences = prefs, search: Callable[[], Awaitable[Any]] = search
        ) -> None:
            match(prefs, await search(), "relevance", 10)

        city = cities[i % len(cities)]
        results["matcher search"].append(await _timed(search))
        results["match (search + scoring)"].append(await _timed(full))
        results["closed sales of a city, 18 months"].append(
            await _timed(partial(reader.closed_sales, conn, ORGANIZATION, since=since, city=city))
        )
        results["subject by street"].append(
            await _timed(partial(reader.find_by_street, conn, ORGANIZATION, streets[i % len(streets)], None))
        )
        results["active listings counted"].append(
            await _timed(partial(reader.active_count, conn, ORGANIZATION, city=city, postal_code=None))
        )
    return {name: _stats(ms) for name, ms in results.items()}


async def run(listings: int, queries: int) -> dict[str, Any]:
    """Load, re-load, measure with and without indexes, in a fresh database."""
    async with bench_environment(kafka=False, redis=False, pool_size=2) as env:
        return await _measure(env, listings, queries)


async def _measure(env: BenchEnvironment, listings: int, queries: int) -> dict[str, Any]:
    database_url, pool = env.database_url, env.pool
    await env.create_organization(ORGANIZATION, "Bench Realty")
    started = time.perf_counter()
    rows = rows_with(listings)
    generated = time.perf_counter() - started
    async with pool.acquire() as conn:
        started = time.perf_counter()
        first = await load_rows(conn, ORGANIZATION, rows)
        loaded = time.perf_counter() - started
        started = time.perf_counter()
        second = await load_rows(conn, ORGANIZATION, rows)
        reloaded = time.perf_counter() - started
        await conn.execute("ANALYZE catalog_properties")
        active = await conn.fetchval(
            "SELECT count(*) FROM catalog_properties WHERE organization_id = $1 AND standard_status = 'Active'",  # noqa: E501
            ORGANIZATION,
        )
        indexed = await measure(conn, queries)
    # A connection of its own: asyncpg caches prepared statements, and their plans, per connection.
    plain = await asyncpg.connect(
        database_url,
        server_settings={
            "enable_indexscan": "off",
            "enable_bitmapscan": "off",
            "enable_indexonlyscan": "off",
        },
    )
    try:
        await plain.set_type_codec("jsonb", encoder=json.dumps, decoder=json.loads, schema="pg_catalog")
        baseline = await measure(plain, queries)
    finally:
        await plain.close()
    return {
        "rows": len(rows),
        "active_listings": active,
        "generate_and_validate_s": round(generated, 2),
        "first_import_s": round(loaded, 2),
        "first_import": vars(first) if hasattr(first, "__dict__") else first.__repr__(),
        "reimport_s": round(reloaded, 2),
        "reimport_changed": second.inserted + second.updated,
        "indexed": indexed,
        "sequential_scans": baseline,
        "p50_ratio_seq_over_indexed": {
            name: round(baseline[name]["p50_ms"] / max(indexed[name]["p50_ms"], 0.001), 1) for name in indexed
        },
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--listings", type=int, default=100_000, help="Active listings to load.")
    parser.add_argument("--queries", type=int, default=200, help="Queries of each kind.")
    parser.add_argument("--json", action="store_true", help="One JSON object instead of a table.")
    args = parser.parse_args()
    report = asyncio.run(run(args.listings, args.queries))
    if args.json:
        print(json.dumps(report, indent=2, default=str))
        return
    print(f"{report['rows']:,} rows, {report['active_listings']:,} active listings; generated and validated in "  # noqa: E501
          f"{report['generate_and_validate_s']} s; imported in {report['first_import_s']} s; re-imported in "
          f"{report['reimport_s']} s changing {report['reimport_changed']} rows")  # fmt: skip
    print(f"{'query':<36} {'indexed p50/p95 ms':>20} {'seq scan p50/p95 ms':>21} {'ratio':>6}")
    for name, fast in report["indexed"].items():
        slow = report["sequential_scans"][name]
        print(f"{name:<36} {fast['p50_ms']:>9} / {fast['p95_ms']:<8} {slow['p50_ms']:>9} / {slow['p95_ms']:<9} "  # noqa: E501
              f"{report['p50_ratio_seq_over_indexed'][name]:>5}x")  # fmt: skip


if __name__ == "__main__":
    main()
