"""Rules-based lead qualification (engine ``rules-v1``): pure pattern matching, no I/O.

Every field comes from a readable pattern table below, and every temperature carries the
short sentences that decided it, so a salesperson can see why a lead is hot, warm or cold.
"""

from __future__ import annotations

import re
import unicodedata
from collections.abc import Callable
from datetime import date

from schemas.leads import LeadToQualify
from schemas.qualification import (
    FinancialReadiness,
    FinancingStatus,
    Intent,
    PropertyPreferences,
    Qualification,
    Temperature,
    Timeline,
)
from services.qualifier.engine import QualificationEngine
from services.qualifier.intent import NOT_A_LEAD, OPTED_OUT, IntentReading, read_intent
from services.qualifier.intent import compile_pattern as _rx

ENGINE_NAME = "rules-v1"
# A first message states its ask early; reading at most this much keeps a pasted 10,000-character
# thread (the API's cap) near 100 ms on a loaded core instead of several times that.
_MAX_CHARS = 4_000


# Patterns run on folded text (see _fold): accents stripped, one space between words.
# ---------------------------------------------------------------- places and intent
_AREA_RE = _rx(
    r"\b(rancho cucamonga|alta loma|etiwanda|victoria|haven|upland|ontario|fontana|chino hills"
    r"|chino|claremont|corona|eastvale|montclair|pomona|rialto|san bernardino|redlands|riverside)"
    r"(?: gardens| arbors)?\b"
)
_RC_RE = re.compile(r"\bRC\b")  # case-sensitive: lower-case "rc" is too often noise

# Far off or not in the market yet: cold unless a move within 3 months is also stated.
# "No rush" and "not in a hurry" are patience, not distance: they stay out.
_FAR_OFF_RE = _rx(
    r"\bjust (?:looking|browsing|curious|researching|checking|want to (?:learn|get on|be on))\b"
    r"|\bbrowsing\b|\bsome ?day\b|\beventually\b|\bone day\b|\bdown the road\b|\bat some point\b"
    r"|\b(?:in )?(?:a|the next) (?:few|couple(?: of)?) years\b|\b(?:2|3|two|three|a year or two|or two)"
    r" years\b|\bnot (?:ready|yet|anytime soon|for a while|this year|for (?:at least )?another)\b"
    r"|\bfor the future\b|\blong term\b|\b(?:probably|prob) wait|\bjust (?:starting|wanted) to"
    r"|\bsolo (?:estoy )?(?:viendo|mirando)\b|\bunos anos\b|\bo despues\b|\btodavia no\b"
    r"|\bno pienso\b|\bsolo curiosidad\b|\bnot in the cards\b|\bcurious\b|\bnot (?:really )?ready\b"
    r"|\bnot (?:buying|selling|moving|listing|looking) (?:anytime soon|for a while|yet)\b"
)
_INVESTOR_RE = _rx(
    r"\binvest(?:or|ors|ment|ing)?\b|\brental (?:income|propert(?:y|ies)|units?)\b|\bcash[- ]?flow"
    r"|\bflip(?:s|ping|per)?\b|\broi\b|\bcap rate\b|\bmulti[- ]?family\b|\brent (?:it |them )?out\b"
    r"|\b(?:duplex|triplex|fourplex|quadplex)\b|\binversion(?:ista)?\b"
)
_PROPERTY_TYPES = {
    "multi-family": r"\b(?:duplex|triplex|fourplex|quadplex|multi[- ]?family)\b",
    "condo": r"\bcondo(?:minium)?s?\b",
    "townhouse": r"\btown ?(?:home|house)s?\b",
    "single-family": r"\b(?:single[- ]family|sfr)\b",
    "land": r"\b(?:vacant land|acres?|buildable lot)\b",
}
_MOTIVATIONS = {  # first matching row wins, so the most specific life events come first
    "relocation": r"relocat|job transfer|transferred|new job|for work\b|reubica|por trabajo",
    "divorce": r"divorc|separation|separating",
    "probate/inherited": r"probate|inherit|passed away|estate sale|herede|herencia",
    "growing family": r"growing family|baby|more (?:space|room)|bigger (?:home|house)",
    "downsizing": r"downsiz|empty nest|smaller (?:home|house|place)",
    "retirement": r"retir|jubil",
    "financial hardship": r"foreclos|behind on (?:payments|my mortgage)|can'?t afford",
    "first home": r"first (?:home|house)|first[- ]time (?:home ?)?buyer|primera casa",
    "investment": _INVESTOR_RE.pattern,
}
_MOTIVATION_RES = [(label, _rx(pattern)) for label, pattern in _MOTIVATIONS.items()]
_PROPERTY_TYPE_RES = [(label, _rx(pattern)) for label, pattern in _PROPERTY_TYPES.items()]

