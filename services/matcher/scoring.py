"""Buyer-to-home matching: hard filters, a weighted score with partial credit, explanations. Pure.

Hard filters first: the budget with a tolerance, the must-have bedrooms, the areas and
property types asked for. Then each home gets a score in [0, 1], the weighted sum of
per-criterion scores (price 30 %, location 25 %, bedrooms 15 %, bathrooms 10 %, value for
money 10 %, must-have features 10 %), with partial credit inside tolerance bands, and an
explanation: what fits, what is missing, what is a risk. Homes under MIN_SCORE are dropped.
"""

from __future__ import annotations

import statistics
from collections.abc import Callable
from dataclasses import dataclass, field

from schemas.buyers import BuyerPreferences, MatchResults, PropertyListing, PropertyMatch, SortBy
from schemas.catalog import ACTIVE, CatalogProperty, distance_km

#: A home up to 5 % over budget_max is still shown, with less credit and a risk.
OVER_BUDGET_TOLERANCE = 0.05
#: A home up to 15 % under budget_min is still shown, with a little less credit.
UNDER_BUDGET_TOLERANCE = 0.15
MIN_SCORE = 0.40
WEIGHTS = {
    "price": 0.30,
    "location": 0.25,
    "bedrooms": 0.15,
    "bathrooms": 0.10,
    "value": 0.10,
    "features": 0.10,
}
#: Must-haves the catalog can check, by the words buyers use.
FEATURES: dict[str, Callable[[CatalogProperty], bool | None]] = {
    "garage": lambda h: None if h.garage_spaces is None else h.garage_spaces > 0,
    "3 car garage": lambda h: None if h.garage_spaces is None else h.garage_spaces >= 3,
    "pool": lambda h: h.pool,
    "view": lambda h: h.view,
    "single story": lambda h: None if h.stories is None else h.stories == 1,
}
_FEATURE_WORDS = {
    "one story": "single story",
    "single level": "single story",
    "three car garage": "3 car garage",
}
OLD_HOME_YEAR = 1978  # lead paint was banned in 1978
LONG_ON_MARKET_DAYS = 60


@dataclass
class Assessment:
    """One home's scores and the sentences that explain them."""

    scores: dict[str, float] = field(default_factory=dict)
    fits: list[str] = field(default_factory=list)
    missing: list[str] = field(default_factory=list)
    risks: list[str] = field(default_factory=list)

    @property
    def score(self) -> float:
        """The weighted score in [0, 1]."""
        return sum(WEIGHTS[name] * value for name, value in self.scores.items())


def _k(dollars: float) -> str:
    return f"${dollars / 1000:,.0f}k"


def price_window(preferences: BuyerPreferences) -> tuple[int, int]:
    """The prices that pass the budget filter, tolerances included."""
    low = int(preferences.budget_min * (1 - UNDER_BUDGET_TOLERANCE))
    return low, int(preferences.budget_max * (1 + OVER_BUDGET_TOLERANCE))


def wanted_bedrooms(preferences: BuyerPreferences) -> list[int]:
    """The acceptable bedroom counts (the model stores a sorted list; an int is one count)."""
    wanted = preferences.bedrooms
    return [wanted] if isinstance(wanted, int) else list(wanted or [])


def min_bedrooms(preferences: BuyerPreferences) -> int | None:
    """The fewest bedrooms the buyer accepts (a must-have), or None."""
    wanted = wanted_bedrooms(preferences)
    return min(wanted) if wanted else None


def _areas(preferences: BuyerPreferences) -> set[str]:
    return {a.strip().lower() for a in preferences.neighborhoods}


def passes_filters(preferences: BuyerPreferences, home: CatalogProperty) -> bool:
    """The hard filters: for sale, in the budget window, enough bedrooms, a wanted area and type."""
    low, high = price_window(preferences)
    if home.standard_status != ACTIVE or home.list_price is None or not low <= home.list_price <= high:
        return False
    fewest = min_bedrooms(preferences)
    if fewest is not None and (home.bedrooms is None or home.bedrooms < fewest):
        return False
    if preferences.property_types and home.property_kind not in preferences.property_types:
        return False
    areas = _areas(preferences)
    return not areas or bool({(home.city or "").lower(), (home.subdivision or "").lower()} & areas)


