"""The qualification of a lead: what every qualification engine (rules or Claude) must fill."""

from __future__ import annotations

from enum import StrEnum

from pydantic import BaseModel, ConfigDict, Field


class Intent(StrEnum):
    """What the lead wants to do, in the client's API vocabulary: `buyer_intent` (to buy),
    `seller_intent` (to sell), `buyer_and_seller_intent` (to sell and buy, e.g. move up),
    `renter_intent` (to rent) or `unknown_intent` (vague, spam, off-topic).

    The short forms of earlier versions (`buyer`, `seller`, `both`, `renter`, `unknown`) are still
    read, so events and rows written before the change keep working; only the long forms are
    written.
    """

    BUYER = "buyer_intent"
    SELLER = "seller_intent"
    BOTH = "buyer_and_seller_intent"
    RENTER = "renter_intent"
    UNKNOWN = "unknown_intent"

    @classmethod
    def _missing_(cls, value: object) -> Intent | None:
        return _LEGACY_INTENTS.get(value) if isinstance(value, str) else None


#: The labels used before the client's vocabulary, mapped to their members (read, never written).
_LEGACY_INTENTS: dict[str, Intent] = {
    "buyer": Intent.BUYER,
    "seller": Intent.SELLER,
    "both": Intent.BOTH,
    "renter": Intent.RENTER,
    "unknown": Intent.UNKNOWN,
}


class Temperature(StrEnum):
    """How soon and how likely the lead is to transact; derived from timeline and financing."""

    HOT = "hot"
    WARM = "warm"
    COLD = "cold"


class Timeline(StrEnum):
    """When the lead plans to move."""

    WITHIN_1_MONTH = "within_1_month"
    MONTHS_1_3 = "1_3_months"
    MONTHS_3_6 = "3_6_months"
    MONTHS_6_12 = "6_12_months"
    OVER_12_MONTHS = "over_12_months"
    UNKNOWN = "unknown"


class FinancingStatus(StrEnum):
    """How the purchase would be paid for."""

    PRE_APPROVED = "pre_approved"
    CASH = "cash"
    TALKING_TO_LENDER = "talking_to_lender"
    NEEDS_FINANCING = "needs_financing"
    UNKNOWN = "unknown"


class FinancialReadiness(BaseModel):
    """Money side of the lead (the M of LPMAMA)."""

    model_config = ConfigDict(frozen=True)

    status: FinancingStatus = FinancingStatus.UNKNOWN
    pre_approved: bool = False
    budget_min: int | None = Field(default=None, ge=0)
    budget_max: int | None = Field(default=None, ge=0)
    confidence: float = Field(default=0.0, ge=0.0, le=1.0)


class PropertyPreferences(BaseModel):
    """What the lead is looking for (or selling)."""

    model_config = ConfigDict(frozen=True)

    bedrooms: int | None = Field(default=None, ge=0, le=20, description="Minimum bedrooms wanted.")
    bathrooms: float | None = Field(default=None, ge=0, le=20)
    property_type: str | None = None
    areas: list[str] = Field(default_factory=list, description="Cities or neighborhoods named.")
    neighborhood: str | None = Field(default=None, description="The first area named, for the spec's shape.")
    price_range: str | None = Field(default=None, description="Human form of the budget, e.g. 600k-800k.")


class TokenUsage(BaseModel):
    """Tokens one qualification used at the Anthropic API and what they cost (estimated)."""

    model_config = ConfigDict(frozen=True)

    input_tokens: int = Field(default=0, ge=0, description="Uncached input tokens.")
    output_tokens: int = Field(default=0, ge=0)
    cache_read_tokens: int = Field(default=0, ge=0, description="Input tokens read from the prompt cache.")
    cache_write_tokens: int = Field(default=0, ge=0, description="Input tokens written to the prompt cache.")
    cost_usd: float = Field(default=0.0, ge=0.0, description="Estimated spend at list prices.")


class Qualification(BaseModel):
    """A complete, explainable qualification of one lead."""

    model_config = ConfigDict(frozen=True)

    intent: Intent
    is_investor: bool = False
    temperature: Temperature
    temperature_reasons: list[str] = Field(default_factory=list)
    timeline: Timeline = Timeline.UNKNOWN
    timeline_months: int | None = Field(default=None, ge=0, description="Months until the move, when stated.")
    financial_readiness: FinancialReadiness = Field(default_factory=FinancialReadiness)
    property_preferences: PropertyPreferences = Field(default_factory=PropertyPreferences)
    motivation: str | None = None
    has_agent: bool | None = None
    must_sell_first: bool | None = None
    next_action: str
    language: str = Field(default="en", description="ISO 639-1 code of the lead's message.")
    confidence: float = Field(ge=0.0, le=1.0)
    engine: str = Field(description="Which engine decided: rules-v1 or claude.")
    suggested_reply: str | None = Field(
        default=None, max_length=1000, description="A short reply the bot could send (Claude writes it)."
    )
    model: str | None = Field(default=None, description="The Claude model called for this lead, if any.")
    usage: TokenUsage | None = Field(
        default=None, description="Tokens and estimated cost of the Claude calls; null when none was made."
    )
    fallback_reason: str | None = Field(
        default=None,
        description="Why the rules engine decided although Claude is configured: timeout, rate_limited, "
        "overloaded, invalid_answer, api_error or circuit_open.",
    )
