"""Unit tests of the rules-based qualification engine (services.qualifier.rules)."""

from __future__ import annotations

import asyncio
import random
from datetime import date
from typing import Any

import pytest

from schemas.leads import LeadToQualify
from schemas.qualification import FinancingStatus, Intent, Qualification, Temperature, Timeline
from services.qualifier.rules import ENGINE_NAME, RulesQualificationEngine, qualify_lead

TODAY = date(2025, 1, 15)  # anchors "in March", "by spring", ...


def _qualify(message: str, **extra: Any) -> Qualification:
    return qualify_lead(LeadToQualify(lead_id="lead-1", message=message, **extra), today=TODAY)


def test_hot_pre_approved_buyer_with_budget_beds_and_area() -> None:
    q = _qualify(
        "Hi! We're pre-approved for $750k and looking for a 3 bed, 2 bath home in "
        "Victoria Gardens or Upland. Hoping to move in 2 months."
    )
    assert q.intent is Intent.BUYER
    assert q.temperature is Temperature.HOT
    assert q.temperature_reasons[:2] == ["moving within 2 months", "pre-approved"]
    assert "budget stated" in q.temperature_reasons
    assert (q.timeline, q.timeline_months) == (Timeline.MONTHS_1_3, 2)
    fin = q.financial_readiness
    assert fin.status is FinancingStatus.PRE_APPROVED and fin.pre_approved
    assert (fin.budget_min, fin.budget_max) == (None, 750_000)
    assert fin.confidence == pytest.approx(1.0)
    prefs = q.property_preferences
    assert (prefs.bedrooms, prefs.bathrooms) == (3, 2.0)
    assert prefs.areas == ["Victoria", "Upland"]
    assert prefs.neighborhood == "Victoria"
    assert prefs.price_range == "up to 750k"
    assert q.next_action == "Schedule showing"
    assert q.language == "en"
    assert q.engine == ENGINE_NAME == "rules-v1"
    assert 0.5 < q.confidence <= 1.0


def test_seller_relocating_in_march_is_hot() -> None:
    q = _qualify("Thinking of selling my 4 bed in Alta Loma, relocating for work in March.")
    assert q.intent is Intent.SELLER
    assert q.temperature is Temperature.HOT
    assert q.temperature_reasons == ["seller moving within 2 months"]
    assert (q.timeline, q.timeline_months) == (Timeline.MONTHS_1_3, 2)
    assert q.motivation == "relocation"
    assert q.property_preferences.areas == ["Alta Loma"]
    assert q.property_preferences.bedrooms == 4
    assert q.next_action == "Book listing consultation and prepare CMA"


def test_sell_then_buy_is_both_and_must_sell_first() -> None:
    q = _qualify(
        "We need to sell our condo in Ontario first, then buy a bigger house in Chino Hills. "
        "Probably next year."
    )
    assert q.intent is Intent.BOTH
    assert q.must_sell_first is True
    assert q.motivation == "growing family"
    assert q.property_preferences.areas == ["Ontario", "Chino Hills"]
    assert (q.timeline, q.timeline_months) == (Timeline.MONTHS_6_12, 12)
    assert q.temperature is Temperature.WARM
    assert q.temperature_reasons == ["moving within 12 months", "financing not confirmed"]
    assert q.next_action == "Book listing consultation and prepare CMA"


def test_cash_investor_looking_for_a_duplex() -> None:
    q = _qualify(
        "Investor here. Looking for a duplex in Pomona or Rialto with good cash flow. "
        "All cash, can close in 30 days."
    )
    assert q.intent is Intent.BUYER
    assert q.is_investor is True
    assert q.motivation == "investment"
    assert q.financial_readiness.status is FinancingStatus.CASH
    assert not q.financial_readiness.pre_approved
    assert q.property_preferences.property_type == "multi-family"
    assert q.property_preferences.areas == ["Pomona", "Rialto"]
    assert (q.timeline, q.timeline_months) == (Timeline.WITHIN_1_MONTH, 1)
    assert q.temperature is Temperature.HOT
    assert q.temperature_reasons == ["moving within 1 month", "cash buyer"]
    assert q.next_action == "Schedule showing"