_HAS_NO_AGENT_RE = _rx(
    r"\b(?:no|not working with an?|don'?t have an?|do not have an?|without an?|need an?"
    r"|looking for an?|no tengo(?: un)?) (?:agent|realtor|broker|agente)\b"
)
_HAS_AGENT_RE = _rx(
    r"\b(?:i|we) (?:already )?(?:have|got|hired|signed with) (?:an?|my|our) (?:own )?(?:agent"
    r"|realtor|broker)\b|\bwork(?:ing)? with (?:an?|my|our|another) (?:agent|realtor|broker)\b"
    r"|\bmy (?:agent|realtor)\b|\btengo (?:un |una )?(?:agente|realtor)\b"
)
_SPANISH_RE = _rx(
    r"\b(comprar|vender|casas?|recamaras?|quiero|queremos|preaprobad[oa]|busco|buscamos|necesito"
    r"|meses|dormitorios|habitaciones|hola|gracias|mudarnos|mudarme|vivienda|tengo|estoy"
    r"|cuartos|banos|efectivo|hipoteca|pronto|familia|trabajo)\b"
)

# ---------------------------------------------------------------- money
# In-progress and negated phrasings are matched (and blanked) before "pre-approved", so
# "getting pre-approved" or "not pre-approved yet" never counts as pre-approved.
_FIN_NOT_YET_RE = _rx(
    r"(?:\bnot|n't|\bno|\bnever) (?:yet )?(?:been |gotten |got |get )?pre[- ]?approved"
    r"|pre[- ]?approved:? no\b"
)
_FIN_TALKING_RE = _rx(
    r"\b(?:getting|get|working on|applying for|apply for) (?:a )?pre[- ]?(?:approved|approval"
    r"|qualified|qualification)\b|\bpre[- ]?qualif(?:ied|ication)\b|\b(?:talking|talked|speaking"
    r"|spoke|working|meeting|met) (?:to|with) (?:a |an |my |our |the )?(?:lender|loan officer"
    r"|mortgage (?:broker|lender|officer|company)|bank)\b|\bhablando con (?:un |el )?banco\b"
)
_FIN_PRE_APPROVED_RE = _rx(
    r"\bpre[- ]?approv(?:ed|al letter|al)\b|\bpre[- ]?aprobad[oa]s?\b|\bpre[- ]?aprobacion\b"
    r"|\bunderwritten approval\b"
    r"|\bapproved for (?:a |an )?(?:\$|[0-9]|loan|mortgage)"
)
_FIN_CASH_RE = _rx(
    r"\b(?:all[- ])?cash (?:buyer|offer|purchase|deal)s?\b|\ball[- ]cash\b|\ben efectivo\b"
    r"|\b(?:pay|paying|buy|buying|purchas\w*|clos(?:e|ing)) (?:with |in |all )*cash\b"
    r"|\bde contado\b|\b(?:got|have|with) cash\b|\bcash (?:in hand|ready|from (?:the )?sale)\b"
    r"|\b1031 (?:exchange )?(?:money|funds)\b|\b(?:we're|we are|i'm|im|i am) cash\b"
)
_FIN_NEEDS_RE = _rx(
    r"\bneed(?:s|ing)? (?:a |to get a )?(?:loan|mortgage|financing)\b|\bdown payment assistance"
    r"|\b(?:fha|va|usda|conventional|home) loan\b|\bfinancing\b|\bprestamo\b|\bhipoteca\b"
)
_FINANCING_REASONS = {  # strongest first: the first status found wins
    FinancingStatus.PRE_APPROVED: "pre-approved",
    FinancingStatus.CASH: "cash buyer",
    FinancingStatus.TALKING_TO_LENDER: "talking to a lender",
    FinancingStatus.NEEDS_FINANCING: "needs financing",
}
_READY = frozenset(list(_FINANCING_REASONS)[:3])
_MONEY_IN_HAND = frozenset(list(_FINANCING_REASONS)[:2])  # "talking to a lender" is not ready yet

