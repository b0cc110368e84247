"""Buyer matching on hand-checked cases: filters, partial credit, weights, sorting, explanations."""

from __future__ import annotations

from dataclasses import replace

import pytest

from schemas.buyers import BuyerPreferences
from schemas.catalog import CatalogProperty
from schemas.qualification import FinancialReadiness, Intent, PropertyPreferences, Qualification, Temperature
from services.matcher.leads import lead_preferences, lead_session_id
from services.matcher.scoring import WEIGHTS, assess, match, passes_filters, price_window

HOME = CatalogProperty(
    listing_id="L1",
    standard_status="Active",
    address="123 Main St, Rancho Cucamonga, CA 91739",
    city="Rancho Cucamonga",
    postal_code="91739",
    subdivision="Victoria",
    latitude=34.128,
    longitude=-117.535,
    list_price=725_000,
    close_price=None,
    close_date=None,
    bedrooms=3,
    bathrooms=2.0,
    living_area=1_850,
    lot_size_sqft=6_000,
    year_built=1998,
    days_on_market=12,
    property_kind="single_family",
    garage_spaces=2,
    pool=False,
    view=False,
    stories=2,
)
WANTS = BuyerPreferences(
    budget_min=600_000, budget_max=800_000, bedrooms=[3, 4], neighborhoods=["Victoria", "Haven"]
)


def home(listing_id: str = "L1", **changes: object) -> CatalogProperty:
    return replace(HOME, listing_id=listing_id, **changes)  # type: ignore[arg-type]


def test_weights_sum_to_one() -> None:
    assert sum(WEIGHTS.values()) == pytest.approx(1.0)


def test_hard_filters_budget_tolerance_bedrooms_areas_types_and_status() -> None:
    assert price_window(WANTS) == (510_000, 840_000)
    assert passes_filters(WANTS, home())
    assert passes_filters(WANTS, home(list_price=840_000))  # 5 % over: inside the tolerance
    assert not passes_filters(WANTS, home(list_price=840_001))
    assert not passes_filters(WANTS, home(list_price=509_999))
    assert not passes_filters(WANTS, home(bedrooms=2))  # must-have bedrooms
    assert passes_filters(WANTS, home(bedrooms=5))  # more is allowed, with less credit
    assert not passes_filters(WANTS, home(subdivision="Etiwanda", city="Rancho Cucamonga"))
    assert passes_filters(WANTS, home(subdivision="haven"))  # areas are case-insensitive
    assert not passes_filters(WANTS, home(standard_status="Pending"))
    assert not passes_filters(WANTS, home(standard_status="Withdrawn"))  # gone from a snapshot
    condos = WANTS.model_copy(update={"property_types": ["condo"]})
    assert not passes_filters(condos, home())
    by_city = WANTS.model_copy(update={"neighborhoods": ["rancho cucamonga"]})
    assert passes_filters(by_city, home(subdivision="Etiwanda"))


def test_partial_credit_inside_the_tolerance_bands() -> None:
    wants = WANTS.model_copy(update={"bathrooms": 2.5, "neighborhoods": ["Victoria", "Rancho Cucamonga"]})
    a = assess(
        wants, home(list_price=820_000, bedrooms=5, bathrooms=2.0, subdivision="Etiwanda"), 390.0, None
    )
    # 2.5 % over budget is half the 5 % tolerance: 1 - 0.5 * 0.5 = 0.75.
    assert a.scores["price"] == pytest.approx(0.75)
    assert a.scores["location"] == 0.8  # in an area asked for by its city, not its neighbourhood
    assert a.scores["bedrooms"] == 0.7  # one more than the most wanted (4)
    assert assess(wants, home(bedrooms=6), None, None).scores["bedrooms"] == 0.5
    assert a.scores["bathrooms"] == 0.6  # half a bathroom short
    assert any("over the $800k budget" in risk for risk in a.risks)
    under = assess(WANTS, home(list_price=555_000), 390.0, None)
    # 7.5 % under budget_min is half the 15 % band: 1 - 0.3 * 0.5 = 0.85.
    assert under.scores["price"] == pytest.approx(0.85)


def test_the_weighted_score_by_hand() -> None:
    # $/sq ft 725000/1850 = 391.9; median 391.9 gives a ratio of 1.0: value = 1 - 0.8 * 0.1 / 0.35.
    a = assess(WANTS, home(), 725_000 / 1_850, None)
    value = 1 - 0.8 * 0.1 / 0.35
    assert a.scores == {
        "price": 1.0,
        "location": 1.0,
        "bedrooms": 1.0,
        "bathrooms": 1.0,
        "value": pytest.approx(value),
        "features": 1.0,
    }
    assert a.score == pytest.approx(0.9 + 0.1 * value)