def test_renter_is_cold_and_referred() -> None:
    q = _qualify("Looking for a 2 bedroom apartment to rent in Fontana, budget $2,500 a month.")
    assert q.intent is Intent.RENTER
    assert q.temperature is Temperature.COLD
    assert q.temperature_reasons == ["renter without an urgent move"]
    assert q.property_preferences.bedrooms == 2
    assert q.financial_readiness.budget_max == 2_500
    assert q.next_action == "Refer to rental partner"


def test_urgent_renter_is_warm() -> None:
    q = _qualify("Need to rent a house in Corona ASAP, our lease ends.")
    assert q.intent is Intent.RENTER
    assert q.temperature is Temperature.WARM
    assert q.temperature_reasons == ["renter", "moving as soon as possible"]
    assert q.next_action == "Refer to rental partner"


def test_just_browsing_is_cold_and_unknown() -> None:
    q = _qualify("Just browsing, curious what's out there.")
    assert q.intent is Intent.UNKNOWN
    assert q.temperature is Temperature.COLD
    assert q.temperature_reasons[:3] == ["just browsing", "no timeline given", "intent unclear"]
    assert q.timeline is Timeline.UNKNOWN and q.timeline_months is None
    assert q.next_action == "Ask what they are looking for"
    assert q.confidence == pytest.approx(0.1)


def test_spanish_buyer() -> None:
    q = _qualify(
        "Hola, quiero comprar una casa de 3 recámaras en Fontana. "
        "Estoy preaprobado y queremos mudarnos en 2 meses."
    )
    assert q.language == "es"
    assert q.intent is Intent.BUYER
    assert q.property_preferences.bedrooms == 3
    assert q.property_preferences.areas == ["Fontana"]
    assert q.financial_readiness.status is FinancingStatus.PRE_APPROVED
    assert q.timeline_months == 2
    assert q.temperature is Temperature.HOT
    assert q.temperature_reasons == ["moving within 2 months", "pre-approved"]


def test_spanish_seller() -> None:
    q = _qualify("Quiero vender mi casa en Rialto lo antes posible.")
    assert (q.language, q.intent) == ("es", Intent.SELLER)
    assert q.timeline is Timeline.WITHIN_1_MONTH
    assert q.temperature is Temperature.HOT
    assert q.temperature_reasons == ["seller moving as soon as possible"]


def test_empty_message_is_cold_with_low_confidence() -> None:
    q = _qualify("")
    assert q.intent is Intent.UNKNOWN
    assert q.temperature is Temperature.COLD
    assert q.temperature_reasons == ["empty message"]
    assert q.confidence == pytest.approx(0.1)
    assert q.financial_readiness.confidence == 0.0
    assert q.next_action == "Ask what they are looking for"


def test_million_budget() -> None:
    q = _qualify("Looking to buy in Claremont, budget up to $1.2M.")
    assert q.financial_readiness.budget_max == 1_200_000
    assert q.property_preferences.price_range == "up to 1.2M"
    assert q.temperature is Temperature.WARM
    assert q.temperature_reasons == ["clear buyer intent", "budget stated"]
    assert q.next_action == "Send matching listings and nurture"


def test_between_budget_gives_a_range() -> None:
    q = _qualify("We want to buy a 4 bedroom in Eastvale, between 600k and 800k.")
    assert (q.financial_readiness.budget_min, q.financial_readiness.budget_max) == (
        600_000,
        800_000,
    )
    assert q.property_preferences.price_range == "600k-800k"


def test_already_has_a_realtor() -> None:
    q = _qualify(
        "I already have a realtor but I'm interested in buying the 3 bed on Haven in Rancho Cucamonga."
    )
    assert q.has_agent is True
    assert q.intent is Intent.BUYER
    assert "agent" in q.next_action
    assert q.property_preferences.areas == ["Haven", "Rancho Cucamonga"]


@pytest.mark.parametrize(
    ("message", "expected"),
    [
        ("I already have a realtor", True),
        ("We're working with an agent", True),
        ("We don't have an agent yet", False),
        ("No agent, please help", False),
        ("Looking for a 3 bed", None),
    ],
)
def test_agent_status(message: str, expected: bool | None) -> None:
    assert _qualify(message).has_agent is expected


