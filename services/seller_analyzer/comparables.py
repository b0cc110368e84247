"""Choosing comparable sales and deriving unit values from the market: pure, no I/O.

Selection follows appraisal practice (Fannie Mae B4-1.3-08): closed sales of the same market
area, recent, of similar living area, age, bedrooms and bathrooms, nearby when coordinates are
known. It starts strict and widens one step at a time until enough are found, and says so.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date

import numpy as np

from schemas.catalog import CatalogProperty, distance_km
from schemas.sellers import SellerProperty

MIN_COMPARABLES = 5
MAX_COMPARABLES = 10
#: Fewer than this after the widest step and no price is given.
MIN_USABLE = 3
DAYS_PER_MONTH = 30.44


@dataclass(frozen=True, slots=True)
class Subject:
    """The home to price, as the seller described it and the catalog completed it."""

    address: str
    bedrooms: int
    bathrooms: float
    living_area: int
    condition: str
    year_built: int | None = None
    lot_size_sqft: int | None = None
    latitude: float | None = None
    longitude: float | None = None
    city: str | None = None
    postal_code: str | None = None
    neighborhood: str | None = None
    list_price: int | None = None
    listing_id: str | None = None


def city_from_address(address: str) -> str | None:
    """The city of a US address "street, city, ST zip" (the second part), if it has one."""
    parts = [p.strip() for p in address.split(",")]
    return parts[1] if len(parts) >= 3 and parts[1] else None


def street_of(address: str) -> str:
    """The street line of an address ("456 Oak Ave")."""
    return address.split(",")[0].strip()


def subject_from(home: SellerProperty, record: CatalogProperty | None) -> Subject:
    """The subject as the seller described it, completed from the catalog's record of it."""
    r = record
    return Subject(
        address=home.property_address,
        bedrooms=home.bedrooms,
        bathrooms=home.bathrooms,
        living_area=home.square_feet,
        condition=home.condition,
        year_built=home.year_built or (r.year_built if r else None),
        lot_size_sqft=home.lot_size_sqft
        if home.lot_size_sqft is not None
        else (r.lot_size_sqft if r else None),
        latitude=home.latitude if home.latitude is not None else (r.latitude if r else None),
        longitude=home.longitude if home.longitude is not None else (r.longitude if r else None),
        city=home.city or (r.city if r else None) or city_from_address(home.property_address),
        postal_code=home.postal_code or (r.postal_code if r else None),
        neighborhood=home.neighborhood or (r.subdivision if r else None),
        list_price=home.list_price,
        listing_id=r.listing_id if r else None,
    )


@dataclass(frozen=True, slots=True)
class SearchStep:
    """One set of comparable criteria; None means that criterion is not applied."""

    description: str
    radius_km: float | None
    months: int
    size_pct: float
    age_years: int | None
    bedrooms: int | None
    bathrooms: float | None
    same_neighborhood: bool


SEARCH_STEPS = (
    SearchStep("within 1 km (or the same neighbourhood), sold in the last 6 months, living area "
               "within 20 %, age within 10 years, bedrooms and bathrooms within 1",
               1.0, 6, 0.20, 10, 1, 1.0, True),
    SearchStep("within 2 km (or the same postal code), sold in the last 12 months, living area "
               "within 25 %, age within 15 years, bedrooms within 1, bathrooms within 1.5",
               2.0, 12, 0.25, 15, 1, 1.5, False),
    SearchStep("within 5 km, sold in the last 12 months, living area within 30 %, age within 20 "
               "years, bedrooms and bathrooms within 2",
               5.0, 12, 0.30, 20, 2, 2.0, False),
    SearchStep("anywhere in the market area, sold in the last 18 months, living area within 40 %",
               None, 18, 0.40, None, None, None, False),
)  # fmt: skip


@dataclass(frozen=True, slots=True)
class Selection:
    """The comparables found, at which step, and what the widening was."""

    comparables: list[CatalogProperty]
    step: int
    notes: list[str]


def months_before(as_of: date, day: date) -> float:
    """Months from ``day`` to ``as_of`` (negative if after)."""
    return (as_of - day).days / DAYS_PER_MONTH


def comp_distance(subject: Subject, comp: CatalogProperty) -> float | None:
    """Kilometres between subject and comparable, when both have coordinates."""
    if None in (subject.latitude, subject.longitude, comp.latitude, comp.longitude):
        return None
    return distance_km(subject.latitude, subject.longitude, comp.latitude, comp.longitude)  # type: ignore[arg-type]


def _same(a: str | None, b: str | None) -> bool:
    return a is not None and b is not None and a.strip().lower() == b.strip().lower()


def _fits(subject: Subject, comp: CatalogProperty, step: SearchStep, as_of: date) -> bool:
    if comp.close_date is None or not comp.close_price or not comp.living_area:
        return False
    if not 0 <= months_before(as_of, comp.close_date) <= step.months:
        return False
    if abs(comp.living_area - subject.living_area) > step.size_pct * subject.living_area:
        return False
    if (
        step.age_years is not None
        and subject.year_built
        and comp.year_built
        and abs(comp.year_built - subject.year_built) > step.age_years
    ):
        return False
    if (
        step.bedrooms is not None
        and comp.bedrooms is not None
        and abs(comp.bedrooms - subject.bedrooms) > step.bedrooms
    ):
        return False
    if (
        step.bathrooms is not None
        and comp.bathrooms is not None
        and abs(comp.bathrooms - subject.bathrooms) > step.bathrooms
    ):
        return False
    if step.radius_km is None:
        return True
    km = comp_distance(subject, comp)
    if km is not None:
        return km <= step.radius_km
    # Without coordinates, a neighbourhood or postal code stands in for the radius.
    if step.same_neighborhood and subject.neighborhood:
        return _same(comp.subdivision, subject.neighborhood)
    if subject.postal_code:
        return _same(comp.postal_code, subject.postal_code)
    return step.radius_km >= 5.0  # nothing finer known: the market area itself


