"""Every CMA step on small hand-checked cases, and the whole analysis on the demo catalog."""

from __future__ import annotations

import random
import statistics
from dataclasses import replace
from datetime import date, timedelta

import pytest

from jorge_cli.demo_catalog import demo_catalog
from schemas.catalog import CatalogProperty
from schemas.sellers import PriceRecommendation, SellerProperty
from services.seller_analyzer.cma import (
    CmaError,
    adjust,
    analyze,
    check_subject,
    market_conditions,
    recommendations,
)
from services.seller_analyzer.comparables import (
    MIN_COMPARABLES,
    Subject,
    UnitValues,
    city_from_address,
    select_comparables,
    subject_from,
    unit_values,
)

AS_OF = date(2026, 11, 23)
SUBJECT = Subject(
    address="456 Oak Ave, Rancho Cucamonga, CA",
    bedrooms=4,
    bathrooms=2.5,
    living_area=2_000,
    condition="good",
    year_built=2000,
    latitude=34.128,
    longitude=-117.535,
    city="Rancho Cucamonga",
    neighborhood="Victoria",
)
SALE = CatalogProperty(
    listing_id="S1",
    standard_status="Closed",
    address="1 Elm St, Rancho Cucamonga, CA 91739",
    city="Rancho Cucamonga",
    postal_code="91739",
    subdivision="Victoria",
    latitude=34.128,
    longitude=-117.535,
    list_price=None,
    close_price=600_000,
    close_date=AS_OF - timedelta(days=30),
    bedrooms=3,
    bathrooms=2.0,
    living_area=1_800,
    lot_size_sqft=6_000,
    year_built=1990,
    days_on_market=20,
)
UNITS = UnitValues(
    per_sqft=200, per_year_newer=1_000, per_bedroom=10_000, per_bathroom=15_000, per_month=0, source="test"
)


def sale(listing_id: str, **changes: object) -> CatalogProperty:
    return replace(SALE, listing_id=listing_id, address=f"{listing_id} Elm St", **changes)  # type: ignore[arg-type]


def test_implausible_homes_are_refused_with_the_reason() -> None:
    check_subject(SUBJECT, AS_OF)
    with pytest.raises(CmaError) as forty:
        check_subject(replace(SUBJECT, bedrooms=40), AS_OF)
    assert forty.value.code == "implausible_home" and "40 bedrooms" in forty.value.message
    with pytest.raises(CmaError, match="living area must be positive"):
        check_subject(replace(SUBJECT, living_area=-5), AS_OF)
    with pytest.raises(CmaError, match="do not fit in 500 sq ft"):
        check_subject(replace(SUBJECT, bedrooms=6, living_area=500), AS_OF)
    with pytest.raises(CmaError, match="in the future"):
        check_subject(replace(SUBJECT, year_built=2030), AS_OF)


def test_the_adjustment_grid_by_hand() -> None:
    graded = adjust(SUBJECT, SALE, UNITS, AS_OF)
    # 200 sq ft x $200, 10 years newer x $1,000, 1 bedroom x $10,000, 0.5 bath x $15,000.
    assert graded.adjustments == {
        "time": 0,
        "living_area": 40_000,
        "age": 10_000,
        "bedrooms": 10_000,
        "bathrooms": 7_500,
        "condition": 0,
    }
    assert graded.adjusted == 667_500
    assert graded.gross == pytest.approx(67_500 / 600_000)
    # A bigger comparable is adjusted down; condition and time move the price too.
    poor = adjust(replace(SUBJECT, condition="poor"), sale("S2", living_area=2_200), UNITS, AS_OF)
    assert poor.adjustments["living_area"] == -40_000 and poor.adjustments["condition"] == -90_000
    rising = replace(UNITS, per_month=2_000)
    three_months = adjust(
        SUBJECT, sale("S3", close_date=AS_OF - timedelta(days=round(3 * 30.44))), rising, AS_OF
    )
    assert three_months.adjustments["time"] == pytest.approx(6_000, abs=50)


