"""Lead API models (requests and responses of /v1/leads) and lead events."""

from __future__ import annotations

import re
import uuid
from datetime import datetime
from typing import ClassVar, Literal
from urllib.parse import quote, urlsplit, urlunsplit

import phonenumbers
from pydantic import BaseModel, ConfigDict, EmailStr, Field, field_validator, model_validator

from schemas.envelope import EventEnvelope
from schemas.qualification import Intent, Qualification, Temperature
from schemas.text import Text

LEAD_ID_PATTERN = r"^[A-Za-z0-9][A-Za-z0-9._:-]{0,63}$"
DEFAULT_PHONE_REGION = "US"


class InvalidPhoneError(ValueError):
    """A phone number that cannot be a real, dialable number."""


def normalize_phone(raw: str, default_region: str = DEFAULT_PHONE_REGION) -> str:
    """Return ``raw`` in E.164 form, or raise InvalidPhoneError with the reason."""
    candidate = raw.strip()
    if not re.fullmatch(r"[0-9+().\-\s/xext]{3,40}", candidate, flags=re.IGNORECASE):
        raise InvalidPhoneError("phone contains characters a phone number cannot have")
    try:
        parsed = phonenumbers.parse(candidate, default_region)
    except phonenumbers.NumberParseException as exc:
        raise InvalidPhoneError(f"phone could not be parsed: {exc}") from exc
    if not phonenumbers.is_valid_number(parsed):
        raise InvalidPhoneError("phone is not a valid number for its country")
    return phonenumbers.format_number(parsed, phonenumbers.PhoneNumberFormat.E164)


class LeadContact(BaseModel):
    """Who the lead is and how to reach them; phone is stored in E.164."""

    model_config = ConfigDict(str_strip_whitespace=True)

    name: Text | None = Field(default=None, max_length=200)
    phone: str | None = Field(default=None, description="Any common format; stored as E.164 (+15555550100).")
    email: EmailStr | None = None


class QualifyLeadRequest(LeadContact):
    """Body of POST /v1/leads/qualify."""

    model_config = ConfigDict(
        str_strip_whitespace=True,
        extra="forbid",
        json_schema_extra={
            "example": {
                "lead_id": "lead-001",
                "name": "Maria Lopez",
                "phone": "+1 (909) 555-0143",
                "email": "maria@example.com",
                "message": "Pre-approved for $750k, looking for a 3 bed in Victoria within 2 months",
                "property_address": None,
            }
        },
    )

    lead_id: str = Field(
        pattern=LEAD_ID_PATTERN, description="Your id for the lead, unique in your organisation."
    )
    message: Text = Field(default="", max_length=10_000, description="What the lead wrote.")
    property_address: Text | None = Field(default=None, max_length=300)
    source: Text | None = Field(
        default=None, max_length=100, description="Where the lead came from, e.g. zillow."
    )

    @field_validator("phone")
    @classmethod
    def _phone_e164(cls, value: str | None) -> str | None:
        if value is None or value == "":
            return None
        return normalize_phone(value)

    @model_validator(mode="after")
    def _reachable(self) -> QualifyLeadRequest:
        if not self.phone and not self.email:
            raise ValueError("a lead needs a phone or an email")
        return self


class LeadToQualify(LeadContact):
    """Everything a qualification engine may read about a lead."""

    lead_id: str
    message: str = ""
    property_address: str | None = None
    source: str | None = None


class LeadQualificationRequestedPayload(BaseModel):
    """The lead to qualify and the qualification record the gateway opened for it."""

    qualification_id: str
    lead: LeadToQualify


class LeadQualificationRequested(EventEnvelope):
    """The gateway accepted a lead for qualification (keyed by lead id)."""

    EVENT_TYPE: ClassVar[str] = "lead.qualification_requested"
    event_type: Literal["lead.qualification_requested"] = "lead.qualification_requested"
    schema_version: Literal[1] = 1
    payload: LeadQualificationRequestedPayload