def similarity(subject: Subject, comp: CatalogProperty, as_of: date) -> float:
    """Lower is more similar: distance, size, age, rooms and recency on comparable scales."""
    km = comp_distance(subject, comp)
    score = (km if km is not None else 1.5) / 1.0
    score += abs((comp.living_area or 0) - subject.living_area) / subject.living_area / 0.10
    if subject.year_built and comp.year_built:
        score += abs(comp.year_built - subject.year_built) / 10
    score += abs((comp.bedrooms or subject.bedrooms) - subject.bedrooms) * 0.5
    score += abs((comp.bathrooms or subject.bathrooms) - subject.bathrooms) * 0.5
    if comp.close_date:
        score += months_before(as_of, comp.close_date) / 6
    return score


def select_comparables(subject: Subject, sales: list[CatalogProperty], as_of: date) -> Selection:
    """The most similar sales at the first step that finds MIN_COMPARABLES, widening as needed."""
    candidates = [
        s for s in sales
        if s.listing_id != subject.listing_id and not _same(s.address, subject.address)
    ]  # fmt: skip
    notes: list[str] = []
    found: list[CatalogProperty] = []
    for index, step in enumerate(SEARCH_STEPS):
        found = [s for s in candidates if _fits(subject, s, step, as_of)]
        if len(found) >= MIN_COMPARABLES:
            break
        if index + 1 < len(SEARCH_STEPS):
            notes.append(
                f"Only {len(found)} sale(s) {step.description}; widened the search to: "
                f"{SEARCH_STEPS[index + 1].description}."
            )
    found.sort(key=lambda s: similarity(subject, s, as_of))
    return Selection(comparables=found[:MAX_COMPARABLES], step=index, notes=notes)


@dataclass(frozen=True, slots=True)
class UnitValues:
    """Dollar value of one unit of each feature in this market, and where it comes from."""

    per_sqft: float
    per_year_newer: float
    per_bedroom: float
    per_bathroom: float
    per_month: float
    source: str

    def as_dict(self) -> dict[str, float | str]:
        """For the result's market_analysis."""
        return {
            "per_sqft": round(self.per_sqft, 2),
            "per_year_newer": round(self.per_year_newer),
            "per_bedroom": round(self.per_bedroom),
            "per_bathroom": round(self.per_bathroom),
            "per_month": round(self.per_month),
            "source": self.source,
        }


def _fallback(median_price: float, median_ppsf: float, n: int) -> UnitValues:
    # Rules of thumb when the market is too thin for a regression: the marginal square foot is
    # worth about half the average one.
    return UnitValues(
        per_sqft=0.5 * median_ppsf,
        per_year_newer=0.002 * median_price,
        per_bedroom=0.01 * median_price,
        per_bathroom=0.02 * median_price,
        per_month=0.0,
        source=f"rules of thumb ({n} sales are too few for a regression)",
    )


def unit_values(sales: list[CatalogProperty], as_of: date) -> UnitValues:
    """Least squares of sale price on living area, age, bedrooms, bathrooms and months since
    the sale, with one level per neighbourhood, over the market's sales; each value is kept
    within a plausible band around the market's own medians."""
    usable = [
        s for s in sales
        if s.close_price and s.living_area and s.year_built and s.bedrooms is not None
        and s.bathrooms is not None and s.close_date
    ]  # fmt: skip
    prices = [s.close_price or 0 for s in usable] or [0]
    median_price = float(np.median(prices))
    median_ppsf = float(np.median([(s.close_price or 0) / (s.living_area or 1) for s in usable] or [0]))
    if len(usable) < 30:
        return _fallback(median_price, median_ppsf, len(usable))
    areas = sorted({(s.subdivision or "").lower() for s in usable})
    columns = len(areas) + 5
    x = np.zeros((len(usable), columns))
    y = np.array(prices, dtype=float)
    for i, s in enumerate(usable):
        x[i, areas.index((s.subdivision or "").lower())] = 1.0
        x[i, -5:] = (
            s.living_area, s.year_built, s.bedrooms, s.bathrooms, months_before(as_of, s.close_date),  # type: ignore[arg-type]
        )  # fmt: skip
    coef, *_ = np.linalg.lstsq(x, y, rcond=None)
    per_sqft, per_year, per_bed, per_bath, per_month = (float(c) for c in coef[-5:])
    return UnitValues(
        per_sqft=min(max(per_sqft, 0.2 * median_ppsf), 1.2 * median_ppsf),
        per_year_newer=min(max(per_year, 0.0), 0.01 * median_price),
        per_bedroom=min(max(per_bed, 0.0), 0.05 * median_price),
        per_bathroom=min(max(per_bath, 0.0), 0.06 * median_price),
        # Older sales are cheaper in a rising market: the coefficient is negative then.
        per_month=min(max(-per_month, -0.015 * median_price), 0.015 * median_price),
        source=f"regression of {len(usable)} sales in the market area",
    )