def test_unit_values_are_recovered_from_the_market() -> None:
    rng = random.Random(7)
    sales = []
    for i in range(40):
        sqft, year, beds = rng.randint(1200, 3000), rng.randint(1960, 2020), rng.randint(2, 5)
        baths, days = rng.choice([1.0, 1.5, 2.0, 2.5, 3.0]), rng.randint(5, 500)
        months = days / 30.44
        price = 100_000 + 250 * sqft + 1_500 * (year - 1970) + 5_000 * beds + 10_000 * baths - 1_000 * months
        sales.append(
            sale(f"R{i}", living_area=sqft, year_built=year, bedrooms=beds, bathrooms=baths,
                 close_price=round(price), close_date=AS_OF - timedelta(days=days))
        )  # fmt: skip
    units = unit_values(sales, AS_OF)
    assert units.per_sqft == pytest.approx(250, rel=0.01)
    assert units.per_year_newer == pytest.approx(1_500, rel=0.02)
    assert units.per_bedroom == pytest.approx(5_000, rel=0.05)
    assert units.per_bathroom == pytest.approx(10_000, rel=0.05)
    assert units.per_month == pytest.approx(1_000, rel=0.05)  # older sales sold for less
    assert units.source == "regression of 40 sales in the market area"
    thin = unit_values(sales[:10], AS_OF)
    assert thin.source.startswith("rules of thumb")


def test_comparables_widen_step_by_step_and_say_so() -> None:
    near = [
        sale(f"N{i}", living_area=1_900 + 20 * i, year_built=1998, bedrooms=4, bathrooms=2.5)
        for i in range(5)
    ]
    chosen = select_comparables(SUBJECT, near, AS_OF)
    assert chosen.step == 0 and chosen.notes == [] and len(chosen.comparables) == 5
    # Only two within 1 km; three more 1.5 km away: the second step finds them.
    away = [replace(s, latitude=34.1415) for s in near[2:]]
    chosen = select_comparables(SUBJECT, near[:2] + away, AS_OF)
    assert chosen.step == 1 and len(chosen.comparables) == 5
    assert chosen.notes[0].startswith("Only 2 sale(s) within 1 km")
    assert "widened the search to: within 2 km" in chosen.notes[0]
    # The subject's own earlier sale is never its comparable.
    own = replace(near[0], address=SUBJECT.address)
    assert own not in select_comparables(SUBJECT, [own, *near[1:]], AS_OF).comparables


def _market(n: int = 6, outlier: bool = False) -> list[CatalogProperty]:
    sales = [
        sale(f"C{i}", living_area=1_950 + 20 * i, year_built=2000, bedrooms=4, bathrooms=2.5,
             close_price=700_000 + 5_000 * i)
        for i in range(n)
    ]  # fmt: skip
    if outlier:
        sales.append(
            sale("X", living_area=2_000, year_built=2000, bedrooms=4, bathrooms=2.5, close_price=1_400_000)
        )
    return sales


def test_outliers_are_flagged_and_not_counted() -> None:
    result = analyze(SUBJECT, _market(outlier=True), 3, AS_OF, "Rancho Cucamonga")
    comps = {c.listing_id: c for c in result.cma.comparable_properties}
    assert comps["X"].outlier and comps["X"].weight == 0 and "Outlier" in comps["X"].notes[0]
    assert result.cma.market_analysis["outliers"] == 1
    assert 690_000 < result.cma.price_recommendation.mid < 740_000


def test_weights_fall_with_the_gross_adjustment() -> None:
    sales = [
        *_market(5),
        sale("FAR", living_area=1_700, year_built=1992, bedrooms=3, bathrooms=2.0, close_price=640_000),
    ]
    result = analyze(SUBJECT, sales, 3, AS_OF, "Rancho Cucamonga")
    comps = {c.listing_id: c for c in result.cma.comparable_properties}
    assert comps["FAR"].gross_adjustment_pct > comps["C0"].gross_adjustment_pct  # type: ignore[operator]
    assert comps["FAR"].weight < comps["C0"].weight  # type: ignore[operator]
    assert sum(c.weight or 0 for c in comps.values()) == pytest.approx(1.0, abs=0.01)