def test_must_haves_are_checked_where_the_catalog_knows_them() -> None:
    wants = WANTS.model_copy(update={"must_haves": ["garage", "pool", "Solar panels"]})
    a = assess(wants, home(), None, None)
    assert a.scores["features"] == pytest.approx((1 + 0 + 0.5) / 3)
    assert "has garage" in a.fits
    assert "no pool" in a.missing
    assert any(m.startswith("Solar panels: not in the listing data") for m in a.missing)


def test_risks_of_old_homes_and_stale_listings() -> None:
    a = assess(WANTS, home(year_built=1962, days_on_market=95), None, None)
    assert any("built in 1962" in r for r in a.risks)
    assert any("95 days on market" in r for r in a.risks)


def test_weak_matches_are_dropped() -> None:
    wants = BuyerPreferences(
        budget_min=600_000, budget_max=800_000, bedrooms=[3], bathrooms=3, must_haves=["pool"],
        latitude=34.0, longitude=-117.0,
    )  # fmt: skip
    # 5 % over budget, 2 bedrooms more, 2 baths short, no pool, far away, dear per sq ft.
    weak = home("weak", list_price=840_000, bedrooms=5, bathrooms=1.0, living_area=1_200)
    good = home("good", latitude=34.0, longitude=-117.0, bathrooms=3.0, pool=True)
    results = match(wants, [weak, good], "relevance", 10)
    assert [m.property.id for m in results.matches] == ["good"]
    assert results.total_matches == 1
    assert assess(wants, weak, 725_000 / 1_850, 60.0).score < 0.4


def test_sorting_by_relevance_price_and_distance() -> None:
    wants = WANTS.model_copy(update={"latitude": 34.128, "longitude": -117.535})
    near_dear = home("near", list_price=790_000)
    far_cheap = home("far", list_price=650_000, latitude=34.16, longitude=-117.60, subdivision="Haven")
    extra_bed = home("five", list_price=700_000, bedrooms=5, latitude=34.14, longitude=-117.55)
    homes = [near_dear, far_cheap, extra_bed]
    by_price = match(wants, homes, "price", 10)
    assert [m.property.id for m in by_price.matches] == ["far", "five", "near"]
    by_distance = match(wants, homes, "distance", 10)
    assert [m.property.id for m in by_distance.matches] == ["near", "five", "far"]
    assert by_distance.matches[0].property.distance_km == 0.0
    by_relevance = match(wants, homes, "relevance", 10)
    assert by_relevance.matches[-1].property.id == "five"  # the extra bedrooms cost credit
    assert [m.rank for m in by_relevance.matches] == [1, 2, 3]
    assert by_relevance.matches[0].match_score >= by_relevance.matches[1].match_score


def test_explanation_and_next_actions() -> None:
    results = match(WANTS, [home(), home("L2", list_price=650_000, living_area=2_400)], "relevance", 1)
    assert results.total_matches == 2 and len(results.matches) == 1  # max_results after counting
    top = results.matches[0]
    assert top.property.id == "L2"  # cheaper per sq ft: better value
    assert top.explanation == "Perfect match: 3BR, $650k, Victoria"
    assert "in Victoria" in top.fits and "3 bedrooms" in top.fits
    assert set(top.score_breakdown) == set(WEIGHTS)
    assert results.next_actions == ["Schedule showing", "Request CMA"]
    empty = match(WANTS, [], "relevance", 10)
    assert empty.total_matches == 0 and empty.next_actions[0].startswith("Widen")


def _qualification(intent: Intent, **money: int | None) -> Qualification:
    return Qualification(
        intent=intent,
        temperature=Temperature.HOT,
        financial_readiness=FinancialReadiness(**money),
        property_preferences=PropertyPreferences(bedrooms=3, areas=["Victoria"], property_type="condo"),
        next_action="Schedule showing",
        confidence=0.8,
        engine="rules-v1",
    )


def test_a_qualified_buyer_lead_becomes_preferences() -> None:
    prefs = lead_preferences(_qualification(Intent.BUYER, budget_max=750_000))
    assert prefs is not None
    assert (prefs.budget_min, prefs.budget_max) == (562_500, 750_000)  # 75 % of a stated maximum
    assert prefs.bedrooms == [3] and prefs.neighborhoods == ["Victoria"] and prefs.property_types == ["condo"]
    assert lead_preferences(_qualification(Intent.SELLER, budget_max=750_000)) is None
    both = lead_preferences(_qualification(Intent.BOTH, budget_min=500_000, budget_max=600_000))
    assert both is not None and both.budget_min == 500_000
    assert lead_session_id("qual-1") == lead_session_id("qual-1") != lead_session_id("qual-2")
    assert lead_session_id("qual-1").startswith("match-") and len(lead_session_id("qual-1")) == 28
