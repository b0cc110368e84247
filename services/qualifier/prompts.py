"""The Claude qualifier's request and answer (pure): prompt, forced tool, validation.

The stable prefix (tool schema, core instructions, skill sections) comes first and carries
``cache_control`` breakpoints; the lead comes last, so every lead reuses the cached prefix.
Contact data (name, phone, email) is never sent: the qualification does not need it.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from datetime import date
from typing import Any

from pydantic import ValidationError

from schemas.leads import LeadToQualify
from schemas.qualification import Qualification, TokenUsage
from services.qualifier.skills import ALL_SKILLS, SKILLS

TOOL_NAME = "record_qualification"
# Filled by the platform, never by the model.
SERVER_FIELDS = frozenset({"engine", "model", "usage", "fallback_reason"})
CHARS_PER_TOKEN = 4  # same estimate as the local fake API; bench/ compares ratios only

CORE_INSTRUCTIONS = """\
You qualify real-estate leads for a team in California's Inland Empire (Rancho Cucamonga,
Upland, Ontario, Fontana, Chino Hills and nearby). Read the lead's message and record the
qualification with the record_qualification tool. Never invent facts: a field the lead did not
give stays null, unknown or empty, and that is a valid answer.

Fields:
- intent: the lead's own primary ask. buyer_intent: wants to buy, or asks about one listing (still
  available? a tour, the open house, HOA, price, an offer), or rents now and wants to buy.
  seller_intent: wants to sell, list or value their own home (estates, divorces, landlords selling,
  moving away and buying elsewhere). buyer_and_seller_intent: sells here and buys here ("sell then buy", "sell
  first", "if we sold could we afford..."). renter_intent: wants to rent a home to live in. unknown_intent:
  nothing to act on (vendors and pitches, wrong numbers, other agents, opt-outs, "hi",
  landlords seeking tenants or property management, a value for a refinance). A denied plan
  ("not selling", "can't buy yet") or someone else's sale ("my landlord is selling") is no
  intent; when several plans are named, the one they ask help with now wins.
- is_investor: true when buying or selling as an investment (rentals, flips, multi-family).
- temperature: hot, warm or cold, with temperature_reasons: two or three short phrases that
  decided it, most decisive first (e.g. "moving within 2 months", "pre-approved"). The first
  rule that applies decides; money is ready when pre-approved or cash:
  cold = unknown_intent; a renter not moving within 3 months (a renter within 3 months is
  warm); over 12 months away, "someday", "eventually", "in a few years", "not ready yet",
  "just browsing/curious" without a move within 3 months.
  hot = a seller or buy-and-sell lead moving within 3 months; a buyer with money ready who
  moves within 3 months or asks to see or offer on a home.
  warm = moving within 12 months; otherwise any clear buyer, seller or buy-and-sell intent
  with no date (a listing question, a budget, a valuation, money ready).
- timeline: within_1_month, 1_3_months, 3_6_months, 6_12_months, over_12_months or unknown;
  timeline_months: whole months until the move when a date or duration is stated (asap = 0).
  Resolve calendar words ("in March", "by summer", "next year" = 12) against today's date.
- financial_readiness: status (pre_approved, cash, talking_to_lender, needs_financing, unknown),
  pre_approved, budget_min / budget_max in whole US dollars, confidence 0-1.
- property_preferences: bedrooms, bathrooms, property_type, areas (cities or neighborhoods in
  the order named), neighborhood (the first area), price_range (e.g. "600k-800k", "up to 750k").
- motivation: the life event behind the move in two or three words, or null.
- has_agent: true if they already work with an agent, false if they say they have none.
- must_sell_first: true when they must sell before they can buy.
- next_action: one short imperative sentence for the agent, e.g. "Schedule showing",
  "Book listing consultation and prepare CMA", "Send matching listings and nurture",
  "Add to long-term nurture", "Refer to rental partner", "Ask what they are looking for".
- language: ISO 639-1 code of the message.
- confidence: 0-1, how much of the qualification the message actually supports.
- suggested_reply: one or two friendly sentences (under 320 characters) the bot could text
  back: answer what they asked and ask the single most useful missing question (timeline,
  financing, area or budget). No promises about prices, rates or availability; never ask for
  sensitive data.
"""


def _inline_refs(node: Any, defs: dict[str, Any]) -> Any:
    """The schema with every $ref replaced by its definition (simpler for the model to read)."""
    if isinstance(node, dict):
        if "$ref" in node:
            return _inline_refs(defs[node["$ref"].rsplit("/", 1)[-1]], defs)
        return {k: _inline_refs(v, defs) for k, v in node.items() if k not in ("$defs", "title")}
    if isinstance(node, list):
        return [_inline_refs(item, defs) for item in node]
    return node


def qualification_tool_schema() -> dict[str, Any]:
    """JSON schema of the tool input: the Qualification model minus the platform's own fields."""
    schema = Qualification.model_json_schema()
    inlined: dict[str, Any] = _inline_refs(schema, schema.get("$defs", {}))
    inlined["properties"] = {k: v for k, v in inlined["properties"].items() if k not in SERVER_FIELDS}
    inlined["required"] = [k for k in inlined.get("required", []) if k not in SERVER_FIELDS]
    return inlined


def _cache(ttl: str) -> dict[str, str]:
    return {"type": "ephemeral"} if ttl == "5m" else {"type": "ephemeral", "ttl": ttl}


def render_lead(lead: LeadToQualify, today: date) -> str:
    """The user turn: today's date and what the lead wrote, without contact data."""
    lines = [f"Today is {today.isoformat()}.", "<lead>"]
    if lead.source:
        lines.append(f"<source>{lead.source}</source>")
    if lead.property_address:
        lines.append(f"<property_address>{lead.property_address}</property_address>")
    lines += [f"<message>{lead.message}</message>", "</lead>"]
    return "\n".join(lines)


def build_request(
    lead: LeadToQualify,
    *,
    model: str,
    skills: Sequence[str] = ALL_SKILLS,
    max_tokens: int = 1024,
    cache_ttl: str = "5m",
    today: date,
) -> dict[str, Any]:
    """Keyword arguments of ``messages.create`` for one lead, with the tool forced."""
    tool = {
        "name": TOOL_NAME,
        "description": "Record the qualification of the lead. Call it exactly once.",
        "input_schema": qualification_tool_schema(),
    }
    system: list[dict[str, Any]] = [
        {"type": "text", "text": CORE_INSTRUCTIONS, "cache_control": _cache(cache_ttl)}
    ]
    if skills:
        sections = "\n".join(SKILLS[name] for name in skills)
        system.append({"type": "text", "text": sections, "cache_control": _cache(cache_ttl)})
    return {
        "model": model,
        "max_tokens": max_tokens,
        "system": system,
        "tools": [tool],
        "tool_choice": {"type": "tool", "name": TOOL_NAME},
        "messages": [{"role": "user", "content": render_lead(lead, today)}],
    }


def estimate_request_tokens(request: dict[str, Any]) -> int:
    """Rough input tokens of a request (characters / 4), for comparing prompt sizes offline."""
    parts = [request.get("tools"), request.get("system"), request.get("messages")]
    return max(1, len(json.dumps(parts, separators=(",", ":"))) // CHARS_PER_TOKEN)


class InvalidAnswer(ValueError):
    """Claude's answer is not one call of the tool with an input the Qualification accepts."""


def parse_answer(
    content: Sequence[Any], *, engine: str, model: str, usage: TokenUsage | None
) -> Qualification:
    """The Qualification in the tool call of ``content`` (SDK blocks or dicts), validated.

    Raises InvalidAnswer when there is no call of the tool or its input fails validation;
    the caller falls back to the rules engine.
    """
    calls = [block for block in content if _field(block, "type") == "tool_use"]
    call = next((block for block in calls if _field(block, "name") == TOOL_NAME), None)
    if call is None:
        raise InvalidAnswer("the answer holds no record_qualification call")
    tool_input = _field(call, "input")
    if not isinstance(tool_input, dict):
        raise InvalidAnswer("the tool input is not an object")
    values = {k: v for k, v in tool_input.items() if k not in SERVER_FIELDS}
    try:
        return Qualification.model_validate(
            {**values, "engine": engine, "model": model, "usage": usage, "fallback_reason": None}
        )
    except ValidationError as exc:
        fields = sorted({".".join(str(p) for p in error["loc"]) for error in exc.errors()})
        raise InvalidAnswer(f"the tool input is invalid at: {', '.join(fields)[:200]}") from None


def _field(block: Any, name: str) -> Any:
    return block.get(name) if isinstance(block, dict) else getattr(block, name, None)
