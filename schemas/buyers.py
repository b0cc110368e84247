"""Buyer API models (requests and responses of /v1/buyers), match results and buyer events."""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Annotated, Any, ClassVar, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator

from schemas.envelope import EventEnvelope
from schemas.leads import LEAD_ID_PATTERN
from schemas.text import Text

#: Same shape as lead ids: 1-64 characters [A-Za-z0-9._:-], yours, unique in your organisation.
BUYER_ID_PATTERN = LEAD_ID_PATTERN
MATCH_SESSION_ID_PATTERN = r"^match-[0-9a-f]{22}$"
MAX_PRICE = 1_000_000_000

SortBy = Literal["relevance", "price", "distance"]
PropertyType = Literal["single_family", "condo", "townhouse", "multi_family", "manufactured", "land"]
ResultStatus = Literal["pending", "completed", "failed"]

Price = Annotated[int, Field(ge=0, le=MAX_PRICE)]
BedroomCount = Annotated[int, Field(ge=0, le=20)]
Label = Annotated[Text, Field(min_length=1, max_length=100)]
Latitude = Annotated[float, Field(ge=-90, le=90)]
Longitude = Annotated[float, Field(ge=-180, le=180)]

_PREFERENCES_EXAMPLE: dict[str, Any] = {
    "budget_min": 600000,
    "budget_max": 800000,
    "bedrooms": [3, 4],
    "bathrooms": 2,
    "property_types": ["single_family"],
    "neighborhoods": ["Victoria", "Haven"],
    "must_haves": ["garage", "pool"],
}


class BuyerPreferences(BaseModel):
    """What a buyer is looking for. Body of PUT /v1/buyers/{buyer_id}/preferences."""

    model_config = ConfigDict(
        str_strip_whitespace=True, extra="forbid", json_schema_extra={"example": _PREFERENCES_EXAMPLE}
    )

    budget_min: Price = Field(description="Lowest price in dollars; not above budget_max.")
    budget_max: Price = Field(description="Highest price in dollars.")
    bedrooms: Annotated[list[BedroomCount], Field(min_length=1, max_length=21)] | BedroomCount | None = Field(
        default=None,
        description="A bedroom count or the acceptable counts, e.g. [3, 4]; stored as a sorted list.",
    )
    bathrooms: float | None = Field(default=None, ge=0, le=20, description="Minimum bathrooms, e.g. 2.5.")
    property_types: list[PropertyType] = Field(default_factory=list, max_length=6)
    neighborhoods: list[Label] = Field(default_factory=list, max_length=20)
    must_haves: list[Label] = Field(
        default_factory=list, max_length=20, description="Features the home must have, e.g. garage."
    )
    latitude: Latitude | None = Field(
        default=None, description="Where distances are measured from; give it with longitude."
    )
    longitude: Longitude | None = None

    @field_validator("bedrooms")
    @classmethod
    def _bedrooms_as_list(cls, value: list[int] | int | None) -> list[int] | None:
        if value is None:
            return None
        return sorted(set([value] if isinstance(value, int) else value))

    @field_validator("property_types", "neighborhoods", "must_haves")
    @classmethod
    def _distinct(cls, value: list[str]) -> list[str]:
        return list(dict.fromkeys(value))


class MatchPropertiesRequest(BuyerPreferences):
    """Body of POST /v1/buyers/match-properties: the buyer's preferences and how to rank homes."""

    model_config = ConfigDict(
        str_strip_whitespace=True,
        extra="forbid",
        json_schema_extra={
            "example": {"buyer_id": "buyer-001", **_PREFERENCES_EXAMPLE, "sort_by": "relevance"}
        },
    )

    buyer_id: str = Field(pattern=BUYER_ID_PATTERN, description="Your id for the buyer.")
    sort_by: SortBy = Field(default="relevance", description="`distance` needs latitude and longitude.")
    max_results: int = Field(default=10, ge=1, le=50, description="How many homes to return at most.")

    def preferences(self) -> BuyerPreferences:
        """The part of the request that is stored as the buyer's preferences."""
        return BuyerPreferences.model_validate(
            self.model_dump(exclude={"buyer_id", "sort_by", "max_results"})
        )


