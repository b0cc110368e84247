"""Prompt skill sections and which ones a lead needs (pure; ENABLE_PROGRESSIVE_SKILLS).

The core prompt (prompts.CORE_INSTRUCTIONS) says what every field means. Each skill adds the
know-how and one worked example for one kind of lead. Without progressive skills every
section is sent; with it, only those the cheap rules pre-read of the message points to.
"""

from __future__ import annotations

import re

from schemas.leads import LeadToQualify
from schemas.qualification import FinancingStatus, Intent, Qualification

SKILLS: dict[str, str] = {
    "buyer": """\
<skill name="buyer">
Buyers: collect LPMAMA - Location (cities, neighborhoods, school areas), Price (budget_min and
budget_max in whole dollars; "under 700k" is a max, "at least 500k" a min, "around 650k" is
617500-682500), Motivation (first home, growing family, relocation, downsizing...), Agent
(has_agent true only when they say they already work with one), Mortgage (see financing) and
Appointment (asking to see homes or to talk to someone is a hand-off).
A question about one listing ("is 8842 Hillside Rd still available?", "HOA on the Victoria
Gardens condo?", "can we see it Saturday?") is buyer_intent, warm; hot when money is ready. A
showing date is not a move date: leave timeline unknown unless they state when they move.
Beds and baths are minimums; "3-4 bed" means bedrooms 3. property_type is one of
single-family, condo, townhouse, multi-family, land when stated.
Next action for a hot buyer: "Schedule showing"; warm: "Send matching listings and nurture";
cold: "Add to long-term nurture"; already has an agent: "Confirm whether they are committed
to their agent before pursuing".
Example: "Pre-approved for 750k, need a 3 bed in Upland, lease ends in 6 weeks" -> buyer_intent, hot
(moving within 2 months, pre-approved), timeline 1_3_months, budget_max 750000, bedrooms 3,
areas [Upland].
</skill>""",
    "seller": """\
<skill name="seller">
Sellers: note the property (address, beds, baths, type), why they sell (relocation, divorce,
probate/inherited, downsizing, financial hardship, retirement), when, and whether they must sell
before buying (must_sell_first true, intent buyer_and_seller_intent). Asking "what is my home
worth" is a seller asking for a valuation (CMA): a hand-off, next action "Book listing
consultation and prepare CMA". A seller moving within 3 months is hot even without
financing; within 12 months warm; with no date but a real question (a value, the commission,
how to sell) warm. A seller who only wonders about value "someday" or "in a couple years" is
cold: "Add to long-term nurture".
Selling here and buying elsewhere ("we'll buy up there") is seller_intent, not
buyer_and_seller_intent; "I'm not selling" is no intent at all.
Example: "Inherited my mom's house in Rialto, want to sell it quickly, it needs work" ->
seller_intent, hot (wants a quick sale), motivation probate/inherited, areas [Rialto].
</skill>""",
    "investor": """\
<skill name="investor">
Investors buy to rent out, flip or hold: words like cash flow, cap rate, ROI, duplex,
multi-family, rental income, flip, BRRRR, 1031 exchange. Set is_investor true and intent
buyer_intent (or seller_intent when they sell a rental; buyer_and_seller_intent for a 1031
exchange sell-and-buy). Investors often pay
cash or use DSCR/hard-money loans: hard money and DSCR count as talking_to_lender unless
approved. Motivation "investment". An investor with cash or financing ready and a near date is
hot; "always looking for deals" without a date is warm; "one day, not ready yet" is cold.
Example: "Looking for a duplex in Pomona, all cash, can close in 30 days" -> buyer_intent, investor,
cash, timeline within_1_month, hot, property_type multi-family.
</skill>""",
    "renter": """\
<skill name="renter">
Renters want to lease, not buy: apartment, lease, rent a house, "for rent". Intent renter_intent,
never buyer, even with a monthly budget ("2500/month" is rent, not a purchase budget: leave
budget empty). A renter moving within 3 months is warm, otherwise cold; next action "Refer to
rental partner". A renter asking whether they could buy instead ("rent-to-own", "tired of
renting, can we afford to buy") is buyer_intent; one who must rent while deciding ("need a
rental now, can't buy yet", "rent for a year before buying") is a renter. A landlord who
wants tenants found or a home managed is unknown_intent, not renter_intent.
</skill>""",
    "financing": """\
<skill name="financing">
Financing status, strongest first: pre_approved (has a pre-approval letter or "approved for"
an amount; "getting pre-approved" is NOT pre-approved), cash (pays all cash, "proof of funds"),
talking_to_lender (applying, pre-qualified, meeting a loan officer, hard money, DSCR),
needs_financing (needs a loan, FHA/VA/USDA, down payment assistance, "not approved yet"),
unknown. pre_approved the boolean is true only for pre_approved. financial_readiness.confidence
is 0.6 when a status is known plus 0.4 when a budget is stated.
</skill>""",
    "multilingual": """\
<skill name="multilingual">
The lead may write in Spanish, Chinese, Vietnamese, Korean, Tagalog, Portuguese or another
language. Read it in that language; set language to its ISO 639-1 code (es, zh, vi, ko, tl,
pt...). Keep every field value in English (enums, next_action, reasons) but write
suggested_reply in the lead's language. Spanish hints: comprar = buy, vender = sell, rentar /
alquilar = rent, preaprobado = pre-approved, de contado / en efectivo = cash, recamaras /
cuartos = bedrooms, meses = months, lo antes posible = asap.
</skill>""",
    "triage": """\
<skill name="triage">
Unclear, angry and spam messages. A vague message ("info?", "call me", "interested") is intent
unknown_intent, cold, next action "Ask what they are looking for", with a reply asking one question.
An angry lead ("stop texting me", "remove me", "not interested") is cold with next action
"Stop messaging: lead opted out" and no suggested_reply beyond a one-line apology and
confirmation. Spam, ads, SEO offers, crypto or wrong-number messages are intent unknown_intent, cold,
next action "Discard: not a real estate lead", confidence at most 0.2 and no reply. Vendors
pitching the team (lenders, photographers, stagers, SEO, lead sellers, "we buy houses",
agents recruiting) are spam too, even when they say "buyers" or "listings".
A lead who asks for a human agent, a showing or a home value is a hand-off whatever else they
say: mention it in next_action.
</skill>""",
}
ALL_SKILLS: tuple[str, ...] = tuple(SKILLS)

