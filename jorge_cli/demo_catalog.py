"""A deterministic demo catalog for the client's market: Rancho Cucamonga and nearby Inland Empire.

Same seed and date, same rows. Prices come from a hedonic model a CMA can recover: a level per
neighbourhood, living area (with diminishing returns), age, bathrooms, lot, pool, property
type, a north-south gradient inside each neighbourhood (foothill homes are dearer), 4 % yearly
appreciation and 4.5 % log-normal noise. Dates are relative to ``as_of`` so that "the last 12
months" always holds sales; loading on another day updates the same ListingIds.
"""

from __future__ import annotations

import math
import random
from dataclasses import dataclass
from datetime import date, timedelta
from typing import Any

import asyncpg

from jorge_runtime.catalog.importer import ImportCounts, load_rows
from schemas.catalog import CatalogRow

DEMO_SEED = 2026
NOISE_SIGMA = 0.045
YEARLY_APPRECIATION = 0.04


@dataclass(frozen=True, slots=True)
class Area:
    """A neighbourhood: where it is, its price level and what its homes are like."""

    city: str
    name: str
    postal_code: str
    latitude: float
    longitude: float
    price_per_sqft: float  # of a 2,000 sq ft home in good condition, sold today
    built: tuple[int, int]
    typical_sqft: int
    sales: int
    active: int


AREAS = (
    Area("Rancho Cucamonga", "Alta Loma", "91701", 34.1450, -117.6000, 395, (1972, 2000), 2200, 230, 30),
    Area("Rancho Cucamonga", "Etiwanda", "91739", 34.1560, -117.5200, 405, (1995, 2022), 2700, 240, 35),
    Area("Rancho Cucamonga", "Victoria", "91739", 34.1280, -117.5350, 375, (1988, 2005), 2100, 240, 30),
    Area("Rancho Cucamonga", "Terra Vista", "91730", 34.1100, -117.5700, 360, (1985, 2002), 1800, 220, 28),
    Area("Rancho Cucamonga", "Haven", "91737", 34.1330, -117.5760, 385, (1978, 2000), 2300, 200, 25),
    Area("Upland", "North Upland", "91784", 34.1320, -117.6600, 410, (1960, 1998), 2300, 200, 45),
    Area("Upland", "Downtown Upland", "91786", 34.0980, -117.6480, 345, (1920, 1970), 1600, 180, 40),
    Area("Ontario", "Ontario Ranch", "91762", 33.9800, -117.5600, 330, (2010, 2024), 2400, 260, 110),
    Area("Ontario", "Downtown Ontario", "91762", 34.0630, -117.6500, 300, (1940, 1978), 1400, 200, 60),
    Area("Fontana", "North Fontana", "92336", 34.1400, -117.4500, 320, (1995, 2015), 2300, 240, 70),
    Area("Fontana", "Sierra Lakes", "92336", 34.1380, -117.4200, 330, (2000, 2010), 2500, 180, 50),
    Area("Chino Hills", "Los Serranos", "91709", 33.9900, -117.7300, 420, (1980, 2005), 2300, 200, 45),
    Area("Claremont", "Claremont Village", "91711", 34.1000, -117.7200, 470, (1930, 1985), 1900, 180, 22),
)

_STREETS = (
    "Banyan St", "Base Line Rd", "Hillside Rd", "Wilson Ave", "Highland Ave", "Victoria Park Ln",
    "Haven Ave", "Milliken Ave", "Etiwanda Ave", "Carnelian St", "Amethyst Ave", "Beryl St",
    "Sapphire St", "Archibald Ave", "Ramona Ave", "Arrow Route", "Foothill Blvd", "Euclid Ave",
    "Mountain Ave", "Campus Ave", "Cherry Ave", "Sierra Ave", "Summit Ave", "Duncan Canyon Rd",
    "Grand Ave", "Peyton Dr", "Butterfield Ranch Rd", "Indian Hill Blvd", "Towne Ave", "Oak Ave",
)  # fmt: skip
_KINDS = (("Single Family Residence", 0.80, 1.0), ("Townhouse", 0.12, 0.92), ("Condominium", 0.08, 0.85))


def _kind(rng: random.Random) -> tuple[str, float]:
    roll = rng.random()
    for name, share, factor in _KINDS:
        if roll < share:
            return name, factor
        roll -= share
    return _KINDS[0][0], _KINDS[0][2]