_NUMBER = r"[0-9]{1,3}(?:,[0-9]{3}){1,3}|[0-9]{1,9}(?:\.[0-9]{1,3})?"
_SUFFIX = r"thousand|grand|millones|million|mil|mm|m|k"
_MONEY_RE = _rx(
    r"(?:(?P<qual>\b(?:between|from|under|below|less than|no more than|at most|up to|max(?:imum)?"
    r"|over|above|at least|min(?:imum)?|more than|starting at|around|about|roughly"
    r"|approx(?:imately)?|entre|hasta|menos de|mas de|alrededor de)|~) ?)?"
    rf"(?P<d1>\$)? ?(?<![0-9.,])(?P<n1>{_NUMBER}) ?(?P<s1>{_SUFFIX})?\b"
    rf"(?: ?(?:-|to|and|y|a) ?(?P<d2>\$)? ?(?P<n2>{_NUMBER}) ?(?P<s2>{_SUFFIX})?\b)?"
)
_NOT_BUDGET_AFTER_RE = _rx(
    r" ?(?:down\b|deposit|(?:in |of )?(?:rental )?income|equity|of equity|salary|a year|per year)"
)
_NOT_BUDGET_BEFORE_RE = _rx(r"(?:down payment|deposit|income|salary|equity)(?: of| is)? ?$")
_MIN_QUALIFIERS = {"over", "above", "at least", "min", "minimum", "more than", "starting at"}
_MIN_QUALIFIERS |= {"from", "mas de"}
_AROUND_QUALIFIERS = {"around", "about", "roughly", "approx", "approximately", "~"}
_AROUND_QUALIFIERS |= {"alrededor de"}
_MULTIPLIERS = {"k": 1_000, "thousand": 1_000, "grand": 1_000, "m": 1_000_000, "mm": 1_000_000}
_MULTIPLIERS |= {"million": 1_000_000, "millones": 1_000_000}

# ---------------------------------------------------------------- rooms and time
_EN_NUMBERS = ("one", "two", "three", "four", "five", "six", "seven", "eight", "nine", "ten")
_ES_NUMBERS = ("uno", "dos", "tres", "cuatro", "cinco", "seis", "siete", "ocho", "nueve", "diez")
_NUMBER_WORDS = {word: i % 10 + 1 for i, word in enumerate(_EN_NUMBERS + _ES_NUMBERS)}
_QUANTITY_WORDS = {"a couple of": 2, "a couple": 2, "un par de": 2, "a few": 3, "several": 4}
_QUANTITY_WORDS |= {"a": 1, "an": 1, "un": 1, "una": 1, "few": 3, "couple of": 2} | _NUMBER_WORDS
_QUANTITY = "[0-9]{1,3}|" + "|".join(sorted(_QUANTITY_WORDS, key=len, reverse=True))

_BEDS_RE = _rx(
    rf"(?<![0-9.])\b(?P<n>[0-9]{{1,2}}|{'|'.join(_NUMBER_WORDS)}) ?(?:\+|(?:-|to|or|a|o) ?[0-9]+)?"
    r"[ -]?(?:bed(?:room)?s?|bdrms?|bds?|br|recamaras?|habitaciones?|cuartos?|dormitorios?)\b"
)
_BATHS_RE = _rx(
    r"(?<![0-9.])\b(?P<n>[0-9]{1,2}(?:\.[0-9]{1,2})?|one|two|three|four|dos|tres) ?\+?[ -]?"
    r"(?:bath(?:room)?s?|ba|banos?)\b"
)

