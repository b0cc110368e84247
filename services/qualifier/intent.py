"""What a lead asks for (the intent rubric of docs/AI_QUALIFIER.md) as pure pattern rules.

Text arrives folded by the rules engine (accents stripped, single spaces). The reading goes:
messages with nothing to act on (opt-outs, vendors, wrong numbers) first; then denied plans
("not selling", "can't buy yet"), hypotheticals and other people's sales ("my landlord is
selling") are blanked, so only the lead's own asks are left to weigh: selling and buying here
make ``both``, then a sale, a rental ask, a purchase or a listing question, in that order.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from schemas.qualification import Intent


def compile_pattern(pattern: str) -> re.Pattern[str]:
    """``pattern`` compiled case-insensitively, as every rules table is."""
    return re.compile(pattern, re.IGNORECASE)


_rx = compile_pattern


# ---------------------------------------------------------------- nothing to act on
_OPT_OUT_RE = _rx(
    r"^\W*(?:stop|unsubscribe|no thanks?|not interested|f off)\W*$|\bunsubscribe\b|\bremove me\b"
    r"|\bstop (?:texting|calling|messaging|sending|contacting)\b|\bquit (?:calling|texting)\b"
    r"|\bleave me alone\b|\btake (?:me|us) off\b|\bnot interested(?: anymore)?\W*(?:$|[.!,])"
    r"|\bhow did you get my (?:number|info)\b|\bwho gave you my (?:number|info)\b"
    r"|\bno me interesa\b|\bno me (?:manden|escriban)|\bya no me (?:escriban|manden)\b|\bf off\b"
)
_WRONG_NUMBER_RE = _rx(r"\bwrong (?:number|person)\b|\bnumero equivocado\b|\bno longer (?:his|hers|theirs)\b")
_VENDOR_RE = _rx(
    r"\b(?:your|my) (?:buyers|clients|business|brokerage)\b|\bfor (?:realtors|agents)\b"
    r"|\breal estate (?:agents|professionals)\b|\bpartner with you\b|\blead generation\b|\bleads per\b"
    r"|\b(?:free|a) quote\b|\bphotography\b|\bhome stager\b|\bstaged listings\b|\btransaction coordinator"
    r"|\bvirtual assistant\b|\bare you hiring\b|\bgot my (?:real estate )?license\b|\bwe buy houses\b"
    r"|\bcash offers? in [0-9]+ hours\b|\brevenue share\b|\bloan officer with\b|\bmortgage broker and\b"
    r"|\btitle insurance\b|\binspection special\b|\blunch and learn\b|\bwholesaler\b|\bseo\b"
    r"|\bclick here\b|\bgift card\b|\bextended warranty\b|\boff-market deals to assign\b"
    r"|\bofrecemos servicios\b|\bservicios de\b|\bsave [0-9]+ ?% on\b|\binvoice\b"
    r"|\bfor your (?:next )?(?:listings?|clients|buyers)\b|\bdone-for-you\b|\bmixer\b"
)
# Landlords who want tenants found or a home managed: not a sale, not a rental for the lead.
_RENT_OUT_RE = _rx(
    r"\brent (?:it|them|my \w+|the \w+)? ?out\b|\bproperty management\b|\bfind (?:me )?tenants\b"
)
_REFINANCE_RE = _rx(r"\brefinanc")

# ---------------------------------------------------------------- what gets blanked
# A denial in the same clause: "not selling", "we decided not to sell", "can't buy yet",
# "buying is not in the cards". "Not ready", "not sure", "no rush" are timing, not denial.
_VERBS = r"(?:buy\w*|sell\w*|list(?:s|ed|ing)?|rent\w*|leas(?:e|es|ed|ing)|purchas\w*|compr\w*|vend\w*)"
_NEGATED_RE = _rx(
    r"(?:\b(?:not|never|no longer|no|won'?t|cant|dont|wont|ni)\b|n't)"
    r"(?! (?:ready|sure|in a|rush|hurry|yet\b))"
    rf"(?: (?!ready|sure|rush|hurry|only|just)[^ .!?,;]+){{0,3}}? {_VERBS}\b"
    r"(?! (?:anytime soon|yet|right now|for now|for (?:a while|another|at least)|until|in the next))"
    rf"|\b{_VERBS} (?:is|are|was) not\b|\bsell\w* nothing\b"
)
_OTHERS_SELLING_RE = _rx(
    r"\b(?:landlord|owners?|sellers?|neighbou?r'?s?|they|he|she)(?: \w+)? (?:is |are |was |were )?"
    r"(?:selling|sold|wants to sell)\b|\bsellers? (?:would|willing|take|accept)\w*"
)
# Buying somewhere else after selling here makes a seller, not a buy-and-sell lead.
_BUY_ELSEWHERE_RE = _rx(
    r"\b(?:buy|purchase)\w* (?:up|out|over|down) there\b|\bwith a local agent\b|\bbuy in (?:arizona"
    r"|texas|nevada|idaho|oregon|washington|mexico)\b"
)

# "We might sell someday, but right now we want to buy": the hedged plan is not the ask.
_HEDGED_RE = _rx(
    rf"\b(?:might|may|could) (?:\w+ )?{_VERBS}[^.,!?]{{0,20}}\b(?:someday|eventually|one day|later"
    r"|at some point|in a few years|down the road)\b"
)
# The lease a tenant is leaving, and rentals an investor buys, are not a rental ask.
_NOT_A_RENT_ASK_RE = _rx(
    r"\b(?:our |my |the )?lease (?:is |will be )?(?:up|ends?|ending|runs|expires?)\b|\binstead of renewing\b"
    r"|\b(?:single[- ]family|sfr|investment|income) rentals?\b|\brental propert(?:y|ies)\b"
)
_HYPOTHETICAL_RE = _rx(rf"\bif (?:i|we) (?:were to|ever) {_VERBS}")

# ---------------------------------------------------------------- the lead's own asks
_SELL_RE = _rx(
    r"\b(?:sell|sells|selling|list(?:ed|ing)? (?:it|my|our|mine|now|with|the house)"
    r"|(?:maybe|to|will|plan to|going to|gonna) list"
    r"|put(?:ting)? (?:it|my|our \w+) on the market|(?:want|get|have) it on the market|on the market by"
    r"|(?:my|our|mine)\b[^.?!]{0,25}\bworth|home'?s? (?:value|worth)|what would (?:it|mine|ours) go for"
    r"|value of (?:my|our)|estimate of (?:my|our)|how much (?:is|would) (?:my|our|mine)\b"
    r"|how much is mine|how much (?:would|could|will|do) (?:i|we) (?:get|net)|what (?:would|could)"
    r" (?:we|i) net|market analysis|cma|home valuation|cash(?:ing)? out|get rid of (?:my|our|the|his|her)"
    r"|vender\w*|vendo|vendemos|venderla|cuanto vale (?:mi|la nuestra|nuestra)|cuanto me dan)\b"
)
_BUY_RE = _rx(
    r"\b(?:buy(?:s|ing|ers?)?|purchas(?:e|ing)|house[- ]hunting|homebuyers?|move[- ]up|acquire"
    r"|first (?:home|house)|starter home|down payment|pago inicial|enganche|outbid|new construction"
    r"|new (?:homes|listings)|listings|homes? for sale|casas? en venta|a la venta|fixer[- ]?uppers?"
    r"|bank owned|reo|distressed|flip\w*|(?:find|get) (?:our|my|a) (?:next|new) (?:home|house|place)"
    r"|move into (?:something|a \w+)|move closer|upgrade to|(?:like|want|ready|able) to own"
    r"|comprar|compra|compro|compramos)\b"
)
_SOFT_BUY_RE = _rx(
    r"\blooking (?:for|at):? (?:a |an |our |my )?(?:\w+ )?(?:home|house|condo|town(?:home|house)|place"
    r"|property|properties|casa|single[- ]family|[0-9] ?(?:br|bd|bed))|\bbusc(?:o|amos|ando) (?:una )?casa"
    r"|\bqueremos casa\b|\b(?:moving|relocating) (?:here|to the|back to|from)\b|\binterested in (?:the |a )?"
    r"(?:new )?homes?\b|\b(?:homes?|houses|casas) (?:like|with|under|in|near|around)\b"
)
# A question about one listing, or a request to see it or offer on it (a buyer unless it is a rental).
_STREET = r"(?:st|street|ave|avenue|rd|road|dr|drive|ln|lane|blvd|ct|court|way|pkwy|hwy|pl|cir|calle)"
_LISTING_RE = _rx(
    rf"\b[0-9]{{2,6}} (?:[nsew] )?(?:\w+ ){{1,3}}{_STREET}\b|\b(?:house|home|condo|townhome|listing"
    r"|property|place|one|villas?|casa|de|la) (?:on|en|de la calle|en la calle) [a-z0-9]|at [0-9]{2,}"
    r"|\bstill (?:available|on the market|for sale|active|pending)\b|\b(?:available for showings?"
    r"|open house|showings?|tour|disclosures|mello-?roos|hoa|sqft|lot size|price (?:drop|reduction)s?"
    r"|make an offer|write one|put an offer|an offer|offers?|saw (?:ur|your) sign|this (?:home|place|property"
    r"|listing|house)|the listing|(?:the|this) (?:\w+ ){1,2}(?:listing|house|home|one|condo|townhome)"
    r"|sigue disponible|todavia esta|(?:on|at) [0-9]{2,6} [a-z]+|interested in (?:seeing|viewing|touring)"
    r"|podemos verla|la casa de \w+)\b"
)
_SHOWING_RE = _rx(
    r"\b(?:see|tour|view|look at|get into|walk through|showing|ver(?:la)?)\b[^.!?]{0,40}"
    r"|\b(?:an|the) offer\b|\boffer same day\b"
)
_RENT_RE = _rx(
    r"\b(?:rent|renting|rental|rentals|lease|leasing|for lease|apartment|apartments|apts?|studio"
    r"|rentar|alquilar|renta|departamentos?|rent-to-own|lease-to-own)\b"
    r"(?! income| propert| units?\b| out| it out| building| complex)"
)
# Renting that is the lead's ask, not a word about the lease they are leaving.
_RENT_ASK_RE = _rx(
    r"\b(?:need|want|looking|look|searching|busco|ocupo|any|have|tienen|interested in)\b[^.!?]{0,30}"
    r"\b(?:to rent|to lease|rentals?|for rent|for lease|apartments?|apts?|rentar|renta|leasing|a room)\b"
    r"(?! out| it out| them out)"
    r"|\brent for (?:a|\w+) (?:year|months?)\b|\brenting for now\b|\bfor now i need\b"
)
# Current tenants on their way to buying: "renting in Pomona", "our lease ends in August".
_SOURCE_SELL_RE = _rx(r"(?<![a-z])(?:sell|home[-_ ]?value|valuation|cma)")
_SOURCE_RENT_RE = _rx(r"(?<![a-z])(?:rent|apartments)")
_MUST_SELL_FIRST_RE = _rx(
    r"\b(?:need|have|must|got|gotta)(?: to)? sell\b[^.!?]{0,40}?\bfirst\b|\bcontingen(?:t|cy)\b"
    r"|\bsell(?:ing)?\b[^.!?]{0,40}?\b(?:before|then)\b[^.!?]{0,30}?\b(?:buy|purchas|compr)"
    r"|\bsell\w*\b[^.!?]{0,40}?\bto (?:afford|buy|make it work|pay for)\b"
    r"|\bprimero vender\b|\bvender\b[^.!?]{0,30}?\bprimero\b|\bsell\w* (?:our|my) \w+ first\b"
    r"|\bif (?:i|we) sell\w*\b[^.!?]{0,30}?\b(?:afford|buy|get)\b"
)


OPTED_OUT = "opted out"
NOT_A_LEAD = "not a real estate lead"


@dataclass(frozen=True)
class IntentReading:
    """The intent and the signals about it that the temperature rubric also weighs."""

    intent: Intent
    asks_about_listing: bool = False
    wants_showing: bool = False
    must_sell_first: bool = False
    no_lead: str | None = None  # why there is nothing to act on: OPTED_OUT or NOT_A_LEAD


def _blank(pattern: re.Pattern[str], text: str) -> str:
    return pattern.sub(lambda m: " " * len(m[0]), text)


def read_intent(text: str, source: str = "", *, buyer_hint: bool = False) -> IntentReading:
    """The lead's primary ask from its folded message and source.

    ``buyer_hint`` (a budget, bedrooms, financing, investing) makes a buyer of a message that
    names no plan at all.
    """
    if _OPT_OUT_RE.search(text):
        return IntentReading(Intent.UNKNOWN, no_lead=OPTED_OUT)
    if _WRONG_NUMBER_RE.search(text) or _VENDOR_RE.search(text):
        return IntentReading(Intent.UNKNOWN, no_lead=NOT_A_LEAD)
    own = text
    for pattern in (_NEGATED_RE, _HYPOTHETICAL_RE, _OTHERS_SELLING_RE, _BUY_ELSEWHERE_RE, _NOT_A_RENT_ASK_RE):
        own = _blank(pattern, own)
    firm = _blank(_HEDGED_RE, own)
    sell = bool(_SELL_RE.search(own) or _SOURCE_SELL_RE.search(source))
    if sell and _REFINANCE_RE.search(text) and not re.search(r"\bsell", own, re.IGNORECASE):
        sell = False  # a value for a refinance is no sale
    buy = bool(_BUY_RE.search(own))
    if buy and sell:  # the primary ask: a hedged one gives way to a firm one
        buy, sell = (
            bool(_BUY_RE.search(firm)) or not _SELL_RE.search(firm),
            bool(_SELL_RE.search(firm)) or not _BUY_RE.search(firm),
        )
    rent_ask = bool(_RENT_ASK_RE.search(own))
    rent = rent_ask or bool(_RENT_RE.search(own) or _SOURCE_RENT_RE.search(source))
    listing = bool(_LISTING_RE.search(own))
    showing = listing and bool(_SHOWING_RE.search(own))
    soft_buy = bool(_SOFT_BUY_RE.search(own))
    # "need to sell the house here first" without any purchase in view is a plain sale
    sells_first = bool(_MUST_SELL_FIRST_RE.search(own)) and (
        buy or soft_buy or "before" in own or "afford" in own
    )
    if sells_first or (buy and sell):
        intent = Intent.BOTH
    elif sell:
        intent = Intent.SELLER
    elif rent_ask or (rent and not buy):
        intent = Intent.UNKNOWN if _RENT_OUT_RE.search(own) and not rent_ask else Intent.RENTER
    elif _RENT_OUT_RE.search(own) and not buy:
        intent = Intent.UNKNOWN
    elif buy or listing or buyer_hint or soft_buy:
        intent = Intent.BUYER
    else:
        intent = Intent.UNKNOWN
    return IntentReading(intent, listing, showing, sells_first)