@pytest.mark.parametrize(
    ("message", "budget"),
    [
        ("budget $750k", (None, 750_000)),
        ("can spend 750,000", (None, 750_000)),
        ("$1.2M max", (None, 1_200_000)),
        ("between 600k and 800k", (600_000, 800_000)),
        ("600-800k", (600_000, 800_000)),
        ("$1.2M-1.5M", (1_200_000, 1_500_000)),
        ("$600,000 to $800,000", (600_000, 800_000)),
        ("under $700k", (None, 700_000)),
        ("up to 900k", (None, 900_000)),
        ("around 650k", (617_500, 682_500)),
        ("at least $500k", (500_000, None)),
        ("$50k down, looking around 600k", (570_000, 630_000)),
        ("hasta 700 mil", (None, 700_000)),
        ("3 bed 2 bath near 91730, call 909-555-0143", (None, None)),
        ("in 2 to 3 months", (None, None)),
    ],
)
def test_budget_forms(message: str, budget: tuple[int | None, int | None]) -> None:
    fin = _qualify(message).financial_readiness
    assert (fin.budget_min, fin.budget_max) == budget


@pytest.mark.parametrize(
    ("message", "months", "timeline"),
    [
        ("We need to move ASAP", 0, Timeline.WITHIN_1_MONTH),
        ("moving next month", 1, Timeline.WITHIN_1_MONTH),
        ("in a couple of weeks", 0, Timeline.WITHIN_1_MONTH),
        ("want to move in 2 months", 2, Timeline.MONTHS_1_3),
        ("within 90 days", 3, Timeline.MONTHS_1_3),
        ("by spring", 2, Timeline.MONTHS_1_3),
        ("hopefully in March", 2, Timeline.MONTHS_1_3),
        ("3 months from now", 3, Timeline.MONTHS_1_3),
        ("in the next few months", 3, Timeline.MONTHS_1_3),
        ("in 6 months", 6, Timeline.MONTHS_3_6),
        ("by the end of the year", 11, Timeline.MONTHS_6_12),
        ("next year", 12, Timeline.MONTHS_6_12),
        ("in 2 years", 24, Timeline.OVER_12_MONTHS),
        ("en 2 meses", 2, Timeline.MONTHS_1_3),
        ("just looking", None, Timeline.UNKNOWN),
        ("just browsing listings", None, Timeline.UNKNOWN),
    ],
)
def test_timelines(message: str, months: int | None, timeline: Timeline) -> None:
    q = _qualify(message)
    assert (q.timeline_months, q.timeline) == (months, timeline)


def test_season_already_started_means_now() -> None:
    lead = LeadToQualify(lead_id="lead-1", message="buy by spring")
    assert qualify_lead(lead, today=date(2025, 4, 10)).timeline_months == 0


@pytest.mark.parametrize(
    ("message", "status"),
    [
        ("pre-approved", FinancingStatus.PRE_APPROVED),
        ("pre approved", FinancingStatus.PRE_APPROVED),
        ("preapproved", FinancingStatus.PRE_APPROVED),
        ("cash buyer", FinancingStatus.CASH),
        ("talking to a lender", FinancingStatus.TALKING_TO_LENDER),
        ("getting pre-qualified", FinancingStatus.TALKING_TO_LENDER),
        ("getting pre-approved next week", FinancingStatus.TALKING_TO_LENDER),
        ("not pre-approved yet", FinancingStatus.NEEDS_FINANCING),
        ("we need a mortgage", FinancingStatus.NEEDS_FINANCING),
        ("good cash flow", FinancingStatus.UNKNOWN),
    ],
)
def test_financing(message: str, status: FinancingStatus) -> None:
    fin = _qualify(message).financial_readiness
    assert fin.status is status
    assert fin.pre_approved is (status is FinancingStatus.PRE_APPROVED)


@pytest.mark.parametrize(
    ("message", "bedrooms", "bathrooms"),
    [
        ("3 bed", 3, None),
        ("3br", 3, None),
        ("three bedroom", 3, None),
        ("3-4 bedrooms", 3, None),
        ("4+ beds, 2.5 bath", 4, 2.5),
        ("2.5 baths", None, 2.5),
    ],
)
def test_rooms(message: str, bedrooms: int | None, bathrooms: float | None) -> None:
    prefs = _qualify(message).property_preferences
    assert (prefs.bedrooms, prefs.bathrooms) == (bedrooms, bathrooms)


