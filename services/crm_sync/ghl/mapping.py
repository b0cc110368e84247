"""What to write to GoHighLevel for each event: contact, tags, note, opportunity (pure, no I/O).

The plan is decided here; services/crm_sync/ghl/writer.py carries it out. Custom-field mapping is
configuration (GHL_CUSTOM_FIELDS), never code.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from schemas.leads import LeadQualified
from schemas.qualification import Qualification, Temperature
from schemas.sellers import ConsultationRequestedPayload
from services.crm_sync.ghl.budget import Priority
from services.crm_sync.ghl.notes import (
    cma_note,
    consultation_note,
    matches_note,
    qualification_note,
    with_marker,
)

BASE_TAG = "jorge"


@dataclass(frozen=True, slots=True)
class ContactDetails:
    """How to reach a person, as we know them."""

    name: str | None = None
    email: str | None = None
    phone: str | None = None

    @property
    def reachable(self) -> bool:
        return bool(self.email or self.phone)


@dataclass(frozen=True, slots=True)
class OpportunityPlan:
    """A hot lead's opportunity in the configured pipeline."""

    name: str
    monetary_value: int | None


@dataclass(frozen=True, slots=True)
class CrmPlan:
    """Everything one event writes to the organisation's GHL location, in order."""

    person_id: str
    contact: ContactDetails
    contact_fields: dict[str, Any]
    tags: tuple[str, ...]
    note: str | None
    opportunity: OpportunityPlan | None = None
    priority: Priority = "standard"
    custom_fields: tuple[dict[str, Any], ...] = field(default_factory=tuple)

    @property
    def expected_calls(self) -> int:
        """The GHL requests this plan takes when its person is new: a duplicate search and the
        contact's upsert, its tags, its note, and its opportunity (a search, then a write)."""
        return 2 + bool(self.tags) + bool(self.note) + (2 if self.opportunity else 0)


def parse_custom_fields(spec: str) -> dict[str, str]:
    """``timeline=contact.timeline,budget_max=AbC123`` -> {qualification field: GHL key or id}."""
    mapping: dict[str, str] = {}
    for pair in filter(None, (p.strip() for p in spec.split(","))):
        name, sep, target = pair.partition("=")
        if not sep or not name.strip() or not target.strip():
            raise ValueError(f"custom field mapping {pair!r} is not name=fieldKeyOrId")
        mapping[name.strip()] = target.strip()
    return mapping


def qualification_values(q: Qualification) -> dict[str, Any]:
    """The qualification's fields a custom-field mapping may name."""
    money = q.financial_readiness
    prefs = q.property_preferences
    return {
        "intent": q.intent.value,
        "temperature": q.temperature.value,
        "timeline": q.timeline.value,
        "timeline_months": q.timeline_months,
        "financing": money.status.value,
        "pre_approved": money.pre_approved,
        "budget_min": money.budget_min,
        "budget_max": money.budget_max,
        "bedrooms": prefs.bedrooms,
        "property_type": prefs.property_type,
        "areas": ", ".join(prefs.areas) or None,
        "price_range": prefs.price_range,
        "motivation": q.motivation,
        "next_action": q.next_action,
        "confidence": q.confidence,
        "is_investor": q.is_investor,
    }


def custom_fields(values: Mapping[str, Any], mapping: Mapping[str, str]) -> tuple[dict[str, Any], ...]:
    """GHL's customFields entries: a ``contact.``-style target is a key, anything else an id."""
    out = []
    for name, target in mapping.items():
        value = values.get(name)
        if value is None:
            continue
        ref = "key" if "." in target else "id"
        out.append({ref: target, "field_value": value})
    return tuple(out)


def split_name(name: str | None) -> dict[str, str]:
    """GHL's firstName/lastName/name from one free-text name."""
    if not name or not name.strip():
        return {}
    parts = name.strip().split()
    fields = {"name": " ".join(parts), "firstName": parts[0]}
    if len(parts) > 1:
        fields["lastName"] = " ".join(parts[1:])
    return fields


