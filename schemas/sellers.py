"""Seller API models (requests and responses of /v1/sellers), analysis results and seller events."""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Annotated, Any, ClassVar, Literal

from pydantic import AwareDatetime, BaseModel, ConfigDict, EmailStr, Field, field_validator

from schemas.envelope import EventEnvelope
from schemas.leads import LEAD_ID_PATTERN, normalize_phone
from schemas.text import Text

#: Same shape as lead ids: 1-64 characters [A-Za-z0-9._:-], yours, unique in your organisation.
SELLER_ID_PATTERN = LEAD_ID_PATTERN
ANALYSIS_ID_PATTERN = r"^cma-[0-9a-f]{22}$"

Condition = Literal["excellent", "good", "fair", "poor"]
ResultStatus = Literal["pending", "completed", "failed"]
ConsultationStatus = Literal["requested", "scheduled", "cancelled", "completed"]

Latitude = Annotated[float, Field(ge=-90, le=90)]
Longitude = Annotated[float, Field(ge=-180, le=180)]


class SellerProperty(BaseModel):
    """The home to price, as the seller describes it."""

    model_config = ConfigDict(str_strip_whitespace=True, extra="forbid")

    property_address: Text = Field(min_length=5, max_length=300)
    bedrooms: int = Field(ge=0, le=50)
    bathrooms: float = Field(ge=0, le=50, description="Half baths count 0.5, e.g. 2.5.")
    square_feet: int = Field(ge=100, le=100_000, description="Living area.")
    condition: Condition
    list_price: int | None = Field(
        default=None, ge=1, le=1_000_000_000, description="The price the seller has in mind, if any."
    )
    city: Text | None = Field(default=None, max_length=100)
    postal_code: str | None = Field(default=None, pattern=r"^[A-Za-z0-9][A-Za-z0-9 -]{1,11}$")
    neighborhood: Text | None = Field(default=None, max_length=100)
    latitude: Latitude | None = Field(default=None, description="Give it with longitude.")
    longitude: Longitude | None = None
    year_built: int | None = Field(default=None, ge=1600, le=2100, description="Not after next year.")
    lot_size_sqft: int | None = Field(default=None, ge=0, le=100_000_000)


class AnalyzePropertyRequest(SellerProperty):
    """Body of POST /v1/sellers/analyze."""

    model_config = ConfigDict(
        str_strip_whitespace=True,
        extra="forbid",
        json_schema_extra={
            "example": {
                "seller_id": "seller-001",
                "property_address": "456 Oak Ave, Rancho Cucamonga, CA",
                "bedrooms": 4,
                "bathrooms": 2.5,
                "square_feet": 2500,
                "condition": "good",
                "list_price": 850000,
            }
        },
    )

    seller_id: str = Field(pattern=SELLER_ID_PATTERN, description="Your id for the seller.")

    def home(self) -> SellerProperty:
        """The home, without the seller id."""
        return SellerProperty.model_validate(self.model_dump(exclude={"seller_id"}))


class SellerAnalysisRequestedPayload(BaseModel):
    """Everything the seller analyzer needs to price one home, without reading the database."""

    analysis_id: str
    seller_id: str
    property: SellerProperty


class SellerAnalysisRequested(EventEnvelope):
    """The gateway opened a seller analysis (keyed by seller id)."""

    EVENT_TYPE: ClassVar[str] = "seller.analysis_requested"
    event_type: Literal["seller.analysis_requested"] = "seller.analysis_requested"
    schema_version: Literal[1] = 1
    payload: SellerAnalysisRequestedPayload


class PriceRecommendation(BaseModel):
    """The suggested list price range in dollars and how sure the analyzer is."""

    low: int = Field(ge=0)
    mid: int = Field(ge=0)
    high: int = Field(ge=0)
    confidence: float = Field(ge=0, le=1)


class ComparableProperty(BaseModel):
    """A recently sold or listed home the price is compared with; analyzers may add fields."""

    model_config = ConfigDict(extra="allow")

    address: str
    price: int
    bedrooms: int | None = None
    bathrooms: float | None = None
    square_feet: int | None = None
    status: str | None = Field(default=None, examples=["sold"])
    sold_at: datetime | None = None
    distance_km: float | None = None


class AdjustedComparable(ComparableProperty):
    """A comparable sale with its adjustment grid: what was added or taken off, and its weight."""

    listing_id: str | None = None
    year_built: int | None = None
    adjustments: dict[str, int] = Field(
        default_factory=dict,
        description="Dollars added to the sale price for each difference from the subject "
        "(time, living_area, age, bedrooms, bathrooms, condition).",
    )
    adjusted_price: int | None = Field(default=None, description="Sale price plus the adjustments.")
    gross_adjustment_pct: float | None = Field(
        default=None, description="Sum of the adjustments' absolute values, in % of the sale price."
    )
    weight: float | None = Field(
        default=None, ge=0, le=1, description="Share in the estimate (0 if an outlier)."
    )
    outlier: bool = False
    notes: list[str] = Field(default_factory=list)