def _home(rng: random.Random, area: Area, as_of: date) -> dict[str, Any]:
    kind, kind_factor = _kind(rng)
    typical = area.typical_sqft * (0.7 if kind != "Single Family Residence" else 1.0)
    sqft = int(min(5500, max(650, rng.lognormvariate(math.log(typical), 0.22))) // 10 * 10)
    beds = min(7, max(1, round(sqft / 650 + rng.gauss(0, 0.6))))
    baths = min(6.0, max(1.0, round((beds * 0.55 + sqft / 1600 + rng.gauss(0, 0.35)) * 2) / 2))
    year = min(as_of.year, max(1900, rng.randint(*area.built) + round(rng.gauss(0, 3))))
    age = as_of.year - year
    single = kind == "Single Family Residence"
    lot = round(sqft * rng.uniform(2.5, 4.5) / 100) * 100 if single else round(sqft * rng.uniform(0.3, 0.8))
    pool = single and rng.random() < 0.25
    lat = area.latitude + rng.gauss(0, 0.008)
    lon = area.longitude + rng.gauss(0, 0.009)
    value = area.price_per_sqft * 2000 * (sqft / 2000) ** 0.8
    value *= (1 - 0.0025 * min(age, 60)) * (1 + 0.03 * (baths - 2.5)) * (1 + 0.01 * (beds - 3))
    value *= kind_factor * (1.03 if pool else 1.0)
    if single:
        value *= 1 + 0.04 * math.log(lot / (sqft * 3.5))
    value *= 1 + 0.04 * max(-2.5, min(2.5, (lat - area.latitude) / 0.009))  # ~4 % per km north
    return {
        "PropertyType": "Residential",
        "PropertySubType": kind,
        "City": area.city,
        "PostalCode": area.postal_code,
        "SubdivisionName": area.name,
        "Latitude": round(lat, 6),
        "Longitude": round(lon, 6),
        "BedroomsTotal": beds,
        "BathroomsTotalDecimal": baths,
        "LivingArea": sqft,
        "LotSizeSquareFeet": lot,
        "YearBuilt": year,
        "GarageSpaces": (3 if sqft > 2600 else 2) if single else 1,
        "PoolPrivateYN": pool,
        "ViewYN": lat - area.latitude > 0.01,
        "StoriesTotal": 1 if sqft < 1700 or rng.random() < 0.3 else 2,
        "_value": value,
    }


def demo_rows(as_of: date | None = None, seed: int = DEMO_SEED) -> list[dict[str, Any]]:
    """Every demo row as an MLS export would carry it (RESO names), in a fixed order."""
    as_of = as_of or date.today()
    rng = random.Random(seed)  # noqa: S311  not for security: jitter or seeded demo data
    rows: list[dict[str, Any]] = []
    addresses: set[str] = set()
    n = 0
    for area in AREAS:
        statuses = ["Closed"] * area.sales + ["Active"] * area.active + ["Pending"] * (area.active // 4)
        for status in statuses:
            n += 1
            home = _home(rng, area, as_of)
            while True:
                street = f"{rng.randint(1000, 15999)} {rng.choice(_STREETS)}"
                if street not in addresses:
                    addresses.add(street)
                    break
            value = home.pop("_value")
            home |= {
                "ListingId": f"DEMO{n:06d}",
                "StandardStatus": status,
                "UnparsedAddress": f"{street}, {area.city}, CA {area.postal_code}",
            }
            if status == "Closed":
                days_ago = rng.randint(3, 540)
                price = value / (1 + YEARLY_APPRECIATION) ** (days_ago / 365)
                price *= math.exp(rng.gauss(0, NOISE_SIGMA))
                dom = max(3, round(rng.expovariate(1 / (12 + area.active / 3))))
                home |= {
                    "ClosePrice": round(price, -2),
                    "CloseDate": (as_of - timedelta(days=days_ago)).isoformat(),
                    "ListPrice": round(price * rng.uniform(0.98, 1.04), -3),
                    "DaysOnMarket": dom,
                }
            else:
                home |= {
                    "ListPrice": round(value * math.exp(rng.gauss(0.02, NOISE_SIGMA)), -3),
                    "DaysOnMarket": rng.randint(0, 90),
                }
            rows.append(home)
    return rows


def demo_catalog(as_of: date | None = None, seed: int = DEMO_SEED) -> list[CatalogRow]:
    """The demo rows, validated as the importer validates a file."""
    return [CatalogRow.model_validate(row) for row in demo_rows(as_of, seed)]


async def load_demo_catalog(
    pool: asyncpg.Pool, organization_id: str, as_of: date | None = None
) -> ImportCounts:
    """Upsert the demo catalog into an organisation's catalog (unchanged rows are not touched)."""
    rows = demo_catalog(as_of)
    async with pool.acquire() as conn:
        return await load_rows(conn, organization_id, rows)