def _price(p: BuyerPreferences, home: CatalogProperty, a: Assessment) -> None:
    price = home.list_price or 0
    if p.budget_min <= price <= p.budget_max:
        a.scores["price"] = 1.0
        a.fits.append(f"{_k(price)} is within the {_k(p.budget_min)}-{_k(p.budget_max)} budget")
    elif price > p.budget_max:
        over = (price - p.budget_max) / max(p.budget_max, 1)
        a.scores["price"] = max(0.0, 1 - 0.5 * over / OVER_BUDGET_TOLERANCE)
        a.risks.append(f"{_k(price)} is {over:.0%} over the {_k(p.budget_max)} budget")
    else:
        under = (p.budget_min - price) / max(p.budget_min, 1)
        a.scores["price"] = max(0.0, 1 - 0.3 * under / UNDER_BUDGET_TOLERANCE)
        a.fits.append(f"{_k(price)} is under budget")


def _location(p: BuyerPreferences, home: CatalogProperty, a: Assessment, km: float | None) -> None:
    areas = _areas(p)
    if areas:
        if (home.subdivision or "").lower() in areas:
            a.scores["location"] = 1.0
            a.fits.append(f"in {home.subdivision}")
        else:
            a.scores["location"] = 0.8
            a.fits.append(f"in {home.city}")
    elif km is not None:
        a.scores["location"] = 1.0 if km <= 2 else max(0.2, 1 - 0.8 * (km - 2) / 18)
        (a.fits if km <= 5 else a.risks).append(f"{km:.1f} km from the buyer's location")
    else:
        a.scores["location"] = 1.0  # no location asked for: every home fits equally


def _rooms(p: BuyerPreferences, home: CatalogProperty, a: Assessment) -> None:
    bedrooms = wanted_bedrooms(p)
    if not bedrooms:
        a.scores["bedrooms"] = 1.0
    elif home.bedrooms is None:
        a.scores["bedrooms"] = 0.5
        a.missing.append("bedroom count unknown")
    elif home.bedrooms in bedrooms:
        a.scores["bedrooms"] = 1.0
        a.fits.append(f"{home.bedrooms} bedrooms")
    else:  # more than wanted: the filter removed fewer
        extra = home.bedrooms - max(bedrooms)
        a.scores["bedrooms"] = 0.7 if extra == 1 else 0.5
        a.fits.append(f"{home.bedrooms} bedrooms ({extra} more than asked)")
    if p.bathrooms is None:
        a.scores["bathrooms"] = 1.0
    elif home.bathrooms is None:
        a.scores["bathrooms"] = 0.5
        a.missing.append("bathroom count unknown")
    elif home.bathrooms >= p.bathrooms:
        a.scores["bathrooms"] = 1.0
        a.fits.append(f"{home.bathrooms:g} bathrooms")
    else:
        short = p.bathrooms - home.bathrooms
        a.scores["bathrooms"] = 0.6 if short <= 0.5 else 0.2
        a.missing.append(f"{home.bathrooms:g} bathrooms, {p.bathrooms:g} wanted")


def _value(home: CatalogProperty, median_ppsf: float | None, a: Assessment) -> None:
    if not home.living_area or not home.list_price or not median_ppsf:
        a.scores["value"] = 0.5
        return
    ratio = home.list_price / home.living_area / median_ppsf
    a.scores["value"] = 1.0 if ratio <= 0.9 else max(0.2, 1 - 0.8 * (ratio - 0.9) / 0.35)
    if ratio <= 0.9:
        a.fits.append(f"${home.list_price / home.living_area:,.0f}/sq ft, below the other matches' median")


def normalize_feature(word: str) -> str:
    """A must-have as FEATURES names it: lower case, single spaces, common synonyms folded."""
    text = " ".join(word.lower().replace("-", " ").replace("_", " ").split())
    return _FEATURE_WORDS.get(text, text)


def _features(p: BuyerPreferences, home: CatalogProperty, a: Assessment) -> None:
    if not p.must_haves:
        a.scores["features"] = 1.0
        return
    credit = 0.0
    for wanted in p.must_haves:
        check = FEATURES.get(normalize_feature(wanted))
        has = check(home) if check else None
        if has:
            credit += 1
            a.fits.append(f"has {wanted}")
        elif has is None:
            credit += 0.5
            a.missing.append(f"{wanted}: not in the listing data, ask the listing agent")
        else:
            a.missing.append(f"no {wanted}")
    a.scores["features"] = credit / len(p.must_haves)


