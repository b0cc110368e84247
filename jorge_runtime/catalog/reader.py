"""Reading the property catalog: what the matcher and the seller analyzer ask PostgreSQL for.

Every query is scoped to one organisation and served by the partial indexes of migration 0005
(active listings by price, city or subdivision; closed sales by city or postal code).
"""

from __future__ import annotations

from datetime import date
from typing import Any

from jorge_runtime.db import Executor
from schemas.catalog import ACTIVE, CLOSED, CatalogProperty

_FIELDS = """listing_id, standard_status, unparsed_address, city, postal_code, subdivision_name,
             latitude, longitude, list_price, close_price, close_date, bedrooms_total,
             bathrooms_total, living_area, lot_size_square_feet, year_built, days_on_market,
             property_kind, garage_spaces, pool_private_yn, view_yn, stories_total"""


def _property(row: Any) -> CatalogProperty:
    return CatalogProperty(
        listing_id=row["listing_id"],
        standard_status=row["standard_status"],
        address=row["unparsed_address"],
        city=row["city"],
        postal_code=row["postal_code"],
        subdivision=row["subdivision_name"],
        latitude=row["latitude"],
        longitude=row["longitude"],
        list_price=row["list_price"],
        close_price=row["close_price"],
        close_date=row["close_date"],
        bedrooms=row["bedrooms_total"],
        bathrooms=row["bathrooms_total"],
        living_area=row["living_area"],
        lot_size_sqft=row["lot_size_square_feet"],
        year_built=row["year_built"],
        days_on_market=row["days_on_market"],
        property_kind=row["property_kind"],
        garage_spaces=row["garage_spaces"],
        pool=row["pool_private_yn"],
        view=row["view_yn"],
        stories=row["stories_total"],
    )


class CatalogReader:
    """Queries over one organisation's catalog; takes a pool or a connection."""

    def __init__(self, candidate_limit: int = 2_000) -> None:
        self._candidate_limit = candidate_limit

    async def active_listings(
        self,
        conn: Executor,
        organization_id: str,
        *,
        price_min: int,
        price_max: int,
        min_bedrooms: int | None = None,
        kinds: list[str] | None = None,
        areas: list[str] | None = None,
    ) -> list[CatalogProperty]:
        """Active listings passing the hard filters SQL can apply: at most ``candidate_limit``,
        those whose price is nearest the middle of the window."""
        clauses = ["organization_id = $1", f"standard_status = '{ACTIVE}'", "list_price BETWEEN $2 AND $3"]
        args: list[Any] = [organization_id, price_min, price_max]
        if min_bedrooms is not None:
            args.append(min_bedrooms)
            clauses.append(f"bedrooms_total >= ${len(args)}")
        if kinds:
            args.append(kinds)
            clauses.append(f"property_kind = ANY(${len(args)}::text[])")
        if areas:
            args.append([a.lower() for a in areas])
            n = len(args)
            clauses.append(
                f"(lower(city) = ANY(${n}::text[]) OR lower(subdivision_name) = ANY(${n}::text[]))"
            )
        args.append(self._candidate_limit)
        where, limit = " AND ".join(clauses), f"${len(args)}"
        # The homes nearest the middle of the budget, walked outward from it along the price
        # index in both directions, so a wide budget never reads every home in it.
        rows = await conn.fetch(
            f"""SELECT * FROM (
                  (SELECT {_FIELDS} FROM catalog_properties
                    WHERE {where} AND list_price >= ($2 + $3) / 2 ORDER BY list_price LIMIT {limit})
                  UNION ALL
                  (SELECT {_FIELDS} FROM catalog_properties
                    WHERE {where} AND list_price < ($2 + $3) / 2 ORDER BY list_price DESC LIMIT {limit})
                ) AS near ORDER BY abs(list_price - ($2 + $3) / 2), listing_id LIMIT {limit}""",  # noqa: S608  constant SQL, values as $n placeholders
            *args,
        )
        return [_property(r) for r in rows]

    async def find_by_street(
        self, conn: Executor, organization_id: str, street: str, city: str | None
    ) -> CatalogProperty | None:
        """The catalog's record of a home by its street line ("456 Oak Ave"), newest first."""
        row = await conn.fetchrow(
            f"""SELECT {_FIELDS} FROM catalog_properties
                 WHERE organization_id = $1 AND lower(split_part(unparsed_address, ',', 1)) = lower($2)
                   AND ($3::text IS NULL OR lower(city) = lower($3))
                 ORDER BY coalesce(close_date, updated_at::date) DESC LIMIT 1""",  # noqa: S608  constant SQL, values as $n placeholders
            organization_id,
            street.strip(),
            city,
        )
        return _property(row) if row else None

    async def closed_sales(
        self,
        conn: Executor,
        organization_id: str,
        *,
        since: date,
        city: str | None = None,
        postal_code: str | None = None,
    ) -> list[CatalogProperty]:
        """Closed sales of a market area (a city, else a postal code) since a date."""
        if city is not None:
            where, key = "lower(city) = lower($2)", city
        elif postal_code is not None:
            where, key = "postal_code = $2", postal_code
        else:
            raise ValueError("a market area needs a city or a postal code")
        rows = await conn.fetch(
            f"""SELECT {_FIELDS} FROM catalog_properties
                 WHERE organization_id = $1 AND standard_status = '{CLOSED}' AND {where}
                   AND close_date >= $3
                 ORDER BY close_date DESC""",  # noqa: S608  constant SQL, values as $n placeholders
            organization_id,
            key,
            since,
        )
        return [_property(r) for r in rows]

    async def active_count(
        self, conn: Executor, organization_id: str, *, city: str | None, postal_code: str | None
    ) -> int:
        """How many listings of the market area are for sale now (for months of supply)."""
        count: int = await conn.fetchval(
            f"""SELECT count(*) FROM catalog_properties
                 WHERE organization_id = $1 AND standard_status = '{ACTIVE}'
                   AND (CASE WHEN $2::text IS NOT NULL THEN lower(city) = lower($2)
                             ELSE postal_code = $3 END)""",  # noqa: S608  constant SQL, values as $n placeholders
            organization_id,
            city,
            postal_code,
        )
        return count

    async def nearest_city(
        self, conn: Executor, organization_id: str, latitude: float, longitude: float
    ) -> str | None:
        """The city of the closest closed sale within about 10 km, to place a home by coordinates."""
        city: str | None = await conn.fetchval(
            f"""SELECT city FROM catalog_properties
                 WHERE organization_id = $1 AND standard_status = '{CLOSED}' AND city IS NOT NULL
                   AND latitude BETWEEN $2 - 0.09 AND $2 + 0.09 AND longitude BETWEEN $3 - 0.11 AND $3 + 0.11
                 ORDER BY (latitude - $2) ^ 2 + (longitude - $3) ^ 2 LIMIT 1""",  # noqa: S608  constant SQL, values as $n placeholders
            organization_id,
            latitude,
            longitude,
        )
        return city