_NON_LATIN_RE = re.compile(r"[^\x00-\u024f\u2000-\u206f\u20a0-\u20cf]")
_MULTILINGUAL_WORDS_RE = re.compile(
    r"\b(?:quero|comprar|vender|casa|nha|mua|bahay|bili|ich|wir|nous|maison|acheter|vendre)\b", re.IGNORECASE
)


def needs_multilingual(lead: LeadToQualify, hint: Qualification) -> bool:
    """True when the message is probably not in English."""
    text = lead.message
    non_latin = len(_NON_LATIN_RE.findall(text))
    return hint.language != "en" or non_latin >= 3 or bool(_MULTILINGUAL_WORDS_RE.search(text))


def select_skills(lead: LeadToQualify, hint: Qualification) -> tuple[str, ...]:
    """The skill sections this lead needs, in a stable order (so their prefix can be cached).

    ``hint`` is the rules engine's reading of the same lead: cheap, and good enough to pick
    sections. When it cannot tell the intent, the buyer, seller and triage sections are all
    loaded, so an unclear message never gets a thinner prompt than it needs.
    """
    chosen: set[str] = set()
    intent = hint.intent
    if intent in (Intent.BUYER, Intent.BOTH):
        chosen |= {"buyer", "financing"}
    if intent in (Intent.SELLER, Intent.BOTH):
        chosen.add("seller")
    if intent == Intent.RENTER:
        chosen.add("renter")
    if hint.is_investor:
        chosen |= {"investor", "financing"}
    if hint.financial_readiness.status != FinancingStatus.UNKNOWN:
        chosen.add("financing")
    if intent == Intent.UNKNOWN or len(lead.message.strip()) < 25:
        chosen |= {"triage", "buyer", "seller"}
    if needs_multilingual(lead, hint):
        chosen |= {"multilingual", "buyer", "seller", "renter", "triage"}
    return tuple(name for name in ALL_SKILLS if name in chosen)