class Cma(BaseModel):
    """Comparative market analysis."""

    market_analysis: dict[str, Any] = Field(
        description="Figures of the local market, e.g. median_price, price_per_sqft, days_on_market."
    )
    comparable_properties: list[AdjustedComparable]
    price_recommendation: PriceRecommendation


class SellerAnalysisResult(BaseModel):
    """What the seller analyzer stores in seller_analyses.result."""

    cma: Cma
    market_conditions: str = Field(examples=["Strong buyer market"])
    recommendations: list[str]


class SellerAnalyzedPayload(BaseModel):
    """A stored seller analysis: completed with its CMA, or failed with the reason."""

    analysis_id: str
    seller_id: str
    status: Literal["completed", "failed"]
    result: SellerAnalysisResult | None = None
    failure_reason: str | None = None
    completed_at: datetime


class SellerAnalyzed(EventEnvelope):
    """The seller analyzer stored an analysis (keyed by seller id)."""

    EVENT_TYPE: ClassVar[str] = "seller.analyzed"
    event_type: Literal["seller.analyzed"] = "seller.analyzed"
    schema_version: Literal[1] = 1
    payload: SellerAnalyzedPayload


class AnalysisAccepted(BaseModel):
    """202 answer: the analysis is stored and on its way to the seller analyzer."""

    analysis_id: str = Field(examples=["cma-3f9c0a1b2c3d4e5f607182"])
    seller_id: str
    status: Literal["pending"] = "pending"
    result_url: str = Field(description="Where to read the result.")


class SellerAnalysisView(BaseModel):
    """A seller analysis: pending, or completed with its CMA (the spec's response)."""

    analysis_id: str
    seller_id: str
    status: ResultStatus
    cma: Cma | None = Field(default=None, description="Set once completed.")
    market_conditions: str | None = None
    recommendations: list[str] = Field(default_factory=list)
    failure_reason: str | None = None
    created_at: datetime
    completed_at: datetime | None = None


class ConsultationRequest(BaseModel):
    """Body of POST /v1/sellers/{seller_id}/schedule-consultation."""

    model_config = ConfigDict(
        str_strip_whitespace=True,
        extra="forbid",
        json_schema_extra={
            "example": {
                "preferred_times": ["2030-01-15T10:00:00-08:00", "2030-01-16T14:30:00-08:00"],
                "name": "Sam Rivera",
                "phone": "+1 (909) 555-0143",
                "email": "sam@example.com",
                "notes": "Mornings are best; the side gate code is 4512.",
            }
        },
    )

    preferred_times: list[AwareDatetime] = Field(
        min_length=1,
        max_length=10,
        description="Times that suit the seller, with their UTC offset, in the future.",
    )
    name: Text | None = Field(default=None, max_length=200)
    phone: str | None = Field(default=None, description="Any common format; stored as E.164 (+15555550100).")
    email: EmailStr | None = None
    notes: Text | None = Field(default=None, max_length=2_000)

    @field_validator("phone")
    @classmethod
    def _phone_e164(cls, value: str | None) -> str | None:
        if value is None or value == "":
            return None
        return normalize_phone(value)


class ConsultationRequestedPayload(BaseModel):
    """A seller's consultation request, for crm_sync to book it."""

    consultation_id: str
    seller_id: str
    request: ConsultationRequest


class ConsultationRequested(EventEnvelope):
    """A seller asked for a consultation (keyed by seller id)."""

    EVENT_TYPE: ClassVar[str] = "seller.consultation_requested"
    event_type: Literal["seller.consultation_requested"] = "seller.consultation_requested"
    schema_version: Literal[1] = 1
    payload: ConsultationRequestedPayload


class ConsultationView(BaseModel):
    """201 answer of schedule-consultation: the request is stored and on its way to the CRM."""

    consultation_id: str = Field(examples=["consult-3f9c0a1b2c3d4e5f607182"])
    seller_id: str
    status: ConsultationStatus = "requested"
    preferred_times: list[datetime]
    created_at: datetime


def new_analysis_id() -> str:
    """A short, URL-safe, unguessable analysis id (cma-<22 hex>)."""
    return f"cma-{uuid.uuid4().hex[:22]}"


def new_consultation_id() -> str:
    """A short, URL-safe, unguessable consultation id (consult-<22 hex>)."""
    return f"consult-{uuid.uuid4().hex[:22]}"