_UNIT = r"days?|weeks?|wks?|months?|mos?|years?|yrs?|dias?|semanas?|mes(?:es)?|anos?"
_UNIT_MONTHS = {"d": (1, 30), "w": (1, 4), "s": (1, 4), "y": (12, 1), "a": (12, 1), "m": (1, 1)}
_SEASON_START = {"spring": 3, "summer": 6, "fall": 9, "autumn": 9, "winter": 12}
_SEASON_START |= {"primavera": 3, "verano": 6, "otono": 9, "invierno": 12}
_MONTH_ABBR = ("jan", "feb", "mar", "apr", "may", "jun", "jul", "aug", "sep", "oct", "nov", "dec")
_MONTH_BY_PREFIX = {abbr: i + 1 for i, abbr in enumerate(_MONTH_ABBR)}
_MONTH_BY_PREFIX |= {"ene": 1, "abr": 4, "ago": 8, "dic": 12}  # Spanish prefixes that differ
_MONTH_NAMES = (
    r"january|february|march|april|may|june|july|august|sept(?:ember)?|october|november"
    r"|december|jan|feb|apr|aug|sep|oct|nov|dec|enero|febrero|marzo|abril|mayo|junio|julio"
    r"|agosto|septiembre|octubre|noviembre|diciembre"
)
# One alternation, so search() returns the phrase that comes first in the message.
_TIMELINE_PATTERNS = {
    "asap": r"asap|as soon as possible|immediately|right away|urgent\w*|this (?:week|month)"
    r"|next week(?:end)?|(?:by|on|starting|before|ends?|up) the (?:1st|[0-9]{1,2}(?:st|nd|rd|th))"
    r"|(?:end|fin) (?:of|de) (?:the )?(?:month|mes)|before (?:the )?foreclosure|notice of default"
    r"|(?:need|have|want|got) to sell[^.!?]{0,30}(?:fast|quick(?:ly)?)|sell (?:it )?(?:fast|quickly)"
    r"|vender[^.!?]{0,20}rapido|lo antes posible|cuanto antes|de inmediato|inmediatamente|ya mismo"
    r"|within the (?:month|week)|(?:need|want|ocupo|necesito|quiero|queremos)[^.!?]{0,25} (?:now|ya)"
    r"(?= *(?:[.,!?]|$))",
    "quantity": r"(?:in|within|next|about|around|en|dentro de|(?:los )?proximos|timeline:?|have|close in)"
    r" (?:the )?(?:next )?(?:(?:unos|like|about|around|approx|~) ?)?(?:[0-9]{1,3} ?(?:-|to|or|a|o) ?)?"
    rf"(?P<n>{_QUANTITY})(?P<plus>\+)? ?(?P<unit>{_UNIT})",
    "from_now": rf"(?P<n2>{_QUANTITY}) (?P<unit2>{_UNIT}) (?:from now|out|away)",
    "next_month": r"next month|el (?:proximo mes|mes que viene)",
    "season": r"(?:by|in|this|next|before|around|early|late|para|en|antes de) (?:the |el |la )?"
    rf"(?P<season_name>{'|'.join(_SEASON_START)})",
    "month": r"(?:in|by|before|around|early|mid|late|until|this|next|en|para|antes de|starting|end of"
    rf"|up|ends?)[- ](?:of )?(?P<month_name>{_MONTH_NAMES})",
    "year_end": r"(?:by |before )?(?:the )?end of (?:the |this )?year",
    "this_year": r"later this (?:year|yr)|this (?:year|yr)|within the year|este ano",
    "next_year": r"next year|el (?:proximo ano|ano que viene)",
    "in_year": r"(?:in|by|until) (?P<year_number>20[2-9][0-9])",
}
_TIMELINE_RE = _rx("|".join(rf"\b(?P<{k}>{p})\b" for k, p in _TIMELINE_PATTERNS.items()))
_TIMELINE_BUCKETS = [
    (1, Timeline.WITHIN_1_MONTH),
    (3, Timeline.MONTHS_1_3),
    (6, Timeline.MONTHS_3_6),
    (12, Timeline.MONTHS_6_12),
]


def _months_in(quantity: str, unit: str) -> int:
    q = quantity.lower()
    n = _QUANTITY_WORDS[q] if q in _QUANTITY_WORDS else int(q)
    multiply, divide = _UNIT_MONTHS[unit[0].lower()]
    return n * multiply // divide