@pytest.mark.parametrize(
    ("message", "areas"),
    [
        ("homes in RC", ["Rancho Cucamonga"]),
        ("RANCHO CUCAMONGA or etiwanda", ["Rancho Cucamonga", "Etiwanda"]),
        ("near Victoria Arbors", ["Victoria"]),
        ("Chino Hills, then Chino", ["Chino Hills", "Chino"]),
        ("San  Bernardino or Redlands or Riverside", ["San Bernardino", "Redlands", "Riverside"]),
        ("an orc in the forest", []),
    ],
)
def test_areas(message: str, areas: list[str]) -> None:
    assert _qualify(message).property_preferences.areas == areas


def test_home_value_request_gets_a_cma_even_without_a_timeline() -> None:
    q = _qualify("What's my home worth? 3bd 2ba in Rancho Cucamonga")
    assert q.intent is Intent.SELLER
    assert q.temperature is Temperature.WARM  # the rubric: a clear seller without a date is warm
    assert q.temperature_reasons[0] == "clear seller intent"
    assert q.next_action == "Book listing consultation and prepare CMA"


def test_distant_seller_goes_to_nurture() -> None:
    q = _qualify("Might sell the house in Montclair in 2 years")
    assert (q.intent, q.temperature) == (Intent.SELLER, Temperature.COLD)
    assert q.temperature_reasons[0] == "moving in more than a year"
    assert q.next_action == "Add to long-term nurture"


def test_property_address_and_source_are_read() -> None:
    q = _qualify("What is it worth?", property_address="12 Elm St, Upland", source="fb_seller_form")
    assert q.intent is Intent.SELLER
    assert q.property_preferences.areas == ["Upland"]


_RNG = random.Random(7)
GARBAGE = [
    "🏠" * 5_000,
    "$" * 10_000,
    "1," * 5_000,
    "9" * 10_000,
    "pre-approved in 2 months " * 400,
    bytes(_RNG.randrange(256) for _ in range(10_000)).decode("utf-8", "replace"),
    bytes(_RNG.randrange(256) for _ in range(10_000)).decode("utf-8", "surrogateescape"),
    "".join(chr(_RNG.randrange(0x110000)) for _ in range(10_000)),
    "\x00\n\t\r \u2028",
    "in f\u0131ve months, f\u0131ve bed, en d\u0131ciembre, by spr\u0131ng",  # dotless i
]


@pytest.mark.parametrize("message", GARBAGE, ids=[f"garbage-{i}" for i in range(len(GARBAGE))])
def test_garbage_never_raises(message: str) -> None:
    # model_construct skips validation: pydantic itself rejects lone surrogates, the engine must not
    lead = LeadToQualify.model_construct(
        lead_id="lead-1", message=message, property_address=message[:300], source=message[:100]
    )
    q = qualify_lead(lead, today=TODAY)
    assert q.engine == ENGINE_NAME
    assert q.temperature_reasons
    assert 0.0 <= q.confidence <= 1.0


@pytest.mark.parametrize(
    "message",
    ["", "hello", "3 bed in Upland", "pre-approved", "sell my house", "rent", "in 5 years"],
)
def test_every_temperature_is_explained(message: str) -> None:
    q = _qualify(message)
    assert q.temperature_reasons and all(q.temperature_reasons)
    assert q.next_action


def test_engine_class_qualifies_asynchronously() -> None:
    engine = RulesQualificationEngine()
    lead = LeadToQualify(lead_id="lead-9", message="Cash buyer, 3 bed in Upland, ASAP")
    q = asyncio.run(engine.qualify(lead))
    assert engine.name == "rules-v1"
    assert q.temperature is Temperature.HOT
    assert q.financial_readiness.status is FinancingStatus.CASH