def tag(kind: str, value: str) -> str:
    """A tag GHL keeps as typed: lower case, spaces as dashes, e.g. source:zillow."""
    cleaned = re.sub(r"\s+", "-", value.strip().lower())
    return f"{kind}:{cleaned}"[:100]


def contact_fields(contact: ContactDetails, source: str | None) -> dict[str, Any]:
    """The upsert body's contact part (never tags: on upsert they replace the contact's tags)."""
    fields: dict[str, Any] = {**split_name(contact.name), "source": source or "Jorge"}
    if contact.email:
        fields["email"] = contact.email
    if contact.phone:
        fields["phone"] = contact.phone
    return fields


def lead_qualified_plan(event: LeadQualified, mapping: Mapping[str, str], *, opportunities: bool) -> CrmPlan:
    """A qualified lead: contact, intent/temperature/source tags, the summary note, and an
    opportunity when the lead is hot and a pipeline is configured."""
    lead = event.payload.lead
    q = event.payload.qualification
    contact = ContactDetails(lead.name, lead.email, lead.phone)
    tags = [BASE_TAG, tag("intent", q.intent.value), tag("temperature", q.temperature.value)]
    if lead.source:
        tags.append(tag("source", lead.source))
    if q.is_investor:
        tags.append("investor")
    hot = q.temperature == Temperature.HOT
    opportunity = None
    if hot and opportunities:
        money = q.financial_readiness
        opportunity = OpportunityPlan(
            name=f"{lead.name or lead.lead_id} - {q.intent.value}",
            monetary_value=money.budget_max or money.budget_min,
        )
    return CrmPlan(
        person_id=lead.lead_id,
        contact=contact,
        contact_fields=contact_fields(contact, lead.source),
        tags=tuple(tags),
        note=with_marker(
            qualification_note(lead.name, lead.message, q, lead.property_address), str(event.event_id)
        ),
        opportunity=opportunity,
        priority="hot" if hot else "standard",
        custom_fields=custom_fields(qualification_values(q), mapping),
    )


def buyer_matched_plan(
    event_id: str, buyer_id: str, contact: ContactDetails, result: Mapping[str, Any]
) -> CrmPlan:
    """A buyer's match session: the top homes as a note on the buyer's contact."""
    note = matches_note(
        list(result.get("matches", [])), result.get("total_matches"), result.get("next_actions", [])
    )
    return CrmPlan(
        person_id=buyer_id,
        contact=contact,
        contact_fields=contact_fields(contact, None),
        tags=(BASE_TAG, "buyer", "homes-matched"),
        note=with_marker(note, event_id),
    )


def seller_analyzed_plan(
    event_id: str, seller_id: str, contact: ContactDetails, address: str | None, result: Mapping[str, Any]
) -> CrmPlan:
    """A seller's CMA: the recommended price range as a note on the seller's contact."""
    return CrmPlan(
        person_id=seller_id,
        contact=contact,
        contact_fields=contact_fields(contact, None),
        tags=(BASE_TAG, "seller", "cma-ready"),
        note=with_marker(cma_note(address, dict(result)), event_id),
    )


def consultation_plan(event_id: str, payload: ConsultationRequestedPayload) -> CrmPlan:
    """A seller's consultation request: contact from the request, a note with their times.
    It is sales-ready, so it takes the hot lane."""
    request = payload.request
    contact = ContactDetails(request.name, request.email, request.phone)
    return CrmPlan(
        person_id=payload.seller_id,
        contact=contact,
        contact_fields=contact_fields(contact, None),
        tags=(BASE_TAG, "seller", "consultation-requested"),
        note=with_marker(consultation_note(request), event_id),
        priority="hot",
    )


def lane_of_lead(qualification: Qualification) -> Priority:
    """Hot leads take the hot lane; the rest the standard lane."""
    return "hot" if qualification.temperature == Temperature.HOT else "standard"