def _months_until(month: int, today: date, grace: int = 0) -> int:
    """Months from today until ``month``; 0 while still inside the ``grace`` months after it."""
    offset = (month - today.month) % 12
    return 0 if offset >= 12 - grace else offset


_TIMELINE_RESOLVERS: dict[str, Callable[[re.Match[str], date], int]] = {
    "asap": lambda m, today: 0,
    "quantity": lambda m, today: _months_in(m["n"], m["unit"]) + bool(m["plus"]),
    "from_now": lambda m, today: _months_in(m["n2"], m["unit2"]),
    "next_month": lambda m, today: 1,
    "season": lambda m, today: _months_until(_SEASON_START[m["season_name"].lower()], today, 2),
    "month": lambda m, today: _months_until(_MONTH_BY_PREFIX[m["month_name"][:3].lower()], today),
    "year_end": lambda m, today: 12 - today.month,
    # "this year" is a horizon (within the year), never an urgency, even in December
    "this_year": lambda m, today: max(12 - today.month, 4),
    "next_year": lambda m, today: 12,
    "in_year": lambda m, today: max(0, (int(m["year_number"]) - today.year) * 12 + 6 - today.month),
}


# ---------------------------------------------------------------- extractors
def _fold(text: str) -> str:
    """Strip accents, unify apostrophes and collapse whitespace so patterns stay simple."""
    text = unicodedata.normalize("NFKD", text[:_MAX_CHARS].replace("\u2019", "'"))
    text = "".join(ch for ch in text if not unicodedata.combining(ch))
    # Dotless i (U+0131) matches "i" under IGNORECASE yet is no key of our word tables
    return re.sub(r"\s+", " ", text.replace("\u0131", "i"))


def _timeline_months(text: str, today: date) -> int | None:
    m = _TIMELINE_RE.search(text)
    if m is None:
        return None
    kind = next(k for k in _TIMELINE_PATTERNS if m[k] is not None)
    return _TIMELINE_RESOLVERS[kind](m, today)


def _timeline_bucket(months: int | None) -> Timeline:
    if months is None:
        return Timeline.UNKNOWN
    return next((b for limit, b in _TIMELINE_BUCKETS if months <= limit), Timeline.OVER_12_MONTHS)


def _financing(text: str) -> FinancingStatus:
    settled = _FIN_TALKING_RE.sub(" ", _FIN_NOT_YET_RE.sub(" ", text))
    found = {
        FinancingStatus.PRE_APPROVED: _FIN_PRE_APPROVED_RE.search(settled),
        FinancingStatus.CASH: _FIN_CASH_RE.search(text),
        FinancingStatus.TALKING_TO_LENDER: _FIN_TALKING_RE.search(text),
        FinancingStatus.NEEDS_FINANCING: _FIN_NOT_YET_RE.search(text) or _FIN_NEEDS_RE.search(settled),
    }
    return next((status for status, hit in found.items() if hit), FinancingStatus.UNKNOWN)


def _amount(number: str, suffix: str | None) -> int:
    value = float(number.replace(",", ""))
    suffix = (suffix or "").lower()
    if suffix == "mil":  # Spanish "750 mil" is thousands; English slang "1.2 mil" is millions
        suffix = "k" if value >= 10 else "m"
    return round(value * _MULTIPLIERS.get(suffix, 1))