@pytest.mark.parametrize(
    ("message", "intent"),
    [
        # a question about one listing, or a request to see it, is a buyer
        ("Is 4410 Ramona Ave still available?", Intent.BUYER),
        ("what's the hoa on the Terra Vista townhome", Intent.BUYER),
        ("Can we tour the house on Banyan this Sunday?", Intent.BUYER),
        ("when's the open house for the Upland one", Intent.BUYER),
        ("todavia esta a la venta la casa en Rialto?", Intent.BUYER),
        # nothing to act on
        ("Please remove me from this list", Intent.UNKNOWN),
        ("Wrong number, I'm not Carlos", Intent.UNKNOWN),
        ("Drone photos for your listings, $99 per property. Interested?", Intent.UNKNOWN),
        ("Would you like to partner with our lending team? We close your buyers in 21 days", Intent.UNKNOWN),
        ("I want to rent out my condo, do you manage properties? property management fees?", Intent.UNKNOWN),
        # denials and hypotheticals
        ("We are not selling, we want to buy a second home in Upland", Intent.BUYER),
        ("not planning to buy anymore, thanks", Intent.UNKNOWN),
        ("If I ever sell I'll call you. Not now.", Intent.UNKNOWN),
        ("my landlord is selling so we want to buy something of our own", Intent.BUYER),
        # sell then buy, and the primary ask
        ("Have to sell our condo before we can buy a house", Intent.BOTH),
        ("Need to sell my house in Fontana then buy a bigger one in Etiwanda", Intent.BOTH),
        ("Selling our place in Chino, we'll buy up there with a local agent", Intent.SELLER),
        ("we might sell the cabin someday but right now we're buying a home in Claremont", Intent.BUYER),
        ("need a rental for a few months while we decide, we might buy in a few years", Intent.RENTER),
        # estates, divorces, renters
        ("My aunt passed and left me her house in Ontario. Want to sell it.", Intent.SELLER),
        ("We're getting divorced and have to sell the house", Intent.SELLER),
        ("tired of renting, we want to buy our first place", Intent.BUYER),
        ("busco departamento en renta en Upland", Intent.RENTER),
        ("quiero vender mi casa y comprar otra mas chica", Intent.BOTH),
    ],
)
def test_intent_by_the_rubric(message: str, intent: Intent) -> None:
    assert _qualify(message).intent is intent


@pytest.mark.parametrize(
    ("message", "temperature"),
    [
        ("Is 4410 Ramona Ave still available?", Temperature.WARM),  # a listing question
        ("Pre-approved, can we see 4410 Ramona Ave tomorrow?", Temperature.HOT),  # showing + money
        ("Cash buyer, need a condo within 3 weeks", Temperature.HOT),
        ("Need to sell my condo asap, moving for work", Temperature.HOT),  # a seller within 3 months
        ("How much do you charge to list a house?", Temperature.WARM),  # a seller without a date
        ("We want to buy eventually, not ready yet", Temperature.COLD),
        ("Maybe sell in a couple of years", Temperature.COLD),
        ("Need a 2 bedroom rental by the 1st", Temperature.WARM),  # a renter moving within 3 months
        ("any rentals? no rush", Temperature.COLD),
        ("STOP", Temperature.COLD),
    ],
)
def test_temperature_by_the_rubric(message: str, temperature: Temperature) -> None:
    assert _qualify(message).temperature is temperature


def test_this_year_is_a_horizon_not_an_urgency_even_in_december() -> None:
    lead = LeadToQualify(lead_id="lead-1", message="Want to sell this year")
    q = qualify_lead(lead, today=date(2025, 12, 3))
    assert q.timeline_months is not None and q.timeline_months > 3
    assert q.temperature is Temperature.WARM


@pytest.mark.parametrize(
    ("message", "action"),
    [
        ("STOP", "Stop messaging: lead opted out"),
        ("How did you get my number?? remove me", "Stop messaging: lead opted out"),
        ("wrong number sorry", "Discard: not a real estate lead"),
        ("We offer 3D tours and photography for your listings", "Discard: not a real estate lead"),
        ("Does the house on Banyan have a pool?", "Answer the listing question and offer a showing"),
        ("Can we see the house on Banyan Saturday?", "Schedule showing"),
        ("hi", "Ask what they are looking for"),
    ],
)
def test_next_action_for_opt_outs_vendors_and_listing_questions(message: str, action: str) -> None:
    assert _qualify(message).next_action == action