def _risks(home: CatalogProperty, a: Assessment) -> None:
    if home.days_on_market is not None and home.days_on_market > LONG_ON_MARKET_DAYS:
        a.risks.append(f"{home.days_on_market} days on market: ask why it has not sold")
    if home.year_built is not None and home.year_built < OLD_HOME_YEAR:
        a.risks.append(f"built in {home.year_built}: inspect roof, plumbing, wiring; lead paint possible")


def assess(
    preferences: BuyerPreferences, home: CatalogProperty, median_ppsf: float | None, km: float | None
) -> Assessment:
    """Score one home that passed the hard filters, with its explanation."""
    a = Assessment()
    _price(preferences, home, a)
    _location(preferences, home, a, km)
    _rooms(preferences, home, a)
    _value(home, median_ppsf, a)
    _features(preferences, home, a)
    _risks(home, a)
    return a


def _headline(home: CatalogProperty, a: Assessment) -> str:
    score = a.score
    kind = (
        "Perfect match"
        if score >= 0.9 and not a.missing
        else "Strong match"
        if score >= 0.75
        else "Partial match"
    )
    beds = f"{home.bedrooms}BR, " if home.bedrooms is not None else ""
    text = f"{kind}: {beds}{_k(home.list_price or 0)}, {home.subdivision or home.city or 'area unknown'}"
    if a.missing:
        text += f"; missing: {', '.join(a.missing)}"
    if a.risks:
        text += f"; check: {', '.join(a.risks)}"
    return text


def _distance(p: BuyerPreferences, home: CatalogProperty) -> float | None:
    if None in (p.latitude, p.longitude, home.latitude, home.longitude):
        return None
    return distance_km(p.latitude, p.longitude, home.latitude, home.longitude)  # type: ignore[arg-type]


def match(
    preferences: BuyerPreferences, homes: list[CatalogProperty], sort_by: SortBy, max_results: int
) -> MatchResults:
    """Filter, score, drop weak matches, sort and explain: the match session's result."""
    kept = [h for h in homes if passes_filters(preferences, h)]
    ppsf = [h.list_price / h.living_area for h in kept if h.list_price and h.living_area]
    median_ppsf = statistics.median(ppsf) if ppsf else None
    scored = []
    for home in kept:
        km = _distance(preferences, home)
        assessment = assess(preferences, home, median_ppsf, km)
        if assessment.score >= MIN_SCORE:
            scored.append((home, assessment, km))
    if sort_by == "price":
        scored.sort(key=lambda t: (t[0].list_price or 0, -t[1].score, t[0].listing_id))
    elif sort_by == "distance":
        scored.sort(key=lambda t: (t[2] if t[2] is not None else float("inf"), -t[1].score, t[0].listing_id))
    else:
        scored.sort(key=lambda t: (-round(t[1].score, 4), t[0].list_price or 0, t[0].listing_id))
    matches = [
        PropertyMatch(
            rank=rank,
            property=_listing(home, km),
            match_score=round(a.score, 3),
            explanation=_headline(home, a),
            fits=a.fits,
            missing=a.missing,
            risks=a.risks,
            score_breakdown={name: round(value, 3) for name, value in a.scores.items()},
        )
        for rank, (home, a, km) in enumerate(scored[:max_results], start=1)
    ]
    actions = (
        ["Schedule showing", "Request CMA"]
        if matches
        else ["Widen the budget or the areas", "Set up an alert for new listings"]
    )
    return MatchResults(total_matches=len(scored), matches=matches, next_actions=actions)


def _listing(home: CatalogProperty, km: float | None) -> PropertyListing:
    return PropertyListing(
        id=home.listing_id,
        address=home.address or home.listing_id,
        price=home.list_price or 0,
        bedrooms=home.bedrooms,
        bathrooms=home.bathrooms,
        square_feet=home.living_area,
        property_type=home.property_kind,
        neighborhood=home.subdivision,
        latitude=home.latitude,
        longitude=home.longitude,
        distance_km=round(km, 2) if km is not None else None,
        city=home.city,
        year_built=home.year_built,
        days_on_market=home.days_on_market,
    )