def _budget(text: str) -> tuple[int | None, int | None]:
    """First stated budget as (min, max) in dollars; a bare amount is read as a maximum."""
    for m in _MONEY_RE.finditer(text):
        before = text[max(0, m.start() - 25) : m.start()]
        if _NOT_BUDGET_AFTER_RE.match(text, m.end()) or _NOT_BUDGET_BEFORE_RE.search(before):
            continue
        qual = (m["qual"] or "").lower()
        if m["n2"] and (m["d2"] or m["s2"] or "," in m["n2"]):
            high = _amount(m["n2"], m["s2"])
            # "600-800k": the first number borrows the second's suffix
            low = _amount(m["n1"], m["s1"] or ("" if "," in m["n1"] else m["s2"]))
            if max(1_000, high // 10) <= low <= high * 10 and high <= 100_000_000:
                return min(low, high), max(low, high)
            low, qual = high, ""  # the first number was not money ("3 and $750k")
        elif m["d1"] or m["s1"] or "," in m["n1"]:
            low = _amount(m["n1"], m["s1"])
        else:
            continue
        if not 1_000 <= low <= 100_000_000:
            continue
        if qual in _MIN_QUALIFIERS:
            return low, None
        if qual in _AROUND_QUALIFIERS:
            return round(low * 0.95), round(low * 1.05)
        return None, low
    return None, None


def _format_money(value: int) -> str:
    if value >= 1_000_000:
        return f"{value / 1_000_000:.2f}".rstrip("0").rstrip(".") + "M"
    if value >= 1_000:
        return f"{value / 1_000:.1f}".rstrip("0").rstrip(".") + "k"
    return str(value)


def _price_range(low: int | None, high: int | None) -> str | None:
    if low is not None and high is not None:
        return f"{_format_money(low)}-{_format_money(high)}"
    if high is not None:
        return f"up to {_format_money(high)}"
    return f"{_format_money(low)}+" if low is not None else None


def _count(regex: re.Pattern[str], text: str) -> float | None:
    m = regex.search(text)
    if m is None:
        return None
    word = m["n"].lower()
    value = _NUMBER_WORDS[word] if word in _NUMBER_WORDS else float(word)
    return value if value <= 20 else None


def _areas(text: str) -> list[str]:
    found = [m[1].title() for m in _AREA_RE.finditer(text)]
    if _RC_RE.search(text):
        found.append("Rancho Cucamonga")
    return list(dict.fromkeys(found))


def _has_agent(text: str) -> bool | None:
    if _HAS_NO_AGENT_RE.search(text):
        return False
    return True if _HAS_AGENT_RE.search(text) else None


# ---------------------------------------------------------------- decisions
# The wording of the triage skill, so either engine tells the bots the same thing.
_NO_LEAD_ACTIONS = {
    OPTED_OUT: "Stop messaging: lead opted out",
    NOT_A_LEAD: "Discard: not a real estate lead",
}


def _moving_phrase(months: int) -> str:
    if months == 0:
        return "moving as soon as possible"
    return f"moving within {months} month{'s' if months != 1 else ''}"


def _temperature(
    reading: IntentReading, status: FinancingStatus, months: int | None, far_off: bool, has_budget: bool
) -> tuple[Temperature, list[str]]:
    """Temperature by the rubric of docs/AI_QUALIFIER.md and the sentences that decided it."""
    intent = reading.intent
    urgent = months is not None and months <= 3
    moving = _moving_phrase(months) if months is not None else ""
    money = _FINANCING_REASONS.get(status, "")
    if reading.no_lead:
        return Temperature.COLD, [reading.no_lead]
    if intent == Intent.UNKNOWN:
        reasons = ["just browsing"] if far_off else []
        return Temperature.COLD, [*reasons, moving or "no timeline given", "intent unclear"]
    if intent == Intent.RENTER:
        if urgent:
            return Temperature.WARM, ["renter", moving]
        return Temperature.COLD, ["renter without an urgent move"]
    if months is not None and months > 12:
        return Temperature.COLD, ["moving in more than a year", money]
    if far_off and not urgent:
        return Temperature.COLD, ["not in the market yet", money]
    if urgent and intent in (Intent.SELLER, Intent.BOTH):
        return Temperature.HOT, [f"seller {moving}", money]
    if status in _MONEY_IN_HAND and (urgent or reading.wants_showing):
        return Temperature.HOT, [moving or "asks to see a home", money]
    if months is not None:
        return Temperature.WARM, [moving, money or "financing not confirmed"]
    if reading.asks_about_listing:
        return Temperature.WARM, ["asks about a listing", money or "no timeline given"]
    label = "buy-and-sell" if intent == Intent.BOTH else intent.name.lower()
    return Temperature.WARM, [
        f"clear {label} intent",
        money or ("budget stated" if has_budget else "no timeline given"),
    ]


def _next_action(
    reading: IntentReading, temperature: Temperature, has_agent: bool | None, months: int | None
) -> str:
    intent = reading.intent
    if reading.no_lead:
        return _NO_LEAD_ACTIONS[reading.no_lead]
    if intent == Intent.RENTER:
        return "Refer to rental partner"
    if intent == Intent.UNKNOWN:
        return "Ask what they are looking for"
    if has_agent:
        return "Confirm whether they are committed to their agent before pursuing"
    # A seller without a stated date is often asking for a home value: that is a hand-off.
    if intent in (Intent.SELLER, Intent.BOTH) and (months is None or months <= 12):
        return "Book listing consultation and prepare CMA"
    if temperature == Temperature.COLD:
        return "Add to long-term nurture"
    if temperature == Temperature.HOT or reading.wants_showing:
        return "Schedule showing"
    if reading.asks_about_listing:  # a question only an agent can answer well: a hand-off
        return "Answer the listing question and offer a showing"
    return "Send matching listings and nurture"


def qualify_lead(lead: LeadToQualify, today: date | None = None) -> Qualification:
    """Qualify one lead from its message, property address and source; never raises.

    ``today`` anchors calendar phrases ("in March", "by spring"); it defaults to the current
    date, so pass it for fully deterministic results.
    """
    text = _fold(" ".join(filter(None, (lead.message, lead.property_address))))
    months = _timeline_months(text, today or date.today())
    status = _financing(text)
    budget_min, budget_max = _budget(text)
    has_budget = budget_min is not None or budget_max is not None
    bedrooms, bathrooms = _count(_BEDS_RE, text), _count(_BATHS_RE, text)
    areas = _areas(text)
    is_investor = bool(_INVESTOR_RE.search(text))
    reading = read_intent(
        text,
        lead.source or "",
        buyer_hint=is_investor or status in _READY or has_budget or bedrooms is not None,
    )
    intent = reading.intent
    must_sell_first = True if reading.must_sell_first else None
    has_agent = _has_agent(text)
    motivation = next((label for label, rx in _MOTIVATION_RES if rx.search(text)), None)
    if lead.message.strip():
        temperature, reasons = _temperature(
            reading, status, months, bool(_FAR_OFF_RE.search(text)), has_budget
        )
    else:
        temperature, reasons = Temperature.COLD, ["empty message"]
    if has_budget and "budget stated" not in reasons and temperature != Temperature.COLD:
        reasons.append("budget stated")
    found = [intent != Intent.UNKNOWN, months is not None, status != FinancingStatus.UNKNOWN]
    found += [has_budget, bedrooms is not None, bool(areas), motivation is not None]
    found.append(has_agent is not None)
    return Qualification(
        intent=intent,
        is_investor=is_investor,
        temperature=temperature,
        temperature_reasons=[r for r in reasons if r],
        timeline=_timeline_bucket(months),
        timeline_months=months,
        financial_readiness=FinancialReadiness(
            status=status,
            pre_approved=status == FinancingStatus.PRE_APPROVED,
            budget_min=budget_min,
            budget_max=budget_max,
            confidence=0.6 * (status != FinancingStatus.UNKNOWN) + 0.4 * has_budget,
        ),
        property_preferences=PropertyPreferences(
            bedrooms=int(bedrooms) if bedrooms is not None else None,
            bathrooms=bathrooms,
            property_type=next((t for t, rx in _PROPERTY_TYPE_RES if rx.search(text)), None),
            areas=areas,
            neighborhood=areas[0] if areas else None,
            price_range=_price_range(budget_min, budget_max),
        ),
        motivation=motivation,
        has_agent=has_agent,
        must_sell_first=must_sell_first,
        next_action=_next_action(reading, temperature, has_agent, months),
        language="es" if len({w.lower() for w in _SPANISH_RE.findall(text)}) >= 2 else "en",
        confidence=round(0.1 + 0.85 * sum(found) / len(found), 2),
        engine=ENGINE_NAME,
    )


class RulesQualificationEngine(QualificationEngine):
    """The QualificationEngine port backed by :func:`qualify_lead`: offline and deterministic."""

    name = ENGINE_NAME

    def __init__(self, today: Callable[[], date] = date.today) -> None:
        self._today = today

    async def qualify(self, lead: LeadToQualify) -> Qualification:
        """Qualify one lead with the rules; odd input yields unknowns, never an exception."""
        return qualify_lead(lead, today=self._today())
