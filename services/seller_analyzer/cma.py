"""Comparative market analysis: adjustment grid, weights, outliers, range, market, advice. Pure.

adjusted price = comparable's sale price + Σ (subject feature - comparable feature) x unit value,
with unit values from the market's own sales (comparables.unit_values). Comparables are
weighted by the inverse of their gross adjustment (and of their distance), outliers (more than
3 median absolute deviations from the median $/sq ft, before or after adjustment) are shown but
not counted, and the range and confidence follow AVM practice: FSD = weighted standard
deviation of the adjusted values / estimate (calibrated); range = estimate x (1 ± FSD);
confidence = 1 - FSD.
"""

from __future__ import annotations

import statistics
from dataclasses import dataclass
from datetime import UTC, date, datetime

from schemas.catalog import CatalogProperty
from schemas.sellers import AdjustedComparable, Cma, PriceRecommendation, SellerAnalysisResult
from services.seller_analyzer.comparables import (
    MIN_USABLE,
    SEARCH_STEPS,
    Subject,
    UnitValues,
    comp_distance,
    months_before,
    select_comparables,
    unit_values,
)

#: Price effect of the subject's condition against comparables assumed in good condition.
CONDITION_FACTORS = {"excellent": 0.05, "good": 0.0, "fair": -0.07, "poor": -0.15}
#: A comparable adjusted by more than this share of its price is weak (and says so).
HEAVY_ADJUSTMENT = 0.25
OUTLIER_MADS = 3.0
#: Confidence lost per widening step: far or old comparables price less surely.
WIDENING_PENALTY = 0.04
LIST_PRICE_TOLERANCE = 0.05
#: The adjusted values' spread understates the error of their mean for the subject (the
#: subject's own price noise is not in it); this factor makes the low-high range hold about
#: two thirds of held-out sales on the demo catalog (bench/cma_accuracy.py).
FSD_CALIBRATION = 1.5


class CmaError(Exception):
    """The analysis cannot give a price; ``code`` names why, the message says it to a person."""

    def __init__(self, code: str, message: str) -> None:
        super().__init__(message)
        self.code = code
        self.message = message


def check_subject(subject: Subject, as_of: date) -> None:
    """Refuse homes that cannot exist, with the reason (the API's schema allows wide ranges)."""
    problems = []
    if subject.living_area <= 0:
        problems.append(f"living area must be positive (got {subject.living_area} sq ft)")
    elif subject.living_area > 20_000:
        problems.append(f"{subject.living_area:,} sq ft is beyond any home in this market")
    if subject.bedrooms > 12:
        problems.append(f"{subject.bedrooms} bedrooms is not a single home")
    elif subject.bedrooms and subject.living_area > 0 and subject.living_area / subject.bedrooms < 100:
        problems.append(
            f"{subject.bedrooms} bedrooms do not fit in {subject.living_area:,} sq ft (under 100 sq ft each)"
        )
    if subject.bathrooms < 0 or subject.bathrooms > max(subject.bedrooms, 1) + 4:
        problems.append(f"{subject.bathrooms:g} bathrooms for {subject.bedrooms} bedrooms is implausible")
    if subject.year_built is not None and subject.year_built > as_of.year + 1:
        problems.append(f"year built {subject.year_built} is in the future")
    if problems:
        raise CmaError("implausible_home", "Cannot price this home: " + "; ".join(problems) + ".")


@dataclass(frozen=True, slots=True)
class _Graded:
    comp: CatalogProperty
    adjustments: dict[str, int]
    adjusted: float
    gross: float


def adjust(subject: Subject, comp: CatalogProperty, units: UnitValues, as_of: date) -> _Graded:
    """One row of the adjustment grid: what the comparable would have sold for as the subject."""
    price = float(comp.close_price or 0)
    adjustments: dict[str, float] = {}
    if comp.close_date:
        adjustments["time"] = months_before(as_of, comp.close_date) * units.per_month
    adjustments["living_area"] = (subject.living_area - (comp.living_area or 0)) * units.per_sqft
    if subject.year_built and comp.year_built:
        adjustments["age"] = (subject.year_built - comp.year_built) * units.per_year_newer
    if comp.bedrooms is not None:
        adjustments["bedrooms"] = (subject.bedrooms - comp.bedrooms) * units.per_bedroom
    if comp.bathrooms is not None:
        adjustments["bathrooms"] = (subject.bathrooms - comp.bathrooms) * units.per_bathroom
    adjustments["condition"] = CONDITION_FACTORS.get(subject.condition, 0.0) * price
    rounded = {name: round(value) for name, value in adjustments.items()}
    gross = sum(abs(v) for v in adjustments.values()) / price if price else 1.0
    return _Graded(comp, rounded, price + sum(adjustments.values()), gross)