def test_range_and_confidence_from_the_spread() -> None:
    same = [
        sale(f"E{i}", living_area=2_000, year_built=2000, bedrooms=4, bathrooms=2.5, close_price=700_000)
        for i in range(5)
    ]
    price = analyze(SUBJECT, same, 3, AS_OF, "RC").cma.price_recommendation
    # No spread at all: the 3 % floor of the FSD gives the range and a confidence of 0.97.
    assert (price.low, price.mid, price.high, price.confidence) == (679_000, 700_000, 721_000, 0.97)
    spread = analyze(SUBJECT, _market(), 3, AS_OF, "RC").cma
    assert (
        spread.price_recommendation.low < spread.price_recommendation.mid < spread.price_recommendation.high
    )
    fsd = spread.market_analysis["forecast_standard_deviation"]
    assert spread.price_recommendation.confidence == pytest.approx(1 - fsd, abs=0.01)


def test_market_conditions_from_supply_and_days_on_market() -> None:
    year = [sale(f"M{i}", days_on_market=14) for i in range(12)]  # one sale a month
    assert market_conditions(year, 2)[0] == "Strong seller's market"
    assert market_conditions(year, 2)[1]["months_of_supply"] == 2.0
    assert market_conditions(year, 5)[0] == "Balanced market"
    assert market_conditions(year, 9)[0] == "Buyer's market"
    slow = [replace(s, days_on_market=75) for s in year]
    assert market_conditions(slow, 9)[0] == "Strong buyer's market"
    assert market_conditions([], 9)[0].startswith("Unknown market")


def test_recommendations_compare_the_intended_price_with_the_estimate() -> None:
    price = PriceRecommendation(low=680_000, mid=700_000, high=720_000, confidence=0.9)
    high = recommendations(replace(SUBJECT, list_price=780_000), price, "Buyer's market", 40, False)
    assert high[0] == "Price at $700k (range $680k-$720k)"
    assert high[1].startswith("Your intended $780k is 11% above the estimate")
    assert any(r.startswith("Buyer's market: price at or just below") for r in high)
    low = recommendations(
        replace(SUBJECT, list_price=630_000, condition="fair"), price, "Seller's market", 14, True
    )
    assert low[1] == "Your intended $630k is 10% below the estimate: you may leave about $70k on the table."
    assert any("repairs before listing" in r for r in low)
    assert low[-1].startswith("Few close comparables")


def test_no_sales_and_too_few_comparables_are_clear_errors() -> None:
    with pytest.raises(CmaError) as none:
        analyze(SUBJECT, [], 0, AS_OF, "Nowhere")
    assert none.value.code == "no_sales" and "Nowhere" in none.value.message
    with pytest.raises(CmaError) as few:
        analyze(SUBJECT, _market(2), 0, AS_OF, "RC")
    assert few.value.code == "too_few_comparables"
    assert MIN_COMPARABLES > 2


def test_the_subject_is_completed_from_the_catalog() -> None:
    home = SellerProperty(
        property_address="1 Elm St, Upland, CA", bedrooms=3, bathrooms=2, square_feet=1_800, condition="good"
    )
    assert subject_from(home, None).city == "Upland"
    known = subject_from(home, SALE)
    assert (known.city, known.year_built, known.latitude, known.neighborhood) == (
        "Rancho Cucamonga",
        1990,
        34.128,
        "Victoria",
    )
    assert city_from_address("456 Oak Ave") is None


def test_held_out_demo_sales_are_priced_within_a_few_percent() -> None:
    rows = [r.to_property() for r in demo_catalog(AS_OF)]
    sales = [r for r in rows if r.standard_status == "Closed" and r.city == "Rancho Cucamonga"]
    held = sorted((s for s in sales if (AS_OF - s.close_date).days <= 60), key=lambda s: s.listing_id)[:25]  # type: ignore[operator]
    errors = []
    for home in held:
        subject = Subject(
            address=home.address or "", bedrooms=home.bedrooms or 0, bathrooms=home.bathrooms or 0,
            living_area=home.living_area or 0, condition="good", year_built=home.year_built,
            latitude=home.latitude, longitude=home.longitude, city=home.city,
        )  # fmt: skip
        others = [s for s in sales if s.listing_id != home.listing_id and s.close_date <= home.close_date]  # type: ignore[operator]
        result = analyze(subject, others, 30, home.close_date, "Rancho Cucamonga")  # type: ignore[arg-type]
        errors.append(
            abs(result.cma.price_recommendation.mid - (home.close_price or 0)) / (home.close_price or 1)
        )
    assert statistics.median(errors) < 0.07
