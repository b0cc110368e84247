"""Notes a salesperson reads in GoHighLevel, written from our events (pure text, no I/O)."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from typing import Any

from schemas.qualification import Qualification
from schemas.sellers import ConsultationRequest

MARKER_PREFIX = "ref jorge:"


def marker(event_id: str) -> str:
    """The last line of every note: how a retry recognises a note it already wrote."""
    return f"{MARKER_PREFIX}{event_id}"


def _money(value: int | None) -> str:
    return f"${value:,}" if value is not None else "?"


def _label(value: str) -> str:
    return value.replace("_", " ")


_TIMELINES = {
    "within_1_month": "within a month",
    "1_3_months": "1-3 months",
    "3_6_months": "3-6 months",
    "6_12_months": "6-12 months",
    "over_12_months": "over a year",
}


def _budget(low: int | None, high: int | None) -> str:
    """A salesperson's reading of the budget: a range, a ceiling or a floor."""
    if low is not None and high is not None:
        return f"{_money(low)}-{_money(high)}"
    return f"up to {_money(high)}" if high is not None else f"from {_money(low)}"


def qualification_note(
    lead_name: str | None, message: str, qualification: Qualification, property_address: str | None
) -> str:
    """The qualification summary: who, what they want, how ready, what to do next."""
    q = qualification
    money = q.financial_readiness
    prefs = q.property_preferences
    lines = [
        f"Jorge qualified {lead_name or 'this lead'}: {q.temperature.value.upper()} {_label(q.intent.value)}"
        + (" (investor)" if q.is_investor else ""),
        f"Timeline: {_TIMELINES.get(q.timeline.value, _label(q.timeline.value))}"
        + (f" (~{q.timeline_months} months)" if q.timeline_months is not None else ""),
        f"Financing: {_label(money.status.value)}"
        + (
            f", budget {_budget(money.budget_min, money.budget_max)}"
            if money.budget_max or money.budget_min
            else ""
        ),
    ]
    wanted = [
        f"{prefs.bedrooms}+ bed" if prefs.bedrooms else "",
        prefs.property_type or "",
        ", ".join(prefs.areas),
    ]
    if any(wanted):
        lines.append("Looking for: " + " / ".join(w for w in wanted if w))
    if property_address:
        lines.append(f"Property: {property_address}")
    if q.motivation:
        lines.append(f"Motivation: {q.motivation}")
    if q.temperature_reasons:
        lines.append("Why: " + "; ".join(q.temperature_reasons[:5]))
    lines.append(f"Next action: {q.next_action}")
    if message:
        lines.append(f'They wrote: "{message[:500]}"')
    lines.append(f"(engine {q.engine}, confidence {q.confidence:.0%})")
    return "\n".join(lines)


def matches_note(matches: Sequence[dict[str, Any]], total: int | None, next_actions: Sequence[str]) -> str:
    """Top homes of a buyer's match session."""
    lines = [f"Jorge matched {total if total is not None else len(matches)} homes; top picks:"]
    for match in matches[:5]:
        home = match.get("property", {})
        score = match.get("match_score")
        lines.append(
            f"- {home.get('address', '?')}: {_money(home.get('price'))}"
            + (f", {home['bedrooms']} bed" if home.get("bedrooms") else "")
            + (f" (score {float(score):.0%})" if score is not None else "")
        )
    if not matches:
        lines.append("- none yet")
    if next_actions:
        lines.append("Next: " + ", ".join(next_actions[:3]))
    return "\n".join(lines)


def cma_note(address: str | None, result: dict[str, Any]) -> str:
    """A seller's comparative market analysis: the recommended price range."""
    cma = result.get("cma", {})
    price = cma.get("price_recommendation", {})
    lines = [
        f"Jorge CMA for {address or 'the seller'}: "
        f"{_money(price.get('low'))} - {_money(price.get('high'))} (suggested {_money(price.get('mid'))})",
    ]
    if price.get("confidence") is not None:
        lines.append(f"Confidence: {float(price['confidence']):.0%}")
    comps = cma.get("comparable_properties", [])
    if comps:
        lines.append(f"Based on {len(comps)} comparable homes")
    if result.get("market_conditions"):
        lines.append(f"Market: {result['market_conditions']}")
    for recommendation in list(result.get("recommendations", []))[:3]:
        lines.append(f"- {recommendation}")
    return "\n".join(lines)


def consultation_note(request: ConsultationRequest) -> str:
    """A seller's consultation request with the times that suit them."""
    times = ", ".join(_when(t) for t in request.preferred_times)
    lines = [f"Consultation requested by {request.name or 'the seller'}", f"Preferred times: {times}"]
    if request.notes:
        lines.append(f"Notes: {request.notes}")
    return "\n".join(lines)


def _when(moment: datetime) -> str:
    return moment.isoformat(timespec="minutes")


def with_marker(body: str, event_id: str) -> str:
    """The note as sent: its text, then the marker line."""
    return f"{body}\n\n{marker(event_id)}"