def _outliers(values: list[float]) -> list[bool]:
    median = statistics.median(values)
    mad = statistics.median(abs(v - median) for v in values)
    if mad == 0:
        return [False] * len(values)
    return [abs(v - median) > OUTLIER_MADS * 1.4826 * mad for v in values]


def _weighted_spread(values: list[float], weights: list[float]) -> tuple[float, float]:
    total = sum(weights)
    mean = sum(v * w for v, w in zip(values, weights, strict=True)) / total
    variance = sum(w * (v - mean) ** 2 for v, w in zip(values, weights, strict=True)) / total
    return mean, variance**0.5


def market_conditions(
    recent_sales: list[CatalogProperty], active_listings: int
) -> tuple[str, dict[str, float | int | None]]:
    """A label (seller's, balanced, buyer's market) from months of supply and days on market."""
    per_month = len(recent_sales) / 12
    supply = round(active_listings / per_month, 1) if per_month else None
    doms = [s.days_on_market for s in recent_sales if s.days_on_market is not None]
    dom = round(statistics.median(doms)) if doms else None
    if supply is None:
        label = "Unknown market (no sales in the last 12 months)"
    elif supply < 4:
        label = "Strong seller's market" if dom is not None and dom <= 21 else "Seller's market"
    elif supply <= 6:
        label = "Balanced market"
    else:
        label = "Strong buyer's market" if dom is not None and dom >= 60 else "Buyer's market"
    return label, {"months_of_supply": supply, "days_on_market": dom, "active_listings": active_listings,
                   "closed_sales_12_months": len(recent_sales)}  # fmt: skip


def _k(dollars: float) -> str:
    return f"${dollars / 1000:,.0f}k"


def recommendations(
    subject: Subject, price: PriceRecommendation, label: str, dom: float | int | None, widened: bool
) -> list[str]:
    """What the seller should do, from the estimate, their intended price and the market."""
    advice = [f"Price at {_k(price.mid)} (range {_k(price.low)}-{_k(price.high)})"]
    if subject.list_price:
        gap = (subject.list_price - price.mid) / price.mid
        if gap > LIST_PRICE_TOLERANCE:
            advice.append(
                f"Your intended {_k(subject.list_price)} is {gap:.0%} above the estimate: expect more "
                "days on market and a price cut; listing near the estimate sells faster."
            )
        elif gap < -LIST_PRICE_TOLERANCE:
            advice.append(
                f"Your intended {_k(subject.list_price)} is {-gap:.0%} below the estimate: you may "
                f"leave about {_k(price.mid - subject.list_price)} on the table."
            )
        else:
            advice.append(f"Your intended {_k(subject.list_price)} is in line with the market.")
    if "seller" in label.lower():
        days = f" within about {dom} days" if dom is not None else ""
        advice.append(f"{label}: list at the estimate and expect offers{days}.")
    elif "buyer" in label.lower():
        advice.append(
            f"{label}: price at or just below the estimate, stage the home and expect to negotiate."
        )
    if subject.condition in ("fair", "poor"):
        advice.append(
            f"Condition is {subject.condition}: repairs before listing could recover part of the "
            f"{-CONDITION_FACTORS[subject.condition]:.0%} taken off for it."
        )
    if widened or price.confidence < 0.7:
        advice.append("Few close comparables: have an agent confirm the price with a visit.")
    return advice


