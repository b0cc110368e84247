"""Which Claude model qualifies a lead (pure): ENABLE_AGENT_MESH with AGENT_MESH_ROUTING.

``cost_aware`` sends short, clear messages to the small model and everything long, unclear,
non-English or mixed to the large one. The rules engine's reading of the message (the hint)
says what "clear" means: it found the intent and most of the facts on its own.
"""

from __future__ import annotations

from dataclasses import dataclass

from schemas.leads import LeadToQualify
from schemas.qualification import Intent, Qualification
from services.qualifier.skills import needs_multilingual

SHORT_MESSAGE_CHARS = 280  # about one SMS thread turn
CLEAR_CONFIDENCE = 0.45  # the rules found the intent and at least three more facts


@dataclass(frozen=True)
class Route:
    """The model chosen and the one-word reason, recorded with the qualification."""

    model: str
    reason: str
    small: bool = False


def choose_model(
    lead: LeadToQualify,
    hint: Qualification,
    *,
    large_model: str,
    small_model: str,
    mesh_enabled: bool,
    routing: str,
) -> Route:
    """The cheapest model able to handle ``lead`` under the configured routing."""
    if not mesh_enabled or routing != "cost_aware":
        return Route(large_model, "fixed")
    message = lead.message.strip()
    if len(message) > SHORT_MESSAGE_CHARS:
        return Route(large_model, "long_message")
    if hint.intent in (Intent.UNKNOWN, Intent.BOTH):
        return Route(large_model, "unclear_intent" if hint.intent == Intent.UNKNOWN else "mixed_intent")
    if needs_multilingual(lead, hint):
        return Route(large_model, "non_english")
    if hint.confidence < CLEAR_CONFIDENCE:
        return Route(large_model, "few_facts")
    return Route(small_model, "short_and_clear", small=True)
