"""What a qualified buyer lead is looking for, as matcher preferences. Pure.

The qualifier extracts a budget, bedrooms, bathrooms, a property type and areas from the
lead's words; a buyer lead with at least a budget or an area gets recommended homes.
"""

from __future__ import annotations

import hashlib

from schemas.buyers import MAX_PRICE, BuyerPreferences
from schemas.catalog import property_kind
from schemas.qualification import Intent, Qualification

BUYER_INTENTS = (Intent.BUYER, Intent.BOTH)
#: With only a maximum stated, buyers look at the top of their range.
IMPLIED_BUDGET_FLOOR = 0.75
LEAD_MATCH_RESULTS = 5


def lead_session_id(qualification_id: str) -> str:
    """The match session of a qualification: the same id on every redelivery."""
    return f"match-{hashlib.sha256(qualification_id.encode()).hexdigest()[:22]}"


def lead_preferences(qualification: Qualification) -> BuyerPreferences | None:
    """The buyer's preferences, or None when the lead is not a buyer or said too little."""
    if qualification.intent not in BUYER_INTENTS:
        return None
    money = qualification.financial_readiness
    wanted = qualification.property_preferences
    if money.budget_max is None and money.budget_min is None and not wanted.areas:
        return None
    budget_max = money.budget_max if money.budget_max is not None else MAX_PRICE
    if money.budget_min is not None:
        budget_min = min(money.budget_min, budget_max)
    elif money.budget_max is not None:
        budget_min = round(money.budget_max * IMPLIED_BUDGET_FLOOR)
    else:
        budget_min = 0
    kind = property_kind(wanted.property_type)
    return BuyerPreferences(
        budget_min=budget_min,
        budget_max=budget_max,
        bedrooms=[wanted.bedrooms] if wanted.bedrooms is not None else None,
        bathrooms=wanted.bathrooms,
        property_types=[kind] if kind else [],
        neighborhoods=wanted.areas[:20],
    )