class BuyerPreferencesView(BuyerPreferences):
    """A buyer's stored preferences."""

    model_config = ConfigDict(
        extra="forbid",
        json_schema_extra={
            "example": {
                "buyer_id": "buyer-001",
                **_PREFERENCES_EXAMPLE,
                "bedrooms": [3, 4],
                "latitude": None,
                "longitude": None,
                "updated_at": "2026-11-23T10:00:00Z",
            }
        },
    )

    buyer_id: str
    updated_at: datetime


class BuyerMatchRequestedPayload(BaseModel):
    """Everything the matcher needs to run one match session, without reading the database."""

    match_session_id: str
    buyer_id: str
    preferences: BuyerPreferences
    sort_by: SortBy
    max_results: int


class BuyerMatchRequested(EventEnvelope):
    """The gateway opened a match session for a buyer (keyed by buyer id)."""

    EVENT_TYPE: ClassVar[str] = "buyer.match_requested"
    event_type: Literal["buyer.match_requested"] = "buyer.match_requested"
    schema_version: Literal[1] = 1
    payload: BuyerMatchRequestedPayload


class PropertyListing(BaseModel):
    """A home for sale as the matcher returns it; matchers may add fields."""

    model_config = ConfigDict(extra="allow")

    id: str
    address: str
    price: int
    bedrooms: int | None = None
    bathrooms: float | None = None
    square_feet: int | None = None
    property_type: str | None = None
    neighborhood: str | None = None
    latitude: float | None = None
    longitude: float | None = None
    distance_km: float | None = Field(default=None, description="From the buyer's location, if given.")


class PropertyMatch(BaseModel):
    """One ranked home with its score and why it matched."""

    rank: int = Field(ge=1)
    property: PropertyListing
    match_score: float = Field(ge=0, le=1)
    explanation: str = Field(examples=["Perfect match: 3BR, $725k, Victoria"])
    fits: list[str] = Field(default_factory=list, description="Why the home fits the buyer.")
    missing: list[str] = Field(default_factory=list, description="What the buyer asked for that it lacks.")
    risks: list[str] = Field(default_factory=list, description="What to check before an offer.")
    score_breakdown: dict[str, float] = Field(
        default_factory=dict, description="Each criterion's score (0-1) before weighting."
    )


class MatchResults(BaseModel):
    """What the matcher stores in match_sessions.result."""

    total_matches: int = Field(ge=0, description="Homes that matched, before max_results was applied.")
    matches: list[PropertyMatch]
    next_actions: list[str] = Field(examples=[["Schedule showing", "Request CMA"]])


class BuyerMatchedPayload(BaseModel):
    """A stored match session: completed with its ranked homes, or failed with the reason."""

    match_session_id: str
    buyer_id: str
    qualification_id: str | None = Field(
        default=None, description="Set when the session was opened for a qualified buyer lead."
    )
    status: Literal["completed", "failed"]
    result: MatchResults | None = None
    failure_reason: str | None = None
    completed_at: datetime


class BuyerMatched(EventEnvelope):
    """The matcher stored a match session (keyed by buyer id, or lead id for a qualified lead)."""

    EVENT_TYPE: ClassVar[str] = "buyer.matched"
    event_type: Literal["buyer.matched"] = "buyer.matched"
    schema_version: Literal[1] = 1
    payload: BuyerMatchedPayload


class MatchAccepted(BaseModel):
    """202 answer: the match session is stored and on its way to the matcher."""

    match_session_id: str = Field(examples=["match-3f9c0a1b2c3d4e5f607182"])
    buyer_id: str
    status: Literal["pending"] = "pending"
    result_url: str = Field(description="Where to read the result.")


class MatchSessionView(BaseModel):
    """A match session: pending, or completed with its ranked homes (the spec's response)."""

    match_session_id: str
    buyer_id: str
    status: ResultStatus
    total_matches: int | None = Field(default=None, description="Set once completed.")
    matches: list[PropertyMatch] = Field(default_factory=list)
    next_actions: list[str] = Field(default_factory=list)
    failure_reason: str | None = None
    created_at: datetime
    completed_at: datetime | None = None


def new_match_session_id() -> str:
    """A short, URL-safe, unguessable match session id (match-<22 hex>)."""
    return f"match-{uuid.uuid4().hex[:22]}"