def analyze(
    subject: Subject,
    sales: list[CatalogProperty],
    active_listings: int,
    as_of: date,
    market_area: str,
) -> SellerAnalysisResult:
    """The CMA of ``subject`` from the market area's closed sales (up to 18 months old)."""
    check_subject(subject, as_of)
    if not sales:
        raise CmaError(
            "no_sales", f"No closed sales in {market_area} in the catalog: nothing to compare with."
        )
    selection = select_comparables(subject, sales, as_of)
    if len(selection.comparables) < MIN_USABLE:
        raise CmaError(
            "too_few_comparables",
            f"Only {len(selection.comparables)} comparable sale(s) in {market_area}, even "
            f"{SEARCH_STEPS[-1].description}; at least {MIN_USABLE} are needed.",
        )
    recent = [s for s in sales if s.close_date and months_before(as_of, s.close_date) <= 12]
    units = unit_values(sales, as_of)
    graded = [adjust(subject, comp, units, as_of) for comp in selection.comparables]
    raw_ppsf = _outliers([(g.comp.close_price or 0) / (g.comp.living_area or 1) for g in graded])
    adjusted_out = _outliers([g.adjusted for g in graded])
    outlier = [a or b for a, b in zip(raw_ppsf, adjusted_out, strict=True)]
    if all(outlier):  # no majority to judge against: keep them all
        outlier = [False] * len(graded)
    raw_weights = [
        0.0 if out else 1.0 / ((g.gross + 0.05) * (0.5 + (comp_distance(subject, g.comp) or 0.5)))
        for g, out in zip(graded, outlier, strict=True)
    ]
    total = sum(raw_weights)
    weights = [w / total for w in raw_weights]
    kept = [(g.adjusted, w) for g, w in zip(graded, weights, strict=True) if w > 0]
    estimate, spread = _weighted_spread([v for v, _ in kept], [w for _, w in kept])
    # A spread from few comparables understates the error; never claim better than 3 %.
    fsd = max(FSD_CALIBRATION * spread / estimate * (1 + 1 / len(kept)) ** 0.5, 0.03)
    confidence = max(0.0, min(1.0, 1 - fsd - WIDENING_PENALTY * selection.step))
    price = PriceRecommendation(
        low=round(estimate * (1 - fsd), -3),
        mid=round(estimate, -3),
        high=round(estimate * (1 + fsd), -3),
        confidence=round(confidence, 2),
    )
    label, market = market_conditions(recent, active_listings)
    recent_prices = [s.close_price or 0 for s in recent] or [0]
    ppsf = [(s.close_price or 0) / s.living_area for s in recent if s.living_area] or [0]
    market_analysis = {
        "market_area": market_area,
        "median_price": round(statistics.median(recent_prices)),
        "price_per_sqft": round(statistics.median(ppsf)),
        **market,
        "unit_values": units.as_dict(),
        "comparable_search": {
            "step": selection.step + 1,
            "criteria": SEARCH_STEPS[selection.step].description,
            "widened": selection.step > 0,
            "notes": selection.notes,
        },
        "comparables_used": len(kept),
        "outliers": sum(outlier),
        "forecast_standard_deviation": round(fsd, 4),
        "estimate_method": "weighted mean of the adjusted prices; weight 1 / ((gross adjustment + 5 %) "
        "x (0.5 + km away)), outliers 0",
    }
    comparables = [
        _comparable(subject, g, w, out) for g, w, out in zip(graded, weights, outlier, strict=True)
    ]
    return SellerAnalysisResult(
        cma=Cma(
            market_analysis=market_analysis, comparable_properties=comparables, price_recommendation=price
        ),
        market_conditions=label,
        recommendations=recommendations(subject, price, label, market["days_on_market"], selection.step > 0),
    )


def _comparable(subject: Subject, g: _Graded, weight: float, outlier: bool) -> AdjustedComparable:
    comp = g.comp
    notes = []
    if outlier:
        notes.append(
            "Outlier: its $/sq ft is more than 3 median absolute deviations from the others'; not counted."
        )
    if g.gross > HEAVY_ADJUSTMENT:
        notes.append(f"Heavily adjusted ({g.gross:.0%} of its price): a weak comparable.")
    km = comp_distance(subject, comp)
    return AdjustedComparable(
        listing_id=comp.listing_id,
        address=comp.address or comp.listing_id,
        price=comp.close_price or 0,
        bedrooms=comp.bedrooms,
        bathrooms=comp.bathrooms,
        square_feet=comp.living_area,
        year_built=comp.year_built,
        status="sold",
        sold_at=datetime(comp.close_date.year, comp.close_date.month, comp.close_date.day, tzinfo=UTC)
        if comp.close_date
        else None,
        distance_km=round(km, 2) if km is not None else None,
        adjustments=g.adjustments,
        adjusted_price=round(g.adjusted),
        gross_adjustment_pct=round(g.gross * 100, 1),
        weight=round(weight, 3),
        outlier=outlier,
        notes=notes,
    )