class LeadQualifiedPayload(BaseModel):
    """A finished qualification with the lead's contact data, so consumers need no lookup."""

    qualification_id: str
    lead: LeadToQualify
    qualification: Qualification
    completed_at: datetime


class LeadQualified(EventEnvelope):
    """A lead's qualification completed (keyed by lead id)."""

    EVENT_TYPE: ClassVar[str] = "lead.qualified"
    event_type: Literal["lead.qualified"] = "lead.qualified"
    schema_version: Literal[1] = 1
    payload: LeadQualifiedPayload


QualificationStatus = Literal["in_progress", "completed", "failed"]


class QualifyLeadAccepted(BaseModel):
    """201 answer of POST /v1/leads/qualify: the qualification is open and on its way; with
    `?wait=N` and the result stored in time, it is `completed` with its outcome filled."""

    qualification_id: str
    lead_id: str
    status: QualificationStatus = "in_progress"
    intent: Intent | None = Field(
        default=None, description="Filled once the qualification completes (see `?wait=N`)."
    )
    temperature: Temperature | None = Field(default=None, description="Filled once completed.")
    next_action: str | None = Field(
        default=None, description="What to do next, e.g. Schedule showing; filled once completed."
    )
    schedule_showing_url: str | None = Field(
        default=None,
        description="Your organisation's booking link for this lead (its id filled in); null when "
        "no booking link is set (`jorge orgs set-booking-url`).",
    )
    status_url: str = Field(description="Where to read the result.")
    created_at: datetime
    expires_at: datetime


class RecommendedProperty(BaseModel):
    """A listing suggested to a buyer lead."""

    id: str
    address: str
    price: int
    beds: int | None = None
    match_score: float


class QualificationView(BaseModel):
    """Answer of GET /v1/leads/{lead_id}/qualification."""

    qualification_id: str
    lead_id: str
    status: QualificationStatus
    engine: str | None = None
    result: Qualification | None = None
    schedule_showing_url: str | None = Field(
        default=None, description="Your organisation's booking link for this lead; null when none is set."
    )
    recommended_properties: list[RecommendedProperty] = Field(default_factory=list)
    created_at: datetime
    completed_at: datetime | None = None
    expires_at: datetime


def new_qualification_id() -> str:
    """A short, URL-safe, unguessable qualification id (qual-<22 hex>)."""
    return f"qual-{uuid.uuid4().hex[:22]}"


BOOKING_URL_PLACEHOLDER = "{lead_id}"


class InvalidBookingUrl(ValueError):
    """A booking link template that is not an absolute http(s) URL."""


def check_booking_url(template: str) -> str:
    """Return ``template`` if it is an absolute http(s) URL (``{lead_id}`` may appear in it)."""
    probe = urlsplit(template.replace(BOOKING_URL_PLACEHOLDER, "lead-001"))
    if probe.scheme not in ("https", "http") or not probe.netloc or any(c.isspace() for c in template):
        raise InvalidBookingUrl("the booking link must be an absolute https:// URL without spaces")
    if "{" in template.replace(BOOKING_URL_PLACEHOLDER, ""):
        raise InvalidBookingUrl(f"the only placeholder a booking link can hold is {BOOKING_URL_PLACEHOLDER}")
    return template


def schedule_showing_url(template: str | None, lead_id: str) -> str | None:
    """The organisation's booking link for one lead: ``{lead_id}`` replaced by the lead's id, or
    ``lead_id=…`` added to the query when the template has no placeholder; None without a template."""
    if not template:
        return None
    quoted = quote(lead_id, safe="")
    if BOOKING_URL_PLACEHOLDER in template:
        return template.replace(BOOKING_URL_PLACEHOLDER, quoted)
    parts = urlsplit(template)
    query = f"{parts.query}&lead_id={quoted}" if parts.query else f"lead_id={quoted}"
    return urlunsplit(parts._replace(query=query))
